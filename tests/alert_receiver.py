"""A local webhook receiver over HTTP: what apprise's `json://` channels deliver to in tests.

with Receiver() as hook:
    url = hook.url          # json://127.0.0.1:PORT/hook
    hook.fail_next(2)       # answer the next two posts with HTTP 500
    hook.messages           # every body delivered, parsed ({"title", "message", ...})
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """An HTTP server on loopback that records the JSON posted to it."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []
        self._failures = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    failing = receiver._failures > 0
                    receiver._failures -= failing
                    if not failing:
                        receiver.raw.append(body)
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Say nothing on stderr."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Return the apprise URL of this receiver."""
        return f"json://127.0.0.1:{self._server.server_address[1]}/hook"

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Return every message delivered so far, parsed."""
        with self._lock:
            return [json.loads(body) for body in self.raw]

    def fail_next(self, count: int) -> None:
        """Answer the next `count` posts with HTTP 500."""
        with self._lock:
            self._failures = count

    def wait_for(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Wait until `count` messages arrived (or the timeout); return them all."""
        deadline = time.monotonic() + timeout
        while len(self.raw) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
