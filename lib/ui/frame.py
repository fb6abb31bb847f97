"""The frame every page runs in: the gate, the app's pages, navigation, sidebar, links, failures.

The one place for page paths: every link, switch and the navigation name a page by its
constant here (FLEET_PAGE, ...), drawn from PAGES.

The gate comes first on every run: until a browser is signed in, the navigation registers
only the sign-in page (or, before the first admin exists, the setup page), under every
address of the app, so no page of the app runs and a deep link keeps its address.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from lib.console import Role
from lib.console import operators as ops
from lib.console.errors import FAILURES, StoreError, VaultError
from lib.ui.key_backup import key_backup_notice
from lib.ui.sign_in import (
    OPENING_FAILURES,
    current,
    gate_pages,
    installation_console,
    opening_problem,
    set_current,
    setup_page,
    sign_in_page,
    sign_out,
    signed_in_operator,
)

log = logging.getLogger(__name__)
P = ParamSpec("P")

ROOT = Path(__file__).resolve().parents[2]  # page files are found from here, whatever the cwd
FLEET_PAGE = "pages/fleet.py"
ACCOUNT_PAGE = "pages/account.py"
BIND_PAGE = "pages/bind.py"
IMPORT_PAGE = "pages/import_keys.py"
SETTINGS_PAGE = "pages/settings.py"
OPERATORS_PAGE = "pages/operators.py"
_FAILED_CALLBACK = "_failed_callback"  # a guarded callback's failure, shown by run()
# The app's pages, one place for the navigation, the sidebar and every link:
# (section, file, title, icon); the first is the default page, served at /.
PAGES = (
    ("Fleet", FLEET_PAGE, "Fleet", ":material/monitoring:"),
    ("Fleet", ACCOUNT_PAGE, "Account", ":material/manage_accounts:"),
    ("Keys", BIND_PAGE, "Bind a key", ":material/key:"),
    ("Keys", IMPORT_PAGE, "Import keys", ":material/upload_file:"),
    ("Admin", SETTINGS_PAGE, "Settings", ":material/settings:"),
    ("Admin", OPERATORS_PAGE, "Operators", ":material/group:"),
)
# Pages that only act: a viewer's navigation does not have them.
ADMIN_PAGES = (BIND_PAGE, IMPORT_PAGE, OPERATORS_PAGE)
_run = threading.local()


def app_page(path: str) -> StreamlitPage:
    """Return the st.Page of one of the app's page files, e.g. app_page(FLEET_PAGE)."""
    for index, (_, file, title, icon) in enumerate(PAGES):
        if file == path:
            return st.Page(ROOT / file, title=title, icon=icon, default=index == 0)
    raise ValueError(f"{path} is not one of the app's pages: {', '.join(p[1] for p in PAGES)}")


def pages_for(role: Role | None) -> list[str]:
    """Return the page files an operator with this role is shown (None: nobody signed in)."""
    if role is None:
        return []
    return [file for _, file, _, _ in PAGES if role is Role.ADMIN or file not in ADMIN_PAGES]


def url_paths() -> list[str]:
    """Return every address of the app's pages ("" for the default page, then "account", ...)."""
    return ["" if index == 0 else Path(file).stem for index, (_, file, _, _) in enumerate(PAGES)]


def navigation(role: Role) -> StreamlitPage:
    """Register the pages of this role for this session (st.navigation); return the one to run."""
    return st.navigation([app_page(file) for file in pages_for(role)], position="hidden")


def draw_frame(operator: ops.SignedIn) -> None:
    """Draw what every page shares: page config, the sidebar's links, who is signed in.

    Call it after navigation(): a link is drawn from its st.Page, which every session knows.
    """
    st.set_page_config(page_title="bindwatch", page_icon=":material/key:", layout="wide")
    with st.sidebar:
        st.markdown("### :material/key: bindwatch")
        section = None
        for name, path, _, _ in PAGES:
            if path not in pages_for(operator.role):
                continue
            if name != section:
                st.caption(name)
                section = name
            page_link(path)
        st.divider()
        st.caption(f"Signed in as **{operator.name}** ({operator.role.value})")
        st.button(
            "Sign out",
            key="sign_out",
            icon=":material/logout:",
            on_click=sign_out,
            args=(installation_console(),),
        )


def page_link(
    path: str,
    *,
    label: str | None = None,
    icon: str | None = None,
    query_params: dict[str, str] | None = None,
) -> None:
    """Draw a link to one of the app's pages (title and icon from PAGES unless given).

    Nothing is drawn for a page the operator's role does not have.
    """
    operator = current()
    if operator is not None and path in pages_for(operator.role):
        st.page_link(app_page(path), label=label, icon=icon, query_params=query_params)


def switch_page(path: str, query_params: dict[str, str] | None = None) -> None:
    """Open one of the app's pages now, e.g. switch_page(ACCOUNT_PAGE, {"account": "7"})."""
    st.switch_page(app_page(path), query_params=query_params)


def serve_page() -> None:
    """Pass the gate, register the operator's pages, draw the frame, run the page asked for.

    Signed out, the navigation registers only the sign-in (or setup) page, under every
    address: st.navigation runs on every run, so Streamlit's legacy pages/ discovery ends.
    """
    operator, setup, problem = None, False, None
    try:
        installation = installation_console()
        operator = signed_in_operator(installation)
        setup = operator is None and ops.setup_needed(installation)
    except OPENING_FAILURES as error:
        problem = opening_problem(error)
    set_current(operator)
    if operator is None:
        title, draw = ("Create the first admin", setup_page) if setup else ("Sign in", sign_in_page)
        page = st.navigation(gate_pages(url_paths(), title, draw, problem), position="hidden")
        st.set_page_config(page_title=f"{title} · bindwatch", page_icon=":material/key:")
        run(page)
        return
    page = navigation(operator.role)
    draw_frame(operator)
    run(page, notice=lambda: key_backup_notice(installation, operator))


def run(page: StreamlitPage, notice: Callable[[], None] | None = None) -> None:
    """Run the page inside the frame (after `notice`, if any); a store or vault failure ends
    it with what to do."""
    _run.framed = True
    try:
        failed_callback = st.session_state.pop(_FAILED_CALLBACK, None)
        if failed_callback:
            st.error(failed_callback, icon=":material/error:")
        if notice is not None:
            notice()
        page.run()
    except FAILURES as error:
        st.error(failure_text(error), icon=":material/error:")
    finally:
        _run.framed = False


def guarded(callback: Callable[P, object]) -> Callable[P, None]:
    """Return a widget callback whose store or vault failure shows on the page, not as a crash.

    Streamlit runs callbacks before the page, outside run(): wrap each one that writes,
    e.g. `st.button("Pause", on_click=ui.guarded(pause), args=(console, account_id))`.
    """

    @functools.wraps(callback)
    def guarded_callback(*args: P.args, **kwargs: P.kwargs) -> None:
        """Run the callback; keep a store or vault failure for run() to show."""
        try:
            callback(*args, **kwargs)
        except FAILURES as error:
            st.session_state[_FAILED_CALLBACK] = failure_text(error)

    return guarded_callback


def failure_text(error: Exception) -> str:
    """Return what to tell the operator about a store, vault or database failure; log it."""
    # Store and vault messages say what to do and never hold a secret; SQL errors may hold values.
    if isinstance(error, VaultError):
        log.warning("credential store failure: %s: %s", type(error).__name__, error)
        return f"bindwatch cannot use its credential store: {error}"
    if isinstance(error, StoreError):
        log.warning("store refused an action: %s: %s", type(error).__name__, error)
        return str(error)
    log.warning("database failure: %s", type(error).__name__)
    return (
        f"bindwatch could not read or write its database ({type(error).__name__}); the step "
        "that failed saved nothing. Check that the database named by BINDWATCH_DATABASE_URL "
        "(or BINDWATCH_DATA_DIR) is reachable and has space, then try again."
    )


def page(main: Callable[[], None]) -> None:
    """Run a page file's main() inside the frame, serving the file through the frame if need be.

    Until a session has run st.navigation on a fresh server (and in every AppTest run),
    Streamlit's legacy pages/ discovery runs a deep-linked page file without app.py. Then this
    registers the app's pages (ending that discovery for every session), draws the frame and
    runs the page file again inside it; the unframed run draws nothing and ends normally, so
    Streamlit still drops the widgets of the page the operator left.
    """
    if getattr(_run, "framed", False):
        main()
    else:
        serve_page()
