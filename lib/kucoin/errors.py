"""The one exception family the KuCoin client raises.

    KucoinError                 anything that kept a call from returning KuCoin's data
    ├── KucoinAPIError          KuCoin answered with an envelope whose code is not 200000
    ├── KucoinBadResponse       an answer that is not KuCoin's JSON (a CDN's HTML page, a bare 502)
    └── KucoinTransportError    no answer at all (connection refused or dropped, timeout)

Every instance carries data, not just text: `code`, `message`, `http_status`, `client_ip`
(the IP KuCoin saw, from a 400006 message) and `rate_limit`. No secret is ever put in one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lib.kucoin.diagnosis import is_transient_code

_IP_IN_MESSAGE = re.compile(r"client IP is:?\s*([0-9A-Fa-f:.]+[0-9A-Fa-f])")


@dataclass(frozen=True)
class RateLimit:
    """KuCoin's `gw-ratelimit-*` headers of one response (None when absent)."""

    limit: int | None = None
    remaining: int | None = None
    reset_ms: int | None = None

    @classmethod
    def from_headers(cls, headers) -> RateLimit:
        """Return the rate-limit figures read from response headers."""

        def _int(name: str) -> int | None:
            value = headers.get(name)
            try:
                return int(value) if value is not None else None
            except ValueError:
                return None

        return cls(
            _int("gw-ratelimit-limit"), _int("gw-ratelimit-remaining"), _int("gw-ratelimit-reset")
        )

    @property
    def present(self) -> bool:
        """Return whether the response carried rate-limit headers at all."""
        return self.limit is not None or self.remaining is not None


def client_ip_from_message(message: str | None) -> str | None:
    """Return the caller IP KuCoin names in a 400006 message, if it names one."""
    if not message:
        return None
    match = _IP_IN_MESSAGE.search(message)
    return match.group(1).rstrip(".") if match else None


class KucoinError(Exception):
    """A KuCoin call that did not return data; see the module docstring for the tree."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        client_ip: str | None = None,
        rate_limit: RateLimit | None = None,
        endpoint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        self.client_ip = client_ip
        self.rate_limit = rate_limit or RateLimit()
        self.endpoint = endpoint

    @property
    def transient(self) -> bool:
        """Return whether retrying later may succeed without changing the key."""
        return True

    def __str__(self) -> str:
        parts = [self.message]
        if self.code:
            parts.insert(0, f"[{self.code}]")
        if self.http_status:
            parts.append(f"(HTTP {self.http_status})")
        if self.endpoint:
            parts.append(f"on {self.endpoint}")
        return " ".join(parts)


class KucoinAPIError(KucoinError):
    """KuCoin answered with its JSON envelope and a code other than 200000."""

    @property
    def transient(self) -> bool:
        """Return whether the code is one a retry can clear (rate limit, server error)."""
        return is_transient_code(self.code)

    @property
    def overload(self) -> bool:
        """Return whether this is 429000 without personal rate-limit headers (server overload)."""
        return self.code == "429000" and not self.rate_limit.present


class KucoinBadResponse(KucoinError):
    """The answer was not KuCoin's JSON: a CDN's HTML page, an empty or truncated body."""


class KucoinTransportError(KucoinError):
    """No answer: connection refused, dropped mid-response, or a timeout."""
