"""AES-256-GCM values bound to their place, and keyed fingerprints: no key file, no database.

A stored value reads `v1:<key id>:<urlsafe base64 of nonce || ciphertext || tag>`. Its associated
data binds it to (format version, key id, table, row, field), so a value moved to another row or
field, or altered by one bit, fails to open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from lib.vault.keyring import KEY_BYTES, KEY_ID, Keyring

FORMAT_VERSION = "v1"
NONCE_BYTES = 12  # 96-bit random nonce, fresh for every encryption
TAG_BYTES = 16
_FINGERPRINT_INFO = b"bindwatch api-key fingerprint v1"


@dataclass(frozen=True)
class Place:
    """Where a value lives: table, row id and field; bound into its associated data."""

    table: str
    row: str
    field: str

    def __str__(self) -> str:
        return f"{self.table}/{self.row}/{self.field}"


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
    if len(parts) != 3 or parts[0] != FORMAT_VERSION or not KEY_ID.match(parts[1]):
        raise ValueError("unknown token layout")
    try:
        blob = base64.urlsafe_b64decode(parts[2])
    except (binascii.Error, ValueError):
        raise ValueError("bad base64") from None
    # Only the canonical encoding is accepted: no ignored characters or padding bits.
    if _b64encode(blob) != parts[2] or len(blob) < NONCE_BYTES + TAG_BYTES:
        raise ValueError("non-canonical or short payload")
    return parts[0], parts[1], blob


class Cipher:
    """Seals and opens values, and fingerprints API keys, under the keys of one keyring."""

    def __init__(self, keyring: Keyring) -> None:
        self._aeads = {k.key_id: AESGCM(k.material) for k in keyring.keys}
        self._fingerprint_keys = {
            k.key_id: HKDF(hashes.SHA256(), KEY_BYTES, salt=None, info=_FINGERPRINT_INFO).derive(
                k.material
            )
            for k in keyring.keys
        }

    def __repr__(self) -> str:
        return f"Cipher(key_ids={sorted(self._aeads)!r})"

    def holds(self, key_id: str) -> bool:
        """Return whether this cipher has the key `key_id`."""
        return key_id in self._aeads

    def seal(self, plaintext: bytes, place: Place, key_id: str) -> str:
        """Return the stored form of plaintext, encrypted with one key for this place."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aeads[key_id].encrypt(nonce, plaintext, _aad(FORMAT_VERSION, key_id, place))
        return f"{FORMAT_VERSION}:{key_id}:{_b64encode(nonce + sealed)}"

    def open(self, version: str, key_id: str, blob: bytes, place: Place) -> bytes:
        """Return the plaintext of a split token; raise InvalidTag if altered or moved."""
        return self._aeads[key_id].decrypt(
            blob[:NONCE_BYTES], blob[NONCE_BYTES:], _aad(version, key_id, place)
        )

    def fingerprint(self, value: str, key_id: str) -> str:
        """Return `<key id>:<HMAC-SHA256 hex>` of a value, keyed from a master key by HKDF."""
        digest = hmac.new(self._fingerprint_keys[key_id], value.encode("utf-8"), hashlib.sha256)
        return f"{key_id}:{digest.hexdigest()}"
