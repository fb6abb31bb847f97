"""The console as operators run it (`make run`): app.py behind the server's own checks.

`streamlit run server.py` finds `app` below and serves it with Streamlit's own uvicorn runner:
app.py and its pages run exactly as under `streamlit run app.py`, and .streamlit/config.toml and
`--server.*` flags apply as before. On top, every HTTP response forbids framing and a websocket
must come from the console's own origin (lib/web_guard.py), and the sign-in and setup forms
post to the routes that set the session cookie (lib/web_session.py).
"""

import streamlit as st
from starlette.middleware import Middleware

from lib.web_guard import SameOriginWebSocket, SecurityHeaders
from lib.web_session import session_routes

app = st.App(
    "app.py",
    routes=session_routes(),
    middleware=[Middleware(SecurityHeaders), Middleware(SameOriginWebSocket)],
)
