"""The vault: the keyring of one key file, applied by the cipher, checked against the database.

The database keeps, per key id, a known marker encrypted with that key (lib.store.master_keys),
so a wrong key file is refused before anything is written. Credentials are sealed field by
field, each bound to its place in the credentials table.
"""

from __future__ import annotations

import hmac
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag

from lib.kucoin.auth import Credentials
from lib.secret import Secret
from lib.store import master_keys
from lib.store.accounts import SealedCredential
from lib.store.database import transaction
from lib.store.models import Credential, VaultKey
from lib.vault.cipher import Cipher, Place, split_token
from lib.vault.errors import (
    DecryptionError,
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


def credential_place(account_id: int, field_name: str) -> Place:
    """Return the place of one encrypted field of an account's credential row."""
    return Place(Credential.__tablename__, str(account_id), field_name)


def _check_place(key_id: str) -> Place:
    return Place(VaultKey.__tablename__, key_id, "check_value")


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
        self._cipher = Cipher(keyring)
        self._keyring = keyring
        try:
            self._signature = file_signature(self._path)
        except OSError:
            self._signature = None

    def refresh(self, *, force: bool = False) -> None:
        """Re-read the key file if it changed since it was read (or always, with `force`)."""
        try:
            signature = file_signature(self._path)
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

    def check_value(self, key_id: str) -> str:
        """Return the known marker encrypted with one key, for the vault_keys table."""
        key = self._key(key_id, None)
        return self._cipher.seal(_CHECK_MARKER, _check_place(key_id), key.key_id)

    def opens_check_value(self, key_id: str, token: str) -> bool:
        """Return whether this keyring's key `key_id` opens a stored check value."""
        try:
            version, token_key_id, blob = split_token(token)
        except ValueError:
            return False
        if not self._cipher.holds(key_id) or token_key_id != key_id:
            return False
        try:
            plaintext = self._cipher.open(version, key_id, blob, _check_place(key_id))
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
            state = master_keys.key_state(session, key_id, share_lock=True)
            if state is None:
                self.register(session, key_id, KeyState.ACTIVE)
                return key_id
            if state == KeyState.ACTIVE:
                return key_id
        raise RotationError(
            f"The key file {self._path} names master key {key_id} active, but the database "
            f"has it {state}. Run `python -m lib rotate-master-key` to finish the rotation."
        )

    def register(self, session: Session, key_id: str, state: KeyState) -> None:
        """Tell the database about one of this keyring's keys, unless it knows it already."""
        master_keys.register_key(session, key_id, state, self.check_value(key_id))


# --- opening the vault against a database ----------------------------------------------------


def open_vault(engine: Engine, key_file: Path, *, private_dir: Path | None = None) -> Vault:
    """Return the vault for this database, creating the key file on a first run only.

    Fails closed: a missing key file when the database holds encrypted values, an exposed or
    malformed key file, or a key file that is not the one this database was encrypted with.
    `private_dir` is a directory of ours (the data directory): a key file created there makes
    it 0700.
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
        retired = frozenset(k for k, row in known.items() if row.state == KeyState.RETIRED)
        vault = Vault(key_file, keyring, retired)
        _check_keyring_against(vault, known, in_use)
        for key in vault.keyring.keys:
            if key.key_id not in known and key.state is not KeyState.RETIRED:
                vault.register(session, key.key_id, key.state)
    log.info("vault open: key file %s, active master key %s", key_file, vault.active_key_id)
    return vault


def _check_keyring_against(
    vault: Vault, known: dict[str, master_keys.KnownKey], in_use: set[str]
) -> None:
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
    needed = in_use | {k for k, row in known.items() if row.state != KeyState.RETIRED}
    missing = sorted(needed - vault.keyring.usable_ids)
    if missing:
        raise WrongMasterKey(
            f"The database needs master key(s) {', '.join(missing)}, which the key file {path} "
            "does not hold (or holds as retired). Point BINDWATCH_MASTER_KEY_FILE at the right "
            "key file or restore it from backup. Nothing was changed."
        )
