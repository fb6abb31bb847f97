"""KuCoin request signing (reference §1): prehash, KC-API-SIGN, passphrase HMAC, headers."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field

from lib.kucoin.constants import DEFAULT_KEY_VERSION
from lib.secret import Secret


@dataclass(frozen=True)
class Credentials:
    """One KuCoin API key: the key is shown (masked) in places; secret and passphrase never."""

    api_key: str
    api_secret: Secret = field(repr=False)
    passphrase: Secret = field(repr=False)
    key_version: str = DEFAULT_KEY_VERSION

    def __post_init__(self) -> None:
        # Accept plain strings from callers but always hold Secret wrappers.
        if not isinstance(self.api_secret, Secret):
            object.__setattr__(self, "api_secret", Secret(self.api_secret))
        if not isinstance(self.passphrase, Secret):
            object.__setattr__(self, "passphrase", Secret(self.passphrase))

    def __repr__(self) -> str:
        return f"Credentials(api_key='…{self.api_key[-4:]}', key_version={self.key_version!r})"

    __str__ = __repr__


def hmac_b64(secret: str, message: str) -> str:
    """Return base64(HMAC-SHA256(secret, message)), the encoding KuCoin uses everywhere."""
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def prehash(timestamp_ms: str, method: str, endpoint: str, body: str = "") -> str:
    """Return the string KuCoin signs: timestamp + METHOD + endpoint-with-raw-query + body."""
    return f"{timestamp_ms}{method.upper()}{endpoint}{body}"


def sign(secret: Secret, timestamp_ms: str, method: str, endpoint: str, body: str = "") -> str:
    """Return KC-API-SIGN for one request."""
    return hmac_b64(secret.reveal(), prehash(timestamp_ms, method, endpoint, body))


def sign_passphrase(secret: Secret, passphrase: Secret) -> str:
    """Return KC-API-PASSPHRASE for key versions 2 and 3: base64 HMAC-SHA256 of it."""
    return hmac_b64(secret.reveal(), passphrase.reveal())


def auth_headers(
    credentials: Credentials, timestamp_ms: int, method: str, endpoint: str, body: str = ""
) -> dict[str, str]:
    """Return the KC-API-* headers for one request; one timestamp in both prehash and header."""
    ts = str(timestamp_ms)
    return {
        "KC-API-KEY": credentials.api_key,
        "KC-API-SIGN": sign(credentials.api_secret, ts, method, endpoint, body),
        "KC-API-TIMESTAMP": ts,
        "KC-API-PASSPHRASE": sign_passphrase(credentials.api_secret, credentials.passphrase),
        "KC-API-KEY-VERSION": str(credentials.key_version),
    }
