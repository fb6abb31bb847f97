"""The console as operators run it (`make run`): app.py behind the server's own checks.

`streamlit run server.py` finds `app` below and serves it with Streamlit's own uvicorn runner:
app.py and its pages run exactly as under `streamlit run app.py`, and .streamlit/config.toml and
`--server.*` flags apply as before. On top, every HTTP response forbids framing and a websocket
must come from the console's own origin (lib/web_guard.py). While it starts, the server opens
the console and judges the fleet, so that the first operator to connect waits for neither.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import streamlit as st
from starlette.middleware import Middleware

from lib.ui.session import warm_up
from lib.web_guard import SameOriginWebSocket, SecurityHeaders


@asynccontextmanager
async def ready_before_the_first_visit(_app: st.App) -> AsyncIterator[None]:
    """Open the console and judge its fleet before the server takes its first request."""
    await asyncio.to_thread(warm_up)
    yield


app = st.App(
    "app.py",
    lifespan=ready_before_the_first_visit,
    middleware=[Middleware(SecurityHeaders), Middleware(SameOriginWebSocket)],
)
