"""The notebooks run clean in a real Jupyter kernel, and no secret reaches an output cell.

Each notebook is executed with nbclient (as `make notebook`'s JupyterLab would run it) against
a store bound on the KuCoin simulator, and against the demo fleet when no store exists; any
cell error fails the test, and every output is searched for canary secrets.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import sqlalchemy
from app_fixtures import TRADER, sim_env_fixture
from nbclient import NotebookClient
from store_fixtures import encodings

from lib.config import (
    DATA_DIR_ENV,
    DATABASE_URL_ENV,
    FUTURES_URL_ENV,
    MASTER_KEY_FILE_ENV,
    SPOT_URL_ENV,
    Config,
)
from lib.console import Console, binding
from lib.console.demo import DEMO_ACCOUNTS, demo_credentials, has_store
from lib.console.notebook import CheckReport, UnknownLabel, expiring_keys
from lib.health.policy import HealthPolicy
from lib.health.status import Status
from lib.kucoin.sim import SimAccount, Simulator, SimulatorServer

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
TROUBLESHOOT = NOTEBOOKS / "troubleshoot.ipynb"
FLEET_REPORT = NOTEBOOKS / "fleet-report.ipynb"
FIXTURES = (sim_env_fixture,)
CELL_TIMEOUT_S = 180  # the demo fleet is built inside the kernel on first use


def run_notebook(path: Path, workdir: Path, parameters: str | None = None) -> nbformat.NotebookNode:
    """Execute a notebook in a fresh kernel in `workdir`; raise on the first cell error."""
    book = nbformat.read(path, as_version=4)
    if parameters is not None:
        cell = next(c for c in book.cells if "parameters" in c.metadata.get("tags", []))
        cell.source = parameters
    client = NotebookClient(
        book,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()
    return book


def outputs_text(book: nbformat.NotebookNode) -> str:
    """Return every string in every output of every cell (all MIME types, errors too)."""

    def strings(value: object) -> list[str]:
        if isinstance(value, str):
            return [value]
        if isinstance(value, dict):
            return [t for k, v in value.items() for t in (k, *strings(v))]
        if isinstance(value, list):
            return [t for v in value for t in strings(v)]
        return [json.dumps(value)]

    return "\n".join(t for cell in book.cells for t in strings(cell.get("outputs", [])))


def key_material(key_file: Path) -> list[str]:
    """Return the master keys a key file holds, as written there."""
    return [key["key"] for key in json.loads(key_file.read_text())["keys"]]


def leaked(text: str, secrets: list[str]) -> list[str]:
    """Return the secrets found in `text`, in any of the forms a secret can leak in."""
    blob = text.encode()
    return [s for s in secrets if any(form in blob for form in encodings(s))]


def shown(book: nbformat.NotebookNode) -> str:
    """Return the plain text and HTML the notebook shows."""
    parts = []
    for cell in book.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            parts += [data.get("text/plain", ""), data.get("text/html", ""), output.get("text", "")]
    return "\n".join("".join(p) if isinstance(p, list) else p for p in parts)


@pytest.fixture(name="kernel_env")
def kernel_env_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point a kernel started now at a data directory of its own; return that directory."""
    data_dir = tmp_path / "data"
    monkeypatch.setenv(DATA_DIR_ENV, str(data_dir))
    for name in (DATABASE_URL_ENV, MASTER_KEY_FILE_ENV, SPOT_URL_ENV, FUTURES_URL_ENV):
        monkeypatch.delenv(name, raising=False)
    # Importing Streamlit in this process set Agg, which would keep plots out of the notebook.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    # The kernel imports lib from the project, as `make notebook` lets it.
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", f"{ROOT}{os.pathsep}{path}" if path else str(ROOT))
    return data_dir


def test_notebooks_are_committed_without_outputs():
    for path in (TROUBLESHOOT, FLEET_REPORT):
        book = nbformat.read(path, as_version=4)
        nbformat.validate(book)
        for cell in book.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name


@pytest.mark.slow
def test_notebooks_run_on_a_store_bound_against_the_simulator(kernel_env, monkeypatch):
    canary = f"CANARY{uuid.uuid4().hex}"
    secret, other_secret = str(uuid.uuid4()), str(uuid.uuid4())  # KuCoin's secrets are UUIDs
    key = SimAccount(
        api_key="6d4e5f60718293a4b5c6d7e8",
        api_secret=secret,
        passphrase=f"{canary}-pass",
        uid=720500900,
        permissions=("General", "Spot"),
        ip_whitelist=("127.0.0.1",),
    )
    no_futures = SimAccount(
        api_key="6e5f60718293a4b5c6d7e8f9",
        api_secret=other_secret,
        passphrase=f"{canary}-pass-2",
        uid=720500901,
        permissions=("General", "Spot"),
    )
    simulator = Simulator([key, no_futures], caller_ip="127.0.0.1")
    with SimulatorServer(simulator) as server:
        monkeypatch.setenv(SPOT_URL_ENV, server.spot_url)
        monkeypatch.setenv(FUTURES_URL_ENV, server.futures_url)
        console = Console.open(Config.from_env())
        try:
            for label, account, scopes in (
                ("canary-bot", key, ("spot",)),
                ("futures-bot", no_futures, ("spot", "futures")),
            ):
                outcome = binding.bind(
                    console,
                    label=label,
                    api_key=account.api_key,
                    api_secret=account.api_secret,
                    passphrase=account.passphrase,
                    scopes=scopes,
                    accept_warnings=True,
                )
                assert outcome.account_id is not None, outcome.check
        finally:
            console.close()
        secrets = [canary, secret, other_secret, *key_material(kernel_env / "master.key")]

        troubleshoot = run_notebook(TROUBLESHOOT, kernel_env.parent, 'LABEL = "futures-bot"')
        report = run_notebook(
            FLEET_REPORT, kernel_env.parent, 'WITHIN_DAYS = 14\nEXPORT_TO = "fleet.csv"'
        )
    text = shown(troubleshoot)
    # The configured store was opened, not the demo, and the live check reached KuCoin.
    assert str(kernel_env / "bindwatch.db") in text
    assert not (kernel_env / "demo").exists()
    assert "futures-bot: Permission missing (SCOPE_MISSING)" in text
    assert "IP KuCoin saw                           127.0.0.1" in text
    assert any(
        "image/png" in o.get("data", {}) for c in troubleshoot.cells for o in c.get("outputs", [])
    )
    assert "canary-bot" in shown(report)
    exported = (kernel_env.parent / "fleet.csv").read_text()
    assert "futures-bot" in exported
    for book in (troubleshoot, report):
        assert leaked(outputs_text(book), secrets) == []
    assert leaked(exported, secrets) == []


@pytest.mark.slow
def test_notebooks_open_the_demo_fleet_when_no_store_exists(kernel_env):
    troubleshoot = run_notebook(TROUBLESHOOT, kernel_env.parent)
    report = run_notebook(FLEET_REPORT, kernel_env.parent)
    demo_dir = kernel_env / "demo"
    assert not (kernel_env / "bindwatch.db").exists()  # no store was created by looking
    text = shown(troubleshoot)
    assert str(demo_dir / "bindwatch.db") in text
    # No label given: the worst account of the demo fleet is checked live.
    assert "frozen-sub: Account frozen (FROZEN)" in text
    assert "KuCoin code                             411100" in text
    fleet_report = shown(report)
    assert "half-listed" in fleet_report and "not covered" in fleet_report
    assert "veteran-bot" in fleet_report and "rotation age" in fleet_report
    secrets = [
        value.reveal()
        for account in DEMO_ACCOUNTS
        for value in (demo_credentials(account).api_secret, demo_credentials(account).passphrase)
    ]
    secrets += key_material(demo_dir / "master.key")
    for book in (troubleshoot, report):
        assert leaked(outputs_text(book), secrets) == []


def test_a_label_nobody_has_is_refused_with_the_labels_there_are(sim_env):
    with pytest.raises(UnknownLabel, match=r"No account is labelled 'nobody'\. Labels: none yet"):
        sim_env.console.account("nobody")


def test_the_console_names_its_database_without_its_password():
    engine = sqlalchemy.create_engine(
        "postgresql+psycopg://ops:hunter2-password@db.internal:5432/bindwatch"
    )
    shown_console = repr(Console(engine, vault=None))  # type: ignore[arg-type]
    assert "hunter2-password" not in shown_console
    assert "ops:***@db.internal:5432/bindwatch" in shown_console
    assert "acting as local-operator (admin)" in shown_console


def test_only_an_existing_sqlite_file_is_a_store(tmp_path):
    missing = Config(tmp_path, f"sqlite:///{tmp_path / 'bindwatch.db'}", tmp_path / "master.key")
    assert not has_store(missing)
    (tmp_path / "bindwatch.db").touch()
    assert has_store(missing)


def test_keys_are_listed_when_kucoin_deletes_them_or_they_reach_the_rotation_age_soon():
    now = datetime(2026, 6, 1, tzinfo=UTC)
    fleet = pd.DataFrame(
        {
            "label": ["young", "ageing", "unused", "both", "unknown"],
            "status": ["OK", "OK", "AT_RISK", "AT_RISK", "NEW"],
            "expires_at": pd.to_datetime(
                [None, None, now + timedelta(days=3), now + timedelta(days=10), None], utc=True
            ),
            "key_age_days": pd.array([10, 80, 20, 85, None], dtype="Int64"),
        }
    )
    policy = HealthPolicy(rotation_age=timedelta(days=90))
    soon = expiring_keys(fleet, policy, now, timedelta(days=14))
    assert list(zip(soon["label"], soon["why"], strict=True)) == [
        ("unused", "KuCoin deletes it if unused"),
        ("both", "KuCoin deletes it if unused; rotation age"),
        ("ageing", "rotation age"),
    ]
    assert list(expiring_keys(fleet, policy, now, timedelta(days=4))["label"]) == ["unused"]


def test_the_fleet_is_grouped_only_by_what_a_report_knows(sim_env):
    with pytest.raises(ValueError, match="groups by one of status, uid, kind, not 'colour'"):
        sim_env.console.fleet_by("colour")


def test_a_live_check_works_from_inside_a_running_event_loop_as_in_jupyter(sim_env):
    outcome = binding.bind(
        sim_env.console,
        label="desk",
        api_key=TRADER.api_key,
        api_secret=TRADER.api_secret.reveal(),
        passphrase=TRADER.passphrase.reveal(),
    )
    assert outcome.account_id is not None

    async def cell() -> CheckReport:
        """Run as a notebook cell runs: synchronous code while the kernel's loop is running."""
        asyncio.get_running_loop()
        return sim_env.console.check("desk")

    report = asyncio.run(cell())
    assert report.status is Status.OK and report.result.seen_ip == "127.0.0.1"
    shown = repr(report)
    assert shown.startswith("desk: Working (OK)") and "IP KuCoin saw" in shown
    assert TRADER.api_secret.reveal() not in shown and TRADER.passphrase.reveal() not in shown
