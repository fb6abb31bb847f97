"""Streamlit glue shared by the pages: the session's console, the demo switch, cached tables.

Pages call these and lib functions only; they never open sessions or decrypt anything.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from lib.config import Config, redact_url
from lib.console import Console, KucoinTarget
from lib.fleet import FleetSnapshot, data_version, fleet_snapshot
from lib.health import Status
from lib.vault import VaultError

DEMO_FLAG = "demo_mode"
DEMO_PARAM = "demo"  # ?demo=1 in the address while the session shows the demo fleet
SELECTED_ACCOUNT = "selected_account"  # the account the Account page shows when no link says
BIND_PAGE = "pages/bind.py"
FLEET_PAGE = "pages/fleet.py"
ACCOUNT_PAGE = "pages/account.py"
FLEET_TTL_S = 30  # statuses move with time (STALE arrives unannounced): recompute this often
_FLASH = "_page_flash"
# The app's pages, one place for the navigation and the sidebar: (section, file, title, icon).
PAGES = (
    ("Fleet", FLEET_PAGE, "Fleet", ":material/monitoring:"),
    ("Fleet", ACCOUNT_PAGE, "Account", ":material/manage_accounts:"),
    ("Keys", BIND_PAGE, "Bind a key", ":material/key:"),
    ("Admin", "pages/settings.py", "Settings", ":material/settings:"),
)
_run = threading.local()


def navigation_pages(root: Path) -> list[Any]:
    """Return the st.Page list for st.navigation, the first page the default."""
    return [
        st.Page(root / path, title=title, icon=icon, default=index == 0)
        for index, (_, path, title, icon) in enumerate(PAGES)
    ]


def frame() -> None:
    """Draw what every page shares: page config and the sidebar's page links."""
    st.set_page_config(page_title="bindwatch", page_icon=":material/key:", layout="wide")
    with st.sidebar:
        st.markdown("### :material/key: bindwatch")
        section = None
        for name, path, title, icon in PAGES:
            if name != section:
                st.caption(name)
                section = name
            st.page_link(path, label=title, icon=icon)


@contextmanager
def framed() -> Iterator[None]:
    """Mark the page run inside it as one that went through app.py's frame."""
    _run.framed = True
    try:
        yield
    finally:
        _run.framed = False


def require_frame() -> None:
    """Draw the frame for a page that Streamlit ran without app.py.

    Until a fresh server's first session has run st.navigation (and in every AppTest run),
    Streamlit's legacy pages/ discovery runs a deep-linked page file on its own. The page then
    draws the same frame itself, so no page is ever served without it.
    """
    if not getattr(_run, "framed", False):
        frame()


@st.cache_resource(show_spinner=False)
def _open_console(config: Config, kucoin: KucoinTarget) -> Console:
    """Open one console per (database, KuCoin location) for the whole server process."""
    return Console.open(config, kucoin=kucoin)


def in_demo() -> bool:
    """Return whether this browser session is looking at the demo fleet."""
    if DEMO_FLAG not in st.session_state and st.query_params.get(DEMO_PARAM) == "1":
        st.session_state[DEMO_FLAG] = True  # a reload or a bookmark stays in the demo
    return bool(st.session_state.get(DEMO_FLAG))


def console() -> Console:
    """Return this session's console (the demo's while in demo mode); stop with help if none."""
    if in_demo():
        from lib.demo import DemoError, demo_console

        try:
            return demo_console()
        except (DemoError, OSError) as error:
            leave_demo()
            st.error(f"The demo fleet could not start: {error}")
            st.stop()
    try:
        return _open_console(Config.from_env(), KucoinTarget.from_env())
    except VaultError as error:
        st.error(f"bindwatch cannot open its credential store: {error}")
    except (SQLAlchemyError, OSError) as error:
        st.error(
            f"bindwatch cannot open its database ({redact_url(Config.from_env().database_url)}): "
            f"{type(error).__name__}. Check BINDWATCH_DATABASE_URL / BINDWATCH_DATA_DIR."
        )
    st.stop()
    raise AssertionError("unreachable")


def enter_demo() -> bool:
    """Start the demo fleet (simulator + database) and switch this session to it."""
    from lib.demo import DEMO_ACCOUNTS, DemoError, start_demo

    with st.spinner(
        f"Starting the KuCoin simulator and binding {len(DEMO_ACCOUNTS)} simulated accounts…"
    ):
        try:
            start_demo()
        except (DemoError, OSError) as error:
            st.error(f"The demo fleet could not start: {error}")
            return False
    st.session_state[DEMO_FLAG] = True
    st.session_state.pop(SELECTED_ACCOUNT, None)
    return True


def leave_demo() -> None:
    """Switch this session back to the real fleet (the demo keeps running for others)."""
    st.session_state[DEMO_FLAG] = False
    st.session_state.pop(SELECTED_ACCOUNT, None)
    st.query_params.pop(DEMO_PARAM, None)


def demo_banner() -> None:
    """Show that the session is in demo mode, with the way out."""
    if not in_demo():
        return
    st.query_params[DEMO_PARAM] = "1"
    left, right = st.columns([5, 1], vertical_alignment="center")
    left.info(
        "Demo fleet: simulated KuCoin accounts served by a local simulator, in a separate "
        "database. Nothing here touches real keys.",
        icon=":material/science:",
    )
    if right.button("Leave demo", key="leave_demo", width="stretch"):
        leave_demo()
        st.query_params.clear()  # the account shown belongs to the demo
        st.rerun()


def empty_fleet() -> None:
    """Say what to do with no account bound: bind a key, or look around the demo fleet."""
    st.info(
        "No KuCoin account is bound yet. Bind an API key to start watching it, or load the "
        "demo fleet to see how bindwatch reports each kind of problem and what to do about it.",
        icon=":material/info:",
    )
    left, right, _ = st.columns([1, 1, 2])
    left.page_link(BIND_PAGE, label="Bind a KuCoin key", icon=":material/key:")
    if in_demo():
        return
    if right.button("Load demo fleet", key="load_demo", icon=":material/science:") and enter_demo():
        st.rerun()


def flash(kind: str, text: str) -> None:
    """Keep a message for the next run (shown by show_flash after st.rerun)."""
    st.session_state[_FLASH] = (kind, text)


def show_flash() -> None:
    """Show and forget the message an action left."""
    message = st.session_state.pop(_FLASH, None)
    if message:
        kind, text = message
        alert(kind)(text)


def alert(level: str) -> Callable[..., Any]:
    """Return the Streamlit call that shows a message of this level."""
    return {
        "error": st.error,
        "warning": st.warning,
        "info": st.info,
        "ok": st.success,
        "success": st.success,
    }[level]


# --- The fleet table, cached ---------------------------------------------------------------


@st.cache_data(ttl=FLEET_TTL_S, max_entries=8, show_spinner=False)
def _cached_snapshot(database: str, version: tuple[int, int], _console: Console) -> FleetSnapshot:
    """Return the fleet snapshot of one database at one data version (cached briefly)."""
    return fleet_snapshot(_console)


def cached_fleet(console: Console) -> FleetSnapshot:
    """Return the fleet snapshot, rebuilt when a check or change is recorded or after 30 s."""
    # The key is the database and its data version: a new check or setting shows at once.
    return _cached_snapshot(str(console.engine.url), data_version(console), console)


# --- The heartbeat bar -----------------------------------------------------------------------

BEAT_COLOURS = {"ok": "#2e9e5b", "retrying": "#e0a030", "rejected": "#d64545"}
BEAT_WORDS = {"ok": "passed", "retrying": "failed (transient)", "rejected": "rejected"}


def heartbeat_html(history: pd.DataFrame, limit: int = 48) -> str:
    """Return the last `limit` checks as a row of coloured cells, oldest left (Uptime Kuma)."""
    recent = history.tail(limit)
    cells = []
    for row in recent.itertuples(index=False):
        code = f" {row.code}" if isinstance(row.code, str) and row.code else ""
        message = f": {row.message}" if isinstance(row.message, str) and row.message else ""
        when = pd.Timestamp(row.checked_at).strftime("%Y-%m-%d %H:%M UTC")
        title = html.escape(f"{when} {BEAT_WORDS[row.result]}{code}{message}", quote=True)
        cells.append(
            f'<span class="beat beat-{row.result}" title="{title}" style="display:inline-block;'
            f"width:10px;height:26px;margin-right:3px;border-radius:3px;"
            f'background:{BEAT_COLOURS[row.result]}"></span>'
        )
    return f'<div class="heartbeat" style="white-space:nowrap">{"".join(cells)}</div>'


def status_badge(status: str) -> str:
    """Return a status as a coloured Markdown badge."""
    colour = {"error": "red", "warning": "orange", "info": "blue", "ok": "green"}[
        Status(status).level
    ]
    return f":{colour}-badge[{status}]"


# Markdown would turn text from a link or from KuCoin into links, images and styled text.
_MARKDOWN_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")  # CommonMark: every ASCII punctuation
_AUTOLINK_START = re.compile(r"(?i)(https?|www)(?=\\[:.])|(?=\\@)")  # GFM links bare URLs


def literal(text: object) -> str:
    """Return untrusted text as Markdown that shows it as typed, on one line."""
    escaped = _MARKDOWN_PUNCTUATION.sub(r"\\\1", " ".join(str(text).split()))
    # Escapes don't stop GFM's bare-URL and e-mail links: a word joiner (U+2060) breaks them.
    return _AUTOLINK_START.sub("\\1\u2060", escaped)
