"""The store's errors; every message says what to do and never holds a secret.

StoreError              a store call that cannot be done as asked
├── InvalidInput        a label, scope, credential or setting that is not acceptable
├── AccountNotFound     no account has this id
├── AccountUnbound      the account was unbound: its credentials are gone
├── DuplicateLabelError another account already has this label
├── DuplicateKeyError   this API key is already bound to another account (names it)
├── OperatorNotFound    no operator has this name
├── LastAdmin           the only admin cannot be removed or made a viewer
└── SetupAlreadyDone    the first admin exists already: sign in instead
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of the store's errors; the message says what to do and never holds a secret."""


class InvalidInput(StoreError):
    """A label, scope, credential or setting that is not acceptable."""


class AccountNotFound(StoreError):
    """No account has this id."""


class AccountUnbound(StoreError):
    """The account was unbound; its credentials were destroyed."""


class DuplicateLabelError(StoreError):
    """Another account already has this label."""


class DuplicateKeyError(StoreError):
    """The API key is already bound to another account."""

    def __init__(self, label: str):
        self.label = label
        super().__init__(
            f"This API key is already bound to account {label!r}. Unbind it there first, or "
            "rotate that account's credential instead of binding the key twice."
        )


class OperatorNotFound(StoreError):
    """No operator has this name."""


class LastAdmin(StoreError):
    """The only admin cannot be removed or made a viewer: the console would have none."""


class SetupAlreadyDone(StoreError):
    """The first admin was created already (perhaps by another browser a moment ago)."""
