"""``python -m fastapi_app.migrate``: bring the API's database schema to the newest revision, then exit.

The step before the API starts (an ECS container the API waits for, a compose service, the local
launcher). It reads the same ``API_DATABASE_URL`` / ``API_DATABASE_PATH`` as the API and nothing
else. Safe when several tasks run it at once (see ``fastapi_app.database.migrations``). Exit status:
0 done, 2 bad configuration, 1 the database could not be migrated (the reason is printed, never the URL).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from fastapi_app.database.engine import DATABASE_UNAVAILABLE_ERRORS
from fastapi_app.database.migrations import upgrade_to_head
from fastapi_app.settings import database_url_from_env
from service_runtime.config_error import ConfigError


def main() -> int:
    try:
        url = database_url_from_env(os.environ)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        revision = asyncio.run(upgrade_to_head(url))
    except DATABASE_UNAVAILABLE_ERRORS as exc:
        # The exception's class only: driver messages may quote connection parameters.
        print(
            json.dumps({"event": "migrate", "outcome": "database_unavailable", "error": type(exc).__name__}),
            file=sys.stderr,
        )
        return 1
    print(json.dumps({"event": "migrate", "outcome": "ok", "revision": revision}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
