"""Who is at the browser, and the pages a browser sees before signing in: setup, sign-in.

A browser is signed in when its session cookie (set by lib.web_session) names a live session,
or when single sign-on (`st.login`, with `[auth]` in Streamlit's secrets) gave an e-mail that
the `[sso_roles]` allow-list maps to a role. This Streamlit session then keeps the session's id
(never its token, never a password) in OPERATOR_SESSION and asks the database on every run
whether it is still live: signing out anywhere, an operator's removal or a password change
ends it at the next run.

The forms are HTML forms that post to lib.web_session's routes, so the password goes straight
to the route that checks it and never becomes a widget value.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError
from streamlit.errors import StreamlitSecretNotFoundError
from streamlit.navigation.page import StreamlitPage

from lib.config import Config, redact_url
from lib.console import Console, KucoinTarget, Role
from lib.console import operators as ops
from lib.console.errors import VaultError
from lib.console.operators import OPERATOR_NAME_RULE, PASSWORD_RULE, SignedIn, SignInMethod
from lib.session_cookie import (
    COOKIE,
    SETUP_PARAM,
    SETUP_PATH,
    SIGN_IN_PARAM,
    SIGN_IN_PATH,
    WAIT_PARAM,
    route_path,
    session_token,
)

OPERATOR_SESSION = "_operator_session"  # session state: the session's id (a SHA-256, not a token)
SESSION_ENDED = "_operator_session_ended"  # session state: why this tab's session ended
SSO_ROLES = "sso_roles"  # the secrets section mapping "admin"/"viewer" to e-mail addresses
SIGN_IN_MESSAGES = {
    "failed": ("error", "Wrong name or password."),
    "error": ("error", "bindwatch could not check the sign-in (its database): try again."),
    "setup-done": (
        "info",
        "The first admin was created a moment ago, perhaps in another browser: sign in.",
    ),
}
SETUP_MESSAGES = {
    "name": OPERATOR_NAME_RULE,
    "password": PASSWORD_RULE,
    "mismatch": "The two passwords differ: type the same password twice.",
    "error": "bindwatch could not save the admin (its database): try again.",
}
_FORM_STYLE = """
<style>
form.bw-sign-in { max-width: 24rem; display: flex; flex-direction: column; gap: 0.75rem; }
form.bw-sign-in label { display: flex; flex-direction: column; gap: 0.25rem; font-size: 0.9rem; }
form.bw-sign-in input { font: inherit; padding: 0.5rem 0.75rem; border-radius: 0.5rem;
  border: 1px solid rgba(128, 128, 128, 0.45); background: transparent; color: inherit; }
form.bw-sign-in button { font: inherit; padding: 0.5rem 1rem; border-radius: 0.5rem;
  border: none; background: #ff4b4b; color: white; cursor: pointer; align-self: flex-start; }
</style>
"""
OPENING_FAILURES = (VaultError, SQLAlchemyError, OSError)  # the installation cannot open
_run = threading.local()


def current() -> SignedIn | None:
    """Return the operator signed in for this run of the page (set by the frame)."""
    return getattr(_run, "operator", None)


def set_current(operator: SignedIn | None) -> None:
    """Remember who this run of the page is for (the frame calls it before the page)."""
    _run.operator = operator


@st.cache_resource(show_spinner=False)
def _open_console(config: Config, kucoin: KucoinTarget) -> Console:
    """Open one console per (database, KuCoin location) for the whole server process."""
    return Console.open(config, kucoin=kucoin)


def installation_console() -> Console:
    """Return the configured installation's console (operators and sessions live there).

    Raise VaultError, SQLAlchemyError or OSError when it cannot open (see opening_problem).
    """
    config = Config.from_env()
    return _open_console(config, KucoinTarget.from_config(config))


def opening_problem(error: Exception) -> str:
    """Return what to tell the operator when the installation's console cannot open."""
    if isinstance(error, VaultError):
        return f"bindwatch cannot open its credential store: {error}"
    url = redact_url(Config.from_env().database_url)
    return (
        f"bindwatch cannot open its database ({url}): {type(error).__name__}. Check "
        "BINDWATCH_DATABASE_URL / BINDWATCH_DATA_DIR."
    )


def acting_console(target: Console, installation: Console, operator: SignedIn) -> Console:
    """Return `target` acting as the operator; their role is asked again before every action.

    `installation` holds the sessions (the demo's console has a database of its own).
    """

    def role_now() -> Role | None:
        """Return the operator's role now, None once the session has ended."""
        still = ops.signed_in(installation, operator.session_id)
        return None if still is None else still.role

    return target.as_actor(operator.name, operator.role, role_now)


# --- Who is signed in --------------------------------------------------------------------------


def _secrets_section(name: str) -> Mapping[str, Any] | None:
    """Return a section of Streamlit's secrets, None when absent (or no secrets at all)."""
    try:
        section = st.secrets.get(name)
    except (StreamlitSecretNotFoundError, FileNotFoundError):
        return None
    return section if isinstance(section, Mapping) else None


def sso_configured() -> bool:
    """Return whether single sign-on is set up (`[auth]` in Streamlit's secrets)."""
    return _secrets_section("auth") is not None


def sso_role() -> Role | None:
    """Return the role the identity provider's signed-in e-mail maps to, None if none."""
    if not (sso_configured() and st.user.is_logged_in):
        return None
    return ops.sso_role(
        st.user.get("email"),
        _secrets_section(SSO_ROLES) or {},
        verified=st.user.get("email_verified"),
    )


def signed_in_operator(console: Console) -> SignedIn | None:
    """Return who this browser is signed in as (cookie, SSO or this tab's session), or None."""
    state = st.session_state
    remembered = state.get(OPERATOR_SESSION)
    if remembered:
        operator = ops.signed_in(console, remembered)
        if operator is not None:
            if operator.method is SignInMethod.SSO and sso_role() != operator.role:
                ops.sign_out(console, operator.session_id, reason="no longer allowed")
                return None
            return operator
        del state[OPERATOR_SESSION]
        state[SESSION_ENDED] = True
        if sso_configured() and st.user.is_logged_in:
            st.logout()  # else the identity provider's cookie would sign in again at once
        return None
    token = session_token(st.context.cookies.get(COOKIE))
    if token is not None:
        operator = ops.signed_in(console, ops.session_id(token))
        if operator is not None:
            state[OPERATOR_SESSION] = operator.session_id
            return operator
    role = sso_role()
    if role is not None:
        state[OPERATOR_SESSION] = ops.sign_in_sso(console, st.user.get("email"), role)
        return ops.signed_in(console, state[OPERATOR_SESSION])
    return None


def sign_out(console: Console) -> None:
    """End this browser's session (a button's callback); SSO also signs out of Streamlit."""
    operator = current()
    session = st.session_state.pop(OPERATOR_SESSION, None)
    if session:
        ops.sign_out(console, session)
    if operator is not None and operator.method is SignInMethod.SSO:
        st.logout()


def still_signed_in(*, touch: bool) -> bool:
    """Return whether this tab's session is still live (for a fragment that reruns alone)."""
    session = st.session_state.get(OPERATOR_SESSION)
    if not session:
        return False
    try:
        return ops.signed_in(installation_console(), session, touch=touch) is not None
    except OPENING_FAILURES:
        return False


# --- The pages before signing in -----------------------------------------------------------------


def _next_path(url_path: str) -> str:
    """Return the address to come back to after signing in: this page, its query kept."""
    ours = (SIGN_IN_PARAM, WAIT_PARAM, SETUP_PARAM)
    query = urlencode([(k, v) for k, v in st.query_params.to_dict().items() if k not in ours])
    return f"/{url_path}" + (f"?{query}" if query else "")


def _form(action: str, url_path: str, fields: str, button: str) -> None:
    """Draw an HTML form that posts to one of lib.web_session's routes."""
    st.html(
        _FORM_STYLE
        + f'<form class="bw-sign-in" method="post" action="{html.escape(route_path(action))}">'
        + fields
        + f'<input type="hidden" name="next" value="{html.escape(_next_path(url_path))}">'
        + f'<button type="submit">{html.escape(button)}</button></form>'
    )


def _field(label: str, name: str, kind: str, autocomplete: str) -> str:
    return (
        f'<label>{label}<input type="{kind}" name="{name}" autocomplete="{autocomplete}" '
        'required maxlength="1024"></label>'
    )


def sign_in_page(url_path: str, problem: str | None) -> None:
    """Draw the sign-in page: what went wrong last, the form, and single sign-on if set up."""
    st.title("Sign in to bindwatch")
    if problem:
        st.error(problem, icon=":material/error:")
    shown = st.query_params.get(SIGN_IN_PARAM)
    if shown == "wait":
        wait = st.query_params.get(WAIT_PARAM, "")
        seconds = int(wait) if wait.isdigit() and len(wait) < 6 else 1
        st.warning(
            f"Too many failed sign-ins: wait {seconds} s before trying again. Each failure "
            "makes the wait longer.",
            icon=":material/timer:",
        )
    elif shown in SIGN_IN_MESSAGES:
        level, text = SIGN_IN_MESSAGES[shown]
        (st.error if level == "error" else st.info)(text)
    elif st.session_state.pop(SESSION_ENDED, False):
        st.info("Your session has ended: sign in again.", icon=":material/logout:")
    _form(
        SIGN_IN_PATH,
        url_path,
        _field("Name", "operator", "text", "username")
        + _field("Password", "password", "password", "current-password"),
        "Sign in",
    )
    if sso_configured():
        _single_sign_on()


def _single_sign_on() -> None:
    """Offer the identity provider's sign-in; say so when its e-mail is not allowed here."""
    if st.user.is_logged_in:
        st.error(
            f"{st.user.get('email') or 'This account'} may not open this console: an admin adds "
            f"its e-mail address to [{SSO_ROLES}] in the console's secrets.",
            icon=":material/block:",
        )
        st.button("Sign out of single sign-on", key="sso_sign_out", on_click=st.logout)
        return
    st.divider()
    provider = (_secrets_section(SSO_ROLES) or {}).get("provider")
    st.button(
        "Sign in with single sign-on",
        key="sso_sign_in",
        icon=":material/passkey:",
        on_click=st.login,
        args=(provider,) if provider else (),
    )


def setup_page(url_path: str, problem: str | None) -> None:
    """Draw the first-run page: create the first admin (gone once any operator exists)."""
    st.title("Create the first admin")
    if problem:
        st.error(problem, icon=":material/error:")
    shown = st.query_params.get(SETUP_PARAM)
    if shown in SETUP_MESSAGES:
        st.error(SETUP_MESSAGES[shown], icon=":material/error:")
    st.markdown(
        "No operator exists yet. The admin created here may bind, rotate and unbind keys, "
        "change settings and add other operators (`python -m lib operators add`). This page "
        "is gone once the admin exists."
    )
    _form(
        SETUP_PATH,
        url_path,
        _field("Name", "operator", "text", "username")
        + _field("Password", "password", "password", "new-password")
        + _field("Password again", "confirm", "password", "new-password"),
        "Create admin and sign in",
    )
    st.caption(f"{OPERATOR_NAME_RULE} {PASSWORD_RULE}")


def gate_pages(
    url_paths: list[str],
    title: str,
    draw: Callable[[str, str | None], None],
    problem: str | None,
) -> list[StreamlitPage]:
    """Return one page per address of the app, each drawing `draw` (sign-in or setup).

    Every address answers with the form, so a deep link keeps its address and comes back to
    it once signed in; no page of the app is registered.
    """
    return [
        st.Page(
            lambda path=path: draw(path, problem),
            title=title,
            url_path=path or "sign-in",
            default=index == 0,
        )
        for index, path in enumerate(url_paths)
    ]
