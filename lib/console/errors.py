"""Every exception a page or a command may catch from the console, in one place.

    StoreError                 the store refused an action; the message says what to do
    ├── NotPermitted           a viewer asked for what only an admin may do
    ├── InvalidInput           a value out of range or malformed (a setting, a label)
    ├── AccountNotFound        no account has that id
    ├── AccountUnbound         the account was unbound: its credentials are gone
    ├── DuplicateLabelError    the label is taken
    ├── DuplicateKeyError      the key is bound already
    ├── OperatorNotFound       no operator has that name
    ├── LastAdmin              the only admin cannot be removed or made a viewer
    └── SetupAlreadyDone       the first admin exists already
    VaultError                 the credential store cannot be used (key file, master key)
    BindingError               a checked key cannot be saved as asked
    DemoError                  the demo fleet cannot be built as asked
    SQLAlchemyError            the database could not be read or written

FAILURES are those an operator can act on wherever they happen: shown, never a crash.
"""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from lib.console import NotPermitted
from lib.console.binding import BindingError
from lib.console.demo import DemoError
from lib.store import (
    AccountNotFound,
    AccountUnbound,
    DuplicateKeyError,
    DuplicateLabelError,
    InvalidInput,
    LastAdmin,
    OperatorNotFound,
    SetupAlreadyDone,
    StoreError,
)
from lib.vault import VaultError

FAILURES = (StoreError, VaultError, SQLAlchemyError)

__all__ = [
    "FAILURES",
    "AccountNotFound",
    "AccountUnbound",
    "BindingError",
    "DemoError",
    "DuplicateKeyError",
    "DuplicateLabelError",
    "InvalidInput",
    "LastAdmin",
    "NotPermitted",
    "OperatorNotFound",
    "SQLAlchemyError",
    "SetupAlreadyDone",
    "StoreError",
    "VaultError",
]
