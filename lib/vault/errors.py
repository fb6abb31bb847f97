"""The vault's errors; every message says what the operator should do and never holds a secret.

VaultError              anything that keeps the vault from opening, encrypting or decrypting
├── KeyFileError        the key file cannot be used
│   ├── KeyFileMissing  no key file, and the database already holds encrypted values
│   ├── KeyFileExposed  readable or writable by group or others
│   └── KeyFileInvalid  unreadable, not a keyring, or a key of the wrong length
├── WrongMasterKey      the key file does not hold the keys this database was encrypted with
├── RetiredKeyError     a value is under a master key a rotation retired
├── DecryptionError     a stored value is malformed, altered, or moved from its place
└── RotationError       a rotation cannot run (another one holds the lock)
"""

from __future__ import annotations


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
