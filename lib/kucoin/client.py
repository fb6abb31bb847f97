"""KuCoin REST client: async first, a thin sync wrapper, injectable transports, no secrets shown."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Coroutine, Mapping
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
from aiolimiter import AsyncLimiter

from lib.kucoin import constants as k
from lib.kucoin import runner
from lib.kucoin.auth import Credentials, auth_headers
from lib.kucoin.errors import (
    KucoinAPIError,
    KucoinBadResponse,
    KucoinError,
    KucoinTransportError,
    RateLimit,
    client_ip_from_message,
)

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# A whole fleet's checks share one client: room for every request a busy round has in flight.
POOL_LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=128)
USER_AGENT = "bindwatch/0.1"
T = TypeVar("T")


def wall_clock_ms() -> int:
    """Return this machine's time in milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


def raw_query(params: Mapping[str, Any] | None) -> str:
    """Return the query KuCoin signs: key=value pairs in send order, not URL-encoded (§1.2)."""
    if not params:
        return ""
    return "&".join(f"{key}={value}" for key, value in params.items())


def ip_budget(requests: int, window_s: float = k.CDN_IP_WINDOW_S) -> AsyncLimiter:
    """Return a limiter that lets at most `requests` requests start in any `window_s` seconds.

    A leaky bucket: a small burst (a fortieth of the budget, so the requests of one check go
    out together) and a steady rate for the rest, the two adding up to the budget per window.
    """
    if requests < 2:
        raise ValueError("the IP budget must allow at least 2 requests per window")
    burst = max(1, requests // 40)
    return AsyncLimiter(burst, burst * window_s / (requests - burst))


def _describe_non_json(response: httpx.Response) -> str:
    """Return a plain description of an answer that is not KuCoin's JSON."""
    kind = response.headers.get("content-type", "").split(";")[0].strip() or "no content type"
    text = response.text[:2000].lower()
    if "1015" in text and "rate limit" in text:
        return "KuCoin's CDN rate-limited this IP (Cloudflare error 1015): wait before retrying"
    if "html" in kind or "<html" in text:
        return f"KuCoin's CDN or a proxy answered with an HTML page (HTTP {response.status_code})"
    if not response.content:
        return f"KuCoin answered HTTP {response.status_code} with an empty body"
    return f"KuCoin answered HTTP {response.status_code} with {kind}, not JSON"


class RoundTrips:
    """How long KuCoin takes to answer, as an exponential average (waits for the budget apart)."""

    def __init__(self) -> None:
        self.seconds: float | None = None

    def add(self, seconds: float) -> None:
        """Fold one request's round trip into the average."""
        self.seconds = seconds if self.seconds is None else 0.9 * self.seconds + 0.1 * seconds


class AsyncKucoinClient:
    """Calls KuCoin's spot and futures REST APIs for one key; signs with server-corrected time."""

    def __init__(
        self,
        credentials: Credentials | None = None,
        *,
        spot_url: str = k.SPOT_URL,
        futures_url: str = k.FUTURES_URL,
        transport: httpx.AsyncBaseTransport | None = None,
        futures_transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        clock: Callable[[], int] = wall_clock_ms,
        budget: AsyncLimiter | None = None,
    ) -> None:
        self.credentials = credentials
        self.spot_url = spot_url.rstrip("/")
        self.futures_url = futures_url.rstrip("/")
        self._clock = clock
        headers = {"User-Agent": USER_AGENT, "Content-Type": "application/json"}
        self._spot = httpx.AsyncClient(
            base_url=self.spot_url,
            transport=transport,
            timeout=timeout,
            headers=headers,
            limits=POOL_LIMITS,
        )
        self._futures = httpx.AsyncClient(
            base_url=self.futures_url,
            transport=futures_transport or transport,
            timeout=timeout,
            headers=headers,
            limits=POOL_LIMITS,
        )
        self.clock_offset_ms: int | None = None  # KuCoin's clock minus ours, once measured
        self.seen_ip: str | None = None  # the egress IP KuCoin reported, once asked
        self.measured_at: float | None = None  # when the clock offset was measured (monotonic)
        self.rate_limits: dict[str, RateLimit] = {}  # last figures per pool
        self.last_rate_limit = RateLimit()
        self._owns_pools = True
        # Shared by every view of this client: what all its requests from this IP may spend,
        # and how long KuCoin takes to answer them.
        self._budget = budget
        self.round_trips = RoundTrips()

    def for_key(self, credentials: Credentials) -> AsyncKucoinClient:
        """Return a client for another key sharing this one's connections and clock offset."""
        view = copy.copy(self)
        view.credentials = credentials
        view.rate_limits = {}
        view.last_rate_limit = RateLimit()
        view._owns_pools = False
        return view

    def __repr__(self) -> str:
        return f"AsyncKucoinClient({self.credentials!r}, spot_url={self.spot_url!r})"

    async def __aenter__(self) -> AsyncKucoinClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Drop the key; close both HTTP pools (a view from `for_key` leaves them to its parent)."""
        # A closed client signs nothing more: it keeps no credentials for whoever still holds it.
        self.credentials = None
        if not self._owns_pools:
            return
        await self._spot.aclose()
        await self._futures.aclose()

    def now_ms(self) -> int:
        """Return the time to sign with: ours, corrected by the measured offset."""
        return self._clock() + (self.clock_offset_ms or 0)

    # Public endpoints.

    async def server_time(self) -> int:
        """Return KuCoin's time in ms (GET /api/v1/timestamp)."""
        return int(await self._call("spot", "GET", k.TIMESTAMP, signed=False))

    async def sync_clock(self) -> int:
        """Measure and remember KuCoin's clock minus ours (ms), halving the round trip."""
        before = self._clock()
        server = await self.server_time()
        after = self._clock()
        self.clock_offset_ms = server - (before + after) // 2
        self.measured_at = time.monotonic()
        return self.clock_offset_ms

    async def my_ip(self) -> str:
        """Return the IP KuCoin sees for this machine (GET /api/v1/my-ip)."""
        return str(await self._call("spot", "GET", k.MY_IP, signed=False))

    # Private endpoints.

    async def api_key_info(self) -> dict[str, Any]:
        """Return GET /api/v1/user/api-key: permissions, masked whitelist, master/sub, UID."""
        return await self._call("spot", "GET", k.API_KEY_INFO)

    async def accounts(self) -> list[dict[str, Any]]:
        """Return every row of GET /api/v1/accounts (no type filter: main, trade, trade_hf…)."""
        return await self._call("spot", "GET", k.ACCOUNTS)

    async def user_info(self) -> dict[str, Any]:
        """Return GET /api/v2/user-info: VIP level and sub-account counts."""
        return await self._call("spot", "GET", k.USER_INFO)

    async def futures_overview(self, currency: str = "USDT") -> dict[str, Any]:
        """Return the futures account overview for one currency; numbers as Decimal."""
        data = await self._call("futures", "GET", k.FUTURES_OVERVIEW, params={"currency": currency})
        # JSON integers (a 0 balance is often written as 0) become Decimal too.
        return {
            key: Decimal(value) if isinstance(value, int) and not isinstance(value, bool) else value
            for key, value in (data or {}).items()
        }

    # Plumbing.

    async def _call(
        self,
        host: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        signed: bool = True,
    ) -> Any:
        """Send one request and return the envelope's `data`, or raise a KucoinError."""
        client = self._spot if host == "spot" else self._futures
        query = raw_query(params)
        url = path + ("?" + urlencode(params) if params else "")
        content = json.dumps(body, separators=(",", ":")) if body is not None else ""
        if signed and self.credentials is None:
            raise ValueError("this call needs credentials")
        if self._budget is not None:
            await self._budget.acquire()
        headers: dict[str, str] = {}
        if signed:
            # Signed after the wait for the budget: the timestamp is the moment it leaves.
            endpoint = path + ("?" + query if query else "")
            headers = auth_headers(self.credentials, self.now_ms(), method, endpoint, content)
        sent = time.monotonic()
        try:
            response = await client.request(
                method, url, headers=headers, content=content.encode() or None
            )
        except httpx.TimeoutException as exc:
            raise KucoinTransportError(
                f"KuCoin did not answer in time ({type(exc).__name__})", endpoint=path
            ) from None
        except httpx.TransportError as exc:
            raise KucoinTransportError(
                f"connection to KuCoin failed ({type(exc).__name__})", endpoint=path
            ) from None
        self.round_trips.add(time.monotonic() - sent)
        return self._decode(host, path, response)

    def _decode(self, host: str, path: str, response: httpx.Response) -> Any:
        """Return `data` of a success envelope; raise the matching KucoinError otherwise."""
        rate = RateLimit.from_headers(response.headers)
        endpoint = k.ENDPOINTS.get((host, path))
        if rate.present:
            self.last_rate_limit = rate
            if endpoint:
                self.rate_limits[endpoint.pool] = rate
        try:
            envelope = json.loads(response.content, parse_float=Decimal)
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict) or "code" not in envelope:
            raise KucoinBadResponse(
                _describe_non_json(response),
                http_status=response.status_code,
                rate_limit=rate,
                endpoint=path,
            )
        code = str(envelope["code"])
        if code == k.SUCCESS_CODE:
            return envelope.get("data")
        message = str(envelope.get("msg") or "")
        raise KucoinAPIError(
            message,
            code=code,
            http_status=response.status_code,
            client_ip=client_ip_from_message(message),
            rate_limit=rate,
            endpoint=path,
        )


class KucoinClient:
    """The same client for synchronous callers (CLI, Streamlit, a notebook without await).

    Its calls run on the process's KuCoin loop (lib.kucoin.runner), where its connections live.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.async_client = AsyncKucoinClient(*args, **kwargs)
        self._closed = False

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the KuCoin loop and return its result."""
        return runner.run(coro)

    def __repr__(self) -> str:
        return f"KucoinClient({self.async_client!r})"

    def __enter__(self) -> KucoinClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        if not self._closed:
            self._closed = True
            self.run(self.async_client.aclose())

    @property
    def clock_offset_ms(self) -> int | None:
        """Return KuCoin's clock minus ours, once measured."""
        return self.async_client.clock_offset_ms

    @property
    def rate_limits(self) -> dict[str, RateLimit]:
        """Return the last rate-limit figures per pool."""
        return self.async_client.rate_limits

    def server_time(self) -> int:
        """Return KuCoin's time in ms."""
        return self.run(self.async_client.server_time())

    def sync_clock(self) -> int:
        """Measure and remember KuCoin's clock minus ours (ms)."""
        return self.run(self.async_client.sync_clock())

    def my_ip(self) -> str:
        """Return the IP KuCoin sees for this machine."""
        return self.run(self.async_client.my_ip())

    def api_key_info(self) -> dict[str, Any]:
        """Return the key's info: permissions, masked whitelist, master/sub, UID."""
        return self.run(self.async_client.api_key_info())

    def accounts(self) -> list[dict[str, Any]]:
        """Return every spot account row."""
        return self.run(self.async_client.accounts())

    def user_info(self) -> dict[str, Any]:
        """Return the account summary (VIP level, sub-account counts)."""
        return self.run(self.async_client.user_info())

    def futures_overview(self, currency: str = "USDT") -> dict[str, Any]:
        """Return the futures account overview for one currency; numbers as Decimal."""
        return self.run(self.async_client.futures_overview(currency))


__all__ = [
    "AsyncKucoinClient",
    "KucoinClient",
    "KucoinError",
    "ip_budget",
    "raw_query",
    "wall_clock_ms",
]
