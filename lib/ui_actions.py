"""Streamlit controls for an account's lifecycle: rotate, re-scope, pause, resume, unbind."""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

if TYPE_CHECKING:
    from lib import store
    from lib.console import Console


def render_lifecycle(console: Console, account: store.AccountView) -> None:
    """Render the lifecycle actions for one account (filled in shortly)."""
    st.caption("Account actions are coming soon.")
