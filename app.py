"""bindwatch: the frame. Page config, then st.navigation on every run (never st.stop before it)."""

from pathlib import Path

import streamlit as st

HERE = Path(__file__).parent

st.set_page_config(page_title="bindwatch", page_icon=":material/key:", layout="wide")

pages = {
    "": [
        st.Page(HERE / "pages" / "home.py", title="Home", icon=":material/home:", default=True),
    ],
}
st.navigation(pages).run()
