"""The session cookie and the sign-in routes' addresses, shared by the routes and the pages.

The cookie's value is the session's token, timestamped and signed with Streamlit's cookie
secret (itsdangerous): a forged or expired cookie is refused before the database is asked.
"""

from __future__ import annotations

from itsdangerous import BadSignature, URLSafeTimedSerializer
from streamlit import config
from streamlit.url_util import make_url_path
from streamlit.web.server.server_util import get_cookie_secret

from lib.console import operators

COOKIE = "bindwatch_session"
SIGN_IN_PATH = "session/sign-in"
SETUP_PATH = "session/setup"
# Query parameters the routes send back to the page, read by lib.ui.sign_in.
SIGN_IN_PARAM = "signin"  # "failed", "wait" (with WAIT_PARAM seconds), "error", "setup-done"
WAIT_PARAM = "wait"
SETUP_PARAM = "setup"  # "name", "password", "mismatch", "error"
_SALT = "bindwatch-session"  # keeps this signature apart from anything else signed with the secret


def route_path(path: str) -> str:
    """Return a route's path as the browser addresses it (under server.baseUrlPath)."""
    return make_url_path(config.get_option("server.baseUrlPath") or "", path)


def _signer() -> URLSafeTimedSerializer:
    # auth.cookie_secret when SSO is set up, else server.cookieSecret (random per process).
    return URLSafeTimedSerializer(get_cookie_secret(), salt=_SALT)


def sign_token(token: str) -> str:
    """Return the cookie value for a session token: the token, timestamped and signed."""
    return _signer().dumps(token)


def session_token(cookie: str | None) -> str | None:
    """Return the token a session cookie carries, None if absent, forged or expired."""
    if not cookie:
        return None
    try:
        token = _signer().loads(cookie, max_age=int(operators.SESSION_LIFETIME.total_seconds()))
    except BadSignature:  # SignatureExpired is one
        return None
    return token if isinstance(token, str) else None
