"""The watcher: checks each account when it falls due, until told to stop, and says it is alive.

One watcher per egress IP (each machine's own budget); any number share one database, which
coordinates them with leases (lib.store.claim_due). A round claims what is due in batches and
checks it through the engine; between rounds the watcher sleeps until the next account falls
due. It writes a heartbeat (lib.store.record_heartbeat) as it goes: the Fleet page reads it.

    watcher = Watcher(Console.open(actor=WATCHER_ACTOR))
    watcher.run()            # until watcher.stop() (a SIGTERM handler, the app's shutdown)

Stopping lets the checks in flight finish and be stored, gives back the leases of the rest,
and returns. `serve_watcher` runs one in a thread beside the served console (`make run`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from lib import store
from lib.config import Config
from lib.console.checks import check_round
from lib.console.refresh import REQUESTS_PER_CHECK, RunReport
from lib.kucoin import constants as k
from lib.kucoin.probe_result import ProbeResult

if TYPE_CHECKING:
    from lib.console import Console

log = logging.getLogger(__name__)

WATCHER_ACTOR = "watcher"  # the name its checks are recorded and audited under
IDLE_MAX_S = 30.0  # the longest sleep between rounds: newly bound accounts are seen this soon
BATCH_SECONDS = 30.0  # a batch is what the IP budget checks in about this long
STOP_MARGIN_S = 15.0  # beyond a check's deadline: storing the last results, the heartbeat


def watcher_name() -> str:
    """Return this process's watcher name: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class WatcherStatus:
    """The watchers as the Fleet page shows them: the latest heartbeat, and whether one is on."""

    heartbeat: store.Heartbeat | None
    running: bool  # a watcher beat within the freshness period and has not stopped
    freshness_period: timedelta


def watcher_status(console: Console, now: datetime | None = None) -> WatcherStatus:
    """Return the most recent watcher's heartbeat and whether one ran within the period."""
    now = now or datetime.now(UTC)
    with console.reading() as session:
        beats = store.heartbeats(session)
    period = console.policy().freshness_period
    latest = beats[0] if beats else None
    running = any(b.stopped_at is None and now - b.beat_at <= period for b in beats)
    return WatcherStatus(latest, running, period)


class Watcher:
    """Checks due accounts round after round until stopped; one per process and egress IP."""

    def __init__(
        self,
        console: Console,
        *,
        name: str | None = None,
        on_stored: Callable[[int, ProbeResult], None] | None = None,
    ) -> None:
        self.console = console
        self.name = name or watcher_name()
        self._on_stored = on_stored
        self._stop = threading.Event()
        self._started_at = datetime.now(UTC)

    def stop(self) -> None:
        """Ask the watcher to finish the checks in flight and return (from any thread)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Return whether the watcher was asked to stop."""
        return self._stop.is_set()

    def run(self) -> None:
        """Run rounds until stopped; a round that fails is logged and retried after a pause."""
        self._beat()
        try:
            while not self.stopping:
                try:
                    self.run_round()
                except Exception:
                    # The database or a bug: say so, keep the process alive, try again.
                    log.exception("watcher %s: the round failed", self.name)
                self._stop.wait(self._idle_seconds())
        finally:
            self._beat(stopped_at=datetime.now(UTC))

    def run_round(self) -> RunReport:
        """Check every account due now, a batch at a time; record the round in the heartbeat."""
        started = datetime.now(UTC)
        self._beat(round_started_at=started)
        report = check_round(
            self.console,
            owner=self.name,
            batch=self._batch(),
            on_stored=self._on_stored,
            may_start=lambda: not self.stopping,
        )
        finished = datetime.now(UTC)
        seconds = (finished - started).total_seconds()
        if report.results:
            log.info(
                "watcher %s: %d accounts checked in %.1f s (%.0f per minute)",
                self.name,
                len(report.results),
                seconds,
                len(report.results) * 60 / max(seconds, 0.001),
            )
            self._beat(
                round_finished_at=finished,
                round_checked=len(report.results),
                round_seconds=seconds,
            )
        else:
            self._beat()
        return report

    def _batch(self) -> int:
        """Return how many accounts to claim at once: what the IP budget checks in ~30 s."""
        per_s = self.console.kucoin.ip_budget / k.CDN_IP_WINDOW_S / REQUESTS_PER_CHECK
        return max(10, int(per_s * BATCH_SECONDS))

    def _idle_seconds(self) -> float:
        """Return how long to sleep: until the next account falls due, at most IDLE_MAX_S."""
        with self.console.reading() as session:
            due = store.next_due_at(session)
        if due is None:
            return IDLE_MAX_S
        return min(max((due - datetime.now(UTC)).total_seconds(), 0.05), IDLE_MAX_S)

    def _beat(self, **fields: Any) -> None:
        """Write the heartbeat, with when the next account falls due."""
        now = datetime.now(UTC)
        with self.console.transaction() as session:
            store.record_heartbeat(
                session,
                self.name,
                started_at=self._started_at,
                beat_at=now,
                next_due_at=store.next_due_at(session),
                **fields,
            )


@asynccontextmanager
async def serve_watcher(_app: object) -> AsyncIterator[None]:
    """Run a watcher in a thread while the served console runs (an ASGI lifespan).

    Off when BINDWATCH_WATCH=0 (`make run WATCH=0`). The app's shutdown stops it: the checks
    in flight finish and are stored before the server exits.
    """
    config = Config.from_env()
    if not config.watch_with_app:
        log.info("watcher off (BINDWATCH_WATCH=0): accounts are checked only when asked")
        yield
        return
    from lib.console import Console

    console = Console.open(config, actor=WATCHER_ACTOR)
    watcher = Watcher(console)
    thread = threading.Thread(target=watcher.run, name="watcher", daemon=True)
    thread.start()
    log.info("watcher %s started beside the console", watcher.name)
    try:
        yield
    finally:
        watcher.stop()
        # Off the server's event loop: the checks in flight need a deadline at most to finish.
        await asyncio.to_thread(thread.join, k.CHECK_DEADLINE_S + STOP_MARGIN_S)
        console.close()
