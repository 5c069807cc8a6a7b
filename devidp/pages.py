"""Server-rendered HTML for the few pages a person sees; every value is escaped.

Two pages carry a script, each by a per-response nonce and each with a way through without it: the
form_post answer (a Continue button) and the single sign-out page (a Continue link).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from devidp.model import User

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1b1b1b}
h1{font-size:1.4rem}
.banner{background:#fff4ce;border:1px solid #c8a600;padding:.5rem .75rem;font-size:.85rem}
.error{background:#fde7e9;border:1px solid #a80000;padding:.5rem .75rem} button{margin:.2rem 0}
.user{display:block;width:100%;text-align:left;padding:.5rem} label{display:block;margin-top:.5rem}
input[type=text],input[type=password]{width:100%;padding:.4rem} small{color:#555}
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action *; frame-ancestors 'none'; base-uri 'none'"

#: Headers every HTML page carries: no framing (clickjacking), no caching of sign-in state.
PAGE_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def _layout(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        "<p class=banner>devidp: a local stand-in for Microsoft Entra ID, for development only.</p>"
        f"{body}</body></html>"
    )


def sign_in(
    *,
    action: str,
    tx_id: str,
    csrf: str,
    app_name: str,
    tenant_name: str,
    users: Sequence[User],
    error: str = "",
    login_hint: str = "",
    current_user_id: str | None = None,
) -> str:
    parts = [f"<h1>Sign in to {escape(app_name)}</h1><p><small>{escape(tenant_name)}</small></p>"]
    if error:
        parts.append(f"<p class=error role=alert>{escape(error)}</p>")
    hidden = (
        f'<input type=hidden name=tx value="{escape(tx_id)}">'
        f'<input type=hidden name=csrf value="{escape(csrf)}">'
    )
    parts.append(f'<form method=post action="{escape(action)}">{hidden}<h2>Pick an account</h2>')
    ordered = sorted(users, key=lambda u: (u.id != current_user_id, u.user_principal_name))
    for user in ordered:
        marker = " (signed in)" if user.id == current_user_id else ""
        disabled = " (disabled)" if not user.account_enabled else ""
        parts.append(
            f'<button class=user type=submit name=pick value="{escape(user.id)}">'
            f"{escape(user.display_name)}{escape(marker)}{escape(disabled)}<br>"
            f"<small>{escape(user.user_principal_name)}</small></button>"
        )
    parts.append("</form>")
    parts.append(
        f'<form method=post action="{escape(action)}">{hidden}<h2>Or use a password</h2>'
        "<label>Username <input type=text name=username autocomplete=username "
        f'value="{escape(login_hint)}"></label>'
        "<label>Password <input type=password name=password autocomplete=current-password></label>"
        "<p><button type=submit name=signin value=password>Sign in</button></p></form>"
        f'<form method=post action="{escape(action)}">{hidden}'
        "<button type=submit name=cancel value=1>Cancel</button></form>"
    )
    return _layout("Sign in", "".join(parts))


def step_up(
    *,
    action: str,
    tx_id: str,
    csrf: str,
    app_name: str,
    tenant_name: str,
    contexts: Sequence[str],
    error: str = "",
) -> str:
    """Entra's "Verify your identity" prompt, with devidp's stand-in for a second factor: the
    user's configured step-up code typed into ``otc``."""
    hidden = (
        f'<input type=hidden name=tx value="{escape(tx_id)}">'
        f'<input type=hidden name=csrf value="{escape(csrf)}">'
    )
    items = "".join(f"<li>{escape(name)}</li>" for name in contexts)
    err = f"<p class=error role=alert>{escape(error)}</p>" if error else ""
    body = (
        f"<h1>Verify your identity</h1><p><small>{escape(tenant_name)}</small></p>{err}"
        f"<p>{escape(app_name)} needs you to verify your identity again for:</p><ul>{items}</ul>"
        f'<form method=post action="{escape(action)}">{hidden}'
        "<label>Code <input type=text name=otc inputmode=numeric autocomplete=one-time-code autofocus>"
        "</label><p><button type=submit name=verify value=1>Verify</button></p></form>"
        f'<form method=post action="{escape(action)}">{hidden}'
        "<button type=submit name=cancel value=1>Cancel</button></form>"
        "<p><small>devidp: the code is the user's <code>stepUpCode</code> in its configuration.</small></p>"
    )
    return _layout("Verify your identity", body)


def error_page(title: str, message: str, details: Mapping[str, str] | None = None) -> str:
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in (details or {}).items())
    return _layout(
        title, f"<h1>{escape(title)}</h1><p class=error role=alert>{escape(message)}</p><dl>{rows}</dl>"
    )


def csp_with_script(nonce: str) -> str:
    return _CSP.replace("default-src 'none';", f"default-src 'none'; script-src 'nonce-{nonce}';")


def form_post(redirect_uri: str, fields: Mapping[str, str], script_nonce: str) -> str:
    inputs = "".join(f'<input type=hidden name="{escape(k)}" value="{escape(v)}">' for k, v in fields.items())
    # The one script on any page: submitting the response form, which a person can also do by hand.
    body = (
        f'<form method=post action="{escape(redirect_uri)}" id=response>{inputs}'
        "<noscript><p>Script is off: press Continue.</p></noscript>"
        "<button type=submit>Continue</button></form>"
        f"<script nonce=\"{escape(script_nonce)}\">document.getElementById('response').submit()</script>"
    )
    return _layout("Signing in", body)


def message(title: str, text: str) -> str:
    return _layout(title, f"<h1>{escape(title)}</h1><p>{escape(text)}</p>")


def device_code_entry(action: str, error: str = "") -> str:
    err = f"<p class=error role=alert>{escape(error)}</p>" if error else ""
    return _layout(
        "Enter code",
        (
            f"<h1>Enter code</h1>{err}<p>Enter the code displayed on your app or device.</p>"
            f'<form method=post action="{escape(action)}"><label>Code <input type=text name=otc '
            "autocomplete=off autofocus></label><p><button type=submit>Next</button></p></form>"
        ),
    )


#: How long the sign-out page waits for the front-channel logout frames before it moves on, so an
#: app that never answers cannot keep the user on devidp's page.
FRONT_CHANNEL_TIMEOUT_MS = 5000

# Counts the frames' load events from a capturing listener registered before any frame exists, so
# a frame that loads before the script could look at it is still counted. A frame that fails still
# fires load in browsers; one that hangs is covered by the timeout.
_FRONT_CHANNEL_SCRIPT = """(function () {
  var box = document.getElementById("front-channel");
  var loaded = new Set(), parsed = false, done = false;
  function finish() {
    if (done) return;
    done = true;
    var next = box.getAttribute("data-continue-to");
    if (next) { window.location.replace(next); return; }
    document.getElementById("signing-out").hidden = true;
    document.getElementById("signed-out").hidden = false;
  }
  function check() {
    if (parsed && loaded.size >= box.querySelectorAll("iframe[data-front-channel-logout]").length) finish();
  }
  document.addEventListener("load", function (event) {
    var frame = event.target;
    if (frame && frame.matches && frame.matches("iframe[data-front-channel-logout]")) {
      loaded.add(frame);
      check();
    }
  }, true);
  document.addEventListener("DOMContentLoaded", function () { parsed = true; check(); });
  window.setTimeout(finish, TIMEOUT_MS);
})();""".replace("TIMEOUT_MS", str(FRONT_CHANNEL_TIMEOUT_MS))


def csp_with_frames(nonce: str, frame_origins: Sequence[str]) -> str:
    """The page CSP plus its one script (by nonce) and frames of exactly ``frame_origins``."""
    return _CSP.replace(
        "default-src 'none';",
        f"default-src 'none'; script-src 'nonce-{nonce}'; frame-src {' '.join(frame_origins)};",
    )


def front_channel_sign_out(
    frames: Sequence[tuple[str, str]],
    *,
    continue_to: str | None,
    script_nonce: str,
    error: str = "",
) -> str:
    """The end-session page that signs the user out of other apps: one hidden iframe per
    ``(app name, front-channel logout URL)``, then on to ``continue_to`` (or the signed-out message)
    once every frame has loaded or the timeout has passed. ``error``: why it cannot go on to the app."""
    title = "You signed out of your account"
    done_text = "It's a good idea to close all browser windows."
    err = f"<p class=error role=alert>{escape(error)}</p>" if error else ""
    link = f'<p><a href="{escape(continue_to)}">Continue</a></p>' if continue_to else ""
    target = f' data-continue-to="{escape(continue_to)}"' if continue_to else ""
    iframes = "".join(
        f'<iframe hidden data-front-channel-logout title="Signing out of {escape(name)}" '
        f'src="{escape(url)}"></iframe>'
        for name, url in frames
    )
    body = (
        f"<h1>{escape(title)}</h1>{err}<div id=front-channel{target}>"
        f"<p id=signing-out>Signing you out of the applications you used in this session.</p>"
        f"<p id=signed-out hidden>{escape(done_text)}</p>"
        f"<noscript><p>{escape(done_text)}</p>{link}</noscript>"
        f'<script nonce="{escape(script_nonce)}">{_FRONT_CHANNEL_SCRIPT}</script>'
        f"{iframes}</div>"
    )
    return _layout(title, body)
