"""The console's sign-in routes (served by server.py): the sign-in and setup forms post here.

Streamlit cannot set a cookie, so the forms on the sign-in and setup pages are plain HTML
forms that post to these routes. A route checks the form came from the console's own page
(the browser's Origin, as for the websocket: a CSRF guard), checks the password, and answers
with a redirect back to the page the operator asked for, setting the session cookie:
its value is the session's token signed with Streamlit's cookie secret (itsdangerous), it
expires with the session, and it is HttpOnly and SameSite=Strict. The pages read it from
`st.context.cookies` and look the session up in the database, where signing out, an
operator's removal or a password change ends it.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from streamlit import config
from streamlit.url_util import make_url_path

from lib.console import operators
from lib.console.errors import FAILURES, SetupAlreadyDone
from lib.secret import Secret
from lib.session_cookie import (
    COOKIE,
    SETUP_PARAM,
    SETUP_PATH,
    SIGN_IN_PARAM,
    SIGN_IN_PATH,
    WAIT_PARAM,
    route_path,
    sign_token,
)
from lib.ui.sign_in import installation_console
from lib.web_guard import is_own_origin

log = logging.getLogger(__name__)


def _from_own_page(request: Request) -> bool:
    """Return whether the form was posted by the console's own page (Origin, else Referer)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        referer = urlsplit(request.headers.get("referer", ""))
        origin = f"{referer.scheme}://{referer.netloc}" if referer.netloc else None
    return origin is not None and is_own_origin(origin, request.headers.get("host"))


def local_path(value: object) -> str:
    """Return `value` if it is a path on this console ("/account?account=3"), else "/"."""
    path = str(value or "")
    parts = urlsplit(path)
    if not path.startswith("/") or path.startswith("//") or "\\" in path or parts.netloc:
        return "/"
    return path[:2000]


def _back(next_path: str, **params: str | int) -> RedirectResponse:
    """Redirect to a page of the console (under the base path), adding query parameters."""
    path, _, query = next_path.partition("?")
    ours = (SIGN_IN_PARAM, WAIT_PARAM, SETUP_PARAM)
    kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in ours]
    query = urlencode([*kept, *((k, str(v)) for k, v in params.items())])
    url = make_url_path(config.get_option("server.baseUrlPath") or "", path)
    return RedirectResponse(url + (f"?{query}" if query else ""), status_code=303)


def _signed_in(next_path: str, token: str, request: Request) -> Response:
    """Redirect to the page asked for, with the session cookie set."""
    response = _back(next_path)
    response.set_cookie(
        COOKIE,
        sign_token(token),
        max_age=int(operators.SESSION_LIFETIME.total_seconds()),
        path=route_path("/"),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def _refused() -> Response:
    return PlainTextResponse(
        "Refused: this form must be sent from the console's own page. Open the console and "
        "sign in there.",
        status_code=403,
    )


async def sign_in(request: Request) -> Response:
    """Check a name and password posted by the sign-in form; sign the operator in."""
    if not _from_own_page(request):
        return _refused()
    form = await request.form()
    next_path = local_path(form.get("next"))
    address = request.client.host if request.client else None
    try:
        result = await run_in_threadpool(
            operators.sign_in,
            installation_console(),
            str(form.get("operator") or ""),
            Secret(str(form.get("password") or "")),
            address=address,
        )
    except FAILURES as error:
        log.warning("sign-in failed on the store: %s", type(error).__name__)
        return _back(next_path, **{SIGN_IN_PARAM: "error"})
    if result.ok:
        assert result.token is not None
        return _signed_in(next_path, result.token, request)
    if result.wait_seconds:
        return _back(next_path, **{SIGN_IN_PARAM: "wait", WAIT_PARAM: result.wait_seconds})
    return _back(next_path, **{SIGN_IN_PARAM: "failed"})


async def setup(request: Request) -> Response:
    """Create the first admin from the setup form and sign them in; once only."""
    if not _from_own_page(request):
        return _refused()
    form = await request.form()
    next_path = local_path(form.get("next"))
    name = str(form.get("operator") or "")
    password = Secret(str(form.get("password") or ""))
    if operators.operator_name_problem(name):
        return _back(next_path, **{SETUP_PARAM: "name"})
    if operators.password_problem(password):
        return _back(next_path, **{SETUP_PARAM: "password"})
    if password != Secret(str(form.get("confirm") or "")):
        return _back(next_path, **{SETUP_PARAM: "mismatch"})
    try:
        token = await run_in_threadpool(
            operators.create_first_admin, installation_console(), name, password
        )
    except SetupAlreadyDone:
        return _back(next_path, **{SIGN_IN_PARAM: "setup-done"})
    except FAILURES as error:
        log.warning("setup failed on the store: %s", type(error).__name__)
        return _back(next_path, **{SETUP_PARAM: "error"})
    return _signed_in(next_path, token, request)


def session_routes() -> list[Route]:
    """Return the sign-in and setup routes, under server.baseUrlPath."""
    return [
        Route(route_path(SIGN_IN_PATH), sign_in, methods=["POST"]),
        Route(route_path(SETUP_PATH), setup, methods=["POST"]),
    ]
