"""A master key file swapped under a running console: refused, nothing written, reads go on.

Two wrong files: one naming the same key id with other bytes (a stale or hand-edited copy),
and another installation's keyring. Each runs on a SQLite file and on PostgreSQL, with a real
console binding over HTTP to the simulator, and then the commands against the same database.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from app_fixtures import OPEN_TRADER, TEST_ACCOUNTS, TRADER, TRADER_NEW
from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import select
from store_fixtures import database_url_fixture, key_file_fixture

from lib import store
from lib.__main__ import main
from lib.config import DATA_DIR_ENV, DATABASE_URL_ENV, MASTER_KEY_FILE_ENV
from lib.console import Console, KucoinTarget, binding
from lib.console.checks import check_account
from lib.kucoin.sim import SimAccount, SimRequest, SimResponse, Simulator, SimulatorServer
from lib.store import database, master_keys
from lib.store.models import AuditEvent, Credential, VaultKey
from lib.vault import (
    Keyring,
    KeyState,
    MasterKey,
    VaultError,
    WrongMasterKey,
    new_master_key,
    open_vault,
    read_keyring,
    register_key,
    write_keyring,
)

FIXTURES = (database_url_fixture, key_file_fixture)


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer(Simulator(TEST_ACCOUNTS)) as server:
        yield server


@dataclass
class Installation:
    """A database with one bound account, its right key file, and a console running on them."""

    url: str
    engine: Engine
    key_file: Path
    right: bytes  # the right key file's bytes
    console: Console
    first_id: int


@pytest.fixture
def installation(database_url, key_file, simulator) -> Iterator[Installation]:
    engine = database.open_database(database_url)
    target = KucoinTarget(spot_url=simulator.spot_url, futures_url=simulator.futures_url)
    console = Console(engine, open_vault(engine, key_file), target)
    first = binding.bind(console, label="first", **secrets(TRADER))
    assert first.account_id is not None
    yield Installation(
        database_url, engine, key_file, key_file.read_bytes(), console, first.account_id
    )
    console.close()


def secrets(account: SimAccount) -> dict[str, str]:
    return {
        "api_key": account.api_key,
        "api_secret": account.api_secret.reveal(),
        "passphrase": account.passphrase.reveal(),
    }


def same_id_other_bytes(key_file: Path) -> None:
    """Replace the key file with one naming the same key id, holding other key bytes."""
    right = read_keyring(key_file).active
    write_keyring(
        key_file,
        Keyring((MasterKey(right.key_id, KeyState.ACTIVE, right.created_at, os.urandom(32)),)),
    )


def foreign_keyring(key_file: Path) -> None:
    """Replace the key file with another installation's keyring."""
    write_keyring(key_file, Keyring((new_master_key(),)))


SWAPS = [
    pytest.param(same_id_other_bytes, "fails its check", id="same-id-other-bytes"),
    pytest.param(foreign_keyring, "needs master key(s)", id="foreign-keyring"),
]


def stored(engine: Engine) -> dict[str, object]:
    """Return everything a bind could have written: accounts, ciphertexts, key rows, audit."""
    with database.read_session(engine) as session:
        return {
            "accounts": [a.label for a in store.list_accounts(session, include_unbound=True)],
            "credentials": [
                (c.account_id, c.master_key_id, c.api_key_enc, c.api_secret_enc, c.passphrase_enc)
                for c in session.exec(select(Credential)).all()
            ],
            "vault_keys": sorted(
                (k.key_id, k.state, k.check_value) for k in session.exec(select(VaultKey)).all()
            ),
            "audit": len(session.exec(select(AuditEvent)).all()),
        }


@pytest.mark.parametrize(("swap", "reason"), SWAPS)
def test_a_bind_after_the_key_file_is_swapped_is_refused_and_writes_nothing(
    installation, swap, reason
):
    console = installation.console
    before = stored(installation.engine)
    swap(installation.key_file)

    with pytest.raises(WrongMasterKey) as caught:
        binding.bind(console, label="second", **secrets(TRADER_NEW))
    message = str(caught.value)
    assert reason in message
    assert str(installation.key_file) in message
    assert "changed while bindwatch was running" in message and "Nothing was saved" in message
    assert stored(installation.engine) == before

    # Reads go on with the key verified at start: the fleet, and a live check of the account.
    assert list(console.fleet()["label"]) == ["first"]
    assert check_account(console, installation.first_id).ok
    # Rotating an account's credentials is a write: refused the same way.
    check = binding.check_key(
        console, label="", account_id=installation.first_id, scopes="spot", **secrets(TRADER_NEW)
    )
    with pytest.raises(WrongMasterKey):
        binding.save(console, check.token)
    after_reads = stored(installation.engine)
    assert after_reads["credentials"] == before["credentials"]
    assert after_reads["vault_keys"] == before["vault_keys"]


@pytest.mark.parametrize(("swap", "reason"), SWAPS)
def test_the_right_key_file_put_back_opens_everything_again(installation, swap, reason):
    swap(installation.key_file)
    with pytest.raises(VaultError):
        binding.bind(installation.console, label="second", **secrets(TRADER_NEW))

    installation.key_file.write_bytes(installation.right)
    saved = binding.bind(installation.console, label="second", **secrets(TRADER_NEW))
    assert saved.account_id is not None
    # A fresh start with the right file opens the database and decrypts every account.
    fresh = Console(installation.engine, open_vault(installation.engine, installation.key_file))
    with fresh.reading() as session:
        for account_id, account in (
            (installation.first_id, TRADER),
            (saved.account_id, TRADER_NEW),
        ):
            loaded = store.load_credentials(session, fresh.vault, account_id)
            assert loaded.api_key == account.api_key
            assert loaded.api_secret == account.api_secret


def test_a_key_file_removed_while_running_keeps_reads_and_refuses_writes_until_it_is_back(
    installation,
):
    console = installation.console
    before = stored(installation.engine)
    installation.key_file.unlink()
    with pytest.raises(WrongMasterKey, match="No master key file at") as caught:
        binding.bind(console, label="second", **secrets(TRADER_NEW))
    assert "Nothing was saved" in str(caught.value)
    assert stored(installation.engine) == before
    assert check_account(console, installation.first_id).ok

    installation.key_file.write_bytes(installation.right)
    installation.key_file.chmod(0o600)
    assert binding.bind(console, label="second", **secrets(TRADER_NEW)).account_id is not None


def test_a_key_the_database_does_not_know_is_not_written_with_until_registered(installation):
    # A key file as a rotation leaves it for a moment: the old key retiring, a new one active,
    # the database not told yet. Whoever wrote it, the new key is not used before it is.
    console = installation.console
    old = read_keyring(installation.key_file)
    newcomer = new_master_key()
    write_keyring(
        installation.key_file,
        old.with_state(old.active.key_id, KeyState.RETIRING).with_key(newcomer),
    )
    before = stored(installation.engine)
    second = binding.bind(console, label="second", **secrets(TRADER_NEW))
    with database.read_session(installation.engine) as session:
        row = session.get(Credential, second.account_id)
        assert row.master_key_id == old.active.key_id
    assert stored(installation.engine)["vault_keys"] == before["vault_keys"]

    # Once registered (as the rotation does next), the key goes into use.
    with database.transaction(installation.engine) as session:
        register_key(session, newcomer, KeyState.ACTIVE)
        master_keys.set_key_states(session, [old.active.key_id], KeyState.RETIRING)
    third = binding.bind(console, label="third", **secrets(OPEN_TRADER), accept_warnings=True)
    with database.read_session(installation.engine) as session:
        assert session.get(Credential, third.account_id).master_key_id == newcomer.key_id


def test_a_key_in_use_without_a_check_value_gets_one_only_from_the_right_file(installation):
    # A database whose values use a key it has no check value for (not set up by bindwatch):
    # the first start records one, but only for a key that opens those values.
    with database.transaction(installation.engine) as session:
        session.execute(delete(VaultKey))
    same_id_other_bytes(installation.key_file)
    with pytest.raises(WrongMasterKey, match="fails its check"):
        open_vault(installation.engine, installation.key_file)
    assert stored(installation.engine)["vault_keys"] == []

    installation.key_file.write_bytes(installation.right)
    vault = open_vault(installation.engine, installation.key_file)
    assert [key[:2] for key in stored(installation.engine)["vault_keys"]] == [
        (vault.active_key_id, "active")
    ]
    same_id_other_bytes(installation.key_file)
    with pytest.raises(WrongMasterKey, match="fails its check"):
        open_vault(installation.engine, installation.key_file)


def cli(installation: Installation, monkeypatch, capsys, *args: str, **env: str):
    """Run a command in-process on the installation; return (exit status, stdout, stderr)."""
    with monkeypatch.context() as environ:
        environ.setenv(DATABASE_URL_ENV, installation.url)
        environ.setenv(MASTER_KEY_FILE_ENV, str(installation.key_file))
        environ.setenv(DATA_DIR_ENV, str(installation.key_file.parent))
        for name, value in env.items():
            environ.setenv(name, value)
        code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("swap", "reason"), SWAPS)
def test_every_command_refuses_the_wrong_file_clearly_and_works_with_the_right_one(
    installation, simulator, monkeypatch, capsys, swap, reason
):
    # The running console met the wrong file and was asked to bind: nothing it did may stop
    # the commands from working once the right file is back.
    swap(installation.key_file)
    with contextlib.suppress(VaultError):  # refused (a test above says so)
        binding.bind(installation.console, label="second", **secrets(TRADER_NEW))
    wrong = installation.key_file.read_bytes()
    before = stored(installation.engine)
    kucoin = ["--spot-url", simulator.spot_url, "--futures-url", simulator.futures_url]
    bind_env = {
        "KUCOIN_API_KEY": OPEN_TRADER.api_key,
        "KUCOIN_API_SECRET": OPEN_TRADER.api_secret.reveal(),
        "KUCOIN_API_PASSPHRASE": OPEN_TRADER.passphrase.reveal(),
    }
    commands = [
        (("status",), {}),
        (("accounts",), {}),
        (("bind", "--label", "third", "--yes", *kucoin), bind_env),
        (("unbind", "first", "--yes"), {}),
        (("rotate-master-key",), {}),
    ]
    # Each command in-process: an uncaught exception (a traceback) fails the test by itself.
    for args, env in commands:
        code, _, err = cli(installation, monkeypatch, capsys, *args, **env)
        assert code == 2, (args, err)
        assert reason in err and "BINDWATCH_MASTER_KEY_FILE" in err, (args, err)
    assert installation.key_file.read_bytes() == wrong
    assert stored(installation.engine) == before

    installation.key_file.write_bytes(installation.right)
    for args, env in [commands[2], commands[4], commands[0], commands[1], commands[3]]:
        code, out, err = cli(installation, monkeypatch, capsys, *args, **env)
        assert code == 0, (args, out, err)
    with database.read_session(installation.engine) as session:
        labels = [a.label for a in store.list_accounts(session)]
        keys = {c.master_key_id for c in session.exec(select(Credential)).all()}
    assert labels == ["third"]
    assert keys == {read_keyring(installation.key_file).active.key_id}


class SwappingSimulator(Simulator):
    """A simulator that runs `swap` when the first request arrives (mid-way through a bind)."""

    def __init__(self, accounts, swap) -> None:
        super().__init__(accounts)
        self._swap = swap

    def handle(self, request: SimRequest) -> SimResponse:
        """Swap once, then answer as KuCoin would."""
        swap, self._swap = self._swap, None
        if swap is not None:
            swap()
        return super().handle(request)


@pytest.mark.parametrize(("swap", "reason"), SWAPS)
def test_the_bind_command_refuses_a_key_file_swapped_while_it_checks_the_key(
    installation, monkeypatch, capsys, swap, reason
):
    before = stored(installation.engine)
    simulator = SwappingSimulator(TEST_ACCOUNTS, lambda: swap(installation.key_file))
    with SimulatorServer(simulator) as kucoin:
        code, out, err = cli(
            installation,
            monkeypatch,
            capsys,
            *("bind", "--label", "second", "--yes"),
            *("--spot-url", kucoin.spot_url, "--futures-url", kucoin.futures_url),
            KUCOIN_API_KEY=TRADER_NEW.api_key,
            KUCOIN_API_SECRET=TRADER_NEW.api_secret.reveal(),
            KUCOIN_API_PASSPHRASE=TRADER_NEW.passphrase.reveal(),
        )
    assert "API Status: Connected" in out  # the check ran with the file verified at start
    assert code == 2, err
    assert reason in err and "Nothing was saved" in err
    assert "Saved:" not in out
    assert stored(installation.engine) == before
