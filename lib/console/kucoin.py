"""Where KuCoin is, and the typed calls bindwatch makes to it from there.

The real hosts, a simulator's URLs, or in-process transports: tests and the demo swap the
target, never the code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from lib.config import Config
from lib.kucoin import constants as k
from lib.kucoin.auth import Credentials
from lib.kucoin.client import AsyncKucoinClient
from lib.kucoin.probe import DEFAULT_FUTURES_CURRENCIES, probe
from lib.kucoin.probe_result import ProbeResult


@dataclass(frozen=True)
class KucoinTarget:
    """Where KuCoin is: the real hosts, a simulator's URLs, or in-process transports."""

    spot_url: str = k.SPOT_URL
    futures_url: str = k.FUTURES_URL
    transport: httpx.AsyncBaseTransport | None = field(default=None, repr=False)
    futures_transport: httpx.AsyncBaseTransport | None = field(default=None, repr=False)
    timeout: float = 10.0

    @classmethod
    def from_config(cls, config: Config) -> KucoinTarget:
        """Return KuCoin's hosts as the configuration names them."""
        return cls(spot_url=config.kucoin_spot_url, futures_url=config.kucoin_futures_url)

    def probe(
        self,
        credentials: Credentials,
        *,
        futures_currencies: Sequence[str] = DEFAULT_FUTURES_CURRENCIES,
        want_futures: bool = False,
    ) -> ProbeResult:
        """Check one key live here (lib.kucoin.probe) and return what was observed."""
        return probe(
            credentials,
            spot_url=self.spot_url,
            futures_url=self.futures_url,
            futures_currencies=futures_currencies,
            want_futures=want_futures,
            transport=self.transport,
            futures_transport=self.futures_transport,
            timeout=self.timeout,
        )

    def client(self) -> AsyncKucoinClient:
        """Return an asynchronous client without a key, for checking many keys from here."""
        return AsyncKucoinClient(
            spot_url=self.spot_url,
            futures_url=self.futures_url,
            transport=self.transport,
            futures_transport=self.futures_transport,
            timeout=self.timeout,
        )
