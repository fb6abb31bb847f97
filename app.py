"""bindwatch: the frame. Page config, then st.navigation on every run (never st.stop before it).

Page files live in pages/; because st.navigation runs on every run, Streamlit's legacy
auto-discovery of pages/ never serves a page that is not listed here.
"""

from pathlib import Path

import streamlit as st

HERE = Path(__file__).parent
PAGES = HERE / "pages"

st.set_page_config(page_title="bindwatch", page_icon=":material/key:", layout="wide")

navigation = st.navigation(
    {
        "Fleet": [
            st.Page(PAGES / "fleet.py", title="Fleet", icon=":material/monitoring:", default=True),
            st.Page(PAGES / "account.py", title="Account", icon=":material/manage_accounts:"),
        ],
        "Keys": [
            st.Page(PAGES / "bind.py", title="Bind a key", icon=":material/key:"),
        ],
        "Admin": [
            st.Page(PAGES / "settings.py", title="Settings", icon=":material/settings:"),
        ],
    }
)
navigation.run()
