"""`python -m lib check` starts with the KuCoin client and the health rules only.

Python's own `-X importtime` lists every module a run imports: `check --help` and a real
`check` against the simulator must load no database, no pandas and no Streamlit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from simulator_fixtures import MASTER

from lib.config import FUTURES_URL_ENV, SPOT_URL_ENV
from lib.kucoin.sim import Simulator, SimulatorServer

ROOT = Path(__file__).resolve().parent.parent
# What `check` does not need: the store (SQLAlchemy, SQLModel), the vault (cryptography),
# the frames (pandas, numpy) and the app (Streamlit).
HEAVY = ("pandas", "numpy", "sqlalchemy", "sqlmodel", "cryptography", "streamlit")


def imported_packages(*args: str, env: dict[str, str] | None = None) -> tuple[set[str], str]:
    """Run `python -X importtime -m lib ARGS`; return the top-level packages it imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "lib", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Lines read "import time: self [us] | cumulative | imported package".
    packages = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert packages, done.stderr
    return packages, done.stdout


@pytest.fixture(name="kucoin")
def kucoin_fixture() -> Iterator[SimulatorServer]:
    """Serve the simulator with one key over HTTP on loopback."""
    with SimulatorServer(Simulator([MASTER])) as server:
        yield server


def test_check_help_imports_no_database_pandas_or_streamlit() -> None:
    packages, out = imported_packages("check", "--help")
    assert "--spot-url" in out
    assert "lib" in packages and "httpx" in packages  # the listing is read right
    assert sorted(packages & set(HEAVY)) == []


def test_a_check_imports_no_database_pandas_or_streamlit(kucoin: SimulatorServer) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KUCOIN_")},
        "KUCOIN_API_KEY": MASTER.api_key,
        "KUCOIN_API_SECRET": MASTER.api_secret.reveal(),
        "KUCOIN_API_PASSPHRASE": MASTER.passphrase.reveal(),
        SPOT_URL_ENV: kucoin.spot_url,
        FUTURES_URL_ENV: kucoin.futures_url,
    }
    packages, out = imported_packages("check", env=env)
    assert "API Status: Connected" in out  # the whole report, warnings included, was made
    assert "Warning: Withdrawal permission (Transfer) enabled" in out
    assert sorted(packages & set(HEAVY)) == []
