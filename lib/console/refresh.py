"""Check many keys concurrently without tripping KuCoin's rate limits.

One refresh measures the clock and egress IP once (the public pool is per IP), then probes
each key with a bounded number in flight. Keys are grouped by UID (KuCoin's private pools
are per UID): a UID whose last figures leave too little quota waits for its window to
reset, and a 429000 is retried after the reset KuCoin announced (or shortly, when an
overloaded KuCoin sends no rate-limit headers).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lib.console.kucoin import KucoinTarget
from lib.kucoin.auth import Credentials
from lib.kucoin.client import AsyncKucoinClient
from lib.kucoin.errors import KucoinError
from lib.kucoin.probe import DEFAULT_FUTURES_CURRENCIES, plain_ip, probe_async
from lib.kucoin.probe_result import ProbeResult

# Management-pool weight of one probe: key info 20 + accounts 5 (reference §4), with room.
PROBE_WEIGHT = 30
OVERLOAD_RETRY_S = 1.0
MAX_ATTEMPTS = 3  # keys of one UID not yet known to share it can meet 429000 more than once
MAX_WAIT_S = 35.0


@dataclass(frozen=True)
class RefreshTarget:
    """One account to check; credentials are loaded just in time and dropped after the call."""

    account_id: int
    load_credentials: Callable[[], Credentials] = field(repr=False)
    uid: str | None = None  # from an earlier check; groups keys that share a quota


@dataclass
class _UidBudget:
    """What KuCoin last said about one UID's Management pool."""

    remaining: int | None = None
    resets_at: float = 0.0  # monotonic seconds
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


async def refresh_async(
    targets: Sequence[RefreshTarget],
    *,
    client: AsyncKucoinClient,
    concurrency: int = 8,
    futures_currencies: Sequence[str] = DEFAULT_FUTURES_CURRENCIES,
    on_result: Callable[[int, ProbeResult], None] | None = None,
) -> dict[int, ProbeResult]:
    """Probe every target and return results by account id; `on_result` sees each as it lands."""
    results: dict[int, ProbeResult] = {}
    if not targets:
        return results
    try:
        await client.sync_clock()
        client.seen_ip = plain_ip(await client.my_ip())
    except KucoinError:
        # Each probe then measures for itself and reports the failure per account.
        client.clock_offset_ms = None
    budgets: dict[str, _UidBudget] = {}
    throttled = _UidBudget()
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(target: RefreshTarget) -> None:
        """Probe one target within its UID's budget and record the result."""
        budget = budgets.setdefault(target.uid or f"account:{target.account_id}", _UidBudget())
        async with gate:
            result = await _probe_with_budget(target, client, budget, throttled, futures_currencies)
        results[target.account_id] = result
        if on_result:
            on_result(target.account_id, result)

    await asyncio.gather(*(one(t) for t in targets))
    return results


async def _probe_with_budget(
    target: RefreshTarget,
    client: AsyncKucoinClient,
    budget: _UidBudget,
    throttled: _UidBudget,
    futures_currencies: Sequence[str],
) -> ProbeResult:
    """Probe one key, waiting for its UID's quota and retrying after a 429000.

    A key refused with 429000 whose UID is not known yet most likely shares a UID with keys
    checked alongside it: its retries queue behind `throttled`, one at a time, each waiting
    for the window KuCoin announced when the last answer left too little quota.
    """
    result: ProbeResult | None = None
    for attempt in range(1, MAX_ATTEMPTS + 1):
        async with budget.lock:
            await _wait_for_quota(budget)
            keyed = client.for_key(target.load_credentials())
            result = await probe_async(
                keyed, futures_currencies=futures_currencies, measure=client.clock_offset_ms is None
            )
            _remember(budget, keyed)
        if result.code != "429000" or attempt == MAX_ATTEMPTS:
            break
        if keyed.rate_limits.get("Management") is None:
            # Overload: KuCoin sent no personal figures; "try again later" (reference §4).
            await asyncio.sleep(OVERLOAD_RETRY_S)
        elif target.uid is None:
            _remember(throttled, keyed)
            budget = throttled
    assert result is not None
    return result


async def _wait_for_quota(budget: _UidBudget) -> None:
    """Sleep until the UID's window resets when its remaining quota cannot fit a probe."""
    if budget.remaining is not None and budget.remaining < PROBE_WEIGHT:
        delay = budget.resets_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(min(delay, MAX_WAIT_S))
        budget.remaining = None


def _remember(budget: _UidBudget, client: AsyncKucoinClient) -> None:
    """Record the Management pool figures of the key's last response."""
    figures = client.rate_limits.get("Management")
    if figures and figures.remaining is not None:
        budget.remaining = figures.remaining
        budget.resets_at = time.monotonic() + (figures.reset_ms or 0) / 1000


def refresh(
    targets: Sequence[RefreshTarget],
    *,
    kucoin: KucoinTarget | None = None,
    concurrency: int = 8,
    futures_currencies: Sequence[str] = DEFAULT_FUTURES_CURRENCIES,
    on_result: Callable[[int, ProbeResult], None] | None = None,
) -> dict[int, ProbeResult]:
    """Probe every target from synchronous code (works inside a running event loop too)."""

    async def main() -> dict[int, ProbeResult]:
        """Return the results of one refresh on a fresh client."""
        async with (kucoin or KucoinTarget()).client() as client:
            return await refresh_async(
                targets,
                client=client,
                concurrency=concurrency,
                futures_currencies=futures_currencies,
                on_result=on_result,
            )

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    # Called from a notebook cell or another loop's thread: run on a private loop.
    box: dict[str, Any] = {}

    def worker() -> None:
        """Run the refresh on this thread's own event loop."""
        try:
            box["value"] = asyncio.run(main())
        except BaseException as error:  # re-raised in the caller's thread
            box["error"] = error

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
