"""Watchers: leases in the database, several watchers on one fleet, a watcher killed or stopped.

Real parts throughout: the simulator over HTTP, a SQLite file and (with
BINDWATCH_TEST_POSTGRES_URL) a PostgreSQL schema, `python -m lib watch` as a real process.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.sql import Select
from sqlmodel import col, select
from store_fixtures import database_url_fixture  # noqa: F401  (the database_url fixture)

from lib import store
from lib.config import Config
from lib.console import Console, KucoinTarget
from lib.console.checks import check_round, schedule_new_accounts
from lib.console.watch import Watcher, watcher_status
from lib.kucoin.auth import Credentials
from lib.kucoin.sim import SimAccount, Simulator, SimulatorServer
from lib.store.models import CheckSchedule

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = SimAccount(
    api_key="000000000000000000000000",
    api_secret="00000000-0000-4000-8000-000000000000",
    passphrase="pass",
    uid=1,
    permissions=("General", "Spot"),
    ip_whitelist=("127.0.0.1",),
)


def fleet_keys(count: int) -> list[SimAccount]:
    """Return `count` keys, five to a UID."""
    return [
        dataclasses.replace(
            TEMPLATE,
            api_key=f"{n:024x}",
            api_secret=f"00000000-0000-4000-8000-{n:012x}",
            passphrase=f"pass-{n}",
            uid=900 + n // 5,
        )
        for n in range(1, count + 1)
    ]


@pytest.fixture(name="kucoin")
def kucoin_fixture() -> Iterator[tuple[Simulator, SimulatorServer]]:
    """Yield a simulator serving 40 keys over HTTP, each answer 60 ms late."""
    simulator = Simulator(fleet_keys(40))
    simulator.set_latency(60)
    with SimulatorServer(simulator) as server:
        yield simulator, server


def open_console(tmp_path: Path, url: str, server: SimulatorServer, actor: str) -> Console:
    """Return a console on the database, as a separate process would open it."""
    config = Config(tmp_path / "data", url, tmp_path / "data" / "master.key")
    return Console.open(
        config, kucoin=KucoinTarget(server.spot_url, server.futures_url), actor=actor
    )


def save_all(console: Console, keys: list[SimAccount]) -> list[int]:
    """Store every key unchecked (due at once); return the account ids."""
    ids = []
    with console.transaction() as session:
        for account in keys:
            ids.append(
                store.create_account_with_credentials(
                    session,
                    console.vault,
                    label=f"key {account.api_key[-4:]}",
                    credentials=Credentials(
                        account.api_key, account.api_secret.reveal(), account.passphrase.reveal()
                    ),
                    scopes=("spot",),
                    actor="test",
                )
            )
    return ids


def test_two_watchers_on_one_database_check_each_account_once(
    tmp_path: Path, database_url: str, kucoin: tuple[Simulator, SimulatorServer]
) -> None:
    simulator, server = kucoin
    first = open_console(tmp_path, database_url, server, "watcher")
    second = open_console(tmp_path, database_url, server, "watcher")
    ids = save_all(first, simulator.accounts)
    stored: dict[str, list[int]] = {"a": [], "b": []}

    # Both start claiming together. Which takes how many is the scheduler's to say: a round
    # whose first claim finds every due account leased ends, and the watch loop comes back.
    together = threading.Barrier(2)

    def round_of(console: Console, owner: str) -> None:
        """Run one round of due checks, five accounts per claim."""
        together.wait(timeout=60)
        check_round(console, owner=owner, batch=5, on_stored=lambda a, _r: stored[owner].append(a))

    threads = [
        threading.Thread(target=round_of, args=(first, "a")),
        threading.Thread(target=round_of, args=(second, "b")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    with first.reading() as session:
        history = store.probe_history_frame(session)
        leased = store.leases(session, now=datetime.now(UTC))
    first.close()
    second.close()

    assert sorted(stored["a"] + stored["b"]) == sorted(ids)  # each account once, by one of them
    assert history.groupby("account_id").size().eq(1).all()
    assert leased == {}


def test_a_lease_keeps_others_off_until_it_expires(tmp_path: Path, database_url: str) -> None:
    simulator = Simulator(fleet_keys(3))
    with SimulatorServer(simulator) as server:
        console = open_console(tmp_path, database_url, server, "watcher")
        ids = save_all(console, simulator.accounts)
        schedule_new_accounts(console)
        now = datetime.now(UTC)
        expires = now + timedelta(minutes=2)
        with console.transaction() as session:
            mine = store.claim_due(session, "a", now=now, lease_until=expires, limit=2)
        with console.transaction() as session:
            others = store.claim_due(session, "b", now=now, lease_until=expires, limit=10)
        with console.transaction() as session:
            after_expiry = store.claim_due(
                session, "b", now=expires + timedelta(seconds=1), lease_until=expires, limit=10
            )
        console.close()
    assert len(mine) == 2
    assert others == [a for a in ids if a not in mine]
    assert sorted(after_expiry) == sorted(ids)


def _watch_process(data_dir: Path, server: SimulatorServer) -> subprocess.Popen:
    """Start `python -m lib watch` over a data directory, its log in a file beside it."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BINDWATCH_")},
        "BINDWATCH_DATA_DIR": str(data_dir),
        "BINDWATCH_KUCOIN_SPOT_URL": server.spot_url,
        "BINDWATCH_KUCOIN_FUTURES_URL": server.futures_url,
    }
    log = open(data_dir.parent / "watch.log", "w")  # noqa: SIM115  (closed with the process)
    return subprocess.Popen(
        [sys.executable, "-m", "lib", "watch", "--name", "watcher-under-test"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _wait_for(condition: Callable[[], bool], timeout_s: float = 60) -> None:
    """Poll until condition() is true; fail after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _stored_ids(console: Console) -> set[int]:
    """Return the ids of every check stored."""
    with console.reading() as session:
        return set(store.probe_history_frame(session)["probe_id"])


def test_a_watcher_killed_mid_round_loses_no_stored_result_and_its_leases_expire(
    tmp_path: Path, kucoin: tuple[Simulator, SimulatorServer]
) -> None:
    simulator, server = kucoin
    simulator.set_latency(250)
    data_dir = tmp_path / "data"
    console = open_console(tmp_path, f"sqlite:///{data_dir / 'bindwatch.db'}", server, "test")
    ids = save_all(console, simulator.accounts)
    process = _watch_process(data_dir, server)
    try:
        _wait_for(lambda: len(_stored_ids(console)) >= 5)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    before = _stored_ids(console)
    time.sleep(1.0)  # anything in flight at the kill is gone with the process
    after = _stored_ids(console)
    now = datetime.now(UTC)
    with console.reading() as session:
        held = store.leases(session, now=now)
        expiry = max(
            (row.lease_expires_at for row in session.exec(leased_rows()).all()), default=now
        )
    with console.transaction() as session:
        reclaimed = store.claim_due(
            session, "next", now=expiry + timedelta(seconds=1), lease_until=expiry, limit=100
        )
    console.close()

    assert before <= after and after == before  # nothing stored is lost, nothing half-written
    assert len(before) < len(ids)  # it was killed mid-round
    assert set(held.values()) == {"watcher-under-test"}
    # Once its leases expire, what it held (and had not stored) is claimed by the next one.
    assert set(held) <= set(reclaimed)


def leased_rows() -> Select:
    """Return a query of the schedule rows under a lease (to read when they expire)."""
    return select(CheckSchedule).where(col(CheckSchedule.lease_expires_at).is_not(None))


def test_sigterm_lets_the_checks_in_flight_finish_then_the_watcher_exits(
    tmp_path: Path, kucoin: tuple[Simulator, SimulatorServer]
) -> None:
    simulator, server = kucoin
    simulator.set_latency(400)
    data_dir = tmp_path / "data"
    console = open_console(tmp_path, f"sqlite:///{data_dir / 'bindwatch.db'}", server, "test")
    save_all(console, simulator.accounts)
    process = _watch_process(data_dir, server)
    try:
        _wait_for(lambda: len(_stored_ids(console)) >= 3)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    stored = _stored_ids(console)
    with console.reading() as session:
        held = store.leases(session, now=datetime.now(UTC))
    status = watcher_status(console)
    console.close()

    assert code == 0
    assert held == {}  # the unchecked were given back at once, not left to expire
    assert 3 <= len(stored) < 40
    assert status.heartbeat is not None and status.heartbeat.name == "watcher-under-test"
    assert status.heartbeat.stopped_at is not None and not status.running


def test_a_watcher_checks_accounts_as_they_fall_due_and_beats(
    tmp_path: Path, kucoin: tuple[Simulator, SimulatorServer]
) -> None:
    simulator, server = kucoin
    console = open_console(
        tmp_path, f"sqlite:///{tmp_path / 'data' / 'bindwatch.db'}", server, "watcher"
    )
    ids = save_all(console, simulator.accounts[:3])
    watcher = Watcher(console, name="w1")
    report = watcher.run_round()
    again = watcher.run_round()  # nothing is due a second time yet
    status = watcher_status(console)
    console.close()

    assert sorted(report.results) == sorted(ids)
    assert again.results == {}
    beat = status.heartbeat
    assert status.running and beat is not None and beat.round_checked == 3
    assert beat.accounts_per_minute and beat.accounts_per_minute > 0
    # Next due: within the freshness period (one hour by default), a little early at random.
    assert beat.next_due_at is not None
    assert timedelta(minutes=53) < beat.next_due_at - beat.beat_at <= timedelta(hours=1)
