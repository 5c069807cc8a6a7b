"""``/{tenant}/stepup``: the answer to the step-up page, devidp's stand-in for Entra's MFA prompt.

The page is shown by :func:`devidp.signin.after_sign_in` when an authorize request's ``claims`` ask
for an authentication context the sign-in has not satisfied. The right code (the user's
``stepUpCode``) satisfies the contexts for the rest of the sign-in session and issues the code;
a wrong one shows the page again; Cancel sends AADSTS50074 to the app.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from devidp import errors, pages
from devidp.http import html
from devidp.model import Tenant
from devidp.runtime import Runtime
from devidp.signin import (
    StepUp,
    answered_transaction,
    in_tenant,
    issue_code,
    render_step_up,
    send_error,
    signed_in_user,
)

WRONG_CODE = "That code didn't work. Check the code and try again."


@in_tenant
async def step_up(request: web.Request, rt: Runtime, tenant: Tenant) -> web.Response:
    form = await request.post()
    tx = answered_transaction(request, rt, tenant, form, ("step_up",))
    if isinstance(tx, web.Response):
        return tx
    pending: StepUp = tx.request
    if form.get("cancel"):
        rt.store.finish_login(tx.id)
        return send_error(rt, pending.authorize.target, errors.STEP_UP_NOT_PASSED())
    current = signed_in_user(rt, request, tenant)
    if current is None or current[0].id != pending.user_id:
        # Signed out, or signed in as someone else, since the page was shown.
        rt.store.finish_login(tx.id)
        return html(
            pages.error_page(
                "Sign-in expired", "You are no longer signed in as before. Start again from the application."
            ),
            status=400,
        )
    user, signed_in = current
    code = str(form.get("otc", "")).strip()
    if not (user.step_up_code and code and hmac.compare_digest(code.encode(), user.step_up_code.encode())):
        return render_step_up(rt, tenant, tx, pending, error=WRONG_CODE)
    rt.store.finish_login(tx.id)
    signed_in.satisfied_contexts.update(pending.contexts)
    return issue_code(rt, tenant, pending.authorize, user, signed_in)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/{tenant}/stepup", step_up)
