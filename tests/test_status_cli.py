"""`python -m lib status`: the Fleet page's table in a terminal, and as JSON."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import takewhile
from pathlib import Path

import pytest

from lib import store
from lib.__main__ import main
from lib.config import DATA_DIR_ENV, DATABASE_URL_ENV, MASTER_KEY_FILE_ENV, Config
from lib.console import Console, KucoinTarget
from lib.console.demo import DEMO_ACCOUNTS, build_demo, demo_credentials
from lib.console.export import CSV_COLUMNS
from lib.health.status import Status
from lib.kucoin.auth import Credentials
from lib.kucoin.probe_result import Outcome, ProbeResult
from lib.store.models import SettingRow


@pytest.fixture(scope="module", name="demo_dir")
def demo_dir_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Build the demo fleet once; the command reads its database like any other."""
    data_dir = tmp_path_factory.mktemp("status") / "demo"
    console, server = build_demo(data_dir)
    yield data_dir
    console.close()
    server.stop()


@pytest.fixture(name="data_dir")
def data_dir_fixture(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point BINDWATCH_DATA_DIR at an empty directory; return it."""
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "data"))
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    monkeypatch.delenv(MASTER_KEY_FILE_ENV, raising=False)
    return tmp_path / "data"


def status(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the command in-process; return (exit status, stdout, stderr)."""
    code = main(["status", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_status_prints_the_fleet_worst_first_with_next_steps(
    demo_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(demo_dir))
    code, out, _ = status(capsys)
    lines = out.splitlines()

    assert code == 1  # some accounts fail
    assert lines[0].startswith("28 accounts, as of ")
    assert "1 FROZEN, 1 UNREADABLE, 2 KEY_UNKNOWN" in lines[0]
    rows = [line for line in lines if line[:1].isupper() and not line.startswith("27 ")]
    statuses = [row.split()[0] for row in rows[1:]]  # after the header row
    assert [Status(s).rank for s in statuses] == sorted(Status(s).rank for s in statuses)
    assert statuses[0] == "FROZEN" and statuses[-1] == "OK"
    passphrase = lines.index(next(line for line in lines if "scalper-03" in line))
    hint = " ".join(line.strip() for line in lines[passphrase + 1 : passphrase + 3])
    assert "not the login or trading password" in hint
    assert "→" in lines[passphrase + 1]


def test_status_wraps_each_diagnosis_between_words_and_never_cuts_a_code(
    demo_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(demo_dir))
    _, out, _ = status(capsys)
    lines = out.splitlines()
    console = Console.open(Config.from_env(), kucoin=KucoinTarget())
    try:
        fleet = console.fleet()
    finally:
        console.close()

    column = 44  # after STATUS (20) and ACCOUNT (22), each followed by a space
    for label, diagnosis in zip(fleet["label"], fleet["diagnosis"], strict=True):
        at = next(i for i, line in enumerate(lines) if line[21:column].strip() == label)
        below = takewhile(lambda line: line.startswith(" " * column), lines[at + 1 :])
        pieces = [lines[at][column : column + 46].strip(), *(line.strip() for line in below)]
        assert " ".join(pieces) == diagnosis, (label, pieces)
    assert "…" not in out
    assert "(400001)" in out and "(400006)" in out  # the codes a cut at 46 columns used to eat


def test_status_json_is_the_same_table_for_scripts(
    demo_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(demo_dir))
    code, out, _ = status(capsys, "--json")
    records = json.loads(out)

    assert code == 1
    assert len(records) == len(DEMO_ACCOUNTS)
    assert tuple(records[0]) == CSV_COLUMNS
    config = Config.from_env()
    console = Console.open(config, kucoin=KucoinTarget())
    try:
        fleet = console.fleet()
    finally:
        console.close()
    assert [r["label"] for r in records] == list(fleet["label"])
    scalper = next(r for r in records if r["label"] == "scalper-03")
    assert (scalper["status"], scalper["last_code"]) == ("WRONG_PASSPHRASE", "400004")
    assert scalper["last_checked_at"].endswith("Z")
    assert isinstance(scalper["sync_age_s"], int)
    assert scalper["is_master"] is False
    for account in DEMO_ACCOUNTS:
        creds = demo_credentials(account)
        for value in (creds.api_key, creds.api_secret.reveal(), creds.passphrase.reveal()):
            assert value not in out


def bind_healthy_desk() -> Console:
    """Bind one account "desk" that passed a check 3 minutes ago; return the open console."""
    console = Console.open(Config.from_env(), kucoin=KucoinTarget())
    now = datetime.now(UTC)
    with console.transaction() as session:
        store.create_account_with_credentials(
            session,
            console.vault,
            label="desk",
            credentials=Credentials("feedface0001", "secret-1", "passphrase-1"),
            scopes=("spot",),
            actor="test",
            probe=ProbeResult(
                checked_at=now - timedelta(minutes=3),
                outcome=Outcome.OK,
                latency_ms=30,
                permissions=("General", "Spot"),
                ip_whitelist="203.**.154",
                is_master=True,
                uid="1",
                key_created_at=now - timedelta(days=3),
            ),
        )
    return console


def test_status_of_a_healthy_fleet_exits_0(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bind_healthy_desk().close()

    code, out, _ = status(capsys)

    assert code == 0
    assert "OK                   desk" in out


def test_status_reads_a_setting_stored_out_of_range_without_a_traceback(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    console = bind_healthy_desk()
    with console.transaction() as session:
        # Written before the ranges existed: more days than a timedelta can hold.
        session.merge(
            SettingRow(
                name="rotation_age_days",
                value=10_000_000_000,
                updated_at=datetime.now(UTC),
                updated_by="old",
            )
        )
    console.close()

    code, out, err = status(capsys)

    assert (code, err) == (0, "")
    assert "OK                   desk" in out


def test_status_on_a_fresh_install_says_what_to_do(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = status(capsys)

    assert code == 0
    assert out.startswith("No account is bound yet.")
    assert "python -m lib demo" in out
    # Reading the status creates nothing: no database, no master key.
    assert not (data_dir / "bindwatch.db").exists()
    assert not (data_dir / "master.key").exists()
    code, out, _ = status(capsys, "--json")
    assert (code, json.loads(out)) == (0, [])


def test_status_with_the_wrong_master_key_says_so_without_a_traceback(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Console.open(Config.from_env(), kucoin=KucoinTarget()).close()
    other = Config(tmp_path / "other", f"sqlite:///{tmp_path / 'other.db'}", tmp_path / "other.key")
    Console.open(other, kucoin=KucoinTarget()).close()
    with pytest.MonkeyPatch.context() as env:
        # Swap in another installation's key: the database was sealed under a different one.
        shutil.copy(tmp_path / "other.key", data_dir / "master.key")
        env.setenv(DATA_DIR_ENV, str(data_dir))
        code, out, err = status(capsys)

    assert code == 2
    assert out == ""
    assert err.startswith("error: bindwatch cannot open its credential store:")
    assert "Traceback" not in err
