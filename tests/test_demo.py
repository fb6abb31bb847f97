"""The demo fleet: every status over real HTTP to a loopback simulator, in its own database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from app_fixtures import ROOT

from lib import store
from lib.__main__ import main
from lib.config import Config
from lib.console import Console, KucoinTarget
from lib.console.demo import (
    CALLER_IP,
    DEMO_ACCOUNTS,
    MARKER,
    DemoError,
    build_demo,
    demo_credentials,
    running_demo,
    start_demo,
    stop_demo,
)
from lib.console.export import fleet_csv
from lib.health.status import Status
from lib.kucoin.sim import SimulatorServer

EVERY_STATUS = {s.value for s in Status} - {"REJECTED"}


@pytest.fixture(scope="module", name="built")
def built_fixture(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Console, SimulatorServer, Path]]:
    """Build the demo once for the module, without Streamlit."""
    data_dir = tmp_path_factory.mktemp("demo") / "demo"
    console, server = build_demo(data_dir)
    yield console, server, data_dir
    console.close()
    server.stop()


def test_the_demo_shows_every_status_each_with_its_hint(built) -> None:
    console, _, _ = built
    fleet = console.fleet()

    assert len(fleet) == len(DEMO_ACCOUNTS) == 28
    assert set(fleet["status"].astype(str)) == EVERY_STATUS
    assert fleet["hint"].notna().all()
    assert fleet["diagnosis"].notna().all()
    by_label = fleet.set_index("label")
    expected = {
        "frozen-sub": ("FROZEN", "411100"),
        "legacy-bot": ("KEY_UNKNOWN", "400003"),
        "copy-trade": ("WRONG_SECRET", "400005"),
        "scalper-03": ("WRONG_PASSPHRASE", "400004"),
        "vps-proxy": ("BAD_REQUEST_HEADERS", "400001"),
        "office-bot": ("IP_BLOCKED", "400006"),
        "tokyo-node": ("CLOCK_SKEW", "400002"),
        "hedge-02": ("DEGRADED", "503"),
    }
    for label, (status, code) in expected.items():
        assert (by_label.loc[label, "status"], by_label.loc[label, "last_code"]) == (status, code)
    assert by_label.loc["office-bot", "seen_ip"] == CALLER_IP
    risks = by_label[by_label["status"] == "AT_RISK"]["risks"]
    for reason in ("withdrawal", "without IP whitelist", "not whitelisted", "days old", "clock"):
        assert risks.str.contains(reason).any(), reason


def test_the_demo_has_masters_subs_balances_and_history(built) -> None:
    console, _, _ = built
    fleet = console.fleet()

    assert {True, False} <= set(fleet["is_master"].dropna())
    assert fleet["uid"].dropna().nunique() == fleet["uid"].notna().sum()
    with console.reading() as session:
        history = store.probe_history_frame(session, columns=["outcome"])
    per_account = history.groupby("account_id").size()
    assert per_account.max() >= 25  # hourly checks for the heartbeat bar
    with console.reading() as session:
        latest = {
            label: store.latest_probe(session, int(i))
            for label, i in zip(fleet["label"], fleet["account_id"], strict=True)
        }
    treasury = latest["treasury"]
    assert {b.account_type for b in treasury.spot_balances} == {
        "main",
        "trade",
        "trade_hf",
        "margin",
    }
    assert set(treasury.futures) == {"USDT", "XBT"}
    assert latest["grid-eth"].spot_balances != latest["dca-btc"].spot_balances


def test_the_30_day_rule_shows_on_a_key_unused_for_35_days(built) -> None:
    console, _, _ = built
    swing = console.fleet().set_index("label").loc["swing-trader"]

    assert swing["status"] == "KEY_UNKNOWN"
    assert "30-day rule has likely deleted it" in swing["hint"]
    assert swing["sync_age"].days == 35


def test_every_key_was_bound_and_checked_through_the_real_paths(built) -> None:
    console, server, _ = built
    with console.reading() as session:
        audit = store.audit_log(session)
    binds = [e for e in audit if e.action == "bind"]

    assert len(binds) == len(DEMO_ACCOUNTS)
    assert all(e.actor == "demo" for e in binds)
    assert server.spot_url.startswith("http://127.0.0.1:")
    # The simulator really serves: the demo's changes live there, not in the database.
    answer = httpx.get(f"{server.spot_url}/api/v1/my-ip", timeout=5).json()
    assert answer["data"] == CALLER_IP


def test_the_demo_database_and_key_stay_in_its_own_directory(built) -> None:
    console, _, data_dir = built

    assert (data_dir / MARKER).exists()
    assert (data_dir / "master.key").exists()
    assert console.engine.url.database == str(data_dir / "bindwatch.db")


def test_the_csv_of_the_demo_holds_no_secret(built) -> None:
    console, _, _ = built
    data = fleet_csv(console.fleet())

    for account in DEMO_ACCOUNTS:
        creds = demo_credentials(account)
        for value in (creds.api_key, creds.api_secret.reveal(), creds.passphrase.reveal()):
            assert value.encode() not in data, account.label
    assert data.count(b"\n") == len(DEMO_ACCOUNTS) + 1


def test_the_demo_refuses_a_directory_holding_a_real_database(tmp_path: Path) -> None:
    config = Config(tmp_path, f"sqlite:///{tmp_path / 'bindwatch.db'}", tmp_path / "master.key")
    Console.open(config, kucoin=KucoinTarget()).close()
    size = (tmp_path / "bindwatch.db").stat().st_size

    with pytest.raises(DemoError, match="not a demo's: refusing to overwrite it"):
        build_demo(tmp_path)
    assert (tmp_path / "bindwatch.db").stat().st_size == size
    assert (tmp_path / "master.key").exists()


def test_the_app_shares_one_running_demo_per_process(tmp_path: Path) -> None:
    stop_demo()
    try:
        first = start_demo(tmp_path / "demo")
        assert start_demo() is first
        assert running_demo() is first
    finally:
        stop_demo()
    assert running_demo() is None


def test_demo_command_prints_the_fleet_and_the_simulator_and_rebuilds_from_scratch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(2):
        assert main(["demo", "--data-dir", str(tmp_path / "demo")]) == 0
        out = capsys.readouterr().out
        assert "28 accounts" in out
        assert "WRONG_PASSPHRASE     scalper-03" in out
        assert "spot    http://127.0.0.1:" in out
        assert "futures http://127.0.0.1:" in out
    config = Config(
        tmp_path,
        f"sqlite:///{tmp_path / 'demo' / 'bindwatch.db'}",
        tmp_path / "demo" / "master.key",
    )
    console = Console.open(config, kucoin=KucoinTarget())
    try:
        assert len(console.fleet()) == 28  # rebuilt, not bound twice
    finally:
        console.close()


def test_demo_command_refuses_a_real_data_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = Config(tmp_path, f"sqlite:///{tmp_path / 'bindwatch.db'}", tmp_path / "master.key")
    Console.open(config, kucoin=KucoinTarget()).close()

    assert main(["demo", "--data-dir", str(tmp_path)]) == 2
    assert "refusing to overwrite it" in capsys.readouterr().err


def test_demo_serve_keeps_the_simulator_until_interrupted(tmp_path: Path) -> None:
    env = {**os.environ, "BINDWATCH_DATA_DIR": str(tmp_path / "data")}
    process = subprocess.Popen(
        [sys.executable, "-m", "lib", "demo", "--serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        for line in process.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if line.startswith("Ctrl-C to stop"):
                break
        spot = next(line.split()[1] for line in lines if line.startswith("spot "))
        assert httpx.get(f"{spot}/api/v1/timestamp", timeout=5).status_code == 200
        assert any("make run" in line for line in lines)
        assert (tmp_path / "data" / "demo" / "bindwatch.db").exists()
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert "stopped" in rest
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{spot}/api/v1/timestamp", timeout=2)


def test_the_demo_says_nothing_about_backing_up_its_own_throwaway_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = {**os.environ, "BINDWATCH_DATA_DIR": str(tmp_path / "data")}
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "lib", "demo"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "28 accounts" in done.stdout
        assert "back it up" not in done.stdout + done.stderr
    key_file = tmp_path / "data" / "demo" / "master.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "data" / "master.key").exists()  # the real store was not touched

    # A real store's first key still comes with the warning to back it up.
    config = Config(tmp_path / "real", f"sqlite:///{tmp_path / 'real.db'}", tmp_path / "real.key")
    with caplog.at_level("WARNING", logger="lib.vault"):
        Console.open(config, kucoin=KucoinTarget()).close()
    assert any("back it up now" in r.getMessage() for r in caplog.records)
