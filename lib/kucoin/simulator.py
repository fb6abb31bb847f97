"""A faithful local KuCoin: the spot and futures REST paths bindwatch uses, for simulated accounts.

Built from the KuCoin reference (signing, endpoints, codes, rate limits, whitelist), not from our
client, so both our client and third-party clients (ccxt) can be checked against it. One
`Simulator` holds the state (accounts, rate-limit windows, injected faults); it answers over real
HTTP through `SimulatorServer` (a spot and a futures server sharing it) or in-process through
`spot_transport()` / `futures_transport()` (httpx transports for `Client` and `AsyncClient`).

A request goes through these steps; the first that fails answers:

    1. injected faults of the server, then of the account named by KC-API-KEY: the latency is
       slept first, then a dropped connection, a CDN HTML page, an overload 429000 (no rate-limit
       headers) or a 5xx, in that order of precedence
    2. route: an unknown path, or the other host's path    -> 404  {"code":"404",...}
       a known path with a method other than GET          -> 405  {"code":"405",...}
    3. public endpoint: per-IP Public pool                 -> 429  429000, else the data
    4. KC-API-KEY/-SIGN/-TIMESTAMP/-PASSPHRASE present and non-empty, timestamp numeric
                                                           -> 400  400001
    5. KC-API-KEY-VERSION is "2" or "3"                    -> 400  400009
    6. |KC-API-TIMESTAMP - simulator clock| <= 5000 ms     -> 400  400002
    7. the key exists                                      -> 401  400003
    8. KC-API-SIGN over the request as received            -> 401  400005
    9. passphrase = base64(HMAC-SHA256(secret, passphrase)) -> 401  400004
   10. the UID's pool has quota left (the UID is proven now, so it is charged)
                                                           -> 429  429000
   11. caller IP in the key's whitelist, if it has one     -> 403  400006
   12. the account is not frozen                           -> 403  411100
   13. the key has the endpoint's permission               -> 403  400007

Cheap header checks come first, then the key lookup, then what needs the secret, then the
account's policy: the order a gateway most plausibly applies. Requests refused before step 10 are
not charged; their gw-ratelimit-* headers show the bucket they would have been charged to.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, unquote_plus

import httpx

from lib.kucoin import constants as k
from lib.secret import Secret

_log = logging.getLogger(__name__)

SPOT = "spot"
FUTURES = "futures"
HOSTS = (SPOT, FUTURES)
HF_ACCOUNTS_OPENED = "/api/v1/hf/accounts/opened"

# Endpoints served beyond lib.kucoin.constants.ENDPOINTS: ccxt's balance path asks this one
# first to decide between type=trade and type=trade_hf ([SPEC] General, Spot pool, weight 30).
ENDPOINTS: dict[tuple[str, str], k.Endpoint] = {
    **k.ENDPOINTS,
    (SPOT, HF_ACCOUNTS_OPENED): k.Endpoint(SPOT, HF_ACCOUNTS_OPENED, k.GENERAL, "Spot", 30),
}

# Messages of the gateway codes (reference §3.1, docs-new; 400001 as KuCoin answers it live).
MESSAGES = {
    "400001": (
        "Please check the header of your request for "
        "KC-API-KEY, KC-API-SIGN, KC-API-TIMESTAMP, KC-API-PASSPHRASE"
    ),
    "400002": "Invalid KC-API-TIMESTAMP.",
    "400003": "KC-API-KEY does not exist.",
    "400004": "Invalid KC-API-PASSPHRASE.",
    "400005": "Invalid KC-API-SIGN.",
    "400006": "Invalid request IP, the current client IP is: {ip}.",
    "400007": "Access denied, requires more permission.",
    "400009": "Invalid KC-API-KEY-VERSION.",
    "411100": "User are frozen",
    "429000": "Too Many Requests",
    "500000": "Internal Server Error",
}
REQUIRED_HEADERS = ("kc-api-key", "kc-api-sign", "kc-api-timestamp", "kc-api-passphrase")
SPOT_ACCOUNT_TYPES = ("main", "trade", "trade_hf", "margin", "isolated", "option")
FUTURES_FIELDS = (
    "accountEquity",
    "unrealisedPNL",
    "marginBalance",
    "positionMargin",
    "orderMargin",
    "frozenFunds",
    "availableBalance",
    "riskRatio",
    "maxWithdrawAmount",
)
DEFAULT_FUTURES_CURRENCY = "XBT"
# GET /api/v2/user-info of a VIP0 account without sub-accounts ([SPEC] field list).
USER_INFO_DEFAULTS = {
    "level": 0,
    "subQuantity": 0,
    "spotSubQuantity": 0,
    "marginSubQuantity": 0,
    "futuresSubQuantity": 0,
    "optionSubQuantity": 0,
    "maxSubQuantity": 5,
    "maxDefaultSubQuantity": 5,
    "maxSpotSubQuantity": 0,
    "maxMarginSubQuantity": 0,
    "maxFuturesSubQuantity": 0,
    "maxOptionSubQuantity": 0,
}
MAX_WHITELIST = 20  # "You may add up to 20 IPs" (reference §5)
FAIL_STATUSES = (500, 503)
SAMPLE_ACCOUNTS = Path(__file__).with_name("sample_accounts.json")

_CDN_PAGE = """<!DOCTYPE html>
<html lang="en-US">
<head><title>Access denied | api.kucoin.com used Cloudflare to restrict access</title>
<meta charset="UTF-8"></head>
<body>
<div id="cf-wrapper">
<h1><span class="cf-error-type">Error</span> <span class="cf-error-code">1015</span></h1>
<h2 class="cf-subheadline">You are being rate limited</h2>
<p>The owner of this website (api.kucoin.com) has banned you temporarily from accessing this
website.</p>
<p>Please enable cookies.</p>
<p>Cloudflare Ray ID: <strong>{ray}</strong> &bull; Your IP: {ip} &bull;
Performance &amp; security by Cloudflare</p>
</div>
</body>
</html>
"""


class AccountsError(ValueError):
    """An account definition is invalid; the message names the account and the field."""


@dataclass(frozen=True)
class Faults:
    """Faults injected into the answers of a server or of one account's requests.

    Counts are "the next N requests"; a negative count means every request until cleared.
    """

    latency_ms: int = 0  # added before answering (and before the clock is read)
    clock_offset_ms: int = 0  # the simulator's clock runs this far ahead (negative: behind)
    fail_next: int = 0  # answer 500 {"code":"500000"} or 503 (maintenance)
    fail_status: int = 500
    overload_next: int = 0  # answer 429 429000 without gw-ratelimit-* headers
    cdn_next: int = 0  # answer a Cloudflare-like HTML page (error 1015), text/html
    cdn_status: int = 403
    drop_next: int = 0  # close the connection without answering

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise AccountsError(f"field 'faults.{f.name}': must be an integer, got {value!r}")
        if self.latency_ms < 0:
            raise AccountsError("field 'faults.latency_ms': must be >= 0")
        if self.fail_status not in FAIL_STATUSES:
            raise AccountsError(f"field 'faults.fail_status': must be one of {FAIL_STATUSES}")
        if not 400 <= self.cdn_status <= 599:
            raise AccountsError("field 'faults.cdn_status': must be an HTTP error status")

    @classmethod
    def from_dict(cls, data: object) -> Faults:
        """Return faults read from a JSON object; raise AccountsError on unknown or bad fields."""
        if not isinstance(data, Mapping):
            raise AccountsError("field 'faults': must be an object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise AccountsError(
                f"field 'faults': unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})"
            )
        return cls(**data)


@dataclass(frozen=True)
class SimAccount:
    """One simulated API key and the account behind it; repr never shows secret or passphrase."""

    api_key: str
    api_secret: Secret = field(repr=False)
    passphrase: Secret = field(repr=False)
    uid: int
    permissions: tuple[str, ...] = (k.GENERAL,)
    ip_whitelist: tuple[str, ...] = ()
    is_master: bool = True
    sub_name: str | None = None
    remark: str = ""
    created_at: int | None = None  # ms; None: when the account object was made
    spot: tuple[Mapping[str, str], ...] = field(default=(), repr=False)
    futures: Mapping[str, Mapping[str, float]] = field(default_factory=dict, repr=False)
    frozen: bool = False
    user_info: Mapping[str, int] = field(default_factory=dict, repr=False)
    faults: Faults = field(default_factory=Faults)

    def __post_init__(self) -> None:
        _check_text("api_key", self.api_key)
        if any(ch.isspace() for ch in self.api_key) or not self.api_key.isascii():
            raise AccountsError("field 'api_key': must be ASCII without spaces")
        for name in ("api_secret", "passphrase"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = Secret(value)
            if not isinstance(value, Secret) or not value:
                raise AccountsError(f"field {name!r}: must be a non-empty string")
            object.__setattr__(self, name, value)
        if not isinstance(self.uid, int) or isinstance(self.uid, bool) or self.uid <= 0:
            raise AccountsError(f"field 'uid': must be a positive integer, got {self.uid!r}")
        object.__setattr__(self, "permissions", _permissions(self.permissions))
        object.__setattr__(self, "ip_whitelist", _whitelist(self.ip_whitelist))
        for name in ("is_master", "frozen"):
            if not isinstance(getattr(self, name), bool):
                raise AccountsError(f"field {name!r}: must be true or false")
        if self.is_master and self.sub_name is not None:
            raise AccountsError("field 'sub_name': a master account has no sub_name")
        if not self.is_master:
            _check_text("sub_name", self.sub_name)
        if not isinstance(self.remark, str):
            raise AccountsError("field 'remark': must be a string")
        if self.created_at is None:
            object.__setattr__(self, "created_at", time.time_ns() // 1_000_000)
        elif not isinstance(self.created_at, int) or isinstance(self.created_at, bool):
            raise AccountsError("field 'created_at': must be milliseconds since the epoch (int)")
        object.__setattr__(self, "spot", _spot_rows(self.api_key, self.spot))
        object.__setattr__(self, "futures", _futures(self.futures))
        object.__setattr__(self, "user_info", _user_info(self.user_info))
        if isinstance(self.faults, Mapping):
            object.__setattr__(self, "faults", Faults.from_dict(self.faults))
        elif not isinstance(self.faults, Faults):
            raise AccountsError("field 'faults': must be an object")

    @property
    def label(self) -> str:
        """Return how error messages name this account."""
        return f"api_key {self.api_key!r}"


def _check_text(name: str, value: object) -> None:
    """Raise AccountsError unless value is a non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise AccountsError(f"field {name!r}: must be a non-empty string, got {value!r}")


def _permissions(value: object) -> tuple[str, ...]:
    """Return KuCoin's spelling of each permission, from a list or a comma string."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, Iterable) or isinstance(items, Mapping):
        raise AccountsError("field 'permissions': must be a list or a comma-separated string")
    canonical = {name.lower(): name for name in k.KNOWN_PERMISSIONS}
    result: list[str] = []
    for item in items:
        name = canonical.get(str(item).strip().lower()) if isinstance(item, str) else None
        if name is None:
            raise AccountsError(
                f"field 'permissions': unknown permission {item!r} "
                f"(KuCoin's names: {', '.join(k.KNOWN_PERMISSIONS)})"
            )
        if name not in result:
            result.append(name)
    return tuple(result)


def _whitelist(value: object) -> tuple[str, ...]:
    """Return the whitelist entries as normalised IP strings; raise on anything but IPs."""
    items = [v for v in value.split(",") if v.strip()] if isinstance(value, str) else value
    if items is None:
        return ()
    if not isinstance(items, Iterable) or isinstance(items, Mapping):
        raise AccountsError("field 'ip_whitelist': must be a list of IP addresses")
    result = []
    for item in items:
        try:
            result.append(str(ipaddress.ip_address(str(item).strip())))
        except ValueError:
            raise AccountsError(
                f"field 'ip_whitelist': {item!r} is not an IP address (KuCoin takes single IPs)"
            ) from None
    if len(result) > MAX_WHITELIST:
        raise AccountsError(f"field 'ip_whitelist': KuCoin allows at most {MAX_WHITELIST} IPs")
    return tuple(result)


def _spot_rows(api_key: str, rows: object) -> tuple[Mapping[str, str], ...]:
    """Return validated GET /api/v1/accounts rows; an id is made up when a row has none."""
    if not isinstance(rows, list | tuple):
        raise AccountsError("field 'spot': must be a list of account rows")
    result = []
    for index, row in enumerate(rows):
        where = f"spot[{index}]"
        if not isinstance(row, Mapping):
            raise AccountsError(f"field {where!r}: must be an object")
        unknown = set(row) - {"id", "currency", "type", "balance", "available", "holds"}
        if unknown:
            raise AccountsError(f"field {where!r}: unknown key {sorted(unknown)[0]!r}")
        for name in ("currency", "type"):
            _check_text(f"spot[{index}].{name}", row.get(name))
        if row["type"] not in SPOT_ACCOUNT_TYPES:
            raise AccountsError(
                f"field '{where}.type': {row['type']!r} is not one of "
                f"{', '.join(SPOT_ACCOUNT_TYPES)}"
            )
        for name in ("balance", "available", "holds"):
            amount = row.get(name, "0")
            try:
                ok = isinstance(amount, str) and Decimal(amount).is_finite()
            except InvalidOperation:
                ok = False
            if not ok:
                raise AccountsError(
                    f"field '{where}.{name}': must be a decimal string like \"12.5\", "
                    f"got {amount!r}"
                )
        row_id = row.get("id") or hashlib.sha256(f"{api_key}:{index}".encode()).hexdigest()[:24]
        result.append(
            {
                "id": str(row_id),
                "currency": row["currency"],
                "type": row["type"],
                "balance": row.get("balance", "0"),
                "available": row.get("available", "0"),
                "holds": row.get("holds", "0"),
            }
        )
    return tuple(result)


def _futures(value: object) -> dict[str, dict[str, float]]:
    """Return currency -> account-overview numbers; missing fields are 0."""
    if not isinstance(value, Mapping):
        raise AccountsError("field 'futures': must be an object of currency -> overview")
    result = {}
    for currency, overview in value.items():
        where = f"futures.{currency}"
        if not isinstance(overview, Mapping):
            raise AccountsError(f"field {where!r}: must be an object of account-overview fields")
        unknown = set(overview) - set(FUTURES_FIELDS) - {"currency"}
        if unknown:
            raise AccountsError(
                f"field {where!r}: unknown field {sorted(unknown)[0]!r} "
                f"(known: {', '.join(FUTURES_FIELDS)})"
            )
        numbers = {}
        for name in FUTURES_FIELDS:
            number = overview.get(name, 0.0)
            if not isinstance(number, int | float) or isinstance(number, bool):
                raise AccountsError(
                    f"field '{where}.{name}': must be a JSON number, got {number!r}"
                )
            numbers[name] = number
        result[str(currency)] = numbers
    return result


def _user_info(value: object) -> dict[str, int]:
    """Return GET /api/v2/user-info fields: the defaults overridden by the given ones."""
    if not isinstance(value, Mapping):
        raise AccountsError("field 'user_info': must be an object")
    for name, number in value.items():
        if name not in USER_INFO_DEFAULTS:
            raise AccountsError(f"field 'user_info': unknown key {name!r}")
        if not isinstance(number, int) or isinstance(number, bool) or number < 0:
            raise AccountsError(f"field 'user_info.{name}': must be a non-negative integer")
    return {**USER_INFO_DEFAULTS, **value}


ACCOUNT_FIELDS = tuple(f.name for f in fields(SimAccount))


def account_from_dict(data: object) -> SimAccount:
    """Return an account from one JSON object; raise AccountsError naming the bad field."""
    if not isinstance(data, Mapping):
        raise AccountsError("must be an object")
    unknown = sorted(set(data) - set(ACCOUNT_FIELDS))
    if unknown:
        raise AccountsError(f"unknown field {unknown[0]!r} (known: {', '.join(ACCOUNT_FIELDS)})")
    missing = [name for name in ("api_key", "api_secret", "passphrase", "uid") if name not in data]
    if missing:
        raise AccountsError(f"field {missing[0]!r}: required")
    try:
        return SimAccount(**data)
    except TypeError as error:  # a wrong type that slipped past the checks above
        raise AccountsError(str(error)) from None


def accounts_from_json(document: object, source: str = "accounts file") -> list[SimAccount]:
    """Return the accounts of a parsed {"accounts": [...]} document, validated."""
    if not isinstance(document, Mapping) or not isinstance(document.get("accounts"), list):
        raise AccountsError(f'{source}: must be a JSON object {{"accounts": [...]}}')
    unknown = sorted(set(document) - {"accounts"})
    if unknown:
        raise AccountsError(f"{source}: unknown top-level key {unknown[0]!r}")
    accounts: list[SimAccount] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(document["accounts"]):
        key = entry.get("api_key") if isinstance(entry, Mapping) else None
        where = f"{source}: accounts[{index}]" + (f" (api_key {key!r})" if key else "")
        try:
            account = account_from_dict(entry)
        except AccountsError as error:
            raise AccountsError(f"{where}: {error}") from None
        if account.api_key in seen:
            raise AccountsError(
                f"{where}: field 'api_key': same key as accounts[{seen[account.api_key]}]"
            )
        seen[account.api_key] = index
        accounts.append(account)
    return accounts


def load_accounts(path: str | Path) -> list[SimAccount]:
    """Return the accounts of a JSON accounts file; raise AccountsError with a clear message."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise AccountsError(f"{path}: cannot read: {error.strerror or error}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise AccountsError(
            f"{path}: not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
        ) from None
    return accounts_from_json(document, source=str(path))


def mask_ip(ip: str) -> str:
    """Return an IP masked as KuCoin's key info shows it: "203.0.113.154" -> "203.**.154".

    IPv6 (undocumented by KuCoin) is masked the same way: first and last group, "2001:**:7334".
    """
    address = ipaddress.ip_address(ip)
    if address.version == 4:
        octets = str(address).split(".")
        return f"{octets[0]}.**.{octets[-1]}"
    groups = address.exploded.split(":")
    return f"{int(groups[0], 16):x}:**:{int(groups[-1], 16):x}"


def _hmac_b64(key: bytes, message: bytes) -> str:
    """Return base64(HMAC-SHA256(key, message))."""
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def _signed_forms(target: str) -> set[str]:
    """Return the endpoint strings a valid KC-API-SIGN may cover for this request target."""
    path, sep, query = target.partition("?")
    # KuCoin signs the query un-encoded (§1.2); the SDK sends it encoded, ccxt raw: accept both.
    return {target, unquote(path) + sep + unquote_plus(query), unquote(target)}


def _same_ip(a: str, b: str) -> bool:
    """Return whether two IP strings name the same address (IPv4-mapped IPv6 included)."""
    try:
        left, right = ipaddress.ip_address(a), ipaddress.ip_address(b)
    except ValueError:
        return a == b
    if isinstance(left, ipaddress.IPv6Address) and left.ipv4_mapped:
        left = left.ipv4_mapped
    if isinstance(right, ipaddress.IPv6Address) and right.ipv4_mapped:
        right = right.ipv4_mapped
    return left == right


@dataclass(frozen=True)
class SimRequest:
    """One request as the simulator receives it: the raw target and body, exactly as sent."""

    host: str  # SPOT or FUTURES
    method: str
    target: str  # raw path plus "?" and raw query string, as on the wire
    headers: Mapping[str, str]  # names lower-cased
    body: bytes
    peer_ip: str

    def header(self, name: str) -> str | None:
        """Return a header's value, or None when absent."""
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class SimResponse:
    """One answer: status, headers and body, or a connection dropped without an answer."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    dropped: bool = False


DROPPED = SimResponse(0, dropped=True)


@dataclass
class _Window:
    """One rate-limit window of a (UID or IP, pool) bucket."""

    started_ms: float
    used: int = 0


class Simulator:
    """KuCoin's gateway and the few endpoints bindwatch needs, for a registry of accounts."""

    def __init__(
        self,
        accounts: Iterable[SimAccount] = (),
        *,
        caller_ip: str | None = None,
        quotas: Mapping[str, int] | None = None,
        window_ms: int = k.RATE_WINDOW_MS,
        faults: Faults | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._lock = threading.RLock()
        self._accounts: dict[str, SimAccount] = {}
        for account in accounts:
            self.add_account(account)
        if caller_ip is not None:
            ipaddress.ip_address(caller_ip)  # raise ValueError early on a typo
        self.caller_ip = caller_ip
        self.quotas = {**k.POOL_QUOTAS, **(quotas or {})}
        if window_ms <= 0:
            raise ValueError("window_ms must be positive")
        self.window_ms = window_ms
        self._faults = faults or Faults()
        self._clock = clock
        self._sleep = sleep
        self._windows: dict[tuple[str, str], _Window] = {}

    @classmethod
    def from_file(cls, path: str | Path, **options: Any) -> Simulator:
        """Return a simulator serving the accounts of a JSON accounts file."""
        return cls(load_accounts(path), **options)

    def __repr__(self) -> str:
        return f"Simulator({len(self._accounts)} accounts, caller_ip={self.caller_ip!r})"

    # Accounts.

    @property
    def accounts(self) -> list[SimAccount]:
        """Return the accounts served, in registration order."""
        with self._lock:
            return list(self._accounts.values())

    def account(self, api_key: str) -> SimAccount:
        """Return the account of a key; raise KeyError when unknown."""
        with self._lock:
            return self._accounts[api_key]

    def add_account(self, account: SimAccount) -> None:
        """Serve one more account; raise AccountsError when its key is already served."""
        with self._lock:
            if account.api_key in self._accounts:
                raise AccountsError(f"{account.label}: field 'api_key': already served")
            self._accounts[account.api_key] = account

    def remove_account(self, api_key: str) -> None:
        """Stop serving a key (later calls get 400003, as for a deleted key)."""
        with self._lock:
            del self._accounts[api_key]

    def update_account(self, api_key: str, **changes: Any) -> SimAccount:
        """Change fields of an account at runtime (e.g. frozen=True); return the new account."""
        with self._lock:
            updated = replace(self._accounts[api_key], **changes)
            if updated.api_key != api_key:
                raise AccountsError("field 'api_key': cannot be changed; add a new account")
            self._accounts[api_key] = updated
            return updated

    # Faults, clock and rate limits.

    def faults(self, api_key: str | None = None) -> Faults:
        """Return the faults of the server, or of one account when api_key is given."""
        with self._lock:
            return self._faults if api_key is None else self._accounts[api_key].faults

    def set_faults(self, api_key: str | None = None, **changes: Any) -> Faults:
        """Change fault settings of the server (or of one account); return the new settings."""
        with self._lock:
            if api_key is None:
                self._faults = replace(self._faults, **changes)
                return self._faults
            return self.update_account(
                api_key, faults=replace(self._accounts[api_key].faults, **changes)
            ).faults

    def clear_faults(self, api_key: str | None = None) -> None:
        """Remove every injected fault of the server (or of one account)."""
        with self._lock:
            if api_key is None:
                self._faults = Faults()
            else:
                self.update_account(api_key, faults=Faults())

    def set_latency(self, ms: int, api_key: str | None = None) -> None:
        """Delay every answer by ms milliseconds."""
        self.set_faults(api_key, latency_ms=ms)

    def set_clock_offset(self, ms: int, api_key: str | None = None) -> None:
        """Run the simulator's clock ms milliseconds ahead (negative: behind) of this machine's."""
        self.set_faults(api_key, clock_offset_ms=ms)

    def fail_next(self, count: int = 1, *, status: int = 500, api_key: str | None = None) -> None:
        """Answer the next count requests with HTTP 500 (500000) or 503 (maintenance)."""
        self.set_faults(api_key, fail_next=count, fail_status=status)

    def overload_next(self, count: int = 1, *, api_key: str | None = None) -> None:
        """Answer the next count requests with server-overload 429000 (no rate-limit headers)."""
        self.set_faults(api_key, overload_next=count)

    def cdn_block_next(
        self, count: int = 1, *, status: int = 403, api_key: str | None = None
    ) -> None:
        """Answer the next count requests with a Cloudflare-like HTML error 1015 page."""
        self.set_faults(api_key, cdn_next=count, cdn_status=status)

    def drop_next(self, count: int = 1, *, api_key: str | None = None) -> None:
        """Close the connection of the next count requests without answering."""
        self.set_faults(api_key, drop_next=count)

    def now_ms(self, api_key: str | None = None) -> int:
        """Return the simulator's clock in ms (with the account's offset when api_key is given)."""
        with self._lock:
            offset = self._faults.clock_offset_ms
            if api_key is not None and api_key in self._accounts:
                offset += self._accounts[api_key].faults.clock_offset_ms
        return int(self._clock() * 1000) + offset

    def reset_rate_limits(self) -> None:
        """Forget every rate-limit window."""
        with self._lock:
            self._windows.clear()

    # Transports.

    def spot_transport(self, caller_ip: str = "127.0.0.1") -> SimulatorTransport:
        """Return an httpx transport answering as the spot host (api.kucoin.com)."""
        return SimulatorTransport(self, SPOT, caller_ip)

    def futures_transport(self, caller_ip: str = "127.0.0.1") -> SimulatorTransport:
        """Return an httpx transport answering as the futures host (api-futures.kucoin.com)."""
        return SimulatorTransport(self, FUTURES, caller_ip)

    # Requests.

    def handle(self, request: SimRequest) -> SimResponse:
        """Return the answer to one request (sleeping the injected latency first)."""
        api_key = request.header("KC-API-KEY")
        with self._lock:
            fault, self._faults = _fire(self._faults)
            latency = self._faults.latency_ms
            account = self._accounts.get(api_key) if api_key else None
            if account is not None:
                latency += account.faults.latency_ms
                if fault is None:
                    fault, faults = _fire(account.faults)
                    if faults is not account.faults:
                        self._accounts[account.api_key] = replace(account, faults=faults)
        if latency > 0:
            self._sleep(latency / 1000)
        ip = self.caller_ip or request.peer_ip
        if fault is not None:
            return self._fault_response(fault, ip)
        return self._respond(request, ip)

    def _fault_response(self, fault: tuple[str, int], ip: str) -> SimResponse:
        """Return the answer of an injected fault."""
        kind, status = fault
        if kind == "drop_next":
            return DROPPED
        if kind == "cdn_next":
            ray = hashlib.sha256(str(time.time_ns()).encode()).hexdigest()[:16]
            page = _CDN_PAGE.format(ray=ray, ip=ip).encode()
            headers = (("Content-Type", "text/html; charset=UTF-8"), ("Server", "cloudflare"))
            return SimResponse(status, headers, page)
        if kind == "overload_next":
            # Server overload carries no personal rate-limit headers (reference §4).
            return _json_response(429, {"code": "429000", "msg": MESSAGES["429000"]})
        if status == 503:
            body = {"code": "503", "msg": "Service Unavailable", "retry": True, "success": False}
            return _json_response(503, body)
        return _json_response(500, {"code": "500000", "msg": MESSAGES["500000"]})

    def _respond(self, request: SimRequest, ip: str) -> SimResponse:
        """Return the answer of the gateway and endpoint (no injected fault)."""
        path = unquote(request.target.partition("?")[0])
        endpoint = ENDPOINTS.get((request.host, path))
        if endpoint is None:
            body = {"code": "404", "msg": "Not Found", "retry": False, "success": False}
            return _json_response(404, body, self._peek(f"ip:{ip}", "Public"))
        if request.method != "GET":
            body = {"code": "405", "msg": "Method Not Allowed", "retry": False, "success": False}
            return _json_response(405, body, self._peek(f"ip:{ip}", endpoint.pool))
        if endpoint.permission is None:
            allowed, limits = self._charge(f"ip:{ip}", endpoint)
            if not allowed:
                return _error(429, "429000", limits)
            return _ok(self._public_data(request, endpoint, ip), limits)

        account, refusal = self._authenticate(request, endpoint, ip)
        if refusal is not None:
            return refusal
        assert account is not None
        allowed, limits = self._charge(f"uid:{account.uid}", endpoint)
        if not allowed:
            return _error(429, "429000", limits)
        if account.ip_whitelist and not any(_same_ip(ip, e) for e in account.ip_whitelist):
            return _error(403, "400006", limits, ip=ip)
        if account.frozen:
            return _error(403, "411100", limits)
        if endpoint.permission not in account.permissions:
            return _error(403, "400007", limits)
        return _ok(self._private_data(request, endpoint, account), limits)

    def _authenticate(
        self, request: SimRequest, endpoint: k.Endpoint, ip: str
    ) -> tuple[SimAccount | None, SimResponse | None]:
        """Return the account a request proves it holds the key of, or the refusal."""
        values = {name: (request.header(name) or "").strip() for name in REQUIRED_HEADERS}
        api_key = values["kc-api-key"]
        with self._lock:
            account = self._accounts.get(api_key)
        bucket = f"uid:{account.uid}" if account else f"ip:{ip}"
        limits = self._peek(bucket, endpoint.pool)
        if not all(values.values()) or not values["kc-api-timestamp"].isdigit():
            return None, _error(400, "400001", limits)
        if (request.header("KC-API-KEY-VERSION") or "").strip() not in k.ACCEPTED_KEY_VERSIONS:
            return None, _error(400, "400009", limits)
        timestamp = values["kc-api-timestamp"]
        if abs(int(timestamp) - self.now_ms(api_key)) > k.MAX_CLOCK_SKEW_MS:
            return None, _error(400, "400002", limits)
        if account is None:
            return None, _error(401, "400003", limits)
        secret = account.api_secret.reveal().encode()
        # The signature is checked before the passphrase: a wrong Secret then reads as 400005
        # and a wrong passphrase with the right Secret as 400004, the causes the codes name.
        sign = values["kc-api-sign"].encode()
        prefix = timestamp + request.method.upper()
        if not any(
            hmac.compare_digest(
                sign, _hmac_b64(secret, (prefix + form).encode() + request.body).encode()
            )
            for form in _signed_forms(request.target)
        ):
            return None, _error(401, "400005", limits)
        expected = _hmac_b64(secret, account.passphrase.reveal().encode())
        if not hmac.compare_digest(values["kc-api-passphrase"].encode(), expected.encode()):
            return None, _error(401, "400004", limits)
        return account, None

    def _public_data(self, request: SimRequest, endpoint: k.Endpoint, ip: str) -> Any:
        """Return the data of a public endpoint."""
        if endpoint.path == k.MY_IP:
            return ip
        return self.now_ms(request.header("KC-API-KEY"))

    def _private_data(self, request: SimRequest, endpoint: k.Endpoint, account: SimAccount) -> Any:
        """Return the data of a private endpoint for an authenticated account."""
        query = dict(parse_qsl(request.target.partition("?")[2], keep_blank_values=True))
        if endpoint.path == k.API_KEY_INFO:
            return key_info(account)
        if endpoint.path == k.ACCOUNTS:
            rows = [dict(row) for row in account.spot]
            for name in ("currency", "type"):
                if query.get(name):
                    rows = [row for row in rows if row[name] == query[name]]
            return rows
        if endpoint.path == k.USER_INFO:
            return dict(account.user_info)
        if endpoint.path == HF_ACCOUNTS_OPENED:
            return any(row["type"] == "trade_hf" for row in account.spot)
        currency = query.get("currency") or DEFAULT_FUTURES_CURRENCY
        overview = account.futures.get(currency) or dict.fromkeys(FUTURES_FIELDS, 0.0)
        return {**overview, "currency": currency}

    def _charge(self, who: str, endpoint: k.Endpoint) -> tuple[bool, tuple[int, int, int]]:
        """Deduct an endpoint's weight from a bucket; return (allowed, (limit, left, reset))."""
        quota = self.quotas[endpoint.pool]
        now = self._clock() * 1000
        with self._lock:
            window = self._windows.get((who, endpoint.pool))
            if window is None or now >= window.started_ms + self.window_ms:
                # The window starts at the first request and lasts window_ms (reference §4).
                window = self._windows[(who, endpoint.pool)] = _Window(now)
            allowed = window.used + endpoint.weight <= quota
            if allowed:
                window.used += endpoint.weight
            reset = math.ceil(window.started_ms + self.window_ms - now)
            return allowed, (quota, max(quota - window.used, 0), max(reset, 0))

    def _peek(self, who: str, pool: str) -> tuple[int, int, int]:
        """Return a bucket's (limit, remaining, reset) without charging it."""
        quota = self.quotas[pool]
        now = self._clock() * 1000
        with self._lock:
            window = self._windows.get((who, pool))
            if window is None or now >= window.started_ms + self.window_ms:
                return quota, quota, self.window_ms
            reset = math.ceil(window.started_ms + self.window_ms - now)
            return quota, max(quota - window.used, 0), max(reset, 0)


def key_info(account: SimAccount) -> dict[str, Any]:
    """Return GET /api/v1/user/api-key data: whitelist masked, absent when there is none."""
    data: dict[str, Any] = {
        "remark": account.remark,
        "apiKey": account.api_key,
        "apiVersion": 3,
        "permission": ",".join(account.permissions),
    }
    if account.ip_whitelist:
        data["ipWhitelist"] = ",".join(mask_ip(ip) for ip in account.ip_whitelist)
    data.update(createdAt=account.created_at, uid=account.uid, isMaster=account.is_master)
    if not account.is_master:
        data["subName"] = account.sub_name
    return data


def _fire(faults: Faults) -> tuple[tuple[str, int] | None, Faults]:
    """Return the counted fault this request triggers (kind, status) and the faults left."""
    for name, status in (
        ("drop_next", 0),
        ("cdn_next", faults.cdn_status),
        ("overload_next", 429),
        ("fail_next", faults.fail_status),
    ):
        count = getattr(faults, name)
        if count:
            left = faults if count < 0 else replace(faults, **{name: count - 1})
            return (name, status), left
    return None, faults


def _rate_headers(limits: tuple[int, int, int]) -> tuple[tuple[str, str], ...]:
    """Return the gw-ratelimit-* headers of a bucket's (limit, remaining, reset)."""
    limit, remaining, reset = limits
    return (
        ("gw-ratelimit-limit", str(limit)),
        ("gw-ratelimit-remaining", str(remaining)),
        ("gw-ratelimit-reset", str(reset)),
    )


def _json_response(
    status: int, body: object, limits: tuple[int, int, int] | None = None
) -> SimResponse:
    """Return a JSON answer, with rate-limit headers when a bucket is given."""
    headers = (("Content-Type", "application/json"),)
    if limits is not None:
        headers += _rate_headers(limits)
    return SimResponse(status, headers, json.dumps(body, separators=(",", ":")).encode())


def _ok(data: Any, limits: tuple[int, int, int]) -> SimResponse:
    """Return KuCoin's success envelope."""
    return _json_response(200, {"code": k.SUCCESS_CODE, "data": data}, limits)


def _error(status: int, code: str, limits: tuple[int, int, int], **fmt: str) -> SimResponse:
    """Return KuCoin's error envelope for a gateway code."""
    return _json_response(status, {"code": code, "msg": MESSAGES[code].format(**fmt)}, limits)


class SimulatorTransport(httpx.MockTransport):
    """An httpx transport (sync and async) answering from a simulator as one host."""

    def __init__(self, simulator: Simulator, host: str, caller_ip: str = "127.0.0.1") -> None:
        if host not in HOSTS:
            raise ValueError(f"host must be one of {HOSTS}")
        super().__init__(self._answer)
        self.simulator = simulator
        self.host = host
        self.caller_ip = caller_ip

    def _answer(self, request: httpx.Request) -> httpx.Response:
        """Return the simulator's answer; raise RemoteProtocolError for a dropped connection."""
        answer = self.simulator.handle(
            SimRequest(
                host=self.host,
                method=request.method,
                target=request.url.raw_path.decode("ascii"),
                headers={name.lower(): value for name, value in request.headers.items()},
                body=request.content,
                peer_ip=self.caller_ip,
            )
        )
        if answer.dropped:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        return httpx.Response(
            answer.status, headers=list(answer.headers), content=answer.body, request=request
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer in a worker thread so injected latency does not block the event loop."""
        await request.aread()
        return await asyncio.to_thread(self._answer, request)


class _Handler(BaseHTTPRequestHandler):
    """Turns one HTTP request into a SimRequest and writes the simulator's answer."""

    server: _HostServer
    protocol_version = "HTTP/1.1"  # keep-alive, like KuCoin's gateway
    timeout = 60  # idle keep-alive connections do not pin a thread forever
    # Headers and body go out in separate writes; with Nagle's algorithm on, the client's
    # delayed ACK holds the body back ~40 ms per answer on loopback.
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.send_error(400, "bad Content-Length")
            return
        body = self.rfile.read(length) if length > 0 else b""
        answer = self.server.simulator.handle(
            SimRequest(
                host=self.server.host_kind,
                method=self.command,
                target=self.path,
                headers={name.lower(): value for name, value in self.headers.items()},
                body=body,
                peer_ip=self.client_address[0],
            )
        )
        if answer.dropped:
            self.close_connection = True  # the server then closes the socket, nothing written
            return
        self.send_response_only(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Log the request line at debug level (it carries no secret: those are headers)."""
        _log.debug("%s %s", self.address_string(), format % args)


class _HostServer(ThreadingHTTPServer):
    """One HTTP server answering as one KuCoin host from a shared simulator."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], simulator: Simulator, host_kind: str) -> None:
        self.simulator = simulator
        self.host_kind = host_kind
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn), which can stall offline.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class _HostServer6(_HostServer):
    address_family = socket.AF_INET6


class SimulatorServer:
    """A spot and a futures HTTP server over one simulator; a context manager for tests."""

    def __init__(
        self,
        simulator: Simulator,
        host: str = "127.0.0.1",
        spot_port: int = 0,
        futures_port: int = 0,
    ) -> None:
        self.simulator = simulator
        self.host = host
        self._ports = {SPOT: spot_port, FUTURES: futures_port}
        self._servers: dict[str, _HostServer] = {}
        self._threads: list[threading.Thread] = []

    def start(self) -> SimulatorServer:
        """Bind both servers (port 0: any free port) and serve in background threads."""
        if self._servers:
            raise RuntimeError("the simulator server is already running")
        server_class = _HostServer6 if ":" in self.host else _HostServer
        try:
            for kind in HOSTS:
                address = (self.host, self._ports[kind])
                self._servers[kind] = server_class(address, self.simulator, kind)
        except OSError:
            self.stop()
            raise
        for kind, server in self._servers.items():
            # A short poll interval makes stop() quick (shutdown waits for one poll).
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"kucoin-simulator-{kind}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop serving and release both ports."""
        for server in self._servers.values():
            if self._threads:
                server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()

    def _url(self, kind: str) -> str:
        port = self._servers[kind].server_address[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{port}"

    @property
    def spot_url(self) -> str:
        """Return the spot base URL (stands in for https://api.kucoin.com)."""
        return self._url(SPOT)

    @property
    def futures_url(self) -> str:
        """Return the futures base URL (stands in for https://api-futures.kucoin.com)."""
        return self._url(FUTURES)

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
