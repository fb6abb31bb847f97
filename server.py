"""The console as operators run it (`make run`): app.py behind its checks, a watcher beside it.

`streamlit run server.py` finds `app` below and serves it with Streamlit's own uvicorn runner:
app.py and its pages run exactly as under `streamlit run app.py`, and .streamlit/config.toml and
`--server.*` flags apply as before. On top, every HTTP response forbids framing and a websocket
must come from the console's own origin (lib/web_guard.py), the sign-in and setup forms
post to the routes that set the session cookie (lib/web_session.py), and a watcher checks
each account when it falls due for as long as the server runs
(lib.console.watch.serve_watcher; off with BINDWATCH_WATCH=0, `make run WATCH=0`). Stopping
the server lets its checks in flight finish. While it starts, the server opens the console
and judges the fleet, and reads the fleet chart's week of checks (for at most
CHART_WARM_UP_S, then in the background), so that the first operator to connect waits for
none of it; while operators look at the fleet, it keeps the judgement up to date every second.
"""

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import streamlit as st
from starlette.middleware import Middleware

from lib.console.watch import serve_watcher
from lib.ui.alerts_view import warm_up_chart
from lib.ui.session import keep_fleet_fresh, warm_up
from lib.web_guard import SameOriginWebSocket, SecurityHeaders
from lib.web_session import session_routes

CHART_WARM_UP_S = 10  # how long the start waits for the fleet chart's checks to be read


@asynccontextmanager
async def lifespan(served: st.App) -> AsyncIterator[None]:
    """Open the console, judge its fleet and read its chart before the first request, then run
    the watcher and keep the fleet's snapshot up to date while operators look at it."""
    await asyncio.to_thread(warm_up)
    # The chart's week of checks is read too (2 s at 10,000 accounts), for at most
    # CHART_WARM_UP_S; a larger fleet's read goes on in the background while the server answers.
    chart = asyncio.create_task(asyncio.to_thread(warm_up_chart))
    await asyncio.wait({chart}, timeout=CHART_WARM_UP_S)
    # Streamlit collects garbage after every script run, a pass over all the server holds
    # (150 ms of every rerun at 10,000 accounts). What it holds by now (the modules, the judged
    # fleet) is left out of those passes.
    gc.collect()
    gc.freeze()
    keeper = asyncio.create_task(keep_fleet_fresh())
    try:
        async with serve_watcher(served):
            yield
    finally:
        keeper.cancel()
        chart.cancel()


app = st.App(
    "app.py",
    routes=session_routes(),
    middleware=[Middleware(SecurityHeaders), Middleware(SameOriginWebSocket)],
    lifespan=lifespan,
)
