"""Import keys: upload a CSV or JSON file, read the verified preview of every line, then save."""

import streamlit as st

from lib import ui
from lib.ui import import_form


def main() -> None:
    """Draw the Import page (an admin's only: a viewer's navigation does not have it)."""
    st.title("Import keys")
    ui.demo_banner()
    import_form.render_import(ui.console())


ui.page(main)
