"""What a key covers: the permissions an account needs, and the platform IPs it whitelists.

Whitelist coverage: KuCoin masks entries ("203.**.154"), showing first and last octet only,
so a match is probable, never certain ("covered (masked match)"); IPv6, CIDR or several of
our IPs behind one mask are "unknown"; an empty whitelist lets every IP in. What KuCoin did
with the last signed call from an IP (accepted, or 400006 naming it) outranks the masks.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from lib.health.checks import present
from lib.kucoin.constants import (
    EARN,
    FUTURES,
    INNER_TRANSFER,
    MARGIN,
    SPOT,
    TRADING_PERMISSIONS,
    TRANSFER,
)

# --- Permissions -------------------------------------------------------------------------

SCOPE_PERMISSIONS: dict[str, str] = {"spot": SPOT, "futures": FUTURES, "margin": MARGIN}
DANGEROUS_PERMISSIONS = (TRANSFER,)  # withdrawals
INFO_PERMISSIONS = (INNER_TRANSFER, EARN)  # moves funds between own accounts only
# One mark per permission state, wherever a key's permissions are listed.
PERMISSION_MARKS: dict[str, str] = {
    "missing": "✗",  # needed, not granted
    "unknown": "?",  # KuCoin's key info was never read
    "dangerous": "⚠",  # granted, and lets the key withdraw
    "granted": "✓",
    "info": "✓",  # granted, not needed, harmless
    "not needed": "–",  # neither needed nor granted
}


def names(values: object) -> frozenset[str]:
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


def text(value: object) -> str | None:
    """Return a string, or None for None/NA/empty."""
    if not present(value):
        return None
    stripped = str(value).strip()
    return stripped or None


def has_scope(scope: str, permissions: frozenset[str], futures_missing: bool) -> bool:
    """Return whether the key grants what `scope` needs."""
    if scope == "futures" and futures_missing:
        return False
    return SCOPE_PERMISSIONS[scope] in permissions


def grants_withdrawal(permissions: frozenset[str]) -> bool:
    """Return whether the key may withdraw funds."""
    return any(p in permissions for p in DANGEROUS_PERMISSIONS)


def trades(permissions: frozenset[str]) -> bool:
    """Return whether the key may trade (what KuCoin's 30-day rule applies to)."""
    return not permissions.isdisjoint(TRADING_PERMISSIONS)


# --- Whitelist coverage ------------------------------------------------------------------

_MASKED = re.compile(r"^(\d{1,3})\.(?:\*+\.)+(\d{1,3})$")  # "203.**.154"
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(value: str | None) -> Address | None:
    """Return the parsed IP address, or None when `value` is not one."""
    try:
        return ipaddress.ip_address(value) if value else None
    except ValueError:
        return None


def _ends(address: ipaddress.IPv4Address) -> tuple[int, int]:
    """Return an IPv4 address's first and last octet: all a masked entry shows."""
    return address.packed[0], address.packed[-1]


def whitelist_entries(whitelist: str | None) -> tuple[str, ...]:
    """Return a whitelist's entries as KuCoin shows them (masked), in its order."""
    return tuple(e.strip() for e in (whitelist or "").split(",") if e.strip())


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
    texts = whitelist_entries(whitelist)
    for entry in texts:
        match = _MASKED.match(entry)
        address = _address(entry)
        if match:
            key = (int(match.group(1)), int(match.group(2)))
            masked[key] = (*masked.get(key, ()), entry)
        elif address is not None:
            exact.add(address)
        else:
            unreadable.append(entry)
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
def ip_coverage(
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
def whitelist_summary(
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
    rows = ip_coverage(whitelist, known, egress_ips, evidence_ip, evidence)
    platform = [r for r in rows if r[1]]
    if not platform:
        return f"{count} IP{'s' if count > 1 else ''} whitelisted", ()
    missing = tuple(r[0] for r in platform if r[2] == "not covered")
    covered = sum(r[2].startswith("covered") for r in platform)
    unknown = sum(r[2] == "unknown" for r in platform)
    summary = f"{covered}/{len(platform)} platform IPs covered"
    return (f"{summary}, {unknown} unknown" if unknown else summary), missing
