"""The vault: AES-256-GCM values bound to their place, a rotating keyring in a 0600 key file.

A stored value reads `v1:<key id>:<urlsafe base64 of nonce || ciphertext || tag>`. Its associated
data binds it to (format version, key id, table, row, field), so a value moved to another row or
field, or altered by one bit, fails to decrypt. The key file holds the keyring: every master key
with its id and state (active, retiring, retired). The database keeps, per key id, a known marker
encrypted with that key, so a wrong key file is refused before anything is written.

    VaultError              anything that keeps the vault from opening, encrypting or decrypting
    ├── KeyFileError        the key file cannot be used
    │   ├── KeyFileMissing  no key file, and the database already holds encrypted values
    │   ├── KeyFileExposed  readable or writable by group or others
    │   └── KeyFileInvalid  unreadable, not a keyring, or a key of the wrong length
    ├── WrongMasterKey      the key file does not hold the keys this database was encrypted with
    ├── RetiredKeyError     a value is under a master key a rotation retired
    ├── DecryptionError     a stored value is malformed, altered, or moved from its place
    └── RotationError       a rotation cannot run (another one holds the lock)

Every message says what the operator should do and never contains a secret.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import stat
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import func, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from lib.config import Config, ensure_private_dir
from lib.secret import Secret
from lib.store import database as db
from lib.store.models import AuditAction, AuditEvent, Credential, KeyState, VaultKey

log = logging.getLogger(__name__)

FORMAT_VERSION = "v1"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # 96-bit random nonce, fresh for every encryption
TAG_BYTES = 16
KEYRING_FORMAT = 1
_CHECK_MARKER = b"bindwatch master key check v1"
_FINGERPRINT_INFO = b"bindwatch api-key fingerprint v1"
_KEY_ID = re.compile(r"^[0-9a-f]{12}$")
_MAX_KEY_FILE_BYTES = 1 << 20


class VaultError(Exception):
    """Base of every vault error; the message tells the operator what to do."""


class KeyFileError(VaultError):
    """The master key file cannot be used."""


class KeyFileMissing(KeyFileError):
    """No key file, and the database already holds values a key must open."""


class KeyFileExposed(KeyFileError):
    """The key file can be read or written by group or others."""


class KeyFileInvalid(KeyFileError):
    """The key file is unreadable, not a keyring, or holds a key of the wrong length."""


class WrongMasterKey(VaultError):
    """The key file does not hold the master keys this database was encrypted with."""


class RetiredKeyError(VaultError):
    """A value is encrypted with a master key that a rotation retired."""


class DecryptionError(VaultError):
    """A stored value is malformed, was altered, or was moved from its place."""


class RotationError(VaultError):
    """A master key rotation cannot run."""


@dataclass(frozen=True)
class Place:
    """Where a value lives: table, row id and field; bound into its associated data."""

    table: str
    row: str
    field: str

    def __str__(self) -> str:
        return f"{self.table}/{self.row}/{self.field}"


@dataclass(frozen=True)
class MasterKey:
    """One keyring entry: a 32-byte AES key, its id and its state."""

    key_id: str
    state: KeyState
    created_at: datetime
    material: bytes = field(repr=False)


@dataclass(frozen=True)
class Keyring:
    """The master keys of one installation; exactly one is active."""

    keys: tuple[MasterKey, ...]

    @property
    def active(self) -> MasterKey:
        """Return the key new values are encrypted with."""
        return next(k for k in self.keys if k.state is KeyState.ACTIVE)

    def get(self, key_id: str) -> MasterKey | None:
        """Return the key with this id, or None."""
        return next((k for k in self.keys if k.key_id == key_id), None)

    def with_state(self, key_id: str, state: KeyState) -> Keyring:
        """Return a copy with one key moved to a new state."""
        return Keyring(
            tuple(replace(k, state=state) if k.key_id == key_id else k for k in self.keys)
        )

    def with_key(self, key: MasterKey) -> Keyring:
        """Return a copy with one more key."""
        return Keyring((*self.keys, key))

    def to_bytes(self) -> bytes:
        """Return the key file content."""
        doc = {
            "bindwatch_keyring": KEYRING_FORMAT,
            "keys": [
                {
                    "id": k.key_id,
                    "state": k.state.value,
                    "created_at": k.created_at.isoformat(),
                    "key": base64.b64encode(k.material).decode(),
                }
                for k in self.keys
            ],
        }
        return (json.dumps(doc, indent=2) + "\n").encode()


def new_master_key(now: datetime | None = None) -> MasterKey:
    """Return a fresh random active master key."""
    return MasterKey(
        key_id=secrets.token_hex(6),
        state=KeyState.ACTIVE,
        created_at=now or datetime.now(UTC),
        material=AESGCM.generate_key(bit_length=256),
    )


# --- the key file --------------------------------------------------------------------------


def read_keyring(path: Path) -> Keyring:
    """Return the keyring in the key file, refusing a file others can read or a malformed one."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise KeyFileMissing(
            f"No master key file at {path}. Restore it from your backup, or set "
            "BINDWATCH_MASTER_KEY_FILE to where it is."
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise KeyFileInvalid(
            f"{path} is not a regular file. Point BINDWATCH_MASTER_KEY_FILE at the key file."
        )
    if info.st_mode & 0o077:
        raise KeyFileExposed(
            f"Master key file {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}). Restrict it with: chmod 600 {path}"
        )
    if info.st_size > _MAX_KEY_FILE_BYTES:
        raise KeyFileInvalid(
            f"{path} is too large to be a bindwatch key file. Restore it from backup."
        )
    try:
        raw = path.read_bytes()
    except PermissionError:
        raise KeyFileInvalid(
            f"Cannot read master key file {path}: permission denied. Run bindwatch as the user "
            "that owns the file."
        ) from None
    except OSError as exc:
        raise KeyFileInvalid(f"Cannot read master key file {path}: {exc.strerror}.") from None
    return _parse_keyring(raw, path)


def _parse_keyring(raw: bytes, path: Path) -> Keyring:
    """Return the keyring in a key file's bytes; the errors never quote the content."""
    restore = "Restore the key file from your backup; do not edit it by hand."
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise KeyFileInvalid(
            f"{path} is not a bindwatch key file (not a JSON keyring). {restore}"
        ) from None
    if not isinstance(doc, dict) or doc.get("bindwatch_keyring") != KEYRING_FORMAT:
        raise KeyFileInvalid(
            f"{path} is not a bindwatch key file (format marker missing). {restore}"
        )
    entries = doc.get("keys")
    if not isinstance(entries, list) or not entries:
        raise KeyFileInvalid(f"{path} holds no master key. {restore}")
    keys = []
    for n, entry in enumerate(entries, 1):
        try:
            key_id = entry["id"]
            state = KeyState(entry["state"])
            created_at = datetime.fromisoformat(entry["created_at"])
            material = base64.b64decode(entry["key"], validate=True)
        except (TypeError, KeyError, ValueError, binascii.Error):
            raise KeyFileInvalid(f"Key entry {n} in {path} is malformed. {restore}") from None
        if not isinstance(key_id, str) or not _KEY_ID.match(key_id):
            raise KeyFileInvalid(f"Key entry {n} in {path} has an invalid key id. {restore}")
        if len(material) != KEY_BYTES:
            raise KeyFileInvalid(
                f"Master key {key_id} in {path} is {len(material)} bytes; a bindwatch master key "
                f"is {KEY_BYTES} bytes (AES-256). {restore}"
            )
        keys.append(MasterKey(key_id, state, created_at, material))
    if len({k.key_id for k in keys}) != len(keys):
        raise KeyFileInvalid(f"{path} names one key id twice. {restore}")
    if sum(k.state is KeyState.ACTIVE for k in keys) != 1:
        raise KeyFileInvalid(f"{path} must hold exactly one active master key. {restore}")
    return Keyring(tuple(keys))


def write_keyring(path: Path, keyring: Keyring, *, exclusive: bool = False) -> None:
    """Write the key file atomically (temp file, fsync, rename, fsync directory), mode 0600.

    With `exclusive`, fail with FileExistsError instead of replacing an existing file.
    """
    directory = path.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = directory / f".{path.name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(keyring.to_bytes())
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            os.link(tmp, path)  # atomic and exclusive: a concurrent first run cannot be overwritten
        else:
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _remove_stale_temp_files(path: Path) -> None:
    """Delete temp files a crash left next to the key file: they hold key material."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)


# --- the cipher ------------------------------------------------------------------------------


def _aad(version: str, key_id: str, place: Place) -> bytes:
    """Return the associated data: every part length-prefixed, so no two contexts collide."""
    parts = (
        b"bindwatch",
        version.encode(),
        key_id.encode(),
        *(p.encode() for p in (place.table, place.row, place.field)),
    )
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


def split_token(token: str) -> tuple[str, str, bytes]:
    """Return (format version, key id, nonce || ciphertext) of a stored value, or raise."""
    if not isinstance(token, str) or not token.isascii():
        raise ValueError("not an ASCII token")
    parts = token.split(":")
    if len(parts) != 3 or parts[0] != FORMAT_VERSION or not _KEY_ID.match(parts[1]):
        raise ValueError("unknown token layout")
    try:
        blob = base64.urlsafe_b64decode(parts[2])
    except (binascii.Error, ValueError):
        raise ValueError("bad base64") from None
    # Only the canonical encoding is accepted: no ignored characters or padding bits.
    if _b64encode(blob) != parts[2] or len(blob) < NONCE_BYTES + TAG_BYTES:
        raise ValueError("non-canonical or short payload")
    return parts[0], parts[1], blob


class Vault:
    """Encrypts and decrypts stored values with the keyring of one key file.

    It re-reads the key file when the file changes, so a rotation run by another process is
    picked up without a restart.
    """

    def __init__(self, path: Path, keyring: Keyring, retired_ids: frozenset[str] = frozenset()):
        self._path = path
        self._lock = threading.Lock()
        self._retired_in_db = retired_ids
        self._set_keyring(keyring)

    def __repr__(self) -> str:
        return f"Vault(path={str(self._path)!r}, active_key_id={self.active_key_id!r})"

    @property
    def path(self) -> Path:
        """Return the key file's path."""
        return self._path

    @property
    def keyring(self) -> Keyring:
        """Return the keyring in use."""
        return self._keyring

    @property
    def active_key_id(self) -> str:
        """Return the id of the key new values are encrypted with."""
        return self._keyring.active.key_id

    def _set_keyring(self, keyring: Keyring) -> None:
        # Keys the database already marked retired are refused even if the file lags behind.
        for key_id in self._retired_in_db:
            if keyring.get(key_id) is not None:
                keyring = keyring.with_state(key_id, KeyState.RETIRED)
        self._ciphers = {k.key_id: AESGCM(k.material) for k in keyring.keys}
        self._fingerprint_keys = {
            k.key_id: HKDF(hashes.SHA256(), KEY_BYTES, salt=None, info=_FINGERPRINT_INFO).derive(
                k.material
            )
            for k in keyring.keys
        }
        self._keyring = keyring
        try:
            self._signature = _file_signature(self._path)
        except OSError:
            self._signature = None

    def refresh(self, *, force: bool = False) -> None:
        """Re-read the key file if it changed since it was read (or always, with `force`)."""
        try:
            signature = _file_signature(self._path)
        except OSError:
            # The file vanished while running: keep serving from memory rather than fail.
            if self._signature is not None:
                log.warning("master key file %s is gone; using the keyring in memory", self._path)
                self._signature = None
            return
        if force or signature != self._signature:
            with self._lock:
                self._set_keyring(read_keyring(self._path))

    def mark_retired(self, key_ids: frozenset[str]) -> None:
        """Refuse these key ids from now on, whatever the key file says."""
        with self._lock:
            self._retired_in_db = self._retired_in_db | key_ids
            self._set_keyring(self._keyring)

    def _key(self, key_id: str, place: Place | None) -> MasterKey:
        """Return a key that may decrypt, re-reading the key file once for an unknown id."""
        key = self._keyring.get(key_id)
        if key is None:
            self.refresh(force=True)
            key = self._keyring.get(key_id)
        where = f" at {place}" if place else ""
        if key is None:
            raise WrongMasterKey(
                f"The value{where} is encrypted with master key {key_id}, which the key file "
                f"{self._path} does not hold. Point BINDWATCH_MASTER_KEY_FILE at the key file "
                "that holds it, or restore it from backup."
            )
        if key.state is KeyState.RETIRED:
            raise RetiredKeyError(
                f"The value{where} is encrypted with master key {key_id}, which a rotation "
                "retired. It is an old copy: bind the credential again (rotate it) to replace it."
            )
        return key

    def encrypt(self, value: Secret | str, place: Place, *, key_id: str | None = None) -> str:
        """Return the stored form of a value, encrypted with the active key for this place."""
        self.refresh()
        # An explicit key id comes from lock_active_key: the database row lock, not the key
        # file, decides, so a key the file already calls retiring is still right here.
        key = self._keyring.active if key_id is None else self._key(key_id, place)
        plaintext = (value.reveal() if isinstance(value, Secret) else value).encode("utf-8")
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key.key_id].encrypt(
            nonce, plaintext, _aad(FORMAT_VERSION, key.key_id, place)
        )
        return f"{FORMAT_VERSION}:{key.key_id}:{_b64encode(nonce + sealed)}"

    def decrypt(self, token: str, place: Place) -> Secret:
        """Return the value stored at `place`, refusing any altered, moved or retired value."""
        self.refresh()
        try:
            version, key_id, blob = split_token(token)
        except ValueError:
            raise DecryptionError(
                f"The stored value at {place} is malformed (not a bindwatch ciphertext). "
                "Restore the row from backup or bind the credential again."
            ) from None
        key = self._key(key_id, place)
        try:
            plaintext = self._ciphers[key.key_id].decrypt(
                blob[:NONCE_BYTES], blob[NONCE_BYTES:], _aad(version, key_id, place)
            )
        except InvalidTag:
            raise DecryptionError(
                f"The stored value at {place} failed its integrity check: it was altered, or "
                "moved from another row or field. Restore the row from backup or bind the "
                "credential again."
            ) from None
        try:
            return Secret(plaintext.decode("utf-8"))
        except UnicodeDecodeError:
            raise DecryptionError(f"The stored value at {place} is not text.") from None

    def reencrypt(self, token: str, place: Place, *, key_id: str | None = None) -> str:
        """Return the value re-encrypted with the active key, without handing out the plaintext."""
        return self.encrypt(self.decrypt(token, place), place, key_id=key_id)

    def fingerprint(self, api_key: Secret | str, *, key_id: str | None = None) -> str:
        """Return `<key id>:<HMAC-SHA256 hex>` of an API key, keyed from a master key by HKDF."""
        key_id = key_id or self.active_key_id
        value = (api_key.reveal() if isinstance(api_key, Secret) else api_key).encode("utf-8")
        digest = hmac.new(self._fingerprint_keys[key_id], value, hashlib.sha256).hexdigest()
        return f"{key_id}:{digest}"

    def fingerprints(self, api_key: Secret | str) -> tuple[str, ...]:
        """Return the API key's fingerprint under every key still in use (active and retiring)."""
        self.refresh()
        return tuple(
            self.fingerprint(api_key, key_id=k.key_id)
            for k in self._keyring.keys
            if k.state is not KeyState.RETIRED
        )

    def check_value(self, key_id: str) -> str:
        """Return the known marker encrypted with one key, for the vault_keys table."""
        key = self._key(key_id, None)
        nonce = os.urandom(NONCE_BYTES)
        place = _check_place(key_id)
        sealed = self._ciphers[key.key_id].encrypt(
            nonce, _CHECK_MARKER, _aad(FORMAT_VERSION, key_id, place)
        )
        return f"{FORMAT_VERSION}:{key_id}:{_b64encode(nonce + sealed)}"

    def opens_check_value(self, key_id: str, token: str) -> bool:
        """Return whether this keyring's key `key_id` opens a stored check value."""
        cipher = self._ciphers.get(key_id)
        try:
            version, token_key_id, blob = split_token(token)
        except ValueError:
            return False
        if cipher is None or token_key_id != key_id:
            return False
        try:
            plaintext = cipher.decrypt(
                blob[:NONCE_BYTES], blob[NONCE_BYTES:], _aad(version, key_id, _check_place(key_id))
            )
        except InvalidTag:
            return False
        return hmac.compare_digest(plaintext, _CHECK_MARKER)

    def lock_active_key(self, session: Session) -> str:
        """Return the key id to encrypt with in this transaction, share-locking its row.

        A rotation flips the old key's row to retiring under an exclusive lock, so it waits for
        every transaction still writing with the old key, and later ones see the change.
        """
        for attempt in range(2):
            self.refresh(force=attempt > 0)
            key_id = self.active_key_id
            state = session.exec(
                select(VaultKey.state).where(VaultKey.key_id == key_id).with_for_update(read=True)
            ).first()
            if state is None:
                _register_key(session, self, key_id, KeyState.ACTIVE)
                return key_id
            if state == KeyState.ACTIVE:
                return key_id
        raise RotationError(
            f"The key file {self._path} names master key {key_id} active, but the database "
            f"has it {state}. Run `python -m lib rotate-master-key` to finish the rotation."
        )


def _check_place(key_id: str) -> Place:
    return Place(VaultKey.__tablename__, key_id, "check_value")


def _file_signature(path: Path) -> tuple[int, int, int]:
    info = path.stat()
    return (info.st_ino, info.st_mtime_ns, info.st_size)


def _register_key(session: Session, vault: Vault, key_id: str, state: KeyState) -> None:
    """Insert a key's check row unless another transaction already did."""
    now = datetime.now(UTC)
    values = {
        "key_id": key_id,
        "state": state.value,
        "check_value": vault.check_value(key_id),
        "created_at": now,
        "updated_at": now,
    }
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(VaultKey).values(**values).on_conflict_do_nothing(index_elements=["key_id"])
    )


# --- opening the vault against a database ----------------------------------------------------


def open_vault(engine: Engine, key_file: Path) -> Vault:
    """Return the vault for this database, creating the key file on a first run only.

    Fails closed: a missing key file when the database holds encrypted values, an exposed or
    malformed key file, or a key file that is not the one this database was encrypted with.
    """
    key_file = Path(key_file)
    with db.transaction(engine) as session:
        known = {row.key_id: row for row in session.exec(select(VaultKey)).all()}
        in_use = set(session.exec(select(Credential.master_key_id).distinct()).all())
        holds_data = bool(in_use) or any(row.state != KeyState.RETIRED for row in known.values())
        if key_file.exists() or key_file.is_symlink():
            keyring = read_keyring(key_file)
        elif holds_data:
            raise KeyFileMissing(
                f"No master key file at {key_file}, but the database already holds encrypted "
                "values. Restore the key file from your backup, or set BINDWATCH_MASTER_KEY_FILE "
                "to where it is. No new key is created over existing data."
            )
        else:
            keyring = _create_key_file(key_file)
        retired = frozenset(k for k, row in known.items() if row.state == KeyState.RETIRED)
        vault = Vault(key_file, keyring, retired)
        _check_keyring_against(vault, known, in_use)
        for key in vault.keyring.keys:
            if key.key_id not in known and key.state is not KeyState.RETIRED:
                _register_key(session, vault, key.key_id, key.state)
    log.info("vault open: key file %s, active master key %s", key_file, vault.active_key_id)
    return vault


def _create_key_file(key_file: Path) -> Keyring:
    """Create the key file with one new key (0600, exclusive), or read the one a racer created."""
    if key_file.parent.absolute() == Config.from_env().data_dir:
        ensure_private_dir(key_file.parent)
    key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    keyring = Keyring((new_master_key(),))
    try:
        write_keyring(key_file, keyring, exclusive=True)
    except FileExistsError:
        return read_keyring(key_file)
    log.warning(
        "created a new master key file at %s: back it up now, apart from the database; "
        "without it the stored credentials cannot be decrypted",
        key_file,
    )
    return keyring


def _check_keyring_against(vault: Vault, known: dict[str, VaultKey], in_use: set[str]) -> None:
    """Raise WrongMasterKey unless the keyring holds every key the database still needs."""
    path = vault.path
    for key in vault.keyring.keys:
        row = known.get(key.key_id)
        if (
            row is not None
            and row.state != KeyState.RETIRED
            and not vault.opens_check_value(key.key_id, row.check_value)
        ):
            raise WrongMasterKey(
                f"The key file {path} does not hold the master key this database was encrypted "
                f"with (key {key.key_id} fails its check). Point BINDWATCH_MASTER_KEY_FILE at the "
                "right key file or restore it from backup. Nothing was changed."
            )
    usable = {k.key_id for k in vault.keyring.keys if k.state is not KeyState.RETIRED}
    needed = in_use | {k for k, row in known.items() if row.state != KeyState.RETIRED}
    missing = sorted(needed - usable)
    if missing:
        raise WrongMasterKey(
            f"The database needs master key(s) {', '.join(missing)}, which the key file {path} "
            "does not hold (or holds as retired). Point BINDWATCH_MASTER_KEY_FILE at the right "
            "key file or restore it from backup. Nothing was changed."
        )


# --- rotation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RotationReport:
    """What one run of a master key rotation did."""

    new_key_id: str
    retired_key_ids: tuple[str, ...]
    rows_reencrypted: int
    resumed: bool  # it finished a rotation an earlier run left half done


CREDENTIAL_FIELDS = ("api_key", "api_secret", "passphrase")


def credential_place(account_id: int, field_name: str) -> Place:
    """Return the place of one encrypted field of an account's credential row."""
    return Place(Credential.__tablename__, str(account_id), field_name)


@contextlib.contextmanager
def _rotation_lock(key_file: Path) -> Iterator[None]:
    """Hold an exclusive lock next to the key file; the kernel drops it if the process dies."""
    lock_path = key_file.with_name(key_file.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RotationError(
                f"Another master key rotation is running (lock {lock_path}). Wait for it to "
                "finish, then run this again if needed."
            ) from None
        yield
    finally:
        os.close(fd)


def rotate_master_key(
    engine: Engine,
    vault: Vault,
    *,
    actor: str,
    batch_size: int = 200,
    progress: Callable[[int, int], None] | None = None,
) -> RotationReport:
    """Add a master key, re-encrypt every credential with it, then retire the old key.

    Each step is safe to interrupt: the key file gets the new key before any value uses it, rows
    move in batches of their own transactions, and the old key is retired only once no row
    uses it. Running it again after a crash finishes the interrupted rotation.
    """
    with _rotation_lock(vault.path):
        _remove_stale_temp_files(vault.path)
        keyring = read_keyring(vault.path)
        old_ids = tuple(k.key_id for k in keyring.keys if k.state is KeyState.RETIRING)
        resumed = bool(old_ids)
        if not resumed:
            old_ids = (keyring.active.key_id,)
            keyring = keyring.with_state(keyring.active.key_id, KeyState.RETIRING).with_key(
                new_master_key()
            )
            write_keyring(vault.path, keyring)
            log.info("rotation: new master key %s written to %s", keyring.active.key_id, vault.path)
        new_id = keyring.active.key_id
        vault.refresh(force=True)

        # The database learns the new key, and that the old ones are retiring: from this commit
        # on, writers encrypt with the new key (see Vault.lock_active_key).
        with db.transaction(engine) as session:
            _register_key(session, vault, new_id, KeyState.ACTIVE)
            session.execute(
                update(VaultKey)
                .where(col(VaultKey.key_id).in_(old_ids), VaultKey.state != KeyState.RETIRED)
                .values(state=KeyState.RETIRING.value, updated_at=datetime.now(UTC))
            )

        moved = 0
        while True:
            moved += _reencrypt_remaining(engine, vault, new_id, batch_size, progress)
            try:
                _retire_in_database(engine, old_ids, new_id, actor, moved, resumed)
            except _RowsLeft:
                continue  # a writer that still held the old key committed meanwhile: move it too
            break

        keyring = read_keyring(vault.path)
        for key_id in old_ids:
            keyring = keyring.with_state(key_id, KeyState.RETIRED)
        write_keyring(vault.path, keyring)
        vault.mark_retired(frozenset(old_ids))
        vault.refresh(force=True)
        log.info("rotation: master key %s active, retired %s", new_id, ", ".join(old_ids))
        return RotationReport(new_id, old_ids, moved, resumed)


class _RowsLeft(Exception):
    """Rows still use an old key: roll the retiring transaction back."""


def _retire_in_database(
    engine: Engine, old_ids: tuple[str, ...], new_id: str, actor: str, moved: int, resumed: bool
) -> None:
    """Mark the old keys retired and audit the rotation, once no row uses them (else _RowsLeft)."""
    with db.transaction(engine) as session:
        states = dict(
            session.exec(
                select(VaultKey.key_id, VaultKey.state).where(col(VaultKey.key_id).in_(old_ids))
            ).all()
        )
        # Locks the old keys' rows: waits for any writer still using them.
        session.execute(
            update(VaultKey)
            .where(col(VaultKey.key_id).in_(old_ids))
            .values(state=KeyState.RETIRED.value, updated_at=datetime.now(UTC))
        )
        left = session.exec(
            select(func.count()).select_from(Credential).where(Credential.master_key_id != new_id)
        ).one()
        if left:
            raise _RowsLeft
        if all(state == KeyState.RETIRED for state in states.values()):
            return  # an earlier run already retired them and wrote the audit row
        session.add(
            AuditEvent(
                at=datetime.now(UTC),
                actor=actor,
                action=AuditAction.ROTATE_MASTER_KEY.value,
                details={
                    "new_key_id": new_id,
                    "retired_key_ids": list(old_ids),
                    "rows_reencrypted": moved,
                    "resumed": resumed,
                },
            )
        )


def _reencrypt_remaining(
    engine: Engine,
    vault: Vault,
    new_id: str,
    batch_size: int,
    progress: Callable[[int, int], None] | None,
) -> int:
    """Move every credential row to the new key, one batch per transaction; return rows moved."""
    with db.transaction(engine) as session:
        total = session.exec(
            select(func.count()).select_from(Credential).where(Credential.master_key_id != new_id)
        ).one()
    moved = 0
    while True:
        with db.transaction(engine) as session:
            rows = session.exec(
                select(Credential)
                .where(Credential.master_key_id != new_id)
                .order_by(Credential.account_id)
                .limit(batch_size)
                .with_for_update()
            ).all()
            if not rows:
                return moved
            for row in rows:
                account_id = row.account_id
                api_key = vault.decrypt(row.api_key_enc, credential_place(account_id, "api_key"))
                row.api_key_enc = vault.encrypt(
                    api_key, credential_place(account_id, "api_key"), key_id=new_id
                )
                row.fingerprint = vault.fingerprint(api_key, key_id=new_id)
                del api_key
                row.api_secret_enc = vault.reencrypt(
                    row.api_secret_enc, credential_place(account_id, "api_secret"), key_id=new_id
                )
                row.passphrase_enc = vault.reencrypt(
                    row.passphrase_enc, credential_place(account_id, "passphrase"), key_id=new_id
                )
                row.master_key_id = new_id
                session.add(row)
        moved += len(rows)
        if progress is not None:
            progress(moved, max(total, moved))
