"""The session source's refusal."""

from __future__ import annotations

from verifier.core.reasons import Reason, Rejection


class SessionRejected(Rejection):
    """No usable session. ``reason`` is one of the ``session_*`` codes; ``set_cookie`` is a
    ``Set-Cookie`` value oauth2-proxy sent with its refusal (it clears a broken cookie) that should
    still reach the browser.
    """

    def __init__(self, reason: Reason, detail: str, *, set_cookie: str | None = None) -> None:
        super().__init__(reason, detail)
        self.set_cookie = set_cookie
