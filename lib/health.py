"""Account health: status, coverage, freshness and forecasts derived from probe history.

Every rule is a pure function of (facts observed, policy, now), as in Healthchecks'
`get_status()` / `going_down_after()`: nothing here is stored, nothing reads the clock.

Inputs (the store provides frames with exactly these column names):

`accounts`, one row per bound account: see ACCOUNT_COLUMNS.
`probes`, one row per check: `account_id` plus the ProbeResult field names; the rules read
the columns in PROBE_COLUMNS (others, such as latency_ms or spot_balances, are ignored).
`policy`: a HealthPolicy. `now`: an aware datetime (converted to UTC).

Status, one per account, worst wins (Status.rank: 0 is worst):

    FROZEN > KEY_UNKNOWN > WRONG_SECRET > WRONG_PASSPHRASE > BAD_REQUEST_HEADERS > REJECTED
    > IP_BLOCKED > SCOPE_MISSING > CLOCK_SKEW > UNVERIFIED > STALE > DEGRADED > AT_RISK
    > NEW > PAUSED > OK

- The latest non-transient answer decides the key's verdict: a rejection stands until a
  later check passes (a timeout after a 400004 does not make the passphrase right).
- Transient (`is_transient`, "retrying"): no answer, KuCoin's overload codes (429000, 5xx;
  lib.kucoin.diagnosis.is_transient_code) even when a probe records them as rejected, and a
  400002 while our clock agrees with KuCoin's (|offset| below `clock_warn_ms`): the request
  arrived late because it was slow in transit, which says nothing about the key or the clock.
- Freshness counts from the last successful sync, or from `created_at` for an account that
  never synced: a never-synced account is NEW with no checks, DEGRADED with only transient
  failures, and STALE either way once period + grace has passed since it was bound.
- PAUSED overrides everything (the operator asked for no alarms); the diagnosis still says
  what the last state was.
- Clock offset from a passing check is only an AT_RISK reason: checks sign with
  KuCoin-corrected time, so CLOCK_SKEW is KuCoin's 400002 while the clocks disagree (or the
  offset was not measured).
- Failing (`Status.failing`, red): every status from FROZEN to STALE. The Fleet's tiles,
  "Refresh all", `status`'s exit code and binding all count failing with it.
- Going stale (`going_stale_at`, Healthchecks' going_down_after): when the account turns
  STALE without another successful sync, counted from the last success or, never synced, from
  binding; none once it is stale already or while it is paused.
- Risks (AT_RISK) are listed all, gravest first; binding warns with the same list.

Whitelist coverage: KuCoin masks entries ("203.**.154"), showing first and last octet only,
so a match is probable, never certain ("covered (masked match)"); IPv6, CIDR or several of
our IPs behind one mask are "unknown"; an empty whitelist lets every IP in. What KuCoin did
with the last signed call from an IP (accepted, or 400006 naming it) outranks the masks.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections import namedtuple
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from lib.kucoin.constants import (
    EARN,
    ENDPOINTS,
    FUTURES,
    GENERAL,
    INNER_TRANSFER,
    MARGIN,
    MAX_CLOCK_SKEW_MS,
    SPOT,
    TRADING_PERMISSIONS,
    TRANSFER,
)
from lib.kucoin.diagnosis import (
    API_MANAGEMENT,
    LATE_REQUEST,
    TIMESTAMP_CODE,
    UNREACHABLE,
    Diagnosis,
    diagnose,
    is_transient_code,
)
from lib.kucoin.probe_result import Outcome, ProbeResult

ACCOUNT_COLUMNS: dict[str, str] = {
    "account_id": "int: the account's id",
    "label": "str: the operator's name for the account",
    "scopes": 'list of "spot" / "futures" / "margin": what the platform NEEDS the key for',
    "paused": "bool: the operator paused checks and alarms",
    "unverified": "bool: saved without a passing check",
    "created_at": "UTC datetime: when the account was bound",
}

PROBE_COLUMNS: dict[str, str] = {
    "account_id": "int: the account checked",
    "checked_at": "UTC datetime: when the check ran",
    "outcome": '"ok" / "rejected" / "unreachable" (Outcome)',
    "code": 'KuCoin\'s failure code ("400004"), None on success',
    "message": "KuCoin's message or the transport error",
    "endpoint": "the path that failed",
    "permissions": 'list of KuCoin permission names ("General", "Spot", ...)',
    "ip_whitelist": 'masked whitelist as KuCoin returns it ("203.**.154,103.**.34") or None',
    "is_master": "bool: a master-account key",
    "sub_name": "sub-account name, None for a master key",
    "uid": "KuCoin UID",
    "key_created_at": "UTC datetime: key info's createdAt",
    "clock_offset_ms": "int: KuCoin's clock minus ours",
    "seen_ip": "the IP KuCoin saw (my-ip, or a 400006 message)",
    "futures_permission_missing": "bool: the futures overview answered 400007",
}

SCOPE_PERMISSIONS: dict[str, str] = {"spot": SPOT, "futures": FUTURES, "margin": MARGIN}
DANGEROUS_PERMISSIONS = (TRANSFER,)  # withdrawals
INFO_PERMISSIONS = (INNER_TRANSFER, EARN)  # moves funds between own accounts only
IP_BLOCKED_CODE = "400006"  # KuCoin refused the IP the call came from, and names it

IP_RESTRICTION = f"{API_MANAGEMENT} → Edit → IP Restriction"
API_RESTRICTIONS = f"{API_MANAGEMENT} → Edit → API Restrictions"


@dataclass(frozen=True)
class HealthPolicy:
    """Thresholds the rules apply; the platform's settings provide them."""

    # The platform's outbound IPs: every one must be on a whitelisted key.
    egress_ips: tuple[str, ...] = ()
    # A successful sync is due every period; after period + grace without one: STALE.
    freshness_period: timedelta = timedelta(hours=1)
    freshness_grace: timedelta = timedelta(minutes=15)
    # A key older than this should be rotated (AT_RISK).
    rotation_age: timedelta = timedelta(days=90)
    # |clock offset| at or above this is "close to" KuCoin's 5 s limit (AT_RISK).
    clock_warn_ms: int = 3_000
    # KuCoin deletes or disables trade-enabled keys without a whitelist after this inactivity.
    inactivity_rule: timedelta = timedelta(days=30)
    # Fleet incident: at least `incident_share` of the non-paused accounts checked within
    # `incident_window` (and at least `incident_min_accounts` of them) failing the same way.
    incident_window: timedelta = timedelta(minutes=10)
    incident_share: float = 0.6
    incident_min_accounts: int = 3

    def __post_init__(self) -> None:
        """Accept any iterable of IPs and keep a tuple of stripped strings."""
        ips = (self.egress_ips,) if isinstance(self.egress_ips, str) else self.egress_ips
        object.__setattr__(self, "egress_ips", tuple(str(ip).strip() for ip in ips))


class Status(enum.StrEnum):
    """An account's health; `rank` orders them worst (0) to best."""

    FROZEN = "FROZEN"  # 411100
    KEY_UNKNOWN = "KEY_UNKNOWN"  # 400003
    WRONG_SECRET = "WRONG_SECRET"  # 400005
    WRONG_PASSPHRASE = "WRONG_PASSPHRASE"  # 400004
    BAD_REQUEST_HEADERS = "BAD_REQUEST_HEADERS"  # 400001
    REJECTED = "REJECTED"  # any other non-transient code (400008, 4003xx, ...)
    IP_BLOCKED = "IP_BLOCKED"  # 400006
    SCOPE_MISSING = "SCOPE_MISSING"  # 400007, or key info lacks a needed scope
    CLOCK_SKEW = "CLOCK_SKEW"  # 400002
    UNVERIFIED = "UNVERIFIED"  # saved without a passing check, none since
    STALE = "STALE"  # no successful sync for period + grace
    DEGRADED = "DEGRADED"  # transient failure, still inside grace
    AT_RISK = "AT_RISK"  # works, but see `risks`
    NEW = "NEW"  # bound, not checked yet
    PAUSED = "PAUSED"  # the operator paused it: shown, never an alarm
    OK = "OK"

    @property
    def title(self) -> str:
        """Return the status in plain words for people ("Key unknown")."""
        return _TITLES[self]

    @property
    def rank(self) -> int:
        """Return the severity rank: 0 is the worst status."""
        return _RANK[self]

    @property
    def failing(self) -> bool:
        """Return whether the account needs action now (red): FROZEN down to STALE."""
        return self.rank <= Status.STALE.rank

    @property
    def level(self) -> str:
        """Return "error", "warning", "info" or "ok" for colouring the status."""
        if self.failing:
            return "error"
        if self in (Status.DEGRADED, Status.AT_RISK):
            return "warning"
        return "ok" if self is Status.OK else "info"


SEVERITY: tuple[Status, ...] = tuple(Status)  # worst first: the declaration order
_TITLES = {
    Status.FROZEN: "Account frozen",
    Status.KEY_UNKNOWN: "Key unknown",
    Status.WRONG_SECRET: "Wrong secret",
    Status.WRONG_PASSPHRASE: "Wrong passphrase",
    Status.BAD_REQUEST_HEADERS: "Headers refused",
    Status.REJECTED: "Rejected",
    Status.IP_BLOCKED: "IP not whitelisted",
    Status.SCOPE_MISSING: "Permission missing",
    Status.CLOCK_SKEW: "Clock out of sync",
    Status.UNVERIFIED: "Not verified",
    Status.STALE: "No recent sync",
    Status.DEGRADED: "Retrying",
    Status.AT_RISK: "At risk",
    Status.NEW: "Not checked yet",
    Status.PAUSED: "Paused",
    Status.OK: "Working",
}
_RANK = {s: i for i, s in enumerate(SEVERITY)}
STATUS_DTYPE = pd.CategoricalDtype([s.value for s in SEVERITY], ordered=True)
SCOPE_STATE_DTYPE = pd.CategoricalDtype(["missing", "granted", "not needed"])
PERMISSION_STATE_DTYPE = pd.CategoricalDtype(
    ["missing", "unknown", "dangerous", "granted", "info", "not needed"], ordered=True
)
# One mark per permission state, wherever a key's permissions are listed.
PERMISSION_MARKS: dict[str, str] = {
    "missing": "✗",  # needed, not granted
    "unknown": "?",  # KuCoin's key info was never read
    "dangerous": "⚠",  # granted, and lets the key withdraw
    "granted": "✓",
    "info": "✓",  # granted, not needed, harmless
    "not needed": "–",  # neither needed nor granted
}
COVERAGE_DTYPE = pd.CategoricalDtype(
    ["not covered", "unknown", "covered (masked match)", "covered", "no whitelist"], ordered=True
)
FRESHNESS_DTYPE = pd.CategoricalDtype(["stale", "late", "fresh"], ordered=True)
OUTCOME_DTYPE = pd.CategoricalDtype([o.value for o in Outcome])
# What one check says: passed, failed in a way a retry may fix, or KuCoin's verdict.
CHECK_RESULT_DTYPE = pd.CategoricalDtype(["ok", "retrying", "rejected"])

_CODE_STATUS: dict[str, Status] = {
    "411100": Status.FROZEN,
    "400003": Status.KEY_UNKNOWN,
    "400005": Status.WRONG_SECRET,
    "400004": Status.WRONG_PASSPHRASE,
    "400001": Status.BAD_REQUEST_HEADERS,
    IP_BLOCKED_CODE: Status.IP_BLOCKED,
    "400007": Status.SCOPE_MISSING,
    TIMESTAMP_CODE: Status.CLOCK_SKEW,
}
_DT = "datetime64[ns, UTC]"
_NAT = pd.NaT.value  # NaT as nanoseconds
_HEALTHY = ("Key works", "Nothing to do.", None, ())  # diagnosis, hint, risks, risk list


@dataclass(frozen=True)
class Risk:
    """A reason a working key may stop working, or may do more than it should, and its fix."""

    what: str
    fix: str


@dataclass(frozen=True)
class FleetIncident:
    """Most recently checked accounts failing the same way: one banner instead of N alarms."""

    status: Status  # DEGRADED for transient failures, else the code's status
    code: str | None  # the shared code; for transient failures the most common one, if any
    title: str
    count: int  # accounts failing this way
    checked: int  # non-paused accounts checked within the window
    since: datetime  # the earliest of those failing checks
    fix: str  # what to do about it
    account_ids: frozenset[int] = frozenset()  # the accounts failing this way

    @property
    def summary(self) -> str:
        """Return the banner's sentence."""
        code = f" ({self.code})" if self.code else ""
        when = self.since.strftime("%Y-%m-%d %H:%M UTC")
        return f"{self.title}{code} on {self.count} of {self.checked} accounts since {when}"


# --- Small pure helpers ------------------------------------------------------------------


DEFAULT_POLICY = HealthPolicy()


def clocks_agree(clock_offset_ms: object, policy: HealthPolicy = DEFAULT_POLICY) -> bool:
    """Return whether a measured offset is too small to be a clock problem (unknown: no)."""
    return _present(clock_offset_ms) and abs(int(clock_offset_ms)) < policy.clock_warn_ms


def is_transient(
    outcome: str | None,
    code: str | None,
    clock_offset_ms: object = None,
    policy: HealthPolicy = DEFAULT_POLICY,
) -> bool:
    """Return whether a check failed in a way a retry may fix: no answer, overload, slow path."""
    if outcome == Outcome.UNREACHABLE:
        return True
    if outcome != Outcome.REJECTED:
        return False
    late = code == TIMESTAMP_CODE and clocks_agree(clock_offset_ms, policy)
    return is_transient_code(code) or late


def check_result(
    outcome: str | None,
    code: str | None,
    clock_offset_ms: object = None,
    policy: HealthPolicy = DEFAULT_POLICY,
) -> str:
    """Return "ok", "retrying" (a transient failure) or "rejected" for one check."""
    if outcome == Outcome.OK:
        return "ok"
    return "retrying" if is_transient(outcome, code, clock_offset_ms, policy) else "rejected"


def check_results(probes: pd.DataFrame, policy: HealthPolicy = DEFAULT_POLICY) -> pd.Categorical:
    """Return check_result for every row of a probes frame (CHECK_RESULT_DTYPE)."""
    is_ok, _, transient, _ = _check_flags(probes, policy)
    return pd.Categorical.from_codes(
        np.select([is_ok, transient], [0, 1], 2), dtype=CHECK_RESULT_DTYPE
    )


def _check_flags(probes: pd.DataFrame, policy: HealthPolicy) -> tuple[np.ndarray, ...]:
    """Return per check: passed, rejected, failed transiently (is_transient), got 400006."""
    is_ok, is_rejected, is_unreachable = _flags(
        probes["outcome"],
        lambda o: o == Outcome.OK,
        lambda o: o == Outcome.REJECTED,
        lambda o: o == Outcome.UNREACHABLE,
    )
    transient_code, timestamp_code, blocked_code = _flags(
        probes["code"],
        is_transient_code,
        lambda c: c == TIMESTAMP_CODE,
        lambda c: c == IP_BLOCKED_CODE,
    )
    late = is_rejected & timestamp_code
    if late.any():  # rare: read the offsets of those checks only (clocks_agree)
        offset = pd.to_numeric(probes["clock_offset_ms"][late]).astype("Float64").abs()
        late[late] = (offset < policy.clock_warn_ms).fillna(False).to_numpy(dtype=bool)
    transient = is_unreachable | (is_rejected & transient_code) | late
    return is_ok, is_rejected, transient, blocked_code


def failure_diagnosis(
    result: ProbeResult, policy: HealthPolicy = DEFAULT_POLICY
) -> Diagnosis | None:
    """Return what a failed check means and its fix; None when the check passed."""
    if result.ok:
        return None
    if is_transient(result.outcome, result.code, result.clock_offset_ms, policy):
        return _transient_diagnosis(result.code)
    return diagnose(result.code)


def is_failing(statuses: pd.Series) -> pd.Series:
    """Return per account whether its status is failing (Status.failing)."""
    failing = {s.value: s.failing for s in Status}
    return statuses.astype(str).map(failing).astype(bool)


def _utc_now(now: datetime) -> pd.Timestamp:
    """Return `now` as a UTC Timestamp; a naive `now` is a caller's bug."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return pd.Timestamp(now).tz_convert("UTC")


def _utc(values: pd.Series) -> pd.Series:
    """Return the values as datetime64[ns, UTC]; naive datetimes are taken as UTC."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").astype(_DT)
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return values.dt.tz_localize("UTC").astype(_DT)
    return pd.to_datetime(values, utc=True).astype(_DT)


def _names(values: object) -> frozenset[str]:
    """Return a list-like (or comma string) of permission or scope names as a set."""
    if isinstance(values, str):
        return _name_set(tuple(values.split(",")))
    if values is None or not hasattr(values, "__iter__"):
        return frozenset()  # None, NaN
    return _name_set(tuple(values))


@lru_cache(maxsize=1024)
def _name_set(values: tuple[object, ...]) -> frozenset[str]:
    """Return the stripped, non-empty names (fleets repeat a few permission lists)."""
    return frozenset(name for v in values if (name := str(v).strip()))


def _text(value: object) -> str | None:
    """Return a string, or None for None/NA/empty."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


def _has_scope(scope: str, permissions: frozenset[str], futures_missing: bool) -> bool:
    """Return whether the key grants what `scope` needs."""
    if scope == "futures" and futures_missing:
        return False
    return SCOPE_PERMISSIONS[scope] in permissions


def format_age(age: timedelta | pd.Timedelta | None) -> str | None:
    """Return an age as "2 d 4 h", "3 h 20 min" or "45 s"; None when unknown."""
    if age is None or pd.isna(age):
        return None
    seconds = max(int(age.total_seconds()), 0)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{secs} s"


# --- Whitelist coverage ------------------------------------------------------------------

_MASKED = re.compile(r"^(\d{1,3})\.(?:\*+\.)+(\d{1,3})$")  # "203.**.154"
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str | None) -> Address | None:
    """Return the parsed IP address, or None when `text` is not one."""
    try:
        return ipaddress.ip_address(text) if text else None
    except ValueError:
        return None


def _ends(address: ipaddress.IPv4Address) -> tuple[int, int]:
    """Return an IPv4 address's first and last octet: all a masked entry shows."""
    return address.packed[0], address.packed[-1]


@dataclass(frozen=True)
class _Entries:
    """A whitelist as KuCoin returns it, sorted by what can be compared."""

    exact: frozenset[Address]  # unmasked entries
    masked: Mapping[tuple[int, int], tuple[str, ...]]  # (first, last octet) -> "203.**.154"
    unreadable: tuple[str, ...]  # CIDR, masked IPv6, anything KuCoin may add later
    count: int


@lru_cache(maxsize=1024)
def _entries(whitelist: str | None) -> _Entries:
    """Return the parsed entries of a comma-separated (masked) whitelist."""
    exact: set[Address] = set()
    masked: dict[tuple[int, int], tuple[str, ...]] = {}
    unreadable: list[str] = []
    texts = [e.strip() for e in (whitelist or "").split(",") if e.strip()]
    for text in texts:
        match = _MASKED.match(text)
        address = _address(text)
        if match:
            key = (int(match.group(1)), int(match.group(2)))
            masked[key] = (*masked.get(key, ()), text)
        elif address is not None:
            exact.add(address)
        else:
            unreadable.append(text)
    return _Entries(frozenset(exact), masked, tuple(unreadable), len(texts))


def _ip_coverage(
    address: Address | None,
    entries: _Entries | None,
    rivals: int,
    evidence: str | None,
    whitelist_changed: bool,
) -> tuple[str, bool, str]:
    """Return (coverage, confirmed, detail) of one IP."""
    # entries: None before key info was read. rivals: how many of the IPs we check share
    # this one's first and last octet. evidence: what KuCoin did with the last signed call
    # from this IP ("accepted", "blocked" or None); it outranks any reading of the masks.
    if evidence == "blocked":
        return "not covered", True, "KuCoin refused it: 400006"
    if evidence == "accepted":
        if entries is not None and not entries.count:
            return "no whitelist", True, "whitelist empty: every IP allowed"
        return "covered", True, "KuCoin accepted the last check from it"
    if entries is None:
        return "unknown", False, "key info not read yet"
    if not entries.count:
        if whitelist_changed:  # a later 400006 shows a whitelist exists now
            return "unknown", False, "whitelist added since key info was read"
        return "no whitelist", False, "whitelist empty: every IP allowed"
    if address is None:
        return "unknown", False, "not an IP address"
    if address in entries.exact:
        return "covered", False, f"whitelisted: {address}"
    if isinstance(address, ipaddress.IPv4Address) and _ends(address) in entries.masked:
        shown = ", ".join(entries.masked[_ends(address)])
        if rivals > len(entries.masked[_ends(address)]):
            # A mask shows first and last octet only: it cannot tell which of these it is.
            return "unknown", False, f"{shown} could be any of {rivals} of our IPs"
        return "covered (masked match)", False, f"{shown} matches first and last octet"
    if isinstance(address, ipaddress.IPv6Address):
        return "unknown", False, "IPv6: KuCoin's masked entries cannot be compared"
    if entries.unreadable:
        return "unknown", False, f"entries that cannot be compared: {', '.join(entries.unreadable)}"
    return "not covered", False, "no whitelist entry matches"


@lru_cache(maxsize=4096)
def _coverage(
    whitelist: str | None,
    known: bool,
    egress_ips: tuple[str, ...],
    evidence_ip: str | None,
    evidence: str | None,
) -> tuple[tuple[str, bool, str, bool, str], ...]:
    """Return (ip, is_platform_ip, coverage, confirmed, detail) per egress IP and seen IP."""
    # known: key info was read (whitelist is its last value). evidence: "accepted" or
    # "blocked", what KuCoin did with the last signed call, which came from evidence_ip.
    entries = _entries(whitelist) if known else None
    seen = _address(evidence_ip)
    platform = {ip: _address(ip) for ip in egress_ips}
    ips = list(platform.items())
    if (
        evidence_ip
        and (seen is None or seen not in platform.values())
        and evidence_ip not in platform
    ):
        ips.append((evidence_ip, seen))
    ends = [_ends(a) for _, a in ips if isinstance(a, ipaddress.IPv4Address)]
    rows = []
    for ip, address in ips:
        same = (address is not None and address == seen) or ip == evidence_ip
        rivals = ends.count(_ends(address)) if isinstance(address, ipaddress.IPv4Address) else 0
        coverage, confirmed, detail = _ip_coverage(
            address, entries, rivals, evidence if same else None, evidence == "blocked"
        )
        rows.append((ip, ip in platform, coverage, confirmed, detail))
    return tuple(rows)


@lru_cache(maxsize=4096)
def _whitelist_summary(
    whitelist: str | None,
    known: bool,
    egress_ips: tuple[str, ...],
    evidence_ip: str | None,
    evidence: str | None,
) -> tuple[str | None, tuple[str, ...]]:
    """Return the fleet's whitelist summary and the platform IPs known not to be covered."""
    if evidence == "blocked":
        return f"blocked: {evidence_ip or 'IP not reported'}", ()
    if not known:
        return None, ()
    count = _entries(whitelist).count
    if not count:
        return "no whitelist", ()
    rows = _coverage(whitelist, known, egress_ips, evidence_ip, evidence)
    platform = [r for r in rows if r[1]]
    if not platform:
        return f"{count} IP{'s' if count > 1 else ''} whitelisted", ()
    missing = tuple(r[0] for r in platform if r[2] == "not covered")
    covered = sum(r[2].startswith("covered") for r in platform)
    unknown = sum(r[2] == "unknown" for r in platform)
    text = f"{covered}/{len(platform)} platform IPs covered"
    return (f"{text}, {unknown} unknown" if unknown else text), missing


def _evidence(outcome: object, code: object) -> str | None:
    """Return what a check says about the IP it came from: "accepted", "blocked" or None."""
    if outcome == Outcome.OK:
        return "accepted"
    if outcome == Outcome.REJECTED and code == IP_BLOCKED_CODE:
        return "blocked"
    return None


# --- Per-account detail ------------------------------------------------------------------


def permission_coverage(
    scopes: Iterable[str],
    permissions: Iterable[str] | None,
    futures_permission_missing: bool = False,
) -> pd.DataFrame:
    """Return one row per KuCoin permission: needed, granted and its state (PERMISSION_MARKS)."""
    # permissions: key info's list; None when it was never read, and then nothing is known
    # about any permission: granted is NA and every state "unknown", never "missing".
    known = isinstance(permissions, str | Iterable)
    needed = _names(scopes)
    granted = _names(permissions)
    # (permission, scope, needed, granted, the state when granted)
    rows = [(GENERAL, None, True, GENERAL in granted, "granted")]
    for scope, permission in SCOPE_PERMISSIONS.items():
        has = _has_scope(scope, granted, futures_permission_missing)
        rows.append((permission, scope, scope in needed, has, "granted"))
    for permission in DANGEROUS_PERMISSIONS + INFO_PERMISSIONS:
        kind = "dangerous" if permission in DANGEROUS_PERMISSIONS else "info"
        rows.append((permission, None, False, permission in granted, kind))
    rows = [
        (
            permission,
            scope,
            need,
            has if known else None,
            (when_granted if has else "missing" if need else "not needed") if known else "unknown",
        )
        for permission, scope, need, has, when_granted in rows
    ]
    frame = pd.DataFrame(rows, columns=["permission", "scope", "needed", "granted", "state"])
    return frame.astype(
        {
            "permission": "string",
            "scope": "string",
            "needed": "boolean",
            "granted": "boolean",
            "state": PERMISSION_STATE_DTYPE,
        }
    )


def whitelist_coverage(probes: pd.DataFrame, policy: HealthPolicy) -> pd.DataFrame:
    """Return one row per platform egress IP (plus the IP KuCoin last saw) for one account."""
    columns = ["ip", "is_platform_ip", "coverage", "confirmed", "detail"]
    history = probes.sort_values("checked_at", kind="stable")
    ok = history[history["outcome"] == Outcome.OK]
    known = not ok.empty
    whitelist = _text(ok["ip_whitelist"].iloc[-1]) if known else None
    evidence_rows = history[
        [
            _evidence(o, c) is not None
            for o, c in zip(history["outcome"], history["code"], strict=True)
        ]
    ]
    evidence_ip, evidence = None, None
    if not evidence_rows.empty:
        last = evidence_rows.iloc[-1]
        evidence_ip = _text(last["seen_ip"])
        evidence = _evidence(last["outcome"], last["code"])
    rows = _coverage(whitelist, known, policy.egress_ips, evidence_ip, evidence)
    frame = pd.DataFrame(list(rows), columns=columns)
    return frame.astype(
        {
            "ip": "string",
            "is_platform_ip": "boolean",
            "coverage": COVERAGE_DTYPE,
            "confirmed": "boolean",
            "detail": "string",
        }
    )


# --- The fleet ---------------------------------------------------------------------------


def _require(frame: pd.DataFrame, columns: Mapping[str, str], name: str) -> None:
    """Raise ValueError naming the columns `frame` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks columns: {', '.join(missing)}")


def _strings(values: pd.Series) -> pd.Series:
    """Return values as stripped strings; None, NA and "" become NA."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values):
        values = values.astype("Int64")  # a UID read as a number, or made float by NA
    return values.astype("string").str.strip().replace("", pd.NA)


def _objects(values: pd.Series) -> np.ndarray:
    """Return a column as an object array with None for NA."""
    return values.to_numpy(dtype=object, na_value=None)


def _flags(values: pd.Series, *tests: Any) -> list[np.ndarray]:
    """Return test(value) for every row per test, computing each once per distinct value."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    out = []
    for test in tests:
        # Position -1 (NA) picks the last entry: the test applied to None.
        table = np.array([bool(test(u)) for u in uniques] + [bool(test(None))], dtype=bool)
        out.append(table[codes])
    return out


def _latest(account_id: np.ndarray, order: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Return the positions of each account's latest row among `mask`; `order`: by account, time."""
    rows = order if mask is None else order[mask[order]]
    ids = account_id[rows]
    last = np.ones(len(rows), dtype=bool)
    last[:-1] = ids[1:] != ids[:-1]
    return rows[last]


def _rows_at(
    probes: pd.DataFrame, positions: np.ndarray, columns: list[str], ids: pd.Index
) -> pd.DataFrame:
    """Return `columns` of the probes at `positions`, one row per id (all NA without one)."""
    index = pd.Index(probes["account_id"].to_numpy(dtype="int64")[positions])
    rows = pd.DataFrame({c: probes[c].array.take(positions) for c in columns}, index=index)
    return rows.reindex(ids)


def _history_order(account_id: np.ndarray, checked_ns: np.ndarray) -> np.ndarray:
    """Return the row order by account_id, then checked_at (ties keep input order)."""
    # One integer sort of (account_id, microseconds) when that key fits in 63 bits: twice as
    # fast as a lexsort, and nearly free on a history the store already sorted.
    if len(account_id) == 0:
        return np.arange(0)
    micros = checked_ns // 1_000
    start = int(micros.min())
    shift = max(int(micros.max() - start).bit_length(), 1)
    if int(account_id.min()) >= 0 and int(account_id.max()).bit_length() + shift <= 62:
        return np.argsort((account_id << shift) | (micros - start), kind="stable")
    return np.lexsort((checked_ns, account_id))


def _latest_checks(
    probes: pd.DataFrame, ids: pd.Index, policy: HealthPolicy
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Return per account the latest check, verdict, success, IP evidence and latest result."""
    # verdict: the latest non-transient answer; success: the latest key info; IP evidence: the
    # latest check that shows whether our IP passes. One sort of the history serves all four.
    # The latest result holds CHECK_RESULT_DTYPE codes, -1 for an account never checked.
    account_id = probes["account_id"].to_numpy(dtype="int64")
    order = _history_order(account_id, _utc(probes["checked_at"]).array.asi8)
    is_ok, is_rejected, transient, blocked_code = _check_flags(probes, policy)
    latest_at = _latest(account_id, order, None)
    latest = _rows_at(
        probes, latest_at, ["checked_at", "outcome", "code", "message", "clock_offset_ms"], ids
    )
    verdict = _rows_at(
        probes,
        _latest(account_id, order, ~transient),
        ["outcome", "code", "endpoint", "clock_offset_ms"],
        ids,
    )
    good = _rows_at(probes, _latest(account_id, order, is_ok), _KEY_INFO, ids)
    evidence = _rows_at(
        probes,
        _latest(account_id, order, is_ok | (is_rejected & blocked_code)),
        ["outcome", "code", "seen_ip"],
        ids,
    )
    result = np.select([is_ok, transient], [0, 1], 2)
    latest_result = (
        pd.Series(result[latest_at], index=account_id[latest_at])
        .reindex(ids, fill_value=-1)
        .to_numpy(dtype=np.int64)
    )
    return latest, verdict, good, evidence, latest_result


_KEY_INFO = [
    "checked_at",
    "permissions",
    "ip_whitelist",
    "is_master",
    "sub_name",
    "uid",
    "key_created_at",
    "clock_offset_ms",
    "futures_permission_missing",
]


def _facts(
    accounts: pd.DataFrame, probes: pd.DataFrame, policy: HealthPolicy, now: datetime
) -> pd.DataFrame:
    """Return every derived fact per account, indexed by account_id, in `accounts` order."""
    _require(accounts, ACCOUNT_COLUMNS, "accounts")
    _require(probes, PROBE_COLUMNS, "probes")
    now = _utc_now(now)
    ids = pd.Index(accounts["account_id"].to_numpy(dtype="int64"), name="account_id")
    created_at = pd.Series(_utc(accounts["created_at"]).array, index=ids)
    paused = accounts["paused"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    unverified_flag = accounts["unverified"].astype("boolean").fillna(False).to_numpy(dtype=bool)

    latest, verdict, good, evidence, latest_result = _latest_checks(probes, ids, policy)
    latest_transient = latest_result == 1

    col: dict[str, Any] = {
        "label": _strings(accounts["label"]).array,
        "paused": paused,
        "unverified": unverified_flag,
        "created_at": created_at,
    }

    # Freshness: Healthchecks' up → grace → down, from the last success or the binding.
    last_sync_at = _utc(good["checked_at"])
    anchor = last_sync_at.fillna(created_at)
    stale_at = anchor + policy.freshness_period + policy.freshness_grace
    stale = (stale_at <= now).to_numpy()
    late = (anchor + policy.freshness_period <= now).to_numpy()
    col["last_sync_at"] = last_sync_at
    col["sync_age"] = now - last_sync_at
    # Like going_down_after: no deadline once it has passed, nor while nothing is watched.
    col["going_stale_at"] = stale_at.where(~stale & ~paused)
    col["freshness"] = pd.Categorical.from_codes(
        np.select([stale, late], [0, 1], 2), dtype=FRESHNESS_DTYPE
    )

    # Key info from the last success.
    known = last_sync_at.notna().to_numpy()
    permissions = [
        _names(v) if k else frozenset() for v, k in zip(good["permissions"], known, strict=True)
    ]
    needed = [_names(v) for v in accounts["scopes"]]
    futures_missing = (
        good["futures_permission_missing"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    )
    missing: dict[str, np.ndarray] = {}
    for scope, permission in SCOPE_PERMISSIONS.items():
        has = np.array(
            [_has_scope(scope, g, fm) for g, fm in zip(permissions, futures_missing, strict=True)],
            dtype=bool,
        )
        need = np.array([scope in n for n in needed], dtype=bool)
        # Categories: missing, granted, not needed; -1 (NA) before key info was read.
        state = np.select([~known, has, need], [-1, 1, 0], 2)
        col[scope] = pd.Categorical.from_codes(state, dtype=SCOPE_STATE_DTYPE)
        missing[permission] = known & need & ~has
    missing_scopes = [
        tuple(name for name, flag in zip(missing, flags, strict=True) if flag)
        for flags in zip(*missing.values(), strict=True)
    ]
    scope_missing = np.logical_or.reduce(list(missing.values()))
    withdrawal = known & np.array([TRANSFER in g for g in permissions], dtype=bool)
    trading = known & np.array(
        [not g.isdisjoint(TRADING_PERMISSIONS) for g in permissions], dtype=bool
    )
    whitelists = _objects(_strings(good["ip_whitelist"]))
    col["dangerous_permissions"] = [
        ", ".join(p for p in DANGEROUS_PERMISSIONS if p in g) if k else None
        for g, k in zip(permissions, known, strict=True)
    ]
    col["permissions"] = [
        ", ".join(sorted(g)) if k else None for g, k in zip(permissions, known, strict=True)
    ]

    # Whitelist against the platform's egress IPs; the last call from here takes precedence.
    evidence_kind = [
        _evidence(o, c)
        for o, c in zip(_objects(evidence["outcome"]), _objects(evidence["code"]), strict=True)
    ]
    seen_ip = _objects(_strings(evidence["seen_ip"]))
    summaries = [
        _whitelist_summary(w, bool(k), policy.egress_ips, ip, kind)
        for w, k, ip, kind in zip(whitelists, known, seen_ip, evidence_kind, strict=True)
    ]
    col["whitelist"] = [s[0] for s in summaries]
    col["seen_ip"] = seen_ip
    uncovered = [s[1] for s in summaries]

    key_created_at = _utc(good["key_created_at"])
    key_age = now - key_created_at
    col["key_created_at"] = key_created_at
    col["key_age_days"] = (key_age // pd.Timedelta(days=1)).astype("Int64")
    clock_offset = pd.to_numeric(good["clock_offset_ms"]).astype("Int64")
    col["clock_offset_ms"] = clock_offset
    # 30-day rule: counted from the last successful signed call.
    exposed = trading & np.array([w is None for w in whitelists], dtype=bool)
    col["expires_at"] = last_sync_at.where(exposed) + policy.inactivity_rule
    col["is_master"] = good["is_master"].astype("boolean")
    col["uid"] = _strings(good["uid"])
    col["sub_name"] = _strings(good["sub_name"])
    col["last_checked_at"] = _utc(latest["checked_at"])
    col["last_outcome"] = latest["outcome"].astype(OUTCOME_DTYPE)
    col["last_code"] = _strings(latest["code"])
    col["last_message"] = _strings(latest["message"])
    col["last_result"] = pd.Categorical.from_codes(latest_result, dtype=CHECK_RESULT_DTYPE)

    # Status: every condition that holds proposes a status; the worst one wins.
    rejected = (verdict["outcome"].astype(OUTCOME_DTYPE) == Outcome.REJECTED).to_numpy()
    verdict_codes = _objects(_strings(verdict["code"]))
    rejection_rank = np.array(
        [_CODE_STATUS.get(c, Status.REJECTED).rank for c in verdict_codes], dtype=np.int64
    )
    never_checked = latest["checked_at"].isna().to_numpy()
    verified = (last_sync_at >= created_at).fillna(False).to_numpy(dtype=bool)
    unverified = unverified_flag & ~verified
    risk_flags = {
        "withdrawal": withdrawal,
        "exposed": exposed,
        "ip_missing": known & np.array([bool(u) for u in uncovered], dtype=bool),
        "old_key": known & (key_age >= policy.rotation_age).to_numpy(),
        "clock": known
        & (clock_offset.abs() >= policy.clock_warn_ms).fillna(False).to_numpy(dtype=bool),
    }
    rank = np.where(rejected, rejection_rank, Status.OK.rank)
    for status, holds in (
        (Status.SCOPE_MISSING, scope_missing),
        (Status.UNVERIFIED, unverified),
        (Status.STALE, stale),
        (Status.DEGRADED, latest_transient),
        (Status.AT_RISK, np.logical_or.reduce(list(risk_flags.values()))),
        (Status.NEW, never_checked),
    ):
        rank = np.where(holds, np.minimum(rank, status.rank), rank)
    final = np.where(paused, Status.PAUSED.rank, rank)
    col["status"] = pd.Categorical.from_codes(final, dtype=STATUS_DTYPE)  # codes are ranks
    col["severity"] = final

    # Words: one sentence, one next step and the risks, per account.
    words = {
        "status": [SEVERITY[r] for r in rank],
        "paused": paused,
        "verdict_code": verdict_codes,
        "verdict_endpoint": _objects(_strings(verdict["endpoint"])),
        "verdict_offset_ms": _objects(pd.to_numeric(verdict["clock_offset_ms"]).astype("Int64")),
        "latest_code": _objects(col["last_code"]),
        "latest_offset_ms": _objects(pd.to_numeric(latest["clock_offset_ms"]).astype("Int64")),
        "latest_transient": latest_transient,
        "never_checked": never_checked,
        "missing_scopes": missing_scopes,
        "permissions": permissions,
        "futures_missing": futures_missing,
        "seen_ip": seen_ip,
        "uncovered": uncovered,
        **risk_flags,
        "expires_at": col["expires_at"].array.asi8,
        "key_age_days": _objects(col["key_age_days"]),
        "clock_offset_ms": _objects(clock_offset),
        "last_sync_at": last_sync_at.array.asi8,
        "created_at": created_at.array.asi8,
    }
    row_type = namedtuple("_Row", list(words))  # type: ignore[misc]
    explain = _Explainer(policy, now).explain
    # A healthy account needs no words of its own.
    texts = [
        explain(row_type._make(values)) if r != Status.OK.rank or pz else _HEALTHY
        for r, pz, values in zip(rank, paused, zip(*words.values(), strict=True), strict=True)
    ]
    for i, name in enumerate(("diagnosis", "hint", "risks", "risk_list")):
        col[name] = [t[i] for t in texts]

    frame = pd.DataFrame(
        {k: (v.array if isinstance(v, pd.Series) else v) for k, v in col.items()}, index=ids
    )
    return frame


def _present(value: Any) -> bool:
    """Return whether a scalar is neither None nor NA."""
    return value is not None and not pd.isna(value)


def _timestamp(ns: int) -> pd.Timestamp | None:
    """Return a UTC Timestamp from nanoseconds, None for NaT."""
    return None if ns == _NAT else pd.Timestamp(ns, tz="UTC")


@dataclass(frozen=True)
class _Explainer:
    """Turns one account's facts (a row of `words`) into a diagnosis, a hint and risks."""

    policy: HealthPolicy
    now: pd.Timestamp

    def explain(self, row: Any) -> tuple[str, str, str | None, tuple[Risk, ...]]:
        """Return (diagnosis, hint, the risks as text, the risks) for one account."""
        risks = self.risks(row)
        risk_text = "; ".join(r.what for r in risks) or None
        diagnosis, hint = self.words(row, risks)
        if row.paused:
            paused = f"Paused (last state: {diagnosis})"
            return paused, "Resume the account to check it.", risk_text, risks
        return diagnosis, hint, risk_text, risks

    def risks(self, row: Any) -> tuple[Risk, ...]:
        """Return every risk the account runs, gravest first."""
        found = []
        if row.withdrawal:
            found.append(
                Risk(
                    "withdrawal permission (Transfer) enabled",
                    f"Disable Transfer in {API_RESTRICTIONS}: bindwatch never withdraws.",
                )
            )
        if row.exposed:
            ips = ", ".join(self.policy.egress_ips) or row.seen_ip or "this server's IP"
            found.append(
                Risk(
                    f"trading without IP whitelist: KuCoin may delete it on "
                    f"{_timestamp(row.expires_at):%Y-%m-%d} if unused",
                    f"In {IP_RESTRICTION}, add {ips}: KuCoin deletes or disables trade-enabled "
                    f"keys without a whitelist after {self.policy.inactivity_rule.days} days "
                    "of inactivity.",
                )
            )
        if row.uncovered:
            ips = ", ".join(row.uncovered)
            found.append(
                Risk(
                    f"platform IP not whitelisted: {ips}",
                    f"In {IP_RESTRICTION}, add {ips}: checks from it are refused (400006).",
                )
            )
        if row.old_key:
            found.append(
                Risk(
                    f"key is {row.key_age_days} days old",
                    f"Create a new key in {API_MANAGEMENT} and rotate this account's "
                    f"credentials (rotation every {self.policy.rotation_age.days} days).",
                )
            )
        if row.clock:
            found.append(
                Risk(
                    f"clock {row.clock_offset_ms / 1000:+.1f} s off KuCoin's",
                    "Enable NTP time sync on this machine: KuCoin rejects requests more than "
                    f"{MAX_CLOCK_SKEW_MS // 1000} s off (400002).",
                )
            )
        return tuple(found)

    def words(self, row: Any, risks: tuple[Risk, ...]) -> tuple[str, str]:
        """Return (diagnosis, hint) for the status the rules chose."""
        status = row.status
        if status is Status.SCOPE_MISSING and row.missing_scopes:
            names = ", ".join(row.missing_scopes)
            hint = f"Enable {names} in {API_RESTRICTIONS}."
            if FUTURES in row.missing_scopes and row.futures_missing and FUTURES in row.permissions:
                hint = (
                    "Futures is enabled but KuCoin refused the futures balance (400007): "
                    "open the Futures account on KuCoin, then check again."
                )
            return f"Permission missing: {names}", hint
        if status.rank <= Status.CLOCK_SKEW.rank:
            return self.rejection_words(row)
        if status is Status.UNVERIFIED:
            return (
                "Saved without a passing check",
                "Run a check on this account; if it fails, follow the fix it shows.",
            )
        if status is Status.STALE:
            return self.stale_words(row)
        if status is Status.DEGRADED:
            found = _transient_diagnosis(row.latest_code)
            code = f" ({row.latest_code})" if row.latest_code else ""
            hint = found.fix
            if found is LATE_REQUEST and _present(row.latest_offset_ms):
                hint = f"{_offset_note(row.latest_offset_ms)} {hint}"
            return f"{found.title}{code}, retrying", hint
        if status is Status.AT_RISK:
            return f"Works, but: {'; '.join(r.what for r in risks)}", _fixes(risks)
        if status is Status.NEW:
            return "Not checked yet", "Run the first check on this account."
        return _HEALTHY[:2]

    def stale_words(self, row: Any) -> tuple[str, str]:
        """Return (diagnosis, hint) for an account without a recent successful sync."""
        run = "Run a check now, and make sure scheduled checks are running."
        if row.never_checked:
            age = format_age(self.now - _timestamp(row.created_at))
            return f"Never checked since it was bound {age} ago", run
        fix = _transient_diagnosis(row.latest_code).fix if row.latest_transient else run
        last_sync_at = _timestamp(row.last_sync_at)
        if last_sync_at is None:
            age = format_age(self.now - _timestamp(row.created_at))
            return f"Never synced since it was bound {age} ago", fix
        return f"No successful sync for {format_age(self.now - last_sync_at)}", fix

    def rejection_words(self, row: Any) -> tuple[str, str]:
        """Return (diagnosis, hint) for a key KuCoin rejected."""
        status, code = row.status, row.verdict_code
        found = diagnose(code)
        title = found.title if code else "Rejected by KuCoin"
        diagnosis = f"{title} ({code})" if code else title
        hint = found.fix
        if status is Status.IP_BLOCKED and row.seen_ip:
            diagnosis = f"{title}: KuCoin saw {row.seen_ip} ({code})"
            hint = f"In {IP_RESTRICTION}, add {row.seen_ip} (the IP KuCoin saw)."
        elif status is Status.SCOPE_MISSING:
            permission = _endpoint_permission(row.verdict_endpoint)
            if permission:
                diagnosis = f"{title}: {permission} ({code})"
                hint = f"Enable {permission} in {API_RESTRICTIONS}."
        elif status is Status.CLOCK_SKEW and _present(row.verdict_offset_ms):
            # Only while the clocks disagree: a 400002 with agreeing clocks is transient.
            hint = f"{_offset_note(row.verdict_offset_ms)} {hint}"
        elif status is Status.KEY_UNKNOWN:
            expires_at = _timestamp(row.expires_at)
            if expires_at is not None and expires_at <= self.now:
                since = expires_at - self.policy.inactivity_rule
                hint = (
                    f"It was trade-enabled without an IP whitelist and unused since "
                    f"{since:%Y-%m-%d}: KuCoin's {self.policy.inactivity_rule.days}-day rule has "
                    f"likely deleted it. {hint}"
                )
        return diagnosis, hint


def _transient_diagnosis(code: str | None) -> Diagnosis:
    """Return the diagnosis of a transient failure (a code KuCoin sent, or none)."""
    if code == TIMESTAMP_CODE:  # transient only while the clocks agree: the request was late
        return LATE_REQUEST
    return diagnose(code) if is_transient_code(code) else UNREACHABLE


def _offset_note(clock_offset_ms: int) -> str:
    """Return the measured clock offset as a sentence."""
    return f"Measured offset: {clock_offset_ms / 1000:+.1f} s (KuCoin minus this machine)."


def _fixes(risks: tuple[Risk, ...]) -> str:
    """Return the fixes of several risks as one hint, gravest first, numbered when several."""
    if len(risks) == 1:
        return risks[0].fix
    return " ".join([f"{i}) {risk.fix}" for i, risk in enumerate(risks, start=1)])


def _endpoint_permission(path: str | None) -> str | None:
    """Return the permission KuCoin requires for an endpoint's path."""
    for endpoint in ENDPOINTS.values():
        if endpoint.path == path:
            return endpoint.permission
    return None


FLEET_COLUMNS: dict[str, object] = {
    "account_id": "Int64",
    "label": "string",
    "status": STATUS_DTYPE,
    "severity": "Int64",
    "diagnosis": "string",
    "hint": "string",
    "risks": "string",
    "spot": SCOPE_STATE_DTYPE,
    "futures": SCOPE_STATE_DTYPE,
    "margin": SCOPE_STATE_DTYPE,
    "dangerous_permissions": "string",
    "permissions": "string",
    "whitelist": "string",
    "seen_ip": "string",
    "last_sync_at": _DT,
    "sync_age": "timedelta64[ns]",
    "going_stale_at": _DT,
    "freshness": FRESHNESS_DTYPE,
    "key_created_at": _DT,
    "key_age_days": "Int64",
    "expires_at": _DT,
    "clock_offset_ms": "Int64",
    "is_master": "boolean",
    "uid": "string",
    "sub_name": "string",
    "last_outcome": OUTCOME_DTYPE,
    "last_result": CHECK_RESULT_DTYPE,
    "last_code": "string",
    "last_message": "string",
    "last_checked_at": _DT,
    "paused": "boolean",
    "unverified": "boolean",
}


def fleet_health(
    accounts: pd.DataFrame, probes: pd.DataFrame, policy: HealthPolicy, now: datetime
) -> pd.DataFrame:
    """Return one row per account, worst status first (FLEET_COLUMNS: names and dtypes)."""
    facts = _facts(accounts, probes, policy, now).reset_index()
    fleet = facts[list(FLEET_COLUMNS)].astype(FLEET_COLUMNS)
    fleet = fleet.sort_values(["severity", "label", "account_id"], kind="stable")
    return fleet.reset_index(drop=True)


def _one_account(account: Mapping[str, Any] | pd.Series) -> pd.DataFrame:
    """Return a one-row accounts frame."""
    row = {c: account[c] for c in ACCOUNT_COLUMNS}
    row["scopes"] = list(_names(row["scopes"]))
    return pd.DataFrame([row])


def account_health(
    account: Mapping[str, Any] | pd.Series,
    probes: pd.DataFrame,
    policy: HealthPolicy,
    now: datetime,
) -> pd.Series:
    """Return one account's fleet_health row (probes of other accounts are ignored)."""
    mine = probes[probes["account_id"] == account["account_id"]]
    return fleet_health(_one_account(account), mine, policy, now).iloc[0]


@dataclass(frozen=True)
class CheckAssessment:
    """What the rules make of one check of a key, for an account that needs some scopes."""

    status: Status  # what the fleet shows for the account once this check is recorded
    diagnosis: str
    hint: str
    risks: tuple[Risk, ...]  # gravest first, as in the fleet's `risks`
    transient: bool  # a failure a retry may fix
    failure: Diagnosis | None  # what KuCoin's refusal means; None when the key works


def probe_frame(result: ProbeResult, account_id: int = 0) -> pd.DataFrame:
    """Return one check as a one-row probes frame (PROBE_COLUMNS)."""
    row: dict[str, Any] = {name: getattr(result, name, None) for name in PROBE_COLUMNS}
    row.update(account_id=account_id, outcome=result.outcome.value)
    row["permissions"] = list(result.permissions)
    return pd.DataFrame([row])


def assess_check(
    result: ProbeResult, scopes: Iterable[str] | str, policy: HealthPolicy
) -> CheckAssessment:
    """Return the status, words and risks of an account bound with this check just now."""
    # The same rules as the fleet, on an account bound at the instant of the check: binding
    # says what the Fleet will say a second later.
    account = {
        "account_id": 0,
        "label": "",
        "scopes": list(_names(scopes)),
        "paused": False,
        "unverified": False,
        "created_at": result.checked_at,
    }
    facts = _facts(pd.DataFrame([account]), probe_frame(result), policy, result.checked_at)
    row = facts.iloc[0]
    return CheckAssessment(
        status=Status(row["status"]),
        diagnosis=row["diagnosis"],
        hint=row["hint"],
        risks=row["risk_list"],
        transient=is_transient(result.outcome, result.code, result.clock_offset_ms, policy),
        failure=failure_diagnosis(result, policy),
    )


def account_status(
    account: Mapping[str, Any] | pd.Series,
    probes: pd.DataFrame,
    policy: HealthPolicy,
    now: datetime,
) -> Status:
    """Return one account's status."""
    return Status(account_health(account, probes, policy, now)["status"])


def freshness(
    accounts: pd.DataFrame, probes: pd.DataFrame, policy: HealthPolicy, now: datetime
) -> pd.DataFrame:
    """Return per account: last sync, its age, period, grace, going_stale_at and freshness."""
    facts = _facts(accounts, probes, policy, now).reset_index()
    frame = facts[["account_id", "last_sync_at", "sync_age", "going_stale_at", "freshness"]]
    frame = frame.assign(period=policy.freshness_period, grace=policy.freshness_grace)
    columns = ["account_id", "last_sync_at", "sync_age", "period", "grace", "going_stale_at"]
    return frame[[*columns, "freshness"]].astype({"account_id": "Int64"})


def status_counts(fleet: pd.DataFrame, include_empty: bool = False) -> pd.DataFrame:
    """Return the number of accounts per status, worst first."""
    counts = fleet["status"].astype(STATUS_DTYPE).value_counts(sort=False)
    frame = pd.DataFrame(
        {
            "status": pd.Categorical(counts.index.astype(str), dtype=STATUS_DTYPE),
            "count": counts.to_numpy(),
        }
    ).astype({"count": "Int64"})
    if not include_empty:
        frame = frame[frame["count"] > 0]
    return frame.sort_values("status").reset_index(drop=True)


def fleet_incident(
    fleet: pd.DataFrame, policy: HealthPolicy, now: datetime
) -> FleetIncident | None:
    """Return the incident when most recently checked accounts fail the same way, else None."""
    # Counts non-paused accounts whose latest check falls within the incident window: with a
    # rolling schedule, accounts not checked lately are no evidence either way. Transient
    # failures (timeouts, 5xx, 429000, CDN pages) count as one way of failing.
    now = _utc_now(now)
    recent = fleet[
        ~fleet["paused"].astype("boolean").fillna(False)
        & (fleet["last_checked_at"] > now - policy.incident_window)
        & (fleet["last_checked_at"] <= now)
    ]
    checked = len(recent)
    if checked < policy.incident_min_accounts:
        return None
    codes = [_text(c) for c in recent["last_code"]]
    results = recent["last_result"].astype(CHECK_RESULT_DTYPE)
    kinds = [
        "unreachable" if r == "retrying" else (c or "rejected") if r == "rejected" else None
        for r, c in zip(results, codes, strict=True)
    ]
    failing = pd.Series(kinds, index=recent.index, dtype="object").dropna()
    if failing.empty:
        return None
    counts = failing.value_counts()
    kind, count = counts.index[0], int(counts.iloc[0])
    if count < policy.incident_min_accounts or count < policy.incident_share * checked:
        return None
    members = recent.loc[failing.index[failing == kind]]
    since = members["last_checked_at"].min().to_pydatetime()
    ids = frozenset(int(i) for i in members["account_id"])
    if kind == "unreachable":
        member_codes = pd.Series([_text(c) for c in members["last_code"]], dtype="object")
        common = member_codes.dropna().mode()
        code = common.iloc[0] if not common.empty else None
        found = _transient_diagnosis(code)
        return FleetIncident(
            Status.DEGRADED, code, found.title, count, checked, since, found.fix, ids
        )
    code = None if kind == "rejected" else kind
    status = _CODE_STATUS.get(code, Status.REJECTED)
    title = diagnose(code).title if code else "Rejected by KuCoin"
    fix = diagnose(code).fix if code else "Open one of these accounts to read what KuCoin said."
    return FleetIncident(status, code, title, count, checked, since, fix, ids)
