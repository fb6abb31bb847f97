"""Where KuCoin is, and the one client per place this process shares for every call there.

The real hosts, a simulator's URLs, or in-process transports: tests and the demo swap the
target, never the code. Every check from this process to one place goes through one pooled
client on the KuCoin loop (lib.kucoin.runner), spending one budget for the egress IP.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from lib.config import Config
from lib.kucoin import constants as k
from lib.kucoin import runner
from lib.kucoin.auth import Credentials
from lib.kucoin.client import AsyncKucoinClient, ip_budget
from lib.kucoin.probe import DEFAULT_FUTURES_CURRENCIES, probe_async
from lib.kucoin.probe_result import ProbeResult

_SHARED_LIMIT = 8  # places kept open at once (tests and the demo point at many simulators)


@dataclass(frozen=True)
class KucoinTarget:
    """Where KuCoin is: the real hosts, a simulator's URLs, or in-process transports."""

    spot_url: str = k.SPOT_URL
    futures_url: str = k.FUTURES_URL
    transport: httpx.AsyncBaseTransport | None = field(default=None, repr=False)
    futures_transport: httpx.AsyncBaseTransport | None = field(default=None, repr=False)
    timeout: float = 10.0
    ip_budget: int = k.DEFAULT_IP_BUDGET  # requests per 10 s from this process's egress IP

    @classmethod
    def from_config(cls, config: Config) -> KucoinTarget:
        """Return KuCoin's hosts and the IP budget as the configuration names them."""
        return cls(
            spot_url=config.kucoin_spot_url,
            futures_url=config.kucoin_futures_url,
            ip_budget=config.ip_budget,
        )

    def client(self) -> AsyncKucoinClient:
        """Return this process's client for this place (shared: use `for_key`, never close it)."""
        return _shared.get(self)

    def probe(
        self,
        credentials: Credentials,
        *,
        futures_currencies: Sequence[str] = DEFAULT_FUTURES_CURRENCIES,
        want_futures: bool = True,
        deadline_s: float | None = k.CHECK_DEADLINE_S,
    ) -> ProbeResult:
        """Check one key live here in two waves (lib.kucoin.probe); return what was observed."""
        return runner.run(
            probe_async(
                self.client().for_key(credentials),
                futures_currencies=futures_currencies,
                want_futures=want_futures,
                deadline_s=deadline_s,
            )
        )


class _SharedClients:
    """The pooled client of each place KuCoin is, newest used last; the oldest is closed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: OrderedDict[KucoinTarget, AsyncKucoinClient] = OrderedDict()

    def get(self, target: KucoinTarget) -> AsyncKucoinClient:
        """Return the target's client, opening it on first use."""
        with self._lock:
            client = self._clients.pop(target, None)
            if client is None:
                client = AsyncKucoinClient(
                    spot_url=target.spot_url,
                    futures_url=target.futures_url,
                    transport=target.transport,
                    futures_transport=target.futures_transport,
                    timeout=target.timeout,
                    budget=ip_budget(target.ip_budget),
                )
            self._clients[target] = client
            while len(self._clients) > _SHARED_LIMIT:
                _, oldest = self._clients.popitem(last=False)
                runner.submit(oldest.aclose())
            return client


_shared = _SharedClients()
