"""The watcher on the Fleet page: its heartbeat, and auto-refresh as checks are stored.

The panel says when the watcher last finished a round, how fast it went and when the next
account falls due; when no watcher has run within a freshness period it says so plainly, with
how to start one. The demo fleet, in a database of its own, is never watched: the panel says
that instead. With auto-refresh on, it asks every AUTO_REFRESH_S seconds whether a check or a
change was stored since the page was drawn (or the table has aged past FLEET_TTL_S) and
redraws the page only then: the table itself is never resent for nothing.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import streamlit as st

from lib.console import Console
from lib.console.fleet import data_version
from lib.console.watch import WatcherStatus, watcher_status
from lib.health.wording import format_age
from lib.ui.session import FLEET_TTL_S, in_demo

AUTO_REFRESH_S = 3  # how often an auto-refreshing Fleet page asks whether anything was stored
_DRAWN = "fleet_drawn"  # (data version, monotonic time) of the page's last full run
START_ONE = (
    "Start one: `python -m lib watch` (a service, see the README), or serve the console with "
    "`make run`, which starts one beside the app unless `WATCH=0`."
)
DEMO_WORDS = (
    "No watcher checks the demo fleet: it shows the checks it was seeded with, which age like "
    "any others. **Refresh all** checks every demo account against the simulator now."
)


def watcher_panel(console: Console, *, auto_refresh: bool) -> None:
    """Show the watcher's heartbeat; with `auto_refresh`, redraw the page as checks land."""
    st.session_state[_DRAWN] = (data_version(console), time.monotonic())
    st.fragment(_heartbeat, run_every=f"{AUTO_REFRESH_S}s" if auto_refresh else None)(
        console, auto_refresh
    )


def _heartbeat(console: Console, auto_refresh: bool) -> None:
    """Say what the watcher is doing; on its own reruns, redraw the page if something changed."""
    if auto_refresh and _stale_drawing(console):
        st.rerun()
    if in_demo():
        st.caption(f":material/science: {DEMO_WORDS}")
        return
    status = watcher_status(console)
    words = heartbeat_words(status, datetime.now(UTC))
    if status.running:
        st.caption(f":material/monitor_heart: {words}", help=START_ONE)
    else:
        st.warning(f"{words} {START_ONE}", icon=":material/heart_broken:")


def _stale_drawing(console: Console) -> bool:
    """Return whether the page shows less than the database holds, or is older than its TTL."""
    drawn = st.session_state.get(_DRAWN)
    if drawn is None:
        return False
    version, at = drawn
    return data_version(console) != version or time.monotonic() - at >= FLEET_TTL_S


def heartbeat_words(status: WatcherStatus, now: datetime) -> str:
    """Return the heartbeat as a sentence: who, last round, pace, next due; or what is missing."""
    beat = status.heartbeat
    period = format_age(status.freshness_period)
    if beat is None:
        return (
            "No watcher has run yet: accounts are checked only when someone asks, and each "
            f"turns STALE a freshness period ({period}) after its last check."
        )
    if not status.running:
        stopped = " (it stopped)" if beat.stopped_at is not None else ""
        return (
            f"No watcher has run within the freshness period ({period}): the last, "
            f"{beat.name}, was heard from {format_age(now - beat.beat_at)} ago{stopped}. "
            "Accounts turn STALE unless someone checks them."
        )
    parts = [f"Watcher {beat.name}"]
    if beat.round_finished_at is not None:
        pace = beat.accounts_per_minute
        parts.append(
            f"last round {format_age(now - beat.round_finished_at)} ago: "
            f"{beat.round_checked} accounts in {beat.round_seconds or 0:.1f} s"
            + (f" ({pace:,.0f} per minute)" if pace else "")
        )
    else:
        parts.append("no round finished yet")
    if beat.next_due_at is not None:
        wait = beat.next_due_at - now
        parts.append(
            f"next due in {format_age(wait)}" if wait.total_seconds() > 0 else "next due now"
        )
    return " · ".join(parts)
