"""The master keys of one installation: each one's id, state and 32-byte AES key."""

from __future__ import annotations

import enum
import re
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32  # AES-256
KEY_ID = re.compile(r"^[0-9a-f]{12}$")


class KeyState(enum.StrEnum):
    """Life stage of one master key in the keyring."""

    ACTIVE = "active"  # encrypts new values; exactly one
    RETIRING = "retiring"  # a rotation is moving its values to the active key; decrypts only
    RETIRED = "retired"  # refused: nothing may be decrypted with it any more


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

    @property
    def usable_ids(self) -> frozenset[str]:
        """Return the ids of the keys that may still decrypt (active and retiring)."""
        return frozenset(k.key_id for k in self.keys if k.state is not KeyState.RETIRED)


def new_master_key(now: datetime | None = None) -> MasterKey:
    """Return a fresh random active master key."""
    return MasterKey(
        key_id=secrets.token_hex(6),
        state=KeyState.ACTIVE,
        created_at=now or datetime.now(UTC),
        material=AESGCM.generate_key(bit_length=256),
    )
