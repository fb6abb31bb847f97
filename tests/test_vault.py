"""The vault: AEAD bound to its place, tamper evidence, nonces, the key file, failing closed."""

from __future__ import annotations

import base64
import itertools
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import select
from store_fixtures import ACTOR, credentials, encodings, key_file_fixture, sqlite_url_fixture

from lib import store
from lib.config import Config
from lib.secret import Secret
from lib.store import database, master_keys
from lib.store.models import VaultKey
from lib.vault import (
    NONCE_BYTES,
    DecryptionError,
    KeyFileExposed,
    KeyFileInvalid,
    KeyFileMissing,
    Keyring,
    KeyState,
    Place,
    RetiredKeyError,
    VaultError,
    WrongMasterKey,
    new_master_key,
    open_vault,
    read_keyring,
    register_key,
    rotate_master_key,
    split_token,
    write_keyring,
)

REPO = Path(__file__).resolve().parent.parent
PLACE = Place("credentials", "7", "api_secret")
FIXTURES = (key_file_fixture, sqlite_url_fixture)


@pytest.fixture
def sqlite_engine(sqlite_url: str):
    engine = database.open_database(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture
def lone_vault(sqlite_engine, key_file):
    return open_vault(sqlite_engine, key_file)


def test_round_trip_returns_a_secret(lone_vault):
    token = lone_vault.encrypt(Secret("s3cret ☃"), PLACE)
    value = lone_vault.decrypt(token, PLACE)
    assert isinstance(value, Secret)
    assert value.reveal() == "s3cret ☃"
    assert "s3cret" not in repr(value)
    assert token.startswith(f"v1:{lone_vault.active_key_id}:")


def test_value_moved_to_any_other_place_fails_every_time(lone_vault):
    places = [
        Place(table, row, field)
        for table in ("credentials", "other")
        for row in ("1", "2", "12")
        for field in ("api_key", "api_secret", "passphrase")
    ]
    tokens = {place: lone_vault.encrypt("same value", place) for place in places}
    for origin, target in itertools.permutations(places, 2):
        with pytest.raises(DecryptionError):
            lone_vault.decrypt(tokens[origin], target)
    for place in places:
        assert lone_vault.decrypt(tokens[place], place).reveal() == "same value"


def _bit_flips(text: str):
    data = text.encode()
    for i in range(len(data)):
        for bit in range(8):
            flipped = bytearray(data)
            flipped[i] ^= 1 << bit
            yield bytes(flipped).decode("latin-1")


def test_every_single_bit_flip_of_a_stored_value_is_rejected(lone_vault):
    token = lone_vault.encrypt(Secret("api-secret-value"), PLACE)
    flips = list(_bit_flips(token))
    assert len(flips) == 8 * len(token)
    for flipped in flips:
        with pytest.raises(VaultError):
            lone_vault.decrypt(flipped, PLACE)


def test_every_single_bit_flip_of_nonce_ciphertext_or_tag_is_rejected(lone_vault):
    token = lone_vault.encrypt(Secret("api-secret-value"), PLACE)
    version, key_id, blob = split_token(token)
    for i in range(len(blob)):
        for bit in range(8):
            flipped = bytearray(blob)
            flipped[i] ^= 1 << bit
            forged = f"{version}:{key_id}:{base64.urlsafe_b64encode(bytes(flipped)).decode()}"
            with pytest.raises(DecryptionError):
                lone_vault.decrypt(forged, PLACE)


@pytest.mark.parametrize(
    "edit",
    [
        lambda t: t[:-1],
        lambda t: t[:-4],
        lambda t: t + "A",
        lambda t: t + "AAAA",
        lambda t: t.replace("v1:", "v2:", 1),
        lambda t: t.replace("v1:", "", 1),
        lambda t: "v1:" + t,
        lambda t: t.split(":")[0] + ":" + t.split(":")[2],
        lambda t: t.split(":")[0] + ":" + t.split(":")[1] + ":" + t.split(":")[2][:20],
        lambda t: t.replace(":", "::"),
        lambda t: "",
        lambda t: "v1:abcdefabcdef:abcd",
    ],
)
def test_truncated_extended_or_relabelled_values_are_rejected(lone_vault, edit):
    token = lone_vault.encrypt(Secret("api-secret-value"), PLACE)
    with pytest.raises(VaultError):
        lone_vault.decrypt(edit(token), PLACE)


def test_ten_thousand_encryptions_of_one_value_use_ten_thousand_nonces(lone_vault):
    tokens = [lone_vault.encrypt(Secret("same"), PLACE) for _ in range(10_000)]
    nonces = {split_token(t)[2][:NONCE_BYTES] for t in tokens}
    assert len(nonces) == 10_000
    assert len(set(tokens)) == 10_000


def test_key_id_is_bound_into_the_ciphertext(sqlite_engine, lone_vault, key_file):
    token = lone_vault.encrypt(Secret("v"), PLACE)
    other = new_master_key()
    keyring = lone_vault.keyring.with_state(lone_vault.active_key_id, KeyState.RETIRING)
    write_keyring(key_file, keyring.with_key(other))
    with database.transaction(sqlite_engine) as session:  # as a rotation registers its new key
        register_key(session, other, KeyState.ACTIVE)
    lone_vault.refresh()
    assert lone_vault.keyring.get(other.key_id) is not None
    relabelled = token.replace(token.split(":")[1], other.key_id)
    with pytest.raises(DecryptionError):
        lone_vault.decrypt(relabelled, PLACE)


def test_retired_key_id_is_refused(sqlite_engine, lone_vault, key_file):
    token = lone_vault.encrypt(Secret("v"), PLACE)
    old = lone_vault.active_key_id
    new = new_master_key()
    # As a rotation ends: the database retires the old key, then the key file does.
    with database.transaction(sqlite_engine) as session:
        register_key(session, new, KeyState.ACTIVE)
        master_keys.set_key_states(session, [old], KeyState.RETIRED)
    write_keyring(key_file, lone_vault.keyring.with_state(old, KeyState.RETIRED).with_key(new))
    with pytest.raises(RetiredKeyError) as caught:
        lone_vault.decrypt(token, PLACE)
    assert old in str(caught.value)


def test_reprs_never_show_key_material(lone_vault):
    key = lone_vault.keyring.active
    material = base64.b64encode(key.material)
    for text in (repr(lone_vault), repr(key), repr(lone_vault.keyring), str(lone_vault)):
        assert material.decode() not in text
        assert key.material.hex() not in text


# --- the key file ------------------------------------------------------------------------------


def test_first_run_creates_the_key_file_0600_in_a_0700_directory(lone_vault, key_file):
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    keyring = read_keyring(key_file)
    assert [k.state for k in keyring.keys] == [KeyState.ACTIVE]
    assert len(keyring.active.material) == 32
    assert not list(key_file.parent.glob(".*.tmp"))


def test_database_files_are_0600(sqlite_engine, lone_vault):
    with database.transaction(sqlite_engine) as session:
        store.create_account_with_credentials(
            session, lone_vault, label="a", credentials=credentials(1), scopes=["spot"], actor=ACTOR
        )
    path = database.sqlite_path(sqlite_engine)
    assert path is not None
    for suffix in ("", "-wal", "-shm"):
        side = Path(f"{path}{suffix}")
        assert stat.S_IMODE(side.stat().st_mode) == 0o600, side
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_exclusive_create_never_overwrites_a_key_file(key_file):
    first = Keyring((new_master_key(),))
    write_keyring(key_file, first, exclusive=True)
    with pytest.raises(FileExistsError):
        write_keyring(key_file, Keyring((new_master_key(),)), exclusive=True)
    assert read_keyring(key_file).active.key_id == first.active.key_id


def test_reopening_uses_the_same_key(sqlite_engine, lone_vault, key_file):
    token = lone_vault.encrypt(Secret("v"), PLACE)
    again = open_vault(sqlite_engine, key_file)
    assert again.decrypt(token, PLACE).reveal() == "v"


def _bind_one(engine, vault) -> None:
    with database.transaction(engine) as session:
        store.create_account_with_credentials(
            session, vault, label="a", credentials=credentials(1), scopes=["spot"], actor=ACTOR
        )


def _vault_rows(engine) -> list[tuple[str, str]]:
    with database.read_session(engine) as session:
        return [(r.key_id, r.state) for r in session.exec(select(VaultKey)).all()]


def test_missing_key_file_with_data_is_refused_and_no_new_key_is_made(
    sqlite_engine, lone_vault, key_file
):
    _bind_one(sqlite_engine, lone_vault)
    before = _vault_rows(sqlite_engine)
    key_file.rename(key_file.with_name("elsewhere.key"))
    with pytest.raises(KeyFileMissing) as caught:
        open_vault(sqlite_engine, key_file)
    assert "Restore the key file" in str(caught.value)
    assert not key_file.exists()
    assert _vault_rows(sqlite_engine) == before


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_key_file_readable_by_others_is_refused(sqlite_engine, lone_vault, key_file, mode):
    key_file.chmod(mode)
    with pytest.raises(KeyFileExposed) as caught:
        open_vault(sqlite_engine, key_file)
    assert f"chmod 600 {key_file}" in str(caught.value)
    assert f"{mode:04o}" in str(caught.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_key_file_is_refused(sqlite_engine, lone_vault, key_file):
    key_file.chmod(0o000)
    with pytest.raises(KeyFileInvalid, match="permission denied"):
        open_vault(sqlite_engine, key_file)


def test_key_file_that_is_a_directory_is_refused(sqlite_engine, tmp_path):
    directory = tmp_path / "dir.key"
    directory.mkdir(mode=0o700)
    with pytest.raises(KeyFileInvalid, match="not a regular file"):
        open_vault(sqlite_engine, directory)


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_key_of_the_wrong_length_is_refused(sqlite_engine, lone_vault, key_file, length):
    doc = json.loads(key_file.read_bytes())
    doc["keys"][0]["key"] = base64.b64encode(os.urandom(length)).decode()
    key_file.write_text(json.dumps(doc))
    with pytest.raises(KeyFileInvalid) as caught:
        open_vault(sqlite_engine, key_file)
    assert "32 bytes" in str(caught.value)
    assert doc["keys"][0]["key"] not in str(caught.value) or length == 0


@pytest.mark.parametrize("content", [os.urandom(32), b"", b"{}", b"[1,2]", b"\xff\xfe garbage"])
def test_a_file_that_is_not_a_keyring_is_refused(sqlite_engine, lone_vault, key_file, content):
    key_file.write_bytes(content)
    with pytest.raises(KeyFileInvalid, match="Restore the key file"):
        open_vault(sqlite_engine, key_file)


def test_wrong_key_with_the_right_id_is_refused(sqlite_engine, lone_vault, key_file):
    _bind_one(sqlite_engine, lone_vault)
    before = _vault_rows(sqlite_engine)
    doc = json.loads(key_file.read_bytes())
    doc["keys"][0]["key"] = base64.b64encode(os.urandom(32)).decode()
    key_file.write_text(json.dumps(doc))
    with pytest.raises(WrongMasterKey) as caught:
        open_vault(sqlite_engine, key_file)
    assert "fails its check" in str(caught.value)
    assert doc["keys"][0]["key"] not in str(caught.value)
    assert _vault_rows(sqlite_engine) == before


def test_another_installations_key_file_is_refused(sqlite_engine, lone_vault, key_file, tmp_path):
    _bind_one(sqlite_engine, lone_vault)
    before = _vault_rows(sqlite_engine)
    other = tmp_path / "other" / "master.key"
    write_keyring(other, Keyring((new_master_key(),)), exclusive=True)
    with pytest.raises(WrongMasterKey) as caught:
        open_vault(sqlite_engine, other)
    assert lone_vault.active_key_id in str(caught.value)
    assert _vault_rows(sqlite_engine) == before


def test_key_file_path_comes_from_the_environment(tmp_path):
    config = Config.from_env(
        {
            "BINDWATCH_DATA_DIR": str(tmp_path / "d"),
            "BINDWATCH_MASTER_KEY_FILE": str(tmp_path / "k" / "m.key"),
        }
    )
    assert config.master_key_file == tmp_path / "k" / "m.key"
    assert config.database_url == f"sqlite:///{tmp_path / 'd' / 'bindwatch.db'}"
    default = Config.from_env({})
    assert default.master_key_file == REPO / "data" / "master.key"
    assert default.database_url == f"sqlite:///{REPO / 'data' / 'bindwatch.db'}"


def test_config_repr_hides_a_database_password():
    config = Config.from_env({"BINDWATCH_DATABASE_URL": "postgresql+psycopg://u:hunter2@h/db"})
    assert "hunter2" not in repr(config)


# --- rotation ------------------------------------------------------------------------------------


def test_rotation_moves_every_row_and_retires_the_old_key(sqlite_engine, lone_vault, key_file):
    with database.transaction(sqlite_engine) as session:
        ids = [
            store.create_account_with_credentials(
                session,
                lone_vault,
                label=f"a{n}",
                credentials=credentials(n),
                scopes=["spot"],
                actor=ACTOR,
            )
            for n in range(25)
        ]
    old = lone_vault.active_key_id
    seen = []
    report = rotate_master_key(
        sqlite_engine,
        lone_vault,
        actor=ACTOR,
        batch_size=7,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert report.retired_key_ids == (old,)
    assert report.rows_reencrypted == 25
    assert seen[-1] == (25, 25)
    keyring = read_keyring(key_file)
    assert keyring.active.key_id == report.new_key_id != old
    assert keyring.get(old).state is KeyState.RETIRED
    fresh = open_vault(sqlite_engine, key_file)
    with database.read_session(sqlite_engine) as session:
        for n, account_id in enumerate(ids):
            assert store.load_credentials(session, fresh, account_id) == credentials(n)
    assert dict(_vault_rows(sqlite_engine)) == {old: "retired", report.new_key_id: "active"}


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lib", "rotate-master-key", *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_rotates_prints_progress_and_can_run_again(
    sqlite_url, sqlite_engine, lone_vault, key_file
):
    marker = "CANARY-cli-7f3e9d"
    with database.transaction(sqlite_engine) as session:
        for n in range(5):
            store.create_account_with_credentials(
                session,
                lone_vault,
                label=f"a{n}",
                credentials=credentials(n, marker),
                scopes=["spot"],
                actor=ACTOR,
            )
    env = {"BINDWATCH_DATABASE_URL": sqlite_url, "BINDWATCH_MASTER_KEY_FILE": str(key_file)}
    first = _cli(env, "--batch-size", "2")
    assert first.returncode == 0, first.stderr
    assert "re-encrypted 2/5 credentials" in first.stdout
    assert "re-encrypted 5/5 credentials" in first.stdout
    second = _cli(env)
    assert second.returncode == 0, second.stderr
    assert "re-encrypted 5/5 credentials" in second.stdout
    for output in (first.stdout, first.stderr, second.stdout, second.stderr):
        for form in encodings(marker):
            assert form.decode("latin-1") not in output
    assert len(read_keyring(key_file).keys) == 3


def test_cli_with_a_wrong_key_file_says_what_to_do(
    sqlite_url, sqlite_engine, lone_vault, key_file, tmp_path
):
    _bind_one(sqlite_engine, lone_vault)
    other = tmp_path / "other.key"
    write_keyring(other, Keyring((new_master_key(),)), exclusive=True)
    result = _cli({"BINDWATCH_DATABASE_URL": sqlite_url, "BINDWATCH_MASTER_KEY_FILE": str(other)})
    assert result.returncode == 2
    assert "BINDWATCH_MASTER_KEY_FILE" in result.stderr
    assert "Traceback" not in result.stderr


def test_first_run_with_defaults_makes_the_data_directory_private(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    monkeypatch.setenv("BINDWATCH_DATA_DIR", str(data))
    monkeypatch.delenv("BINDWATCH_DATABASE_URL", raising=False)
    monkeypatch.delenv("BINDWATCH_MASTER_KEY_FILE", raising=False)
    config = Config.from_env()
    engine = database.open_database()
    try:
        open_vault(engine, config.master_key_file)
    finally:
        engine.dispose()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "master.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((data / "bindwatch.db").stat().st_mode) == 0o600


def test_the_vault_tightens_only_the_private_directory_it_is_given(tmp_path, monkeypatch):
    given, named = tmp_path / "given", tmp_path / "named"
    for directory in (given, named):
        directory.mkdir(mode=0o755)
        directory.chmod(0o755)
    # The environment names a data directory: the vault does not read the environment.
    monkeypatch.setenv("BINDWATCH_DATA_DIR", str(named))
    for directory, private_dir in ((named, None), (given, given)):
        engine = database.open_database(f"sqlite:///{tmp_path / directory.name}.db")
        try:
            open_vault(engine, directory / "master.key", private_dir=private_dir)
        finally:
            engine.dispose()
        assert stat.S_IMODE((directory / "master.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(named.stat().st_mode) == 0o755
    assert stat.S_IMODE(given.stat().st_mode) == 0o700
