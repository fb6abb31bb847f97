"""Master key rotation survives being killed at any point, and a rerun finishes it."""

from __future__ import annotations

import os
import random
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import select
from store_fixtures import ACTOR, credentials, key_file_fixture, sqlite_url_fixture

from lib import store
from lib.kucoin.auth import Credentials
from lib.store import database
from lib.store.models import Credential, VaultKey
from lib.vault import KeyState, credential_place, open_vault, read_keyring, rotate_master_key
from lib.vault import rotation as rotation_module
from lib.vault import vault as vault_module

FIXTURES = (key_file_fixture, sqlite_url_fixture)
REPO = Path(__file__).resolve().parent.parent
ROWS = 1000
BATCH = 4
KILLS = 24
MARKER = "CANARY-crash"


def _bind_fleet(engine, vault, rows: int = ROWS) -> list[int]:
    with database.transaction(engine) as session:
        return [
            store.create_account_with_credentials(
                session,
                vault,
                label=f"a{n}",
                credentials=credentials(n, MARKER),
                scopes=["spot"],
                actor=ACTOR,
            )
            for n in range(rows)
        ]


def _check_every_row_decrypts(engine, key_file: Path, ids: list[int]) -> set[str]:
    """Assert the database is intact and every row opens; return the key ids rows use."""
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    keyring = read_keyring(key_file)
    usable = {k.key_id for k in keyring.keys if k.state is not KeyState.RETIRED}
    vault = open_vault(engine, key_file)
    with database.read_session(engine) as session:
        rows = session.exec(select(Credential).order_by(Credential.account_id)).all()
    assert [row.account_id for row in rows] == ids
    for n, row in enumerate(rows):
        expected = credentials(n, MARKER)
        for field, token in (
            ("api_key", row.api_key_enc),
            ("api_secret", row.api_secret_enc),
            ("passphrase", row.passphrase_enc),
        ):
            value = vault.decrypt(token, credential_place(row.account_id, field)).reveal()
            assert value == _plain(expected, field)
    used = {row.master_key_id for row in rows}
    assert used <= usable
    return used


def _plain(creds: Credentials, field: str) -> str:
    value = getattr(creds, field)
    return value if isinstance(value, str) else value.reveal()


class _Run:
    """One `python -m lib rotate-master-key` process and the lines it printed, with times."""

    def __init__(self, env: dict[str, str]):
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lib", "rotate-master-key", "--batch-size", str(BATCH)],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.lines: list[tuple[float, str]] = []
        self._buffer = b""
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)

    def read_until(self, prefix: str | None, deadline: float, count: int = 1) -> bool:
        """Collect output until `count` lines started with `prefix` (or EOF, or the deadline)."""
        fd = self.proc.stdout.fileno()
        while time.monotonic() < deadline:
            if not self._selector.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            chunk = os.read(fd, 65536)  # unbuffered: select() sees every byte still unread
            if not chunk:
                return False
            self._buffer += chunk
            *complete, self._buffer = self._buffer.split(b"\n")
            for raw in complete:
                self.lines.append((time.monotonic() - self.started, raw.decode().strip()))
            if prefix is not None and self.count(prefix) >= count:
                return True
        return False

    def count(self, prefix: str) -> int:
        """Return how many lines printed so far start with `prefix`."""
        return sum(line.startswith(prefix) for _, line in self.lines)

    def kill(self) -> None:
        """SIGKILL the process if it still runs, and collect the rest of its output."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.wait()

    def wait(self) -> None:
        """Wait for the process to end and collect the rest of its output."""
        self.proc.wait(timeout=60)
        self._selector.close()
        rest = self._buffer + self.proc.stdout.read()
        self.proc.stdout.close()
        self.lines += [(float("nan"), line.decode().strip()) for line in rest.splitlines()]

    @property
    def phase(self) -> str:
        """Return how far the rotation got: before, starting, during, retiring or after."""
        text = [line for _, line in self.lines]
        progress = [line.split()[1] for line in text if line.startswith("re-encrypted")]
        if any(line.startswith("done") for line in text):
            return "after"
        if progress and progress[-1].split("/")[0] == progress[-1].split("/")[1]:
            return "retiring"
        if progress:
            return "during"
        if any(line.startswith("master key file") for line in text):
            return "starting"
        return "before"


@pytest.mark.slow
def test_sigkill_at_random_points_of_rotation_never_loses_a_secret(sqlite_url, key_file):
    engine = database.open_database(sqlite_url)
    ids = _bind_fleet(engine, open_vault(engine, key_file))
    env = {"BINDWATCH_DATABASE_URL": sqlite_url, "BINDWATCH_MASTER_KEY_FILE": str(key_file)}
    rng = random.Random(20260301)

    # One uninterrupted run: how long start-up and the rotation itself take.
    full = _Run(env)
    assert full.read_until("done", time.monotonic() + 60)
    full.wait()
    assert full.proc.returncode == 0
    opened = next(t for t, line in full.lines if line.startswith("master key file"))
    finished = next(t for t, line in full.lines if line.startswith("done"))
    rotation_s = finished - opened
    batches = full.count("re-encrypted")

    phases = []
    for attempt in range(KILLS):
        run = _Run(env)
        deadline = time.monotonic() + 60
        if attempt % 4 == 0:
            # Anywhere from start-up to the end.
            time.sleep(rng.uniform(0, finished))
        elif rng.random() < 0.1:
            # Writing the new keyring and registering the new key.
            run.read_until("master key file", deadline)
            time.sleep(rng.uniform(0, 0.05))
        elif run.read_until("re-encrypted", deadline):
            # This run's share: all rows, or what an interrupted run left ("re-encrypted 4/612").
            first = next(line for _, line in run.lines if line.startswith("re-encrypted"))
            total = int(first.split()[1].split("/")[1])
            own_batches = -(-total // BATCH)
            target = rng.randint(1, own_batches + 1)
            run.read_until("re-encrypted", deadline, count=min(target, own_batches))
            if target <= own_batches:
                time.sleep(rng.uniform(0, rotation_s / batches))  # inside the next batch
            else:
                time.sleep(rng.uniform(0, 0.01))  # retiring the old key, then the key file
        run.kill()
        phases.append(run.phase)
        _check_every_row_decrypts(engine, key_file, ids)

    final = subprocess.run(
        [sys.executable, "-m", "lib", "rotate-master-key"],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert final.returncode == 0, final.stderr
    keyring = read_keyring(key_file)
    assert [k.state for k in keyring.keys].count(KeyState.ACTIVE) == 1
    assert {k.state for k in keyring.keys} == {KeyState.ACTIVE, KeyState.RETIRED}
    assert _check_every_row_decrypts(engine, key_file, ids) == {keyring.active.key_id}
    with database.read_session(engine) as session:
        states = dict(session.exec(select(VaultKey.key_id, VaultKey.state)).all())
    assert states == {k.key_id: k.state.value for k in keyring.keys}
    assert not list(key_file.parent.glob(".*.tmp"))
    engine.dispose()

    during = sum(phases.count(p) for p in ("starting", "during", "retiring"))
    print(
        f"\n{KILLS} kills ({ROWS} rows, batch {BATCH}, rotation {rotation_s:.2f}s): "
        + ", ".join(
            f"{p} {phases.count(p)}" for p in ("before", "starting", "during", "retiring", "after")
        )
    )
    assert during >= KILLS // 4, phases


# In-process interruptions at each step boundary: random kills may miss a short window.
# (step, module, function it calls, which call, interrupt before or after it runs)
STEPS = [
    ("new keyring written", rotation_module, "write_keyring", 1, "after"),
    (
        "database knows the new key, no row moved",
        rotation_module,
        "_reencrypt_remaining",
        1,
        "before",
    ),
    # Moving a row opens its three fields and seals them again (six places a row).
    ("inside the second batch", vault_module, "credential_place", BATCH * 6 + 3, "after"),
    ("every row moved, old key not retired", rotation_module, "_retire_in_database", 1, "before"),
    (
        "old key retired in the database, not in the file",
        rotation_module,
        "write_keyring",
        2,
        "before",
    ),
]


class _Interrupted(BaseException):
    """Stands in for the process dying."""


@pytest.mark.parametrize(
    ("name", "module", "target", "call", "when"), STEPS, ids=[s[0] for s in STEPS]
)
def test_rotation_interrupted_at_each_step_is_finished_by_a_rerun(
    sqlite_url, key_file, monkeypatch, name, module, target, call, when
):
    engine = database.open_database(sqlite_url)
    vault = open_vault(engine, key_file)
    ids = _bind_fleet(engine, vault, 40)
    old_key = vault.active_key_id
    real = getattr(module, target)
    calls = {"n": 0}

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call and when == "before":
            raise _Interrupted
        result = real(*args, **kwargs)
        if calls["n"] == call:
            raise _Interrupted
        return result

    monkeypatch.setattr(module, target, interrupting)
    with pytest.raises(_Interrupted):
        rotate_master_key(engine, vault, actor=ACTOR, batch_size=BATCH)
    monkeypatch.undo()
    _check_every_row_decrypts(engine, key_file, ids)

    report = rotate_master_key(engine, open_vault(engine, key_file), actor=ACTOR)
    assert report.resumed, name
    assert report.retired_key_ids == (old_key,)
    assert _check_every_row_decrypts(engine, key_file, ids) == {report.new_key_id}
    assert read_keyring(key_file).get(old_key).state is KeyState.RETIRED
    with database.read_session(engine) as session:
        assert len(store.audit_log(session, action="rotate_master_key")) == 1
    engine.dispose()
