"""The session source: a browser's oauth2-proxy cookie turned into an access token.

A browser signed in through oauth2-proxy holds only an opaque session cookie; the tokens stay in
oauth2-proxy's Redis session store. For a request that carries that cookie and no bearer token the
verifier asks oauth2-proxy's ``/oauth2/auth`` endpoint (over localhost, run with ``--set-xauthrequest
--pass-access-token``), which answers

* ``202 Accepted`` with ``X-Auth-Request-Access-Token`` and the session's ID token as
  ``Authorization: Bearer`` (``--set-authorization-header``; read once per sign-in, see below), plus
  ``Set-Cookie`` when it refreshed the session, for a live session,
* ``401`` when there is no valid session (with a clearing ``Set-Cookie`` when the cookie was bad or a
  refresh failed for good),
* ``403`` when one of its own ``allowed_*`` constraints refuses the user.

The access token it returns is then validated exactly like a bearer token by the caller; this module
never trusts it on oauth2-proxy's word.

Only the session cookie (and the ``<name>_<n>`` chunks oauth2-proxy uses when a cookie-store session is
too big for one cookie) is forwarded: the rest of the browser's cookies are none of oauth2-proxy's
business and may belong to other applications on the site.

Failure is closed: oauth2-proxy unreachable, slow, or answering anything unexpected means the request
is refused with ``session_backend_unavailable`` (status 503: it is not the user's fault and it passes;
nginx reads the status and reason from the verifier's answer and repeats them), never allowed.

A session store outage must not sign anyone out. oauth2-proxy as built here (``oauth2-proxy/patches``)
answers a session it could not read for a store fault with 503, keeping the session and the cookie;
upstream oauth2-proxy answers it like "this cookie names no session", with 401 and a ``Set-Cookie``
that deletes the cookie (and a ``DEL`` of the session). The verifier does not rely on the patch: before
it passes a 401 on, it asks Redis itself whether the session the cookie names is still stored
(:class:`~verifier.sources.session.store.StoredSessions`, one ``EXISTS``) and checks oauth2-proxy's
readiness probe (``/ready``, which pings its session store). A session still stored, or a store that
does not answer, makes the answer 503 ``session_backend_unavailable`` and the deleting ``Set-Cookie``
is dropped, so the browser keeps the cookie and the same session works again once the store is back.

Sessions end a fixed time after sign-in (``max_age_seconds``, one hour by default), however often they
are refreshed. oauth2-proxy cannot do this: its ``cookie_expire`` counts from the session's creation
time, and every refresh saves the session with a new one, so on its own a session lives as long as the
refresh token does (90 days at Entra by default). The verifier records when it first saw each sign-in
(keyed by the session's binding, which survives refreshes, see
:func:`~verifier.core.session_cookies.session_binding`) in Redis, and
once ``max_age_seconds`` have passed it signs the session out at oauth2-proxy (deleting it from
Redis, so the refresh token is gone with it) and answers 401 ``session_expired`` with oauth2-proxy's
deleting ``Set-Cookie``. The clock starts when the sign-in callback wrote the session's first cookie
(the time oauth2-proxy signs into it), read when any task first sees the session.

Sessions also end without their cookie: by Entra's front-channel logout, which names only the Entra
sign-in session (``sid``), and by "sign out everywhere" for one user (``oid``). So the first sight of a
sign-in also records it under both, read from the session's ID token
(:class:`~verifier.sources.session.store.SessionRegistry`); ending by either marks each recorded
session ended (401 ``session_ended`` on its next request, on any task), deletes it from oauth2-proxy's
store and leaves a mark that ends a session of that sid (or of that user, begun earlier) seen later.

Entra's Conditional Access sign-in frequency can shorten a session further; the edge does not rely
on it, since not every tenant has it.

The package: :mod:`~verifier.sources.session.source` (the flow), :mod:`~verifier.sources.session.oauth2_proxy`
(the client), :mod:`~verifier.sources.session.store` (what the verifier keeps in Redis),
:mod:`~verifier.sources.session.settings`; the pure cookie functions are
:mod:`verifier.core.session_cookies`.
"""
