"""oauth2-proxy's session cookie, read without I/O: which cookies of a request are the session's
(with oauth2-proxy's ``<name>_<n>`` chunks), the session's binding that survives refreshes, the ticket id
of a Redis-stored session, and the ``Set-Cookie`` to pass back. Pure: nothing here decides whether a
session is valid, only what a cookie says."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence

DEFAULT_COOKIE_NAME = "__Host-oauth2_proxy"

#: oauth2-proxy splits a cookie-store session into at most a handful of 4 KB chunks; more than this is
#: not something it wrote.
MAX_COOKIE_CHUNKS = 16

#: Upper bound on what is forwarded to oauth2-proxy, so a hostile client cannot make the verifier
#: relay megabytes of cookie.
MAX_FORWARDED_COOKIE_BYTES = 16 * 1024


def _is_cookie_text(text: str) -> bool:
    # RFC 6265 cookie-octets are printable ASCII without space, '"', ',', ';' and '\'; being a little
    # more lenient (oauth2-proxy's Go parser is) is fine as long as nothing can break the header we
    # build: no control characters, no ';'.
    return text.isascii() and text.isprintable() and ";" not in text


def is_cookie_name(name: str) -> bool:
    """A cookie name the verifier can forward and match: non-empty printable ASCII, no ``;``, ``=``
    or space."""
    return bool(name) and _is_cookie_text(name) and "=" not in name and " " not in name


def parse_cookie_header(headers: Iterable[str]) -> list[tuple[str, str]]:
    """``name=value`` pairs from one or more ``Cookie`` header values, in order.

    Hand-written because :class:`http.cookies.SimpleCookie` drops the whole header at the first
    pair it dislikes, while browsers and oauth2-proxy (Go's ``net/http``) skip just that pair; the
    verifier must see the same cookies oauth2-proxy will. Malformed pairs are skipped.
    """
    pairs: list[tuple[str, str]] = []
    for header in headers:
        for item in header.split(";"):
            name, sep, value = item.strip().partition("=")
            name = name.strip()
            value = value.strip()
            if not sep or not name or not _is_cookie_text(name) or "=" in name or " " in name:
                continue
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            if not _is_cookie_text(value) or " " in value:
                continue
            pairs.append((name, value))
    return pairs


def session_cookies(cookie_headers: Iterable[str], name: str) -> tuple[tuple[str, str], ...]:
    """The session cookie and its chunks (``name``, ``name_0``, ``name_1``, ...) from ``Cookie`` headers.

    The first occurrence of each name wins, as in Go's ``Request.Cookie``, so the cookie the verifier
    binds CSRF tokens to is the one oauth2-proxy reads. Chunks are taken from ``_0`` upward and stop
    at the first gap, as oauth2-proxy joins them. Empty when the request carries no session cookie.
    """
    first: dict[str, str] = {}
    for cookie_name, value in parse_cookie_header(cookie_headers):
        first.setdefault(cookie_name, value)
    found: list[tuple[str, str]] = []
    if first.get(name):
        found.append((name, first[name]))
    for index in range(MAX_COOKIE_CHUNKS):
        chunk = f"{name}_{index}"
        if not first.get(chunk):
            break
        found.append((chunk, first[chunk]))
    return tuple(found)


def session_cookie_value(cookies: Sequence[tuple[str, str]], name: str) -> str:
    """The session cookie's value as oauth2-proxy reads it: the whole cookie if present, else the
    chunks joined in order."""
    for cookie_name, value in cookies:
        if cookie_name == name:
            return value
    return "".join(value for _, value in cookies)


def session_binding(cookie_value: str) -> bytes:
    """A stable, secret-free identifier of the sign-in a session cookie belongs to.

    oauth2-proxy's cookie value is ``<base64 payload>|<unix time>|<HMAC>`` (``pkg/encryption``
    ``SignedValue``). With the Redis session store the payload is the encoded session *ticket*
    ``v2.<ticket id>.<ticket secret>`` (``pkg/sessions/persistence/ticket.go``). A refresh re-saves the
    session under the same ticket, so only the time and MAC change; a new sign-in after sign-out gets
    a new random ticket. Hashing just the payload therefore yields a binding that survives refreshes
    and changes with the sign-in. It is hashed so the binding can be used freely (in a MAC, in a log
    correlation) without ever exposing the ticket secret that decrypts the session.

    A value without that shape (a cookie-store session) is bound as a whole: it still works, only a
    refresh then invalidates outstanding CSRF tokens.
    """
    parts = cookie_value.split("|")
    stable = parts[0] if len(parts) == 3 and parts[0] else cookie_value
    return hashlib.sha256(b"oauth2-proxy-session\n" + stable.encode("utf-8")).digest()


#: oauth2-proxy's ticket ids: ``<cookie name>-<16 random bytes in hex>`` (``newTicket``).
_TICKET_ID_SUFFIX = re.compile(r"[0-9a-f]{32}")


def _raw_b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def session_ticket_id(cookie_value: str, cookie_name: str) -> str | None:
    """The Redis key under which oauth2-proxy keeps the session this cookie names, or None when the
    value is no session ticket (then no stored session can belong to it).

    The cookie's first field is the base64 ticket ``v2.<base64 id>.<base64 secret>`` (see
    :func:`session_binding`); only the id is read, never the secret. The value comes from the
    network and becomes a Redis key, so anything but ``<cookie name>-<32 hex digits>`` is refused.
    The MAC is not checked here (the verifier does not hold the cookie secret): this only ever asks
    whether such a session exists.
    """
    parts = cookie_value.split("|")
    if len(parts) != 3 or len(parts[0]) > 512:
        return None
    try:
        fields = _raw_b64decode(parts[0]).decode("ascii").split(".")
        if len(fields) != 3 or fields[0] != "v2":
            return None
        ticket_id = _raw_b64decode(fields[1]).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    prefix = cookie_name + "-"
    if not ticket_id.startswith(prefix) or not _TICKET_ID_SUFFIX.fullmatch(ticket_id[len(prefix) :]):
        return None
    return ticket_id


def cookie_header(cookies: Sequence[tuple[str, str]]) -> str:
    """The ``Cookie`` header the verifier sends oauth2-proxy: the session cookie and its chunks."""
    return "; ".join(f"{name}={value}" for name, value in cookies)


def cookie_name_of(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0].partition("=")[0].strip()


def pick_session_set_cookie(set_cookies: Iterable[str], name: str) -> str | None:
    """The one ``Set-Cookie`` to hand back to the browser: the last one for the session cookie.

    nginx copies it with ``auth_request_set $v $upstream_http_set_cookie``, and that variable holds
    only the *first* ``Set-Cookie`` line on nginx 1.22 (later versions join repeated lines with
    ", ", which is no valid Set-Cookie either), so the verifier must send exactly one. With the Redis
    store oauth2-proxy only ever sets the one ticket cookie; the last line is the one a browser would
    end up with.
    """
    chosen: str | None = None
    for value in set_cookies:
        if cookie_name_of(value) == name and "\r" not in value and "\n" not in value:
            chosen = value
    return chosen


def session_cookie_time(cookie_value: str) -> int | None:
    """When oauth2-proxy wrote this cookie (unix seconds), or None for a value without that shape.

    The middle field of ``<payload>|<unix time>|<HMAC>``. oauth2-proxy signs the time with the value
    and refuses a cookie whose MAC or time does not check out (``pkg/encryption`` ``Validate``: older
    than ``cookie_expire`` or more than 5 minutes ahead), so once oauth2-proxy has accepted the
    cookie its time is authentic. A session's first cookie is written by the sign-in callback; a
    refresh writes a new one, but only after a request through the verifier, which by then has
    recorded the sign-in.
    """
    parts = cookie_value.split("|")
    if len(parts) != 3 or not parts[1].isdigit() or len(parts[1]) > 12:
        return None
    return int(parts[1])
