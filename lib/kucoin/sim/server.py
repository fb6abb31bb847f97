"""The simulator over real HTTP: a spot and a futures server on loopback, sharing one simulator."""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lib.kucoin.sim.gateway import Simulator
from lib.kucoin.sim.wire import FUTURES, HOSTS, SPOT, SimRequest

_log = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    """Turns one HTTP request into a SimRequest and writes the simulator's answer."""

    server: _HostServer
    protocol_version = "HTTP/1.1"  # keep-alive, like KuCoin's gateway
    timeout = 60  # idle keep-alive connections do not pin a thread forever
    # Headers and body go out in separate writes; with Nagle's algorithm on, the client's
    # delayed ACK holds the body back ~40 ms per answer on loopback.
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.send_error(400, "bad Content-Length")
            return
        body = self.rfile.read(length) if length > 0 else b""
        answer = self.server.simulator.handle(
            SimRequest(
                host=self.server.host_kind,
                method=self.command,
                target=self.path,
                headers={name.lower(): value for name, value in self.headers.items()},
                body=body,
                peer_ip=self.client_address[0],
            )
        )
        if answer.dropped:
            self.close_connection = True  # the server then closes the socket, nothing written
            return
        self.send_response_only(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Log the request line at debug level (it carries no secret: those are headers)."""
        _log.debug("%s %s", self.address_string(), format % args)


class _HostServer(ThreadingHTTPServer):
    """One HTTP server answering as one KuCoin host from a shared simulator."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], simulator: Simulator, host_kind: str) -> None:
        self.simulator = simulator
        self.host_kind = host_kind
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn), which can stall offline.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class _HostServer6(_HostServer):
    address_family = socket.AF_INET6


class SimulatorServer:
    """A spot and a futures HTTP server over one simulator; a context manager for tests."""

    def __init__(
        self,
        simulator: Simulator,
        host: str = "127.0.0.1",
        spot_port: int = 0,
        futures_port: int = 0,
    ) -> None:
        self.simulator = simulator
        self.host = host
        self._ports = {SPOT: spot_port, FUTURES: futures_port}
        self._servers: dict[str, _HostServer] = {}
        self._threads: list[threading.Thread] = []

    def start(self) -> SimulatorServer:
        """Bind both servers (port 0: any free port) and serve in background threads."""
        if self._servers:
            raise RuntimeError("the simulator server is already running")
        server_class = _HostServer6 if ":" in self.host else _HostServer
        try:
            for kind in HOSTS:
                address = (self.host, self._ports[kind])
                self._servers[kind] = server_class(address, self.simulator, kind)
        except OSError:
            self.stop()
            raise
        for kind, server in self._servers.items():
            # A short poll interval makes stop() quick (shutdown waits for one poll).
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"kucoin-simulator-{kind}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop serving and release both ports."""
        for server in self._servers.values():
            if self._threads:
                server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()

    def _url(self, kind: str) -> str:
        port = self._servers[kind].server_address[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{port}"

    @property
    def spot_url(self) -> str:
        """Return the spot base URL (stands in for https://api.kucoin.com)."""
        return self._url(SPOT)

    @property
    def futures_url(self) -> str:
        """Return the futures base URL (stands in for https://api-futures.kucoin.com)."""
        return self._url(FUTURES)

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
