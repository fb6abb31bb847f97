"""Simulated KuCoin accounts: the SimAccount a key stands for, its faults, and the accounts file.

An accounts file is JSON {"accounts": [...]}, one object per key with the fields of SimAccount;
SAMPLE_ACCOUNTS is the bundled one `python -m lib simulate` serves by default. Every error
names the account and the field to fix.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path

from lib.kucoin import constants as k
from lib.secret import Secret

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
