"""The vault: AES-256-GCM values bound to their place, a rotating keyring in a 0600 key file.

    errors      VaultError and its subclasses, drawn below
    keyring     KeyState, MasterKey, Keyring: the master keys of one installation
    key_file    reading and writing the key file (atomically; refused when exposed)
    cipher      Place and the token format: seal, open, fingerprint (no key file, no database)
    vault       Vault and open_vault: the key file's keyring checked against the database, at
                start and whenever the file changes
    rotation    rotate_master_key: every value opened first, then moved to a new key

The vault reads and writes the database only through lib.store (master_keys, audit).

    VaultError              anything that keeps the vault from opening, encrypting or decrypting
    ├── KeyFileError        the key file cannot be used
    │   ├── KeyFileMissing  no key file, and the database already holds encrypted values
    │   ├── KeyFileExposed  readable or writable by group or others
    │   └── KeyFileInvalid  unreadable, not a keyring, or a key of the wrong length
    ├── WrongMasterKey      the key file does not hold the keys this database was encrypted with
    ├── RetiredKeyError     a value is under a master key a rotation retired
    ├── DecryptionError     a stored value is malformed, altered, or moved from its place
    └── RotationError       a rotation cannot run (another one holds the lock)
        └── UnreadableCredentials  stored values the current keys cannot open: nothing rotated

Every message says what the operator should do and never contains a secret.
"""

from lib.vault.cipher import FORMAT_VERSION, NONCE_BYTES, TAG_BYTES, Place, split_token
from lib.vault.errors import (
    DecryptionError,
    KeyFileError,
    KeyFileExposed,
    KeyFileInvalid,
    KeyFileMissing,
    RetiredKeyError,
    RotationError,
    UnreadableCredentials,
    UnreadableValue,
    VaultError,
    WrongMasterKey,
)
from lib.vault.key_file import read_keyring, write_keyring
from lib.vault.keyring import KEY_BYTES, Keyring, KeyState, MasterKey, new_master_key
from lib.vault.rotation import RotationReport, rotate_master_key
from lib.vault.vault import (
    CREDENTIAL_FIELDS,
    Vault,
    credential_place,
    open_vault,
    register_key,
)

__all__ = [
    "CREDENTIAL_FIELDS",
    "FORMAT_VERSION",
    "KEY_BYTES",
    "NONCE_BYTES",
    "TAG_BYTES",
    "DecryptionError",
    "KeyFileError",
    "KeyFileExposed",
    "KeyFileInvalid",
    "KeyFileMissing",
    "KeyState",
    "Keyring",
    "MasterKey",
    "Place",
    "RetiredKeyError",
    "RotationError",
    "RotationReport",
    "UnreadableCredentials",
    "UnreadableValue",
    "Vault",
    "VaultError",
    "WrongMasterKey",
    "credential_place",
    "new_master_key",
    "open_vault",
    "read_keyring",
    "register_key",
    "rotate_master_key",
    "split_token",
    "write_keyring",
]
