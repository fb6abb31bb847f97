"""Bind a key: paste, verify live with KuCoin, read the result, then save."""

import streamlit as st

from lib import ui, ui_actions


def main() -> None:
    """Draw the Bind page."""
    st.title("Bind a key")
    ui.demo_banner()
    ui_actions.render_bind(ui.console())


ui.page(main)
