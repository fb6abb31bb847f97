"""What the console's web server adds to Streamlit's own checks (served by server.py).

Every HTTP response forbids other sites to frame the console, so its buttons cannot be
clickjacked. A websocket handshake must come from the console's own origin: Streamlit alone
also accepts any port on localhost and on the machine's addresses, so any other local web
page could open a session and drive the console.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from streamlit import config

log = logging.getLogger(__name__)

# CSP frame-ancestors for current browsers; X-Frame-Options for those that predate it.
SECURITY_HEADERS = {
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
}
POLICY_VIOLATION = 1008  # websocket close code; a close before accept answers HTTP 403


class SecurityHeaders:
    """ASGI middleware that sets SECURITY_HEADERS on every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


class SameOriginWebSocket:
    """ASGI middleware that refuses a websocket whose Origin is not the console's own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            if origin is not None and not is_own_origin(origin, headers.get("host")):
                log.warning("refused a websocket from another origin: %s", origin[:200])
                await send({"type": "websocket.close", "code": POLICY_VIOLATION})
                return
        await self.app(scope, receive, send)


def is_own_origin(origin: str, host: str | None) -> bool:
    """True when `origin` names the address the request came to, or a configured origin."""
    # A TLS proxy in front makes the scheme differ, so compare host and port only.
    own = host is not None and urlsplit(origin).netloc.lower() == host.lower()
    allowed = {o.strip().rstrip("/") for o in config.get_option("server.corsAllowedOrigins")}
    return own or origin.rstrip("/") in allowed
