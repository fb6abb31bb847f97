"""The engine every check goes through: "Check now", "Refresh all", `refresh` and the watcher.

Checks run on the process's KuCoin loop with the one client of where KuCoin is:

- The clock and the egress IP are measured once and reused for a minute: a single check with
  nothing recent measures them in its first wave, a round measures them before its checks.
- A check first waits for its UID's quota (KuCoin's pools are per UID; `gw-ratelimit-*` says
  what is left and when it resets), and only then takes a slot: no slot is held while a pool
  refills. A UID not heard from yet has one check in flight until KuCoin's figures arrive.
- Slots follow the egress IP's budget and the time checks take (Little's law, with headroom),
  not a fixed number; every request spends the IP budget (the client's limiter).
- A failure a retry may fix is retried with jittered back-off (tenacity); a 429000 carrying
  KuCoin's figures waits for the reset it announced; KuCoin's verdict on a key is never
  retried. Each check has an overall deadline for its requests and retries.
- Credentials are decrypted in a worker thread just before their check and dropped after it;
  a credential that cannot be decrypted gets its own result (UNREADABLE) and the round goes on.
- A writer thread stores results in small batches, one transaction each (lib.store.record_checks
  and finish_checks): a result is *stored* once its batch commits, with the account's next due
  time and the release of its lease. A process killed mid-round loses only what was not stored.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tenacity import AsyncRetrying, RetryCallState, retry_if_result, wait_random_exponential

from lib import store
from lib.console.alerts import checks_stored
from lib.console.kucoin import KucoinTarget
from lib.console.settings import policy_from_settings
from lib.health.checks import UNREADABLE_CODE, is_transient
from lib.health.policy import HealthPolicy
from lib.health.schedule import next_check_at
from lib.kucoin import constants as k
from lib.kucoin import runner
from lib.kucoin.auth import Credentials
from lib.kucoin.client import AsyncKucoinClient, RoundTrips
from lib.kucoin.diagnosis import TIMESTAMP_CODE
from lib.kucoin.errors import KucoinError
from lib.kucoin.probe import plain_ip, probe_async
from lib.kucoin.probe_result import Outcome, ProbeResult
from lib.store import AccountNotFound, AccountUnbound
from lib.vault import KeyFileError, VaultError

if TYPE_CHECKING:
    from lib.console import Console

log = logging.getLogger(__name__)

# Management-pool weight of one check: key info 20 + accounts 5 (reference §2.3).
CHECK_WEIGHT = 25
# Requests a check sends once the clock and IP are known: key info, accounts, futures.
REQUESTS_PER_CHECK = 3
MEASUREMENT_TTL_S = 60.0  # a clock offset and IP this recent are reused
MAX_ATTEMPTS = 4
MAX_QUOTA_WAIT_S = 35.0  # longer than a pool's 30 s window: a reset always comes by then
MIN_SLOTS, MAX_SLOTS = 4, 64
SLOT_HEADROOM = 2.0
FIRST_ROUND_TRIP_S = 0.5  # before KuCoin has answered anything
BATCH = 50  # results per write transaction
FLUSH_S = 0.25  # a result waits at most this long to be written


@dataclass(frozen=True)
class CheckTarget:
    """One account to check: whose pool it spends, and whether to read its futures overview."""

    account_id: int  # for a key not bound yet: its place in the batch
    uid: str | None = None  # from its last passing check; groups keys that share a quota
    want_futures: bool = True
    bound: bool = True  # False: a key not bound yet, whose pool is learnt but not remembered


@dataclass
class RunReport:
    """What one run of the engine did."""

    results: dict[int, ProbeResult] = field(default_factory=dict)  # stored, by account
    skipped: list[int] = field(default_factory=list)  # not checked: stopping, or unbound since
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None

    @property
    def seconds(self) -> float:
        """Return how long the run took."""
        end = self.finished_at or datetime.now(UTC)
        return (end - self.started_at).total_seconds()


# --- pacing: per UID, and slots ------------------------------------------------------------


class UidBudget:
    """What KuCoin last said about one UID's Management pool, and the checks spending it now."""

    def __init__(self) -> None:
        self.limit: int | None = None
        self.remaining: int | None = None
        self.resets_at = 0.0  # monotonic seconds
        self.in_flight = 0  # weight reserved by checks not answered yet

    def _available(self, now: float) -> int | None:
        """Return the quota left for new checks (None: unknown)."""
        if self.remaining is not None and now >= self.resets_at:
            self.remaining = self.limit  # a new window has started
        return None if self.remaining is None else self.remaining - self.in_flight

    async def reserve(self, weight: int) -> None:
        """Wait until the pool can take one more check, then reserve its weight."""
        waited = 0.0
        while waited < MAX_QUOTA_WAIT_S:
            now = time.monotonic()
            available = self._available(now)
            if available is None and self.in_flight == 0:
                break  # unknown: one check learns KuCoin's figures for the others
            if available is not None and available >= weight:
                break
            pause = max(self.resets_at - now, 0.05) if available is not None else 0.05
            await asyncio.sleep(pause)
            waited += pause
        self.in_flight += weight

    def settle(self, weight: int, client: AsyncKucoinClient) -> None:
        """Release a check's reservation and remember the pool's figures it brought back."""
        self.in_flight -= weight
        figures = client.rate_limits.get("Management")
        if figures is not None and figures.remaining is not None:
            self.limit = figures.limit if figures.limit is not None else self.limit
            self.remaining = figures.remaining
            self.resets_at = time.monotonic() + (figures.reset_ms or 0) / 1000


class Slots:
    """Checks allowed in flight: enough to keep the IP budget busy at KuCoin's round trip.

    Little's law: a check in flight sends REQUESTS_PER_CHECK requests in about one round trip,
    so budget x round trip / requests per check keep the budget busy; twice that is headroom.
    More would only queue in the budget's limiter, spending the checks' deadlines there.
    """

    def __init__(self, requests_per_s: float, round_trips: RoundTrips) -> None:
        self.requests_per_s = requests_per_s
        self.round_trips = round_trips
        self.in_use = 0
        self._ready = asyncio.Condition()

    @property
    def limit(self) -> int:
        """Return the checks allowed in flight now."""
        round_trip = self.round_trips.seconds or FIRST_ROUND_TRIP_S
        wanted = SLOT_HEADROOM * self.requests_per_s / REQUESTS_PER_CHECK * round_trip
        return max(MIN_SLOTS, min(MAX_SLOTS, math.ceil(wanted)))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the duration of a check attempt."""
        async with self._ready:
            await self._ready.wait_for(lambda: self.in_use < self.limit)
            self.in_use += 1
        try:
            yield
        finally:
            async with self._ready:
                self.in_use -= 1
                self._ready.notify_all()


@dataclass
class Deadline:
    """A check's overall deadline: it runs from the moment its first attempt gets a slot."""

    seconds: float
    started: float | None = None  # monotonic

    def start(self) -> None:
        """Start the clock, once."""
        if self.started is None:
            self.started = time.monotonic()

    def left(self) -> float:
        """Return the seconds left (all of them before the first attempt began)."""
        if self.started is None:
            return self.seconds
        return self.seconds - (time.monotonic() - self.started)


@dataclass
class _Pacing:
    """What this process knows about one place KuCoin is: its UIDs' pools."""

    budgets: dict[str, UidBudget] = field(default_factory=dict)


_pacing: dict[KucoinTarget, _Pacing] = {}
_pacing_lock = threading.Lock()


def _pacing_of(target: KucoinTarget) -> _Pacing:
    """Return the pacing state of one place KuCoin is (kept for the process's life)."""
    with _pacing_lock:
        return _pacing.setdefault(target, _Pacing())


# --- one check, retried ----------------------------------------------------------------------


def _measured_recently(client: AsyncKucoinClient) -> bool:
    """Return whether the client's clock offset and IP are recent enough to reuse."""
    at = client.measured_at
    return at is not None and time.monotonic() - at < MEASUREMENT_TTL_S


def unreadable_result(error: Exception) -> ProbeResult:
    """Return the check of an account whose stored credentials cannot be decrypted."""
    return ProbeResult(
        checked_at=datetime.now(UTC),
        outcome=Outcome.REJECTED,
        latency_ms=0,
        code=UNREADABLE_CODE,
        message=str(error),  # the vault's messages name the row and field, never a secret
    )


@dataclass
class _Run:
    """One run of the engine on the KuCoin loop."""

    kucoin: KucoinTarget
    policy: HealthPolicy
    futures_currencies: Sequence[str]
    load: Callable[[int], Credentials]
    deliver: Callable[[int, ProbeResult], None]
    may_start: Callable[[], bool]
    deadline_s: float

    async def run(self, targets: Sequence[CheckTarget]) -> list[int]:
        """Check every target; return the ids not started (told to stop)."""
        client = self.kucoin.client()
        pacing = _pacing_of(self.kucoin)
        if not _measured_recently(client) and len(targets) > 1:
            await self._measure(client)
        slots = Slots(self.kucoin.ip_budget / k.CDN_IP_WINDOW_S, client.round_trips)
        throttled = UidBudget()  # keys of unknown UID refused 429000: most likely one shared UID
        skipped: list[int] = []

        async def one(target: CheckTarget) -> None:
            """Check one target and hand its result over; note it if it was not checked."""
            try:
                result = await self._check(target, client, pacing, slots, throttled)
            except (AccountUnbound, AccountNotFound):
                result = None  # unbound while it waited: nothing left to check
            except KeyFileError:
                raise  # no credential can be opened: the whole run stops, and says why
            except Exception:
                # One account never stops the others: a bug here is logged, the round goes on.
                log.exception("the check of account %s failed", target.account_id)
                result = None
            if result is None:
                skipped.append(target.account_id)
            else:
                self.deliver(target.account_id, result)

        await asyncio.gather(*(one(t) for t in targets))
        return skipped

    async def _measure(self, client: AsyncKucoinClient) -> None:
        """Measure KuCoin's clock and our IP once for the run (wave one, shared by every check)."""
        try:
            _, ip = await asyncio.gather(client.sync_clock(), client.my_ip())
            client.seen_ip = plain_ip(ip)
        except KucoinError:
            client.measured_at = None  # each check then measures for itself, failing on its own

    async def _check(
        self,
        target: CheckTarget,
        client: AsyncKucoinClient,
        pacing: _Pacing,
        slots: Slots,
        throttled: UidBudget,
    ) -> ProbeResult | None:
        """Return one target's result (retried as the rules allow); None if told to stop."""
        if target.bound:
            budget = pacing.budgets.setdefault(
                target.uid or f"account:{target.account_id}", UidBudget()
            )
        else:
            budget = UidBudget()
        deadline = Deadline(self.deadline_s)
        left = deadline.left

        def round_trip() -> float:
            """Return KuCoin's round trip as measured, a first guess before any."""
            return client.round_trips.seconds or FIRST_ROUND_TRIP_S

        def stop(state: RetryCallState) -> bool:
            """Stop after the last attempt, once the deadline is spent, or before a long wait."""
            result = state.outcome.result() if state.outcome and not state.outcome.failed else None
            if result is not None and result.rate_limited_pool:
                # Waiting for the pool's reset would outlast the deadline: the next check will.
                return (result.rate_limit_reset_ms or 0) / 1000 >= left()
            # Another attempt needs time for an answer: keep what this one said otherwise.
            return state.attempt_number >= MAX_ATTEMPTS or left() < 2 * round_trip()

        def wait(state: RetryCallState) -> float:
            """Back off with jitter; a rate limit instead waits for its pool (in `reserve`)."""
            result = state.outcome.result() if state.outcome else None
            if result is not None and result.rate_limited_pool:
                return 0.0
            return min(backoff(state), max(left() - 2 * round_trip(), 0.0))

        backoff = wait_random_exponential(multiplier=0.25, max=4)
        result: ProbeResult | None = None
        async for attempt in AsyncRetrying(
            retry=retry_if_result(self._retryable),
            wait=wait,
            stop=stop,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        ):
            with attempt:
                await budget.reserve(CHECK_WEIGHT)
                view = client
                try:
                    result, view = await self._attempt(target, client, slots, deadline)
                finally:
                    budget.settle(CHECK_WEIGHT, view)
                if result is None:
                    return None  # told to stop before it began
                if result.rate_limited_pool and target.uid is None and budget is not throttled:
                    # A key whose UID is unknown most likely shares one with keys beside it:
                    # its retries queue behind theirs, paced by the figures KuCoin sent.
                    throttled.settle(0, view)
                    budget = throttled
            if attempt.retry_state.outcome is None or not attempt.retry_state.outcome.failed:
                attempt.retry_state.set_result(result)
        return result

    async def _attempt(
        self, target: CheckTarget, client: AsyncKucoinClient, slots: Slots, deadline: Deadline
    ) -> tuple[ProbeResult | None, AsyncKucoinClient]:
        """Run one attempt in a slot: decrypt (in a thread), probe, drop the key.

        Return the result (None when told to stop before it began) and the client view it
        used (its rate-limit figures).
        """
        async with slots.slot():
            if not self.may_start():
                return None, client
            deadline.start()
            try:
                credentials = await asyncio.to_thread(self.load, target.account_id)
            except KeyFileError:
                raise
            except VaultError as error:  # this account's stored value, not the key file
                return unreadable_result(error), client
            view = client.for_key(credentials)
            del credentials
            fresh = _measured_recently(view)
            result = await probe_async(
                view,
                futures_currencies=self.futures_currencies,
                want_futures=target.want_futures,
                measure=not fresh,
                deadline_s=max(deadline.left(), 0.001),
            )
            if fresh and result.code == TIMESTAMP_CODE:
                # The clock offset reused may be older than a jump of our clock: measure anew.
                fresh = False
                result = await probe_async(
                    view,
                    futures_currencies=self.futures_currencies,
                    want_futures=target.want_futures,
                    deadline_s=max(deadline.left(), 0.001),
                )
        if not fresh and view.measured_at is not None:
            # A check that measured for itself: the next ones reuse its figures.
            client.clock_offset_ms = view.clock_offset_ms
            client.seen_ip = view.seen_ip
            client.measured_at = view.measured_at
        return result, view

    def _retryable(self, result: ProbeResult | None) -> bool:
        """Return whether a retry may fix this result (the health rules' transient)."""
        if result is None or result.code == UNREADABLE_CODE:
            return False
        return is_transient(result.outcome, result.code, result.clock_offset_ms, self.policy)


# --- storing: a writer thread, batches of results ---------------------------------------------


class Recorder:
    """Stores results in batches from its own thread, one transaction per batch.

    A result is stored once its batch commits: the check, its audit row, the account's next
    due time and the release of its lease, all together. `stored` then yields it.
    """

    def __init__(self, console: Console, owner: str, policy: HealthPolicy) -> None:
        self._console = console
        self._owner = owner
        self._policy = policy
        self._incoming: queue.Queue[tuple[int, ProbeResult] | None] = queue.Queue()
        self.stored: queue.Queue[tuple[int, ProbeResult] | None] = queue.Queue()  # None: run ended
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._write, name="check-recorder", daemon=True)
        self._thread.start()

    def put(self, account_id: int, result: ProbeResult) -> None:
        """Hand over one result to be stored (from any thread)."""
        self._incoming.put((account_id, result))

    def close(self) -> None:
        """Store everything handed over so far and stop the thread; raise what it failed with."""
        self._incoming.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error

    def _write(self) -> None:
        """Take results as they come and store them BATCH at a time, or every FLUSH_S."""
        closing = False
        while not closing:
            first = self._incoming.get()
            if first is None:
                return
            batch = [first]
            flush_at = time.monotonic() + FLUSH_S
            while len(batch) < BATCH:
                try:
                    item = self._incoming.get(timeout=max(flush_at - time.monotonic(), 0))
                except queue.Empty:
                    break
                if item is None:
                    closing = True
                    break
                batch.append(item)
            try:
                self._store(batch)
            except Exception as error:  # the database failed: say so to the caller
                self.error = error
                return

    def _store(self, batch: list[tuple[int, ProbeResult]]) -> None:
        """Store one batch in one transaction; then announce each result as stored."""
        now = datetime.now(UTC)
        with self._console.transaction() as session:
            recorded = set(store.record_checks(session, batch, actor=self._console.actor))
            due = {
                account_id: next_check_at(result, self._policy, now, random.random())
                for account_id, result in batch
                if account_id in recorded
            }
            store.finish_checks(session, self._owner, due)
        for account_id, result in batch:
            if account_id in recorded:
                self.stored.put((account_id, result))


# --- running it from synchronous code ---------------------------------------------------------


def check_targets(console: Console, account_ids: Sequence[int]) -> list[CheckTarget]:
    """Return what checking these accounts needs: their UID and whether to read futures."""
    with console.reading() as session:
        accounts = {a.id: a for a in store.list_accounts(session, account_ids=account_ids)}
        known = store.last_success_keys(session, account_ids)
    targets = []
    for account_id in account_ids:
        account = accounts.get(account_id)
        if account is None:
            continue  # unbound since it was chosen
        uid, permissions = known.get(account_id, (None, ()))
        # Futures when the account needs it, the key had it, or nothing is known yet.
        want = "futures" in account.scopes or k.FUTURES in permissions or account_id not in known
        targets.append(CheckTarget(account_id, uid, want))
    return targets


def run_checks(
    console: Console,
    targets: Sequence[CheckTarget],
    *,
    owner: str,
    on_stored: Callable[[int, ProbeResult], None] | None = None,
    may_start: Callable[[], bool] = lambda: True,
    deadline_s: float = k.CHECK_DEADLINE_S,
) -> RunReport:
    """Check the targets with KuCoin now and store each result; return what was stored.

    Runs on the KuCoin loop while this thread waits; `on_stored` is called in this thread as
    each result is stored. `may_start` is asked before each check: once it says no, the checks
    not started yet are left (their leases are released) and the run ends.
    """
    report = RunReport()
    with console.reading() as session:
        settings = store.get_settings(session)
    policy = policy_from_settings(settings)
    recorder = Recorder(console, owner, policy)

    def load(account_id: int) -> Credentials:
        """Return an account's credentials, decrypted now (called in a worker thread)."""
        with console.reading() as session:
            return store.load_credentials(session, console.vault, account_id)

    engine = _Run(
        kucoin=console.kucoin,
        policy=policy,
        futures_currencies=settings.futures_currencies,
        load=load,
        deliver=recorder.put,
        may_start=may_start,
        deadline_s=deadline_s,
    )
    done = runner.submit(engine.run(targets))
    # The run's end wakes the wait for stored results at once (a poll would add its interval
    # to every "Check now").
    done.add_done_callback(lambda _: recorder.stored.put(None))

    def take(account_id: int, result: ProbeResult) -> None:
        """Count one stored result and tell the caller."""
        report.results[account_id] = result
        if on_stored:
            on_stored(account_id, result)

    try:
        for stored in _as_stored(recorder, done):
            take(*stored)
        report.skipped = done.result()
    except BaseException:
        done.cancel()  # interrupted while waiting: the checks on the loop stop too
        raise
    finally:
        try:
            recorder.close()  # stores what was handed over; raises what the writer failed with
        finally:
            for stored in _drain(recorder.stored):
                take(*stored)
            unchecked = [t.account_id for t in targets if t.account_id not in report.results]
            if unchecked:
                with console.transaction() as session:
                    store.release_leases(session, owner, unchecked)
    report.finished_at = datetime.now(UTC)
    if report.results:
        checks_stored(console)  # alerts are decided and sent in their own thread
    return report


def verify_keys(
    console: Console,
    keys: Sequence[Credentials],
    *,
    on_result: Callable[[int, ProbeResult], None] | None = None,
) -> dict[int, ProbeResult]:
    """Check keys not bound yet, concurrently within KuCoin's budgets; return results by index.

    The same engine as a round (one clock and IP measurement for the batch, pacing, retries,
    deadline), storing nothing; a key missing from the results failed unexpectedly (logged).
    `on_result` is called in this thread with each key's index as its result arrives.
    """
    with console.reading() as session:
        settings = store.get_settings(session)
    arrived: queue.Queue[tuple[int, ProbeResult]] = queue.Queue()
    engine = _Run(
        kucoin=console.kucoin,
        policy=policy_from_settings(settings),
        futures_currencies=settings.futures_currencies,
        load=keys.__getitem__,
        deliver=lambda index, result: arrived.put((index, result)),
        may_start=lambda: True,
        deadline_s=k.CHECK_DEADLINE_S,
    )
    done = runner.submit(engine.run([CheckTarget(i, bound=False) for i in range(len(keys))]))
    results: dict[int, ProbeResult] = {}
    try:
        while not done.done() or not arrived.empty():
            try:
                index, result = arrived.get(timeout=0.1)
            except queue.Empty:
                continue
            results[index] = result
            if on_result:
                on_result(index, result)
        done.result()
    except BaseException:
        done.cancel()  # interrupted while waiting: the checks on the loop stop too
        raise
    return results


def _as_stored(recorder: Recorder, done: Future[list[int]]) -> Iterator[tuple[int, ProbeResult]]:
    """Yield results as the recorder stores them, until the run on the loop has finished."""
    while not done.done() and recorder.error is None:
        try:
            stored = recorder.stored.get(timeout=0.1)
        except queue.Empty:
            continue
        if stored is not None:  # None: the run has ended
            yield stored


def _drain(
    items: queue.Queue[tuple[int, ProbeResult] | None],
) -> Iterator[tuple[int, ProbeResult]]:
    """Yield what is left in a queue without waiting."""
    while True:
        try:
            item = items.get_nowait()
        except queue.Empty:
            return
        if item is not None:
            yield item
