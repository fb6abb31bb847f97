"""bindwatch: the frame. Page config and sidebar, then st.navigation on every run.

Never st.stop before st.navigation: page files live in pages/, and Streamlit's legacy
auto-discovery of that folder stays live until a session has run st.navigation. For the same
reason its own sidebar list is off (.streamlit/config.toml, client.showSidebarNavigation) and
each page starts with `ui.require_frame()`, which draws this frame when Streamlit ran the page
file on its own (a deep link on a fresh server, and every AppTest run).
"""

from pathlib import Path

import streamlit as st

from lib import ui

navigation = st.navigation(ui.navigation_pages(Path(__file__).parent), position="hidden")
ui.frame()
with ui.framed():
    navigation.run()
