"""Time the fleet table from a real SQLite file: 10,000 and 100,000 accounts x 30 checks each.

What is timed is what the Fleet page, `python -m lib status` and a notebook run:
lib.console.fleet.fleet_table (store readers + health rules) on a console opened afresh, so
that the whole fleet is read and judged; then the next snapshot after new checks (only they
are judged again), and the Fleet page's reruns in AppTest. The table is held to the rules run
over every check. Seeding is bulk inserts into the real tables and is not timed. Run from the
repository root: `python -m bench.bench_fleet`.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import insert
from sqlmodel import Session

from bench.bench_health import CHECKS, EGRESS, synthetic_fleet
from bench.report import Figure, times
from lib import store
from lib.config import DATA_DIR_ENV, DATABASE_URL_ENV, REPO_ROOT, Config
from lib.console import Console, KucoinTarget
from lib.console.fleet import fleet_inputs, fleet_table
from lib.health.fleet import fleet_health, judge_fleet
from lib.health.inputs import PROBE_COLUMNS
from lib.kucoin.probe_result import Outcome, ProbeResult
from lib.store.models import Account, Credential, ProbeRecord

REPEATS = 5
APP = REPO_ROOT / "app.py"
SIZES = {10_000: 1.0, 100_000: 2.0}  # accounts: the fleet table's target in seconds
RERUN_TARGET_S = 0.3  # the Fleet page's rerun (AppTest)
BATCH = 20_000
# A typical stored balances document: fleet_table must not pay for reading it.
BALANCES = {
    "spot": [
        {"account_type": t, "currency": c, "balance": "12.5", "available": "12.5", "holds": "0"}
        for t, c in (("main", "USDT"), ("trade", "USDT"), ("trade", "BTC"), ("trade_hf", "ETH"))
    ],
    "futures": {"USDT": {"accountEquity": "394.43", "availableBalance": "290.32"}},
}
BALANCES_JSON = json.dumps(BALANCES)


def _aware(value: object) -> datetime | None:
    """Return a pandas timestamp as an aware datetime, None for NaT."""
    return None if pd.isna(value) else pd.Timestamp(value).to_pydatetime()


def _none(value: object) -> object:
    """Return None for NA, the plain Python value otherwise."""
    if value is None or (not isinstance(value, list | tuple) and pd.isna(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def seed(console: Console, accounts: pd.DataFrame, probes: pd.DataFrame) -> None:
    """Insert the synthetic fleet into the real tables with executemany (not timed)."""
    key_id = console.vault.active_key_id
    now = datetime.now(UTC)
    account_rows = [
        {
            "id": int(a.account_id),
            "label": a.label,
            "exchange": "kucoin",
            "scopes": list(a.scopes),
            "paused": bool(a.paused),
            "unverified": bool(a.unverified),
            "created_at": _aware(a.created_at),
            "created_by": "bench",
            "updated_at": now,
            "updated_by": "bench",
        }
        for a in accounts.itertuples()
    ]
    # Credentials are opaque random text here: the fleet table never decrypts.
    credential_rows = [
        {
            "account_id": int(a.account_id),
            "api_key_enc": secrets.token_hex(24),
            "api_secret_enc": secrets.token_hex(24),
            "passphrase_enc": secrets.token_hex(24),
            "master_key_id": key_id,
            "fingerprint": f"{key_id}:{secrets.token_hex(32)}",
            "key_last4": f"{int(a.account_id) % 10_000:04d}",
            "key_version": "3",
            "created_at": _aware(a.created_at),
            "created_by": "bench",
        }
        for a in accounts.itertuples()
    ]
    with console.transaction() as session:
        session.execute(insert(Account), account_rows)
        session.execute(insert(Credential), credential_rows)
        _insert_probes(session, probes)
        store.update_settings(session, actor="bench", egress_ips=list(EGRESS))


def _sqlite_times(values: pd.Series) -> list[str | None]:
    """Return UTC times as SQLite stores them for the models' UTCDateTime (naive UTC text)."""
    text = values.dt.tz_convert("UTC").dt.strftime("%Y-%m-%d %H:%M:%S.%f")
    return [None if pd.isna(v) else v for v in text]


def _insert_probes(session: Session, probes: pd.DataFrame) -> None:
    """Insert the checks with the driver's executemany: 300,000 rows in seconds, not minutes."""
    ok = probes["outcome"] == "ok"
    columns = {
        "account_id": probes["account_id"].astype(int).tolist(),
        "checked_at": _sqlite_times(probes["checked_at"]),
        "outcome": probes["outcome"].tolist(),
        "latency_ms": probes["latency_ms"].astype(int).tolist(),
        "code": [_none(v) for v in probes["code"]],
        "message": [_none(v) for v in probes["message"]],
        "http_status": probes["http_status"].astype(int).tolist(),
        "endpoint": [_none(v) for v in probes["endpoint"]],
        "permissions": [",".join(v) for v in probes["permissions"]],
        "ip_whitelist": [_none(v) for v in probes["ip_whitelist"]],
        "is_master": [_none(v) for v in probes["is_master"]],
        "sub_name": [_none(v) for v in probes["sub_name"]],
        "uid": probes["uid"].tolist(),
        "remark": probes["remark"].tolist(),
        "api_version": probes["api_version"].astype(int).tolist(),
        "key_created_at": _sqlite_times(probes["key_created_at"]),
        "clock_offset_ms": probes["clock_offset_ms"].astype(int).tolist(),
        "seen_ip": [_none(v) for v in probes["seen_ip"]],
        "rate_limit_remaining": probes["rate_limit_remaining"].astype(int).tolist(),
        "balances": [BALANCES_JSON if o else "{}" for o in ok],
        "futures_permission_missing": probes["futures_permission_missing"].astype(bool).tolist(),
        "vip_level": probes["vip_level"].astype(int).tolist(),
    }
    table = ProbeRecord.__table__.name
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
    rows = list(zip(*columns.values(), strict=True))
    cursor = session.connection().connection.driver_connection.cursor()
    try:
        for start in range(0, len(rows), BATCH):
            cursor.executemany(sql, rows[start : start + BATCH])
    finally:
        cursor.close()


def seeded_data_dir(tmp: Path, accounts: int, search: str = "") -> tuple[Path, int]:
    """Seed a synthetic fleet, dated now, into a data directory in `tmp` (not timed).

    Return the data directory and how many accounts' labels contain `search`.
    """
    data_dir = tmp / f"fleet-{accounts}"
    console = Console.open(_config(data_dir), kucoin=KucoinTarget())
    try:
        accounts_frame, probes = synthetic_fleet(accounts)
        # The synthetic fleet is dated around a fixed instant; move it to now.
        shift = (
            pd.Timestamp(datetime.now(UTC))
            - pd.Timestamp(probes["checked_at"].max())
            - pd.Timedelta(minutes=1)
        )
        accounts_frame["created_at"] += shift
        probes["checked_at"] += shift
        probes["key_created_at"] += shift
        started = time.perf_counter()
        seed(console, accounts_frame, probes)
    finally:
        console.close()
    # The seeding's writes reach the disk before anything is timed: reads would otherwise
    # share it with the writeback of up to 2 GB.
    os.sync()
    size_mb = (data_dir / "bindwatch.db").stat().st_size / 1e6
    print(
        f"  seeded {accounts:,} accounts x {CHECKS} checks ({len(probes):,} rows, "
        f"{size_mb:.0f} MB) in {time.perf_counter() - started:.0f} s (not timed)"
    )
    return data_dir, int(accounts_frame["label"].str.contains(search, regex=False).sum())


def _config(data_dir: Path) -> Config:
    """Return the configuration of a data directory's SQLite file and master key."""
    return Config(data_dir, f"sqlite:///{data_dir / 'bindwatch.db'}", data_dir / "master.key")


def _opened(data_dir: Path) -> Console:
    """Return a console on the data directory: a new engine, so a fleet judged from scratch."""
    return Console.open(_config(data_dir), kucoin=KucoinTarget())


def first_snapshot_times(data_dir: Path) -> tuple[list[float], dict[str, float]]:
    """Return fleet_table's times on fresh consoles (read and judged whole), and its phases."""
    runs = []
    for _ in range(REPEATS):
        console = _opened(data_dir)
        try:
            runs.extend(times(lambda c=console: fleet_table(c), 1))
        finally:
            console.close()
    console = _opened(data_dir)
    try:
        now = datetime.now(UTC)
        read_s = statistics.median(times(lambda: fleet_inputs(console), 3))
        accounts, probes, policy = fleet_inputs(console)
        rules_s = statistics.median(times(lambda: judge_fleet(accounts, probes, policy, now), 3))
    finally:
        console.close()
    return runs, {"read (accounts + deciding checks)": read_s, "rules": rules_s}


def next_snapshot_times(data_dir: Path, checks: int = 100) -> list[float]:
    """Return the times of a snapshot after `checks` new checks: only they are judged again."""
    console = _opened(data_dir)
    try:
        fleet_table(console)
        accounts = fleet_table(console)["account_id"].sample(checks, random_state=1).tolist()
        runs = []
        for _ in range(REPEATS):
            result = ProbeResult(
                checked_at=datetime.now(UTC), outcome=Outcome.REJECTED, latency_ms=40, code="400004"
            )
            with console.transaction() as session:
                store.record_probes(session, [(int(a), result) for a in accounts])
            runs.extend(times(lambda: fleet_table(console), 1))
        return runs
    finally:
        console.close()


def assert_the_rules_over_the_whole_history(data_dir: Path) -> None:
    """Fail unless the kept fleet table equals the rules run over every check."""
    console = _opened(data_dir)
    try:
        now = datetime.now(UTC)
        fleet_table(console, now - timedelta(minutes=1))  # then judged again where it changed
        fleet = fleet_table(console, now)
        with console.reading() as session:
            accounts = store.accounts_frame(session)
            history = store.probe_history_frame(session, columns=PROBE_COLUMNS)
        expected = fleet_health(accounts, history, console.policy(), now)
        pd.testing.assert_frame_equal(fleet.drop(columns="scopes"), expected)
        print(f"  the table equals the rules over all {len(history):,} checks")
    finally:
        console.close()


def page_times(data_dir: Path) -> tuple[float, list[float]]:
    """Return the Fleet page's first run and its reruns (AppTest, the fleet judged once)."""
    from streamlit.testing.v1 import AppTest

    # AppTest outside a server: Streamlit warns once about a missing script context.
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").setLevel(
        logging.ERROR
    )
    saved = {name: os.environ.get(name) for name in (DATA_DIR_ENV, DATABASE_URL_ENV)}
    os.environ[DATA_DIR_ENV] = str(data_dir)
    os.environ.pop(DATABASE_URL_ENV, None)
    try:
        at = _signed_in(AppTest.from_file(str(APP), default_timeout=300))
        started = time.perf_counter()
        at.run()
        first = time.perf_counter() - started
        with console_of(data_dir) as console:
            size = len(fleet_table(console))
        if at.exception or len(at.dataframe[0].value) != size:
            raise RuntimeError(f"the Fleet page did not draw the fleet: {at.exception}")
        # As the served console does once started (server.py): what this process holds by now,
        # the whole histories the benches before read included, is left out of the collector's
        # passes, which Streamlit makes after every script run.
        gc.collect()
        gc.freeze()
        try:
            return first, times(at.run, REPEATS)
        finally:
            gc.unfreeze()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _signed_in(at):
    """Return the AppTest signed in as an admin of the configured installation (the tests')."""
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from app_fixtures import sign_in_app_test  # only the page timing needs the test harness

    return sign_in_app_test(at)


@contextmanager
def console_of(data_dir: Path) -> Iterator[Console]:
    """Yield a console on the data directory, closed afterwards."""
    console = _opened(data_dir)
    try:
        yield console
    finally:
        console.close()


def main() -> list[Figure]:
    """Seed each size in a temporary SQLite file and time the fleet table; return the figures."""
    logging.getLogger("lib.vault").setLevel(logging.ERROR)  # its key files are thrown away
    figures = []
    for accounts, target_s in SIZES.items():
        size = f"{accounts:,} accounts x {CHECKS} checks"
        with tempfile.TemporaryDirectory(prefix="bindwatch-bench-") as tmp:
            data_dir, _ = seeded_data_dir(Path(tmp), accounts)
            runs, phases = first_snapshot_times(data_dir)
            figures.append(Figure(f"fleet table from SQLite, {size}", runs, target_s))
            print(figures[-1])
            print("  " + ", ".join(f"{name} {s:.2f} s" for name, s in phases.items()))
            after = statistics.median(next_snapshot_times(data_dir))
            print(f"  the next snapshot, 100 checks recorded since: {after:.2f} s")
            assert_the_rules_over_the_whole_history(data_dir)
            first, reruns = page_times(data_dir)
            page = f"Fleet page rerun, {accounts:,} accounts (AppTest)"
            figures.append(Figure(page, reruns, RERUN_TARGET_S))
            print(figures[-1])
            print(f"  first run {first:.2f} s (imports, migrations, the fleet read and judged)")
    return figures


if __name__ == "__main__":
    for figure in main():
        print(figure)
