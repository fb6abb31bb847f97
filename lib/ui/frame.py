"""The frame every page runs in: the app's pages, navigation, sidebar, links and failures.

The one place for page paths: every link, switch and the navigation name a page by its
constant here (FLEET_PAGE, ...), drawn from PAGES.
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

from lib.console.errors import FAILURES, StoreError, VaultError

log = logging.getLogger(__name__)
P = ParamSpec("P")

ROOT = Path(__file__).resolve().parents[2]  # page files are found from here, whatever the cwd
FLEET_PAGE = "pages/fleet.py"
ACCOUNT_PAGE = "pages/account.py"
BIND_PAGE = "pages/bind.py"
SETTINGS_PAGE = "pages/settings.py"
_FAILED_CALLBACK = "_failed_callback"  # a guarded callback's failure, shown by run()
# The app's pages, one place for the navigation, the sidebar and every link:
# (section, file, title, icon); the first is the default page, served at /.
PAGES = (
    ("Fleet", FLEET_PAGE, "Fleet", ":material/monitoring:"),
    ("Fleet", ACCOUNT_PAGE, "Account", ":material/manage_accounts:"),
    ("Keys", BIND_PAGE, "Bind a key", ":material/key:"),
    ("Admin", SETTINGS_PAGE, "Settings", ":material/settings:"),
)
_run = threading.local()


def app_page(path: str) -> StreamlitPage:
    """Return the st.Page of one of the app's page files, e.g. app_page(FLEET_PAGE)."""
    for index, (_, file, title, icon) in enumerate(PAGES):
        if file == path:
            return st.Page(ROOT / file, title=title, icon=icon, default=index == 0)
    raise ValueError(f"{path} is not one of the app's pages: {', '.join(p[1] for p in PAGES)}")


def navigation() -> StreamlitPage:
    """Register the app's pages for this session (st.navigation) and return the page to run."""
    return st.navigation([app_page(file) for _, file, _, _ in PAGES], position="hidden")


def draw_frame() -> None:
    """Draw what every page shares: page config and the sidebar's page links.

    Call it after navigation(): a link is drawn from its st.Page, which every session knows.
    """
    st.set_page_config(page_title="bindwatch", page_icon=":material/key:", layout="wide")
    with st.sidebar:
        st.markdown("### :material/key: bindwatch")
        section = None
        for name, path, _, _ in PAGES:
            if name != section:
                st.caption(name)
                section = name
            page_link(path)


def page_link(
    path: str,
    *,
    label: str | None = None,
    icon: str | None = None,
    query_params: dict[str, str] | None = None,
) -> None:
    """Draw a link to one of the app's pages (title and icon from PAGES unless given)."""
    st.page_link(app_page(path), label=label, icon=icon, query_params=query_params)


def switch_page(path: str, query_params: dict[str, str] | None = None) -> None:
    """Open one of the app's pages now, e.g. switch_page(ACCOUNT_PAGE, {"account": "7"})."""
    st.switch_page(app_page(path), query_params=query_params)


def serve_page() -> None:
    """Register the app's pages, draw the frame, and run the page the address names."""
    page = navigation()
    draw_frame()
    run(page)


def run(page: StreamlitPage) -> None:
    """Run the page inside the frame; a store or vault failure ends it with what to do."""
    _run.framed = True
    try:
        failed_callback = st.session_state.pop(_FAILED_CALLBACK, None)
        if failed_callback:
            st.error(failed_callback, icon=":material/error:")
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
