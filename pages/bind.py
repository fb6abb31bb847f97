"""Bind a key: paste, verify live with KuCoin, read the result, then save."""

import streamlit as st

from lib import ui
from lib.ui import bind_form


def main() -> None:
    """Draw the Bind page."""
    st.title("Bind a key")
    ui.demo_banner()
    bind_form.render_bind(ui.console())


ui.page(main)
