"""What passes between a client and the simulated gateway: one request in, one answer out.

The gateway (lib.kucoin.sim.gateway) reads a SimRequest and writes a SimResponse, whatever
carries them: the threaded HTTP server or an in-process httpx transport.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

SPOT = "spot"
FUTURES = "futures"
HOSTS = (SPOT, FUTURES)


@dataclass(frozen=True)
class SimRequest:
    """One request as the simulator receives it: the raw target and body, exactly as sent."""

    host: str  # SPOT or FUTURES
    method: str
    target: str  # raw path plus "?" and raw query string, as on the wire
    headers: Mapping[str, str]  # names lower-cased
    body: bytes
    peer_ip: str

    def header(self, name: str) -> str | None:
        """Return a header's value, or None when absent."""
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class SimResponse:
    """One answer: status, headers and body, or a connection dropped without an answer."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    dropped: bool = False


DROPPED = SimResponse(0, dropped=True)


class Answers(Protocol):
    """Anything that answers simulated requests: the Simulator."""

    def handle(self, request: SimRequest) -> SimResponse:
        """Return the answer to one request."""
        ...
