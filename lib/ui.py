"""Streamlit glue shared by the pages: which console a session uses, and the demo switch.

Pages call these and lib functions only; they never open sessions or decrypt anything.
"""

from __future__ import annotations

import streamlit as st

from lib.config import Config
from lib.console import Console, KucoinTarget
from lib.vault import VaultError

DEMO_FLAG = "demo_mode"


@st.cache_resource(show_spinner=False)
def _open_console(config: Config, kucoin: KucoinTarget) -> Console:
    """Open one console per (database, KuCoin location) for the whole server process."""
    return Console.open(config, kucoin=kucoin)


def in_demo() -> bool:
    """Return whether this browser session is looking at the demo fleet."""
    return bool(st.session_state.get(DEMO_FLAG))


def console() -> Console:
    """Return this session's console (the demo's while in demo mode); stop with help if none."""
    if in_demo():
        from lib.demo import demo_console

        return demo_console()
    try:
        return _open_console(Config.from_env(), KucoinTarget.from_env())
    except VaultError as error:
        st.error(f"bindwatch cannot open its credential store: {error}")
        st.stop()
    raise AssertionError("unreachable")


def demo_banner() -> None:
    """Show that the session is in demo mode, with the way out."""
    if in_demo():
        left, right = st.columns([5, 1])
        left.info(
            "Demo fleet: simulated KuCoin accounts in a separate database. Nothing here "
            "touches real keys.",
            icon=":material/science:",
        )
        if right.button("Leave demo", key="leave_demo", use_container_width=True):
            st.session_state[DEMO_FLAG] = False
            st.rerun()
