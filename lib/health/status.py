"""An account's status: the statuses worst first, and which condition proposes which.

Status, one per account, worst wins (Status.rank: 0 is worst):

    FROZEN > UNREADABLE > KEY_UNKNOWN > WRONG_SECRET > WRONG_PASSPHRASE > BAD_REQUEST_HEADERS
    > REJECTED > IP_BLOCKED > SCOPE_MISSING > CLOCK_SKEW > UNVERIFIED > STALE > DEGRADED > AT_RISK
    > NEW > PAUSED > OK

KuCoin's latest verdict on the key proposes its code's status (`rejection_status`); every
condition in PROPOSED_BY that holds proposes its own; the worst proposal wins, and PAUSED
overrides them all. Failing (`Status.failing`, red): every status from FROZEN to STALE.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from lib.health.checks import IP_BLOCKED_CODE, UNREADABLE_CODE
from lib.kucoin.diagnosis import TIMESTAMP_CODE


class Status(enum.StrEnum):
    """An account's health; `rank` orders them worst (0) to best."""

    FROZEN = "FROZEN"  # 411100
    UNREADABLE = "UNREADABLE"  # our stored credentials fail their integrity check
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
    Status.UNREADABLE: "Credentials unreadable",
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

_CODE_STATUS: dict[str, Status] = {
    "411100": Status.FROZEN,
    UNREADABLE_CODE: Status.UNREADABLE,
    "400003": Status.KEY_UNKNOWN,
    "400005": Status.WRONG_SECRET,
    "400004": Status.WRONG_PASSPHRASE,
    "400001": Status.BAD_REQUEST_HEADERS,
    IP_BLOCKED_CODE: Status.IP_BLOCKED,
    "400007": Status.SCOPE_MISSING,
    TIMESTAMP_CODE: Status.CLOCK_SKEW,
}

# Each condition that holds proposes its status (the names are AccountFacts fields).
PROPOSED_BY: tuple[tuple[str, Status], ...] = (
    ("scope_missing", Status.SCOPE_MISSING),
    ("unverified", Status.UNVERIFIED),
    ("stale", Status.STALE),
    ("latest_transient", Status.DEGRADED),
    ("at_risk", Status.AT_RISK),
    ("never_checked", Status.NEW),
)


def rejection_status(code: str | None) -> Status:
    """Return the status a KuCoin rejection with this code stands for (REJECTED if unlisted)."""
    return _CODE_STATUS.get(code or "", Status.REJECTED)


def worst_status(verdict: Status, conditions: Mapping[str, bool]) -> Status:
    """Return the worst of the verdict's status and those the holding conditions propose."""
    proposed = [status for name, status in PROPOSED_BY if conditions[name]]
    return min([verdict, *proposed], key=lambda status: status.rank)
