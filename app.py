"""bindwatch: the frame. st.navigation first on every run, then page config and sidebar.

Never st.stop before st.navigation: page files live in pages/, and Streamlit's legacy
auto-discovery of that folder stays live until a session has run st.navigation. For the same
reason its own sidebar list is off (.streamlit/config.toml, client.showSidebarNavigation) and
each page file ends with `ui.page(main)`, which serves a page that Streamlit ran on its own
(a deep link on a fresh server) through this same frame.
"""

from lib import ui

ui.serve_page()
