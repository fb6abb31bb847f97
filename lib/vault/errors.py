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
    └── UnreadableCredentials  stored values the current keys cannot open: nothing rotated
"""

from __future__ import annotations

from dataclasses import dataclass


class VaultError(Exception):
    """Base of every vault error; the message tells the operator what to do."""

    reason = "cannot be decrypted"  # what is wrong with a stored value, in a few words


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

    reason = "encrypted with a master key the key file does not hold"


class RetiredKeyError(VaultError):
    """A value is encrypted with a master key that a rotation retired."""

    reason = "encrypted with a retired master key (an old copy)"


class DecryptionError(VaultError):
    """A stored value is malformed, was altered, or was moved from its place."""

    reason = "fails its integrity check (altered, malformed, or moved from another row or field)"


class RotationError(VaultError):
    """A master key rotation cannot run."""


@dataclass(frozen=True)
class UnreadableValue:
    """One stored credential field the current keys cannot open: where it is, never its value."""

    account_id: int
    label: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"account {self.label!r} (id {self.account_id}), {self.field}: {self.reason}"


class UnreadableCredentials(RotationError):
    """Stored values the current master keys cannot open: a rotation would stop at them."""

    def __init__(self, values: tuple[UnreadableValue, ...]) -> None:
        self.values = values
        listed = "\n".join(f"  {value}" for value in values)
        super().__init__(
            f"{len(values)} stored value(s) cannot be decrypted with the current key file, so "
            f"the master key was not rotated:\n{listed}\n"
            "Nothing was changed: the key file and every stored value are as they were. For "
            "each account listed, unbind it (`python -m lib unbind LABEL`) or rotate its "
            "credentials (bind its KuCoin key again from its Account page), then run "
            "`python -m lib rotate-master-key` again."
        )
