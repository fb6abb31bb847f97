"""One browser session: its console, the demo switch, the account it opened, its messages.

The console is the real one or, while the session looks at the demo, the demo's; the fleet
it reads is kept judged per database (lib.console.fleet) and shared by every session.

Flash messages: an action's callback runs before the page is drawn, so it leaves its
message in a slot that the page shows where it belongs: PAGE_FLASH under the page's title,
or a form's own slot (its prefix) beside that form.
"""

from __future__ import annotations

import asyncio
import inspect
import logging

import streamlit as st

from lib.console import Console
from lib.console.demo import DEMO_ACCOUNTS, demo_console, start_demo
from lib.console.errors import DemoError
from lib.console.fleet import KEEP_S, FleetSnapshot, fleet_snapshot, keep_present
from lib.ui.frame import BIND_PAGE, page_link
from lib.ui.presentation import alert
from lib.ui.sign_in import (
    OPENING_FAILURES,
    acting_console,
    current,
    installation_console,
    opening_problem,
)

DEMO_FLAG = "demo_mode"
DEMO_PARAM = "demo"  # ?demo=1 in the address while the session shows the demo fleet
SELECTED_ACCOUNT = "selected_account"  # the account the Account page shows when no link says
FLEET_TTL_S = 30  # statuses move with time (STALE arrives unannounced): redraw this often
PAGE_FLASH = "_page"  # the slot every page shows under its title
log = logging.getLogger(__name__)


def warm_up() -> None:
    """Judge the configured console's fleet, as the first Fleet page would (server start)."""
    try:
        fleet_snapshot(installation_console())
    except OPENING_FAILURES as error:
        # The first page says what is wrong and what to do; the server starts regardless.
        log.warning("the console could not be opened at start: %s", type(error).__name__)
    # The first element a Streamlit process draws asks `inspect` for the call stack (is this a
    # REPL?), and inspect then maps every loaded module to its file: 0.1-0.2 s, paid here.
    inspect.stack()


async def keep_fleet_fresh() -> None:
    """Keep the configured console's fleet snapshot up to date while operators look at it.

    Runs beside the served console until cancelled: every KEEP_S, a thread brings the
    snapshot to the present (lib.console.fleet.keep_present), so that a search or a filter
    redraws from a table already made.
    """
    while True:
        await asyncio.sleep(KEEP_S)
        try:
            await asyncio.to_thread(keep_present, installation_console())
        except Exception as error:  # the next page says what is wrong: keep trying
            log.warning("the fleet could not be brought up to date: %s", type(error).__name__)
            await asyncio.sleep(FLEET_TTL_S)


def in_demo() -> bool:
    """Return whether this browser session is looking at the demo fleet."""
    if DEMO_FLAG not in st.session_state and st.query_params.get(DEMO_PARAM) == "1":
        st.session_state[DEMO_FLAG] = True  # a reload or a bookmark stays in the demo
    return bool(st.session_state.get(DEMO_FLAG))


def console() -> Console:
    """Return this session's console, acting as the signed-in operator (the demo's while in
    demo mode); stop with help if none."""
    operator = current()
    if operator is None:  # only the frame runs pages, and only for a signed-in operator
        st.stop()
    try:
        installation = installation_console()
    except OPENING_FAILURES as error:
        st.error(opening_problem(error))
        st.stop()
    if in_demo():
        try:
            return acting_console(demo_console(), installation, operator)
        except (DemoError, OSError) as error:
            leave_demo()
            st.error(f"The demo fleet could not start: {error}")
            st.stop()
    return acting_console(installation, installation, operator)


def enter_demo() -> bool:
    """Start the demo fleet (simulator + database) and switch this session to it."""
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
    if not console().may_act:
        st.info("No KuCoin account is bound yet: an admin binds keys.", icon=":material/info:")
        return
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


def flash(kind: str, text: str, slot: str = PAGE_FLASH) -> None:
    """Keep a message for the next run, in the page's slot or a form's (shown by show_flash)."""
    st.session_state[f"{slot}_flash"] = (kind, text)


def show_flash(slot: str = PAGE_FLASH) -> None:
    """Show and forget the message an action left in this slot."""
    message = st.session_state.pop(f"{slot}_flash", None)
    if message:
        kind, text = message
        alert(kind)(text)


# --- The fleet table -----------------------------------------------------------------------


def cached_fleet(console: Console) -> FleetSnapshot:
    """Return the fleet snapshot of the present, shared by every session on this database."""
    # lib.console.fleet keeps the fleet judged per database: a new check or change shows at
    # once, and only what changed is judged again.
    return fleet_snapshot(console, looked=True)  # keep_fleet_fresh keeps it up to date
