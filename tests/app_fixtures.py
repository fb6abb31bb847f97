"""A KuCoin simulator on loopback and a console over a fresh data directory, for app tests.

Import the fixture into a test module (`from app_fixtures import sim_env_fixture`; pytest
registers it as `sim_env`). It sets the BINDWATCH_* variables so that `lib.ui.console()`, the
CLI and AppTest all find the same database and simulator.

The app shows nothing but its sign-in page to a session that is not signed in: `app_test()`
returns an AppTest of the app signed in as an operator of the configured installation (an
admin unless told), the way a browser's session cookie would sign it in.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pytest
from simulator_fixtures import ALL_ACCOUNTS
from streamlit.testing.v1 import AppTest

from lib import store
from lib.config import (
    DATA_DIR_ENV,
    DATABASE_URL_ENV,
    FUTURES_URL_ENV,
    MASTER_KEY_FILE_ENV,
    SPOT_URL_ENV,
    Config,
)
from lib.console import Console, Role
from lib.console.demo import Demo, start_demo, stop_demo
from lib.console.key_backup import confirm_key_backup, key_backup
from lib.console.operators import session_id
from lib.console.passwords import hash_password
from lib.kucoin.sim import SimAccount, SimRequest, SimResponse, Simulator, SimulatorServer
from lib.secret import Secret
from lib.ui.sign_in import OPERATOR_SESSION

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
# The operators the test harnesses create, by name: their role and password.
OPERATORS = {
    "admin": (Role.ADMIN, "admin password 0001"),
    "viewer": (Role.VIEWER, "viewer password 0001"),
}


@cache
def password_hash_of(password: str) -> str:
    """Return an Argon2id hash of a test password (hashed once per test run: it is slow)."""
    return hash_password(Secret(password))


def ensure_operators(console: Console, names: tuple[str, ...] = tuple(OPERATORS)) -> None:
    """Create the harness's operators that do not exist yet (the admin first)."""
    with console.transaction() as session:
        existing = {o.name for o in store.list_operators(session)}
        for name in sorted(names, key=lambda n: OPERATORS[n][0] is not Role.ADMIN):
            if name not in existing:
                role, password = OPERATORS[name]
                store.add_operator(
                    session,
                    name=name,
                    password_hash=password_hash_of(password),
                    role=role,
                    actor="test-setup",
                )


def confirm_key_backup_once(console: Console) -> None:
    """Confirm the master key's backup (as the harness), so that pages open without the notice."""
    if not key_backup(console).confirmed:
        confirm_key_backup(console.as_actor("test-setup"))


def open_session(console: Console, name: str = "admin") -> str:
    """Create the operator if need be and open a session for them; return the session's id."""
    ensure_operators(console, tuple(dict.fromkeys(("admin", name))))
    role = OPERATORS[name][0]
    opened = session_id(secrets.token_urlsafe(32))
    with console.transaction() as session:
        store.start_session(
            session,
            session_id=opened,
            operator_name=name,
            role=role,
            method=store.SignInMethod.PASSWORD,
            at=datetime.now(UTC),
        )
    return opened


def sign_in_app_test(at: AppTest, name: str = "admin") -> AppTest:
    """Sign an AppTest in as one of OPERATORS of the configured installation; return it."""
    console = Console.open(Config.from_env())
    try:
        at.session_state[OPERATOR_SESSION] = open_session(console, name)
        confirm_key_backup_once(console)
    finally:
        console.close()
    return at


def app_test(entry: str = APP, *, name: str = "admin") -> AppTest:
    """Return an AppTest of the app (not yet run), signed in as one of OPERATORS."""
    return sign_in_app_test(AppTest.from_file(entry, default_timeout=30), name)


def days_ago_ms(days: int) -> int:
    """Return a key's createdAt (ms) `days` before now: younger than the rotation age."""
    return int((time.time() - days * 86_400) * 1000)


def key_created(account: SimAccount) -> datetime:
    """Return when a simulated key was created, as key info reports it."""
    assert account.created_at is not None
    return datetime.fromtimestamp(account.created_at / 1000, tz=UTC)


# A key that verifies with no warning for the "spot" scope: General and Spot, whitelisted here,
# and young (an old key is a rotation risk, warned about at bind time).
TRADER = SimAccount(
    api_key="6a1b2c3d4e5f60718293a4b5",
    api_secret="7c9e6679-7425-40de-944b-e07fc1f90ae7",
    passphrase="trader-pass",
    uid=720500864,
    permissions=("General", "Spot"),
    ip_whitelist=("127.0.0.1",),
    remark="spot bot",
    created_at=days_ago_ms(30),
    spot=({"id": "9", "currency": "USDT", "type": "trade", "balance": "250", "available": "250"},),
)
# A second good key (another UID) to rotate to.
TRADER_NEW = SimAccount(
    api_key="6b2c3d4e5f60718293a4b5c6",
    api_secret="16fd2706-8baf-433b-82eb-8c7fada847da",
    passphrase="trader-pass-2",
    uid=720500865,
    permissions=("General", "Spot"),
    ip_whitelist=("127.0.0.1",),
    created_at=days_ago_ms(10),
)
# Spot trading with no whitelist: verifies, but warns about KuCoin's 30-day rule.
OPEN_TRADER = SimAccount(
    api_key="6c3d4e5f60718293a4b5c6d7",
    api_secret="a5b0c1d2-e3f4-4a5b-8c6d-7e8f9a0b1c2d",
    passphrase="open-pass",
    uid=720500866,
    permissions=("General", "Spot"),
)
TEST_ACCOUNTS = (*ALL_ACCOUNTS, TRADER, TRADER_NEW, OPEN_TRADER)


class RecordingSimulator(Simulator):
    """A simulator that remembers which paths were asked, so tests can prove none was."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.paths: list[str] = []
        self._paths_lock = threading.Lock()

    def handle(self, request: SimRequest) -> SimResponse:
        """Record the request's path (never its headers), then answer it."""
        with self._paths_lock:
            self.paths.append(request.target.partition("?")[0])
        return super().handle(request)


@dataclass
class SimEnv:
    """A running simulator, its HTTP server and a console over the test's data directory."""

    simulator: RecordingSimulator
    server: SimulatorServer
    console: Console
    data_dir: Path

    @property
    def requests(self) -> list[str]:
        """Return the paths the simulator was asked so far."""
        return list(self.simulator.paths)


@pytest.fixture(name="sim_env")
def sim_env_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimEnv]:
    """Start a simulator on 127.0.0.1 and point BINDWATCH_* at it and at tmp_path."""
    simulator = RecordingSimulator(TEST_ACCOUNTS)
    with SimulatorServer(simulator) as server:
        data_dir = tmp_path / "data"
        monkeypatch.setenv(DATA_DIR_ENV, str(data_dir))
        monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
        monkeypatch.delenv(MASTER_KEY_FILE_ENV, raising=False)
        monkeypatch.setenv(SPOT_URL_ENV, server.spot_url)
        monkeypatch.setenv(FUTURES_URL_ENV, server.futures_url)
        for name in ("KUCOIN_API_KEY", "KUCOIN_API_SECRET", "KUCOIN_API_PASSPHRASE"):
            monkeypatch.delenv(name, raising=False)
        console = Console.open(Config.from_env())
        try:
            yield SimEnv(simulator, server, console, data_dir)
        finally:
            console.close()


def running_demo(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Demo]:
    """Yield one demo fleet (for a module-scoped fixture); the real data directory is empty."""
    root: Path = tmp_path_factory.mktemp(name)
    with pytest.MonkeyPatch.context() as env:
        env.setenv(DATA_DIR_ENV, str(root / "real"))
        env.delenv(DATABASE_URL_ENV, raising=False)
        env.delenv(MASTER_KEY_FILE_ENV, raising=False)
        stop_demo()
        yield start_demo(root / "demo")
        stop_demo()


def shown_text(markdown: str) -> str:
    """Return Markdown written by `lib.ui.literal` as the operator reads it (escapes undone)."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")
