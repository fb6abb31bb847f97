"""Streamlit glue shared by the pages: the frame, page links, the session's console, the demo.

Pages call these and lib functions only; they never open sessions or decrypt anything.
"""

from __future__ import annotations

import functools
import html
import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec

import pandas as pd
import streamlit as st
from sqlalchemy.exc import SQLAlchemyError
from streamlit.navigation.page import StreamlitPage

from lib.config import Config, redact_url
from lib.console import Console, KucoinTarget
from lib.console.errors import FAILURES, DemoError, StoreError, VaultError
from lib.console.fleet import FAILING, FleetSnapshot, account_kind, data_version, fleet_snapshot
from lib.health.status import Status
from lib.health.wording import format_age

log = logging.getLogger(__name__)
P = ParamSpec("P")

DEMO_FLAG = "demo_mode"
DEMO_PARAM = "demo"  # ?demo=1 in the address while the session shows the demo fleet
SELECTED_ACCOUNT = "selected_account"  # the account the Account page shows when no link says
ROOT = Path(__file__).resolve().parent.parent  # page files are found from here, whatever the cwd
FLEET_PAGE = "pages/fleet.py"
ACCOUNT_PAGE = "pages/account.py"
BIND_PAGE = "pages/bind.py"
SETTINGS_PAGE = "pages/settings.py"
FLEET_TTL_S = 30  # statuses move with time (STALE arrives unannounced): recompute this often
_FLASH = "_page_flash"
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


def frame() -> None:
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
    frame()
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
        from lib.console.demo import demo_console

        try:
            return demo_console()
        except (DemoError, OSError) as error:
            leave_demo()
            st.error(f"The demo fleet could not start: {error}")
            st.stop()
    try:
        config = Config.from_env()
        return _open_console(config, KucoinTarget.from_config(config))
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
    from lib.console.demo import DEMO_ACCOUNTS, start_demo

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
    with left:
        page_link(BIND_PAGE, label="Bind a KuCoin key", icon=":material/key:")
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


# --- Statuses and the fleet table, as the pages show them ----------------------------------


def plural(count: int, noun: str) -> str:
    """Return "1 account" or "3 accounts"."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


_SCOPE_MARKS = {"granted": "✓", "missing": "✗", "not needed": "–"}
# Colours and icons by Status.level: red act now, orange needs attention, blue for information.
LEVEL_COLOURS = {"error": "red", "warning": "orange", "info": "blue", "ok": "green"}
LEVEL_ICONS = {"error": "error", "warning": "warning", "info": "info", "ok": "check_circle"}


def status_colour(status: str) -> str:
    """Return the colour a status is drawn in ("red", "orange", "blue" or "green")."""
    return LEVEL_COLOURS[Status(status).level]


def _level_icon(level: str) -> str:
    """Return a level's coloured Markdown icon (":red[:material/error:]")."""
    return f":{LEVEL_COLOURS[level]}[:material/{LEVEL_ICONS[level]}:]"


def status_label(status: str) -> str:
    """Return a status as Markdown: coloured icon, plain words, code ("… Key unknown `KEY_…`")."""
    found = Status(status)
    return f"{_level_icon(found.level)} {found.title} `{found.value}`"


def tile_label(tile: str, count: int) -> str:
    """Return a status tile (or the FAILING tile) as Markdown, with its number of accounts."""
    text = f"{_level_icon('error')} Everything failing" if tile == FAILING else status_label(tile)
    return f"{text} **{count}**"


def fleet_view(fleet: pd.DataFrame) -> pd.DataFrame:
    """Return the table the Fleet page shows: one row per account, worst first, no secret."""
    # What is wrong and what to do come first: they must fit beside the label on one screen.
    kind = account_kind(fleet).replace({"unknown": pd.NA})
    sub = fleet["sub_name"].astype("string")
    return pd.DataFrame(
        {
            "account_id": fleet["account_id"].astype("Int64"),
            "label": fleet["label"].astype("string"),
            # One-item lists: the page draws them as coloured labels (MultiselectColumn).
            "status": [[s] for s in fleet["status"].astype(str)],
            "diagnosis": fleet["diagnosis"].astype("string"),
            "hint": fleet["hint"].astype("string"),
            "spot": fleet["spot"].astype(object).map(_SCOPE_MARKS).fillna("?"),
            "futures": fleet["futures"].astype(object).map(_SCOPE_MARKS).fillna("?"),
            "margin": fleet["margin"].astype(object).map(_SCOPE_MARKS).fillna("?"),
            "whitelist": fleet["whitelist"].astype("string").fillna("key info not read yet"),
            "last_sync_at": fleet["last_sync_at"],
            "sync_age": [format_age(a) for a in fleet["sync_age"]],
            "going_stale_at": fleet["going_stale_at"],
            "key_age_days": fleet["key_age_days"].astype("Int64"),
            "expires_at": fleet["expires_at"],
            "account": kind.where(sub.isna(), kind + " " + sub.fillna("")).astype("string"),
            "uid": fleet["uid"].astype("string"),
        }
    ).reset_index(drop=True)
