"""``python -m verifier``: how the launcher, compose and the ECS task definitions start the verifier."""

import sys

from verifier.service.main import main

if __name__ == "__main__":
    sys.exit(main())
