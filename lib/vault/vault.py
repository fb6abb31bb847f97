"""The vault: master keys checked against the database, applied by the cipher.

The database keeps, per key id, a known marker encrypted with that key (lib.store.master_keys),
so a wrong key file is refused before anything is written: at start, and whenever the file
changes while the vault is in use. Credentials are sealed field by field, each bound to its
place in the credentials table.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag

from lib.kucoin.auth import Credentials
from lib.secret import Secret
from lib.store import master_keys
from lib.store.accounts import SealedCredential
from lib.store.database import read_session, transaction
from lib.store.models import AlertChannel, Credential, VaultKey
from lib.vault.cipher import Cipher, Place, split_token
from lib.vault.errors import (
    DecryptionError,
    KeyFileError,
    KeyFileMissing,
    RetiredKeyError,
    RotationError,
    WrongMasterKey,
)
from lib.vault.key_file import create_key_file, file_signature, read_keyring
from lib.vault.keyring import Keyring, KeyState, MasterKey

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlmodel import Session

log = logging.getLogger(__name__)

CREDENTIAL_FIELDS = ("api_key", "api_secret", "passphrase")
_CHECK_MARKER = b"bindwatch master key check v1"
_FIX_KEY_FILE = (
    "Point BINDWATCH_MASTER_KEY_FILE at the right key file or restore it from backup. "
    "Nothing was changed."
)


def credential_place(account_id: int, field_name: str) -> Place:
    """Return the place of one encrypted field of an account's credential row."""
    return Place(Credential.__tablename__, str(account_id), field_name)


def channel_place(channel_id: int) -> Place:
    """Return the place of an alert channel's encrypted URL."""
    return Place(AlertChannel.__tablename__, str(channel_id), "url")


def _check_place(key_id: str) -> Place:
    return Place(VaultKey.__tablename__, key_id, "check_value")


def check_value(key: MasterKey) -> str:
    """Return the known marker encrypted with one key: how the database recognises it."""
    return Cipher(Keyring((key,))).seal(_CHECK_MARKER, _check_place(key.key_id), key.key_id)


def opens_check_value(key: MasterKey, token: str) -> bool:
    """Return whether `key` is the key that encrypted a stored check value."""
    try:
        version, token_key_id, blob = split_token(token)
    except ValueError:
        return False
    if token_key_id != key.key_id:
        return False
    try:
        cipher = Cipher(Keyring((key,)))
        plaintext = cipher.open(version, key.key_id, blob, _check_place(key.key_id))
    except InvalidTag:
        return False
    return hmac.compare_digest(plaintext, _CHECK_MARKER)


def register_key(session: Session, key: MasterKey, state: KeyState) -> None:
    """Tell the database about a key with its check value, unless it knows the key already."""
    master_keys.register_key(session, key.key_id, state, check_value(key))


def keyring_problem(
    keyring: Keyring, known: dict[str, master_keys.KnownKey], in_use: set[str], path: Path
) -> str | None:
    """Return why a keyring is not the one this database was encrypted with, or None.

    Each key the database knows (and has not retired) must open its check value, and every
    key the database still needs must be in the keyring and not retired.
    """
    for key in keyring.keys:
        row = known.get(key.key_id)
        if (
            row is not None
            and row.state != KeyState.RETIRED
            and not opens_check_value(key, row.check_value)
        ):
            return (
                f"The key file {path} does not hold the master key this database was encrypted "
                f"with (key {key.key_id} fails its check)."
            )
    retired = {k for k, row in known.items() if row.state == KeyState.RETIRED}
    needed = in_use | {k for k, row in known.items() if row.state != KeyState.RETIRED}
    missing = sorted(needed - (keyring.usable_ids - retired))
    if missing:
        return (
            f"The database needs master key(s) {', '.join(missing)}, which the key file {path} "
            "does not hold (or holds as retired)."
        )
    return None


@contextmanager
def _reading(engine: Engine, session: Session | None) -> Iterator[Session]:
    """Yield the caller's session, or a read-only one of our own."""
    if session is not None:
        yield session
    else:
        with read_session(engine) as own:
            yield own


def _signature_or_none(path: Path) -> tuple[int, int, int] | None:
    try:
        return file_signature(path)
    except OSError:
        return None


class Vault:
    """Encrypts and decrypts stored values with master keys verified against the database.

    It re-reads the key file when the file changes, so a rotation run by another process is
    picked up without a restart; a changed file is taken into use only once its keys match
    the database's check values. A file that does not match (another installation's, a
    stale copy, a key with the right id and other bytes, or no file at all) is refused:
    decrypting goes on with the keys verified before, and nothing is encrypted until the
    right file is back.
    """

    def __init__(
        self,
        engine: Engine,
        path: Path,
        keyring: Keyring,
        retired_ids: frozenset[str] = frozenset(),
    ):
        self._engine = engine
        self._path = path
        self._lock = threading.Lock()
        self._retired_in_db = retired_ids
        self._refusal: str | None = None  # why the key file on disk is not in use
        self._set_keyring(keyring)
        self._signature = _signature_or_none(path)

    def __repr__(self) -> str:
        return f"Vault(path={str(self._path)!r}, active_key_id={self.active_key_id!r})"

    @property
    def path(self) -> Path:
        """Return the key file's path."""
        return self._path

    @property
    def keyring(self) -> Keyring:
        """Return the keyring in use (every key in it verified against the database)."""
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
        self._cipher = Cipher(keyring)
        self._keyring = keyring

    def reload(self, session: Session | None = None) -> Keyring:
        """Read the key file and check it against the database; return its keyring.

        Its keys go into use when the database knows them all; a key the database does not
        know yet (a rotation writes the key file first) waits until it is registered. Raises
        WrongMasterKey or a KeyFileError when the file is not this database's; the keys in
        use then stay as they were.
        """
        keyring, problem = self._check_key_file(session)
        if problem is not None:
            raise WrongMasterKey(f"{problem} {_FIX_KEY_FILE}")
        return keyring

    def refresh(self, *, force: bool = False, session: Session | None = None) -> None:
        """Take the key file into use again if it changed (or always, with `force`).

        A changed file that is not this database's is refused, not raised: decrypting goes on
        with the keys in use, and encrypting raises WrongMasterKey until the right file is back.
        """
        signature = _signature_or_none(self._path)
        if not force and signature == self._signature:
            return
        try:
            self._check_key_file(session)
        except KeyFileError as error:
            self._refuse(str(error), signature)

    def _check_key_file(self, session: Session | None) -> tuple[Keyring, str | None]:
        """Read the key file; use it if it matches the database, else refuse it and say why."""
        signature = _signature_or_none(self._path)
        keyring = read_keyring(self._path)
        with _reading(self._engine, session) as reader:
            known = master_keys.known_keys(reader)
            in_use = master_keys.key_ids_in_use(reader)
        problem = keyring_problem(keyring, known, in_use, self._path)
        if problem is not None:
            self._refuse(problem, signature)
            return keyring, problem
        unregistered = [
            k.key_id
            for k in keyring.keys
            if k.key_id not in known and k.state is not KeyState.RETIRED
        ]
        with self._lock:
            self._retired_in_db |= {k for k, row in known.items() if row.state == KeyState.RETIRED}
            self._signature = signature
            self._refusal = None
            self._set_keyring(self._keyring if unregistered else keyring)
        if unregistered:
            log.info(
                "master key file %s holds key(s) %s the database does not know yet; they go "
                "into use once registered",
                self._path,
                ", ".join(unregistered),
            )
        return keyring, None

    def _refuse(self, problem: str, signature: tuple[int, int, int] | None) -> None:
        """Keep the verified keys, and say why the key file on disk is refused."""
        with self._lock:
            self._signature = signature
            self._refusal = (
                f"The master key file changed while bindwatch was running, and is refused: "
                f"{problem} bindwatch goes on reading with the master key(s) it verified, but "
                "saves no credential until the right key file is back at that path (restore it "
                "from your backup). Nothing was saved."
            )
        log.warning("master key file %s refused: %s", self._path, problem)

    def _ensure_writable(self) -> None:
        """Raise WrongMasterKey while the key file on disk is refused."""
        if self._refusal is not None:
            raise WrongMasterKey(self._refusal)

    def mark_retired(self, key_ids: frozenset[str]) -> None:
        """Refuse these key ids from now on, whatever the key file says."""
        with self._lock:
            self._retired_in_db = self._retired_in_db | key_ids
            self._set_keyring(self._keyring)

    def _key(self, key_id: str, place: Place) -> MasterKey:
        """Return a key that may decrypt, re-reading the key file once for an unknown id."""
        key = self._keyring.get(key_id)
        if key is None:
            self.refresh(force=True)
            key = self._keyring.get(key_id)
        if key is None:
            raise WrongMasterKey(
                f"The value at {place} is encrypted with master key {key_id}, which the key file "
                f"{self._path} does not hold. Point BINDWATCH_MASTER_KEY_FILE at the key file "
                "that holds it, or restore it from backup."
            )
        if key.state is KeyState.RETIRED:
            raise RetiredKeyError(
                f"The value at {place} is encrypted with master key {key_id}, which a rotation "
                "retired. It is an old copy: bind the credential again (rotate it) to replace it."
            )
        return key

    def encrypt(self, value: Secret | str, place: Place, *, key_id: str | None = None) -> str:
        """Return the stored form of a value, encrypted with the active key for this place.

        Raises WrongMasterKey while the key file on disk is refused: nothing is encrypted with
        a key the file does not back.
        """
        self.refresh()
        self._ensure_writable()
        # An explicit key id comes from lock_active_key: the database row lock, not the key
        # file, decides, so a key the file already calls retiring is still right here.
        key = self._keyring.active if key_id is None else self._key(key_id, place)
        plaintext = value.reveal() if isinstance(value, Secret) else value
        return self._cipher.seal(plaintext.encode("utf-8"), place, key.key_id)

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
            plaintext = self._cipher.open(version, key.key_id, blob, place)
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
        value = api_key.reveal() if isinstance(api_key, Secret) else api_key
        return self._cipher.fingerprint(value, key_id or self.active_key_id)

    def fingerprints(self, api_key: Secret | str) -> tuple[str, ...]:
        """Return the API key's fingerprint under every key still in use (active and retiring)."""
        self.refresh()
        return tuple(
            self.fingerprint(api_key, key_id=k.key_id)
            for k in self._keyring.keys
            if k.state is not KeyState.RETIRED
        )

    def seal_credential(
        self, account_id: int, credentials: Credentials, *, key_id: str
    ) -> SealedCredential:
        """Return an account's credential encrypted field by field with one key, fingerprinted."""
        values = {
            name: self.encrypt(
                getattr(credentials, name), credential_place(account_id, name), key_id=key_id
            )
            for name in CREDENTIAL_FIELDS
        }
        return SealedCredential(
            api_key_enc=values["api_key"],
            api_secret_enc=values["api_secret"],
            passphrase_enc=values["passphrase"],
            fingerprint=self.fingerprint(credentials.api_key, key_id=key_id),
            master_key_id=key_id,
            key_last4=credentials.api_key[-4:],
            key_version=str(credentials.key_version),
        )

    def open_credential(self, account_id: int, sealed: SealedCredential) -> Credentials:
        """Return an account's credential, decrypted now for the caller that signs with it."""
        api_key = self.decrypt(sealed.api_key_enc, credential_place(account_id, "api_key"))
        return Credentials(
            api_key=api_key.reveal(),
            api_secret=self.decrypt(
                sealed.api_secret_enc, credential_place(account_id, "api_secret")
            ),
            passphrase=self.decrypt(
                sealed.passphrase_enc, credential_place(account_id, "passphrase")
            ),
            key_version=sealed.key_version,
        )

    def lock_active_key(self, session: Session) -> str:
        """Return the key id to encrypt with in this transaction, share-locking its row.

        A rotation flips the old key's row to retiring under an exclusive lock, so it waits for
        every transaction still writing with the old key, and later ones see the change. Raises
        WrongMasterKey while the key file on disk is refused.
        """
        for attempt in range(2):
            self.refresh(force=attempt > 0, session=session)
            self._ensure_writable()
            key_id = self.active_key_id
            state = master_keys.key_state(session, key_id, share_lock=True)
            if state == KeyState.ACTIVE:
                return key_id
        raise RotationError(
            f"The key file {self._path} names master key {key_id} active, but the database "
            f"has it {state or 'unknown'}. Run `python -m lib rotate-master-key` to finish the "
            "rotation."
        )


# --- opening the vault against a database ----------------------------------------------------


def open_vault(engine: Engine, key_file: Path, *, private_dir: Path | None = None) -> Vault:
    """Return the vault for this database, creating the key file on a first run only.

    Fails closed: a missing key file when the database holds encrypted values, an exposed or
    malformed key file, or a key file that is not the one this database was encrypted with.
    Keys the database does not know yet are registered with their check values (a first run,
    or a rotation interrupted before it told the database). `private_dir` is a directory of
    ours (the data directory): a key file created there makes it 0700.
    """
    key_file = Path(key_file)
    with transaction(engine) as session:
        known = master_keys.known_keys(session)
        in_use = master_keys.key_ids_in_use(session)
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
            keyring = create_key_file(key_file, private_dir)
        problem = keyring_problem(keyring, known, in_use, key_file)
        if problem is not None:
            raise WrongMasterKey(f"{problem} {_FIX_KEY_FILE}")
        retired = frozenset(k for k, row in known.items() if row.state == KeyState.RETIRED)
        vault = Vault(engine, key_file, keyring, retired)
        for key in vault.keyring.keys:
            if key.key_id not in known and key.state is not KeyState.RETIRED:
                _check_unregistered_key_in_use(session, vault, key, in_use)
                register_key(session, key, key.state)
    log.info("vault open: key file %s, active master key %s", key_file, vault.active_key_id)
    return vault


def _check_unregistered_key_in_use(
    session: Session, vault: Vault, key: MasterKey, in_use: set[str]
) -> None:
    """Raise WrongMasterKey unless a key that sealed values, but has no check value, opens one."""
    if key.key_id not in in_use:
        return
    found = master_keys.sealed_with(session, key.key_id)
    assert found is not None, "in_use names a key some credential uses"
    account_id, sealed = found
    try:
        vault.decrypt(sealed.api_key_enc, credential_place(account_id, "api_key"))
    except DecryptionError:
        raise WrongMasterKey(
            f"The key file {vault.path} does not hold the master key this database was "
            f"encrypted with (key {key.key_id} fails its check). {_FIX_KEY_FILE}"
        ) from None
