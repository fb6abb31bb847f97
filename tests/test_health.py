"""Health rules: a table of cases per rule, with a fixed `now`."""

from __future__ import annotations

import dataclasses
import itertools
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lib.health.account import (
    PERMISSION_STATE_DTYPE,
    account_health,
    permission_coverage,
    whitelist_coverage,
)
from lib.health.assessment import assess_check
from lib.health.checks import IP_BLOCKED_CODE, check_result, is_transient
from lib.health.coverage import PERMISSION_MARKS
from lib.health.facts import NAT, AccountFacts, nanoseconds
from lib.health.fleet import (
    FLEET_COLUMNS,
    age_texts,
    check_results,
    fleet_at,
    fleet_health,
    fleet_words,
    is_failing,
    judge_fleet,
    status_counts,
)
from lib.health.incident import fleet_incident
from lib.health.policy import HealthPolicy
from lib.health.risks import RISK_FLAGS
from lib.health.status import SEVERITY, Status, rejection_status, worst_status
from lib.health.wording import HEALTHY, Explainer, format_age
from lib.kucoin.constants import ENDPOINTS
from lib.kucoin.diagnosis import (
    API_MANAGEMENT,
    LATE_REQUEST,
    OVERLOADED,
    UNREACHABLE,
    diagnose,
)
from lib.kucoin.probe_result import Outcome, ProbeResult

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
EGRESS_A, EGRESS_B = "203.0.113.154", "198.51.100.7"
POLICY = HealthPolicy(egress_ips=(EGRESS_A, EGRESS_B))
BOTH_MASKED = "203.**.154,198.**.7"


def ago(**delta: float) -> datetime:
    """Return NOW minus a timedelta."""
    return NOW - timedelta(**delta)


def probe(account_id: int = 1, minutes_ago: float = 5, **fields: Any) -> dict[str, Any]:
    """Return one probe row; an OK check of a healthy spot key unless told otherwise."""
    outcome = Outcome(fields.pop("outcome", "ok"))
    if outcome is Outcome.OK:
        defaults: dict[str, Any] = {
            "permissions": ("General", "Spot"),
            "ip_whitelist": BOTH_MASKED,
            "is_master": True,
            "uid": "165111215",
            "key_created_at": ago(days=30),
            "clock_offset_ms": 20,
            "seen_ip": EGRESS_A,
        }
    else:
        defaults = {"seen_ip": EGRESS_A}
    result = ProbeResult(
        checked_at=ago(minutes=minutes_ago),
        outcome=outcome,
        latency_ms=120,
        **{**defaults, **fields},
    )
    row = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    row["permissions"] = list(row["permissions"])
    return {"account_id": account_id, **row}


def rejected(code: str, account_id: int = 1, minutes_ago: float = 5, **fields: Any) -> dict:
    """Return a probe KuCoin rejected with `code`."""
    message = fields.pop("message", f"KuCoin said {code}")
    return probe(account_id, minutes_ago, outcome="rejected", code=code, message=message, **fields)


def unreachable(account_id: int = 1, minutes_ago: float = 5, **fields: Any) -> dict:
    """Return a probe that got no usable answer."""
    fields.setdefault("message", "timeout")
    return probe(account_id, minutes_ago, outcome="unreachable", **fields)


def account(account_id: int = 1, **fields: Any) -> dict[str, Any]:
    """Return one account row: a spot account bound ten days ago."""
    row = {
        "account_id": account_id,
        "label": f"account {account_id}",
        "scopes": ["spot"],
        "paused": False,
        "unverified": False,
        "created_at": ago(days=10),
    }
    return {**row, **fields}


def frames(accounts: list[dict], probes: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (accounts, probes) frames as the store provides them."""
    columns = ["account_id", *(f.name for f in dataclasses.fields(ProbeResult))]
    return pd.DataFrame(accounts), pd.DataFrame(probes, columns=columns)


def health(
    probes: list[dict],
    now: datetime = NOW,
    policy: HealthPolicy = POLICY,
    **account_fields: Any,
) -> pd.Series:
    """Return account 1's fleet_health row."""
    accounts, history = frames([account(**account_fields)], probes)
    return fleet_health(accounts, history, policy, now).iloc[0]


# --- Status ------------------------------------------------------------------------------

STATUS_CASES = [
    # (account fields, probes, status, diagnosis)
    ({"created_at": ago(minutes=10)}, [], Status.NEW, "Not checked yet"),
    ({}, [probe()], Status.OK, "Key works"),
    (
        {},
        [probe(minutes_ago=30), unreachable()],
        Status.DEGRADED,
        "KuCoin unreachable, retrying",
    ),
    (
        {},
        [probe(minutes_ago=30), rejected("429000")],
        Status.DEGRADED,
        "KuCoin overloaded (429000), retrying",
    ),
    (
        {},
        [
            probe(minutes_ago=30),
            rejected("429000", rate_limited_pool="Management", rate_limit_reset_ms=12_000),
        ],
        Status.DEGRADED,
        "Rate limited: the Management pool of this UID ran out, resets ",
    ),
    (
        {},
        [probe(minutes_ago=30), unreachable(code="deadline")],
        Status.DEGRADED,
        "Check timed out (deadline), retrying",
    ),
    (
        {},
        [probe(minutes_ago=30), rejected("credentials-unreadable")],
        Status.UNREADABLE,
        "Credentials cannot be read (credentials-unreadable)",
    ),
    (
        {},
        [probe(minutes_ago=30), unreachable(code="500000", http_status=503)],
        Status.DEGRADED,
        "KuCoin internal error (500000), retrying",
    ),
    (  # never succeeded, only transient failures, still within grace of binding
        {"created_at": ago(minutes=20)},
        [unreachable(minutes_ago=15), unreachable()],
        Status.DEGRADED,
        "KuCoin unreachable, retrying",
    ),
    ({}, [probe(minutes_ago=120)], Status.STALE, "No successful sync for 2 h 0 min"),
    (
        {},
        [probe(minutes_ago=80), unreachable()],
        Status.STALE,
        "No successful sync for 1 h 20 min",
    ),
    ({}, [], Status.STALE, "Never checked since it was bound 10 d 0 h ago"),
    (
        {"created_at": ago(hours=3)},
        [unreachable()],
        Status.STALE,
        "Never synced since it was bound 3 h 0 min ago",
    ),
    ({}, [rejected("400003")], Status.KEY_UNKNOWN, "API key not found (400003)"),
    ({}, [rejected("400004")], Status.WRONG_PASSPHRASE, "Wrong API passphrase (400004)"),
    ({}, [rejected("400005")], Status.WRONG_SECRET, "Wrong API secret (400005)"),
    (
        {},
        [rejected("400001")],
        Status.BAD_REQUEST_HEADERS,
        "Missing or malformed authentication headers (400001)",
    ),
    (
        {},
        [rejected("400006", seen_ip="192.0.2.44")],
        Status.IP_BLOCKED,
        "IP not whitelisted: KuCoin saw 192.0.2.44 (400006)",
    ),
    (
        {},
        [rejected("400007", endpoint="/api/v1/user/api-key")],
        Status.SCOPE_MISSING,
        "Permission missing: General (400007)",
    ),
    (
        {"scopes": ["spot", "futures"]},
        [probe(permissions=("General", "Spot"))],
        Status.SCOPE_MISSING,
        "Permission missing: Futures",
    ),
    (
        {"scopes": ["spot", "futures"]},
        [probe(permissions=("General", "Spot", "Futures"), futures_permission_missing=True)],
        Status.SCOPE_MISSING,
        "Permission missing: Futures",
    ),
    (
        {"scopes": ["margin"]},
        [probe(permissions=("General", "Spot"))],
        Status.SCOPE_MISSING,
        "Permission missing: Margin",
    ),
    ({}, [rejected("400002")], Status.CLOCK_SKEW, "Clock out of sync (400002)"),  # unmeasured
    (
        {},
        [rejected("400002", clock_offset_ms=9_000)],
        Status.CLOCK_SKEW,
        "Clock out of sync (400002)",
    ),
    (
        {},
        [rejected("400002", clock_offset_ms=-3_000)],  # at the clock warning threshold
        Status.CLOCK_SKEW,
        "Clock out of sync (400002)",
    ),
    (  # the clocks agree: the request was slow in transit, a retry may pass
        {},
        [probe(minutes_ago=30), rejected("400002", clock_offset_ms=0)],
        Status.DEGRADED,
        "Request reached KuCoin too late (400002), retrying",
    ),
    (
        {"created_at": ago(minutes=20)},
        [rejected("400002", clock_offset_ms=2_999)],
        Status.DEGRADED,
        "Request reached KuCoin too late (400002), retrying",
    ),
    (
        {},
        [probe(minutes_ago=80), rejected("400002", clock_offset_ms=40)],
        Status.STALE,
        "No successful sync for 1 h 20 min",
    ),
    ({}, [rejected("411100")], Status.FROZEN, "Account frozen (411100)"),
    ({}, [rejected("400008")], Status.REJECTED, "Old API key version (400008)"),
    (
        {"paused": True},
        [rejected("400004")],
        Status.PAUSED,
        "Paused (last state: Wrong API passphrase (400004))",
    ),
    ({"paused": True}, [probe(minutes_ago=600)], Status.PAUSED, "Paused (last state: No"),
    ({"unverified": True, "created_at": ago(minutes=10)}, [], Status.UNVERIFIED, "Saved without"),
    (
        {"unverified": True, "created_at": ago(minutes=20)},
        [unreachable()],
        Status.UNVERIFIED,
        "Saved without a passing check",
    ),
    ({"unverified": True}, [probe()], Status.OK, "Key works"),  # verified since
]


@pytest.mark.parametrize(
    ("fields", "probes", "status", "diagnosis"),
    STATUS_CASES,
    ids=[f"{c[2].value}-{i}" for i, c in enumerate(STATUS_CASES)],
)
def test_status_and_diagnosis(
    fields: dict, probes: list[dict], status: Status, diagnosis: str
) -> None:
    row = health(probes, **fields)
    assert row["status"] == status
    assert row["severity"] == status.rank
    assert row["diagnosis"].startswith(diagnosis)


def test_every_status_has_a_case() -> None:
    covered = {case[2] for case in STATUS_CASES} | {case[3] for case in WORST_WINS_CASES}
    assert covered | {Status.AT_RISK} == set(Status)  # AT_RISK: AT_RISK_CASES


def test_severity_order_is_documented_worst_first() -> None:
    assert [s.value for s in SEVERITY] == [
        "FROZEN",
        "UNREADABLE",
        "KEY_UNKNOWN",
        "WRONG_SECRET",
        "WRONG_PASSPHRASE",
        "BAD_REQUEST_HEADERS",
        "REJECTED",
        "IP_BLOCKED",
        "SCOPE_MISSING",
        "CLOCK_SKEW",
        "UNVERIFIED",
        "STALE",
        "DEGRADED",
        "AT_RISK",
        "NEW",
        "PAUSED",
        "OK",
    ]
    assert Status.FROZEN.rank == 0 and Status.OK.rank == len(Status) - 1
    assert (Status.WRONG_PASSPHRASE.level, Status.DEGRADED.level) == ("error", "warning")
    assert (Status.PAUSED.level, Status.NEW.level, Status.OK.level) == ("info", "info", "ok")


AT_RISK_CASES = [
    # (probe fields, account fields, risk)
    (
        {"permissions": ("General", "Spot", "Transfer")},
        {},
        "withdrawal permission (Transfer) enabled",
    ),
    (
        {"ip_whitelist": None},
        {},
        "trading without IP whitelist: KuCoin may delete it on 2025-07-01 if unused",
    ),
    ({"key_created_at": ago(days=91)}, {}, "key is 91 days old"),
    ({"key_created_at": ago(days=90)}, {}, "key is 90 days old"),
    ({"ip_whitelist": "203.**.154"}, {}, f"platform IP not whitelisted: {EGRESS_B}"),
    ({"clock_offset_ms": 3_200}, {}, "clock +3.2 s off KuCoin's"),
    ({"clock_offset_ms": -3_000}, {}, "clock -3.0 s off KuCoin's"),
]


@pytest.mark.parametrize(("probe_fields", "fields", "risk"), AT_RISK_CASES)
def test_each_at_risk_reason(probe_fields: dict, fields: dict, risk: str) -> None:
    row = health([probe(**probe_fields)], **fields)
    assert row["status"] == Status.AT_RISK
    assert row["risks"] == risk
    assert row["diagnosis"] == f"Works, but: {risk}"


@pytest.mark.parametrize(
    ("probe_fields", "fields"),
    [
        ({"clock_offset_ms": 2_999}, {}),
        ({"clock_offset_ms": -2_999}, {}),
        ({"key_created_at": ago(days=89)}, {}),
        # Read-only: no 30-day rule without a whitelist.
        ({"permissions": ("General",), "ip_whitelist": None}, {"scopes": []}),
        ({"permissions": ("General", "Spot", "InnerTransfer", "Earn")}, {}),  # info, not danger
    ],
)
def test_below_the_thresholds_is_not_at_risk(probe_fields: dict, fields: dict) -> None:
    row = health([probe(**probe_fields)], **fields)
    assert row["status"] == Status.OK
    assert pd.isna(row["risks"])


def test_at_risk_lists_every_reason_gravest_first() -> None:
    row = health(
        [
            probe(
                permissions=("General", "Spot", "Transfer"),
                ip_whitelist=None,
                key_created_at=ago(days=200),
                clock_offset_ms=4_000,
            )
        ]
    )
    assert row["risks"].split("; ") == [
        "withdrawal permission (Transfer) enabled",
        "trading without IP whitelist: KuCoin may delete it on 2025-07-01 if unused",
        "key is 200 days old",
        "clock +4.0 s off KuCoin's",
    ]
    assert "Disable Transfer" in row["hint"]


def test_an_at_risk_diagnosis_names_every_risk_and_the_hint_every_fix_gravest_first() -> None:
    row = health([probe(permissions=("General", "Spot", "Transfer"), key_created_at=ago(days=783))])
    assert row["status"] == Status.AT_RISK
    assert row["diagnosis"] == (
        "Works, but: withdrawal permission (Transfer) enabled; key is 783 days old"
    )
    assert row["risks"] == "withdrawal permission (Transfer) enabled; key is 783 days old"
    assert row["hint"].startswith(f"1) Disable Transfer in {API_MANAGEMENT}")
    assert "2) Create a new key" in row["hint"]


def test_a_failing_account_keeps_every_risk_beside_its_own_diagnosis() -> None:
    row = health(
        [probe(permissions=("General", "Spot", "Transfer"), key_created_at=ago(days=783))],
        scopes=["spot", "futures"],
    )
    assert (row["status"], row["diagnosis"]) == (
        Status.SCOPE_MISSING,
        "Permission missing: Futures",
    )
    assert row["risks"] == "withdrawal permission (Transfer) enabled; key is 783 days old"


WORST_WINS_CASES = [
    # (account fields, probes, why, status)
    (
        {},
        [probe(minutes_ago=30), rejected("400004")],
        "a rejection after a success",
        Status.WRONG_PASSPHRASE,
    ),
    (
        {},
        [rejected("400004", minutes_ago=30), unreachable()],
        "a timeout does not clear a rejection",
        Status.WRONG_PASSPHRASE,
    ),
    (
        {},
        [rejected("400004", minutes_ago=30), probe()],
        "a later success clears a rejection",
        Status.OK,
    ),
    (
        {},
        [probe(minutes_ago=120, permissions=("General", "Spot", "Transfer"))],
        "stale beats at risk",
        Status.STALE,
    ),
    (
        {},
        [probe(minutes_ago=30, permissions=("General", "Spot", "Transfer")), unreachable()],
        "degraded beats at risk",
        Status.DEGRADED,
    ),
    (
        {"scopes": ["futures"]},
        [probe(permissions=("General", "Spot", "Transfer"))],
        "scope missing beats at risk",
        Status.SCOPE_MISSING,
    ),
    (
        {"scopes": ["futures"]},
        [probe(minutes_ago=30, permissions=("General", "Spot")), rejected("400006")],
        "ip blocked beats scope missing",
        Status.IP_BLOCKED,
    ),
    (
        {"unverified": True},
        [rejected("400005")],
        "a rejection beats unverified",
        Status.WRONG_SECRET,
    ),
    (
        {"unverified": True, "created_at": ago(days=2)},
        [],
        "unverified beats stale",
        Status.UNVERIFIED,
    ),
    (
        {},
        [rejected("411100", minutes_ago=30), rejected("400003")],
        "the latest verdict decides, not the worst in history",
        Status.KEY_UNKNOWN,
    ),
    (
        {},
        [rejected("400004", minutes_ago=30), rejected("400002", clock_offset_ms=15)],
        "a late request does not clear a rejection",
        Status.WRONG_PASSPHRASE,
    ),
]


@pytest.mark.parametrize(
    ("fields", "probes", "why", "status"), WORST_WINS_CASES, ids=[c[2] for c in WORST_WINS_CASES]
)
def test_worst_status_wins(fields: dict, probes: list[dict], why: str, status: Status) -> None:
    assert health(probes, **fields)["status"] == status


@pytest.mark.parametrize(
    ("now", "status", "state"),
    [
        (ago(minutes=0) + timedelta(minutes=59), Status.DEGRADED, "fresh"),
        (NOW + timedelta(minutes=60), Status.DEGRADED, "late"),
        (NOW + timedelta(minutes=75) - timedelta(microseconds=1), Status.DEGRADED, "late"),
        (NOW + timedelta(minutes=75), Status.STALE, "stale"),
    ],
)
def test_degraded_turns_stale_exactly_at_period_plus_grace(
    now: datetime, status: Status, state: str
) -> None:
    # Last success at NOW; transient failures since.
    probes = [probe(minutes_ago=0), unreachable(minutes_ago=-(now - NOW).total_seconds() / 60)]
    row = health(probes, now=now)
    assert (row["status"], row["freshness"]) == (status, state)
    if status is Status.STALE:
        assert pd.isna(row["going_stale_at"])  # it went stale: no deadline left
    else:
        assert row["going_stale_at"] == NOW + timedelta(minutes=75)


GOING_STALE_CASES = [
    # (account fields, probes, going_stale_at or None, why)
    ({"created_at": ago(minutes=10)}, [], ago(minutes=10) + timedelta(minutes=75), "new"),
    ({"created_at": ago(days=31)}, [], None, "never synced, bound a month ago: stale already"),
    (
        {"created_at": ago(days=31)},
        [rejected("400004", minutes_ago=60 * 24 * 30)],
        None,
        "never synced, refused since binding",
    ),
    (
        {"created_at": ago(minutes=20)},
        [unreachable()],
        ago(minutes=20) + timedelta(minutes=75),
        "never synced yet, still inside its first period",
    ),
    ({}, [probe(minutes_ago=30)], ago(minutes=30) + timedelta(minutes=75), "synced"),
    ({}, [probe(minutes_ago=120)], None, "synced, stale already"),
    ({"paused": True}, [probe(minutes_ago=5)], None, "paused: nothing turns STALE"),
]


@pytest.mark.parametrize(
    ("fields", "probes", "expected", "why"),
    GOING_STALE_CASES,
    ids=[c[3] for c in GOING_STALE_CASES],
)
def test_going_stale_at_is_a_deadline_still_ahead_or_none(
    fields: dict, probes: list[dict], expected: datetime | None, why: str
) -> None:
    # Healthchecks' going_down_after: None once down (or paused); never a time in the past.
    row = health(probes, **fields)
    if expected is None:
        assert pd.isna(row["going_stale_at"])
    else:
        assert row["going_stale_at"] == expected > NOW


def test_freshness_columns() -> None:
    accounts, probes = frames(
        [account(1), account(2)], [probe(1, minutes_ago=30), unreachable(2, minutes_ago=1)]
    )
    fleet = fleet_health(accounts, probes, POLICY, NOW).set_index("account_id")
    first, second = fleet.loc[1], fleet.loc[2]
    assert first["last_sync_at"] == ago(minutes=30)
    assert first["sync_age"] == timedelta(minutes=30)
    assert first["going_stale_at"] == ago(minutes=30) + timedelta(minutes=75)
    assert first["freshness"] == "fresh"
    assert pd.isna(second["last_sync_at"]) and second["freshness"] == "stale"
    assert pd.isna(second["going_stale_at"])


# --- Expiry forecast and key age ---------------------------------------------------------


@pytest.mark.parametrize(
    ("probes", "expires_at"),
    [
        ([probe(ip_whitelist=None)], ago(minutes=5) + timedelta(days=30)),
        (  # counted from the last success, not from later failures
            [probe(minutes_ago=3 * 24 * 60, ip_whitelist=None), unreachable()],
            ago(days=3) + timedelta(days=30),
        ),
        (
            [probe(permissions=("General", "Futures"), ip_whitelist=None)],
            ago(minutes=5) + timedelta(days=30),
        ),
        ([probe()], None),  # whitelisted
        ([probe(permissions=("General",), ip_whitelist=None)], None),  # read-only
        ([rejected("400004")], None),  # key info never read
    ],
)
def test_thirty_day_forecast(probes: list[dict], expires_at: datetime | None) -> None:
    row = health(probes)
    if expires_at is None:
        assert pd.isna(row["expires_at"])
    else:
        assert row["expires_at"] == expires_at


def test_unknown_key_past_the_thirty_day_rule_says_it_was_likely_deleted() -> None:
    row = health([probe(minutes_ago=31 * 24 * 60, ip_whitelist=None), rejected("400003")])
    assert row["status"] == Status.KEY_UNKNOWN
    assert row["expires_at"] == ago(days=1)
    assert "unused since 2025-05-01: KuCoin's 30-day rule has likely deleted it" in row["hint"]
    assert diagnose("400003").fix in row["hint"]


def test_key_age_and_identity_come_from_the_last_key_info() -> None:
    row = health(
        [
            probe(
                minutes_ago=60,
                key_created_at=ago(days=100, hours=3),
                is_master=False,
                sub_name="bot1",
                uid=165111215,
            ),
            rejected("400004"),
        ]
    )
    assert row["key_created_at"] == ago(days=100, hours=3)
    assert row["key_age_days"] == 100
    assert (row["is_master"], row["sub_name"], row["uid"]) == (False, "bot1", "165111215")
    assert row["last_code"] == "400004" and row["last_checked_at"] == ago(minutes=5)
    assert row["last_sync_at"] == ago(minutes=60)


# --- Hints -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "probes", "hint"),
    [
        ({}, [rejected("400004")], diagnose("400004").fix),
        ({}, [rejected("400005")], diagnose("400005").fix),
        ({}, [rejected("411100")], diagnose("411100").fix),
        (
            {},
            [rejected("400006", seen_ip="192.0.2.44")],
            f"In {API_MANAGEMENT} → Edit → IP Restriction, add 192.0.2.44 (the IP KuCoin saw).",
        ),
        (
            {},
            [rejected("400007", endpoint="/api/v1/account-overview")],
            f"Enable Futures in {API_MANAGEMENT} → Edit → API Restrictions.",
        ),
        (
            {"scopes": ["spot", "margin", "futures"]},
            [probe(permissions=("General", "Spot"))],
            f"Enable Futures, Margin in {API_MANAGEMENT} → Edit → API Restrictions.",
        ),
        (
            {"scopes": ["futures"]},
            [probe(permissions=("General", "Futures"), futures_permission_missing=True)],
            "Futures is enabled but KuCoin refused the futures balance (400007)",
        ),
        (
            {},
            [rejected("400002", clock_offset_ms=-6_400)],
            f"Measured offset: -6.4 s (KuCoin minus this machine). {diagnose('400002').fix}",
        ),
        (
            {},
            [probe(minutes_ago=30), rejected("400002", clock_offset_ms=120)],
            f"Measured offset: +0.1 s (KuCoin minus this machine). {LATE_REQUEST.fix}",
        ),
        (
            {},
            [probe(ip_whitelist="203.**.154")],
            f"In {API_MANAGEMENT} → Edit → IP Restriction, add {EGRESS_B}",
        ),
        (
            {},
            [probe(ip_whitelist=None)],
            f"In {API_MANAGEMENT} → Edit → IP Restriction, add {EGRESS_A}, {EGRESS_B}",
        ),
        ({}, [probe(key_created_at=ago(days=120))], "rotate this account's credentials"),
        ({}, [probe(clock_offset_ms=3_500)], "Enable NTP time sync"),
        ({}, [probe(minutes_ago=30), unreachable()], "Retry shortly."),
        ({}, [probe(minutes_ago=30), rejected("429000")], OVERLOADED.fix),
        (
            {},
            [probe(minutes_ago=30), rejected("429000", rate_limited_pool="Spot")],
            "another client on the same UID is spending the quota",
        ),
        ({"created_at": ago(minutes=1)}, [], "Run the first check on this account."),
        ({"paused": True}, [probe()], "Resume the account to check it."),
        ({}, [probe()], "Nothing to do."),
    ],
)
def test_fix_hint(fields: dict, probes: list[dict], hint: str) -> None:
    assert hint in health(probes, **fields)["hint"]


# --- Permission coverage -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("scopes", "permissions", "futures_missing", "expected"),
    [
        (
            ["spot"],
            ["General", "Spot"],
            False,
            {"Spot": "granted", "Futures": "not needed", "Margin": "not needed"},
        ),
        (
            ["spot", "futures"],
            ["General", "Spot"],
            False,
            {"Spot": "granted", "Futures": "missing", "Margin": "not needed"},
        ),
        (
            ["futures"],
            ["General", "Futures"],
            True,
            {"Spot": "not needed", "Futures": "missing", "Margin": "not needed"},
        ),
        (
            ["margin"],
            ["General", "Spot", "Futures", "Margin"],
            False,
            {"Spot": "granted", "Futures": "granted", "Margin": "granted"},
        ),
        (
            [],
            ["General", "Transfer", "InnerTransfer"],
            False,
            {"Transfer": "dangerous", "InnerTransfer": "info", "Earn": "not needed"},
        ),
        ([], [], False, {"General": "missing"}),
    ],
)
def test_permission_coverage(
    scopes: list[str], permissions: list[str], futures_missing: bool, expected: dict
) -> None:
    frame = permission_coverage(scopes, permissions, futures_missing).set_index("permission")
    assert {p: frame.loc[p, "state"] for p in expected} == expected
    assert frame.loc["Futures", "needed"] == ("futures" in scopes)


@pytest.mark.parametrize("scopes", [["spot"], ["spot", "futures", "margin"], []])
def test_permissions_before_key_info_was_read_are_unknown_never_missing(scopes: list[str]) -> None:
    frame = permission_coverage(scopes, None).set_index("permission")
    assert set(frame["state"]) == {"unknown"}
    assert frame["granted"].isna().all()
    assert list(frame.loc[["General", "Spot"], "needed"]) == [True, "spot" in scopes]


def test_an_empty_permission_list_read_from_kucoin_is_missing_not_unknown() -> None:
    frame = permission_coverage(["spot"], []).set_index("permission")
    assert (frame.loc["General", "state"], frame.loc["Spot", "state"]) == ("missing", "missing")
    assert frame.loc["Margin", "state"] == "not needed"


def test_every_permission_state_has_its_own_mark() -> None:
    assert set(PERMISSION_MARKS) == set(PERMISSION_STATE_DTYPE.categories)
    # A missing scope must never look like one that is not needed, nor like an unknown one.
    marks = PERMISSION_MARKS
    assert len({marks["missing"], marks["not needed"], marks["unknown"], marks["granted"]}) == 4


@pytest.mark.parametrize(
    ("fields", "probes", "spot", "futures", "margin", "dangerous"),
    [
        ({}, [probe()], "granted", "not needed", "not needed", ""),
        (
            {"scopes": ["spot", "futures"]},
            [probe(permissions=("General", "Spot", "Transfer", "InnerTransfer"))],
            "granted",
            "missing",
            "not needed",
            "Transfer",
        ),
        (
            {"scopes": ["futures"]},
            [probe(permissions=("General", "Futures"), futures_permission_missing=True)],
            "not needed",
            "missing",
            "not needed",
            "",
        ),
        ({"scopes": ["futures"]}, [rejected("400004")], None, None, None, None),
    ],
)
def test_fleet_permission_columns(
    fields: dict, probes: list[dict], spot: Any, futures: Any, margin: Any, dangerous: Any
) -> None:
    row = health(probes, **fields)
    got = [row["spot"], row["futures"], row["margin"], row["dangerous_permissions"]]
    want = [spot, futures, margin, dangerous]
    assert [None if pd.isna(g) else g for g in got] == want


# --- Whitelist coverage ------------------------------------------------------------------


WHITELIST_CASES = [
    # (egress IPs, probes, {ip: (coverage, confirmed)}, fleet summary)
    (
        (EGRESS_A, EGRESS_B),
        [probe(ip_whitelist=BOTH_MASKED, seen_ip=None)],
        {EGRESS_A: ("covered (masked match)", False), EGRESS_B: ("covered (masked match)", False)},
        "2/2 platform IPs covered",
    ),
    (
        (EGRESS_A, EGRESS_B),
        [probe(ip_whitelist="203.**.154", seen_ip=None)],
        {EGRESS_A: ("covered (masked match)", False), EGRESS_B: ("not covered", False)},
        "1/2 platform IPs covered",
    ),
    (
        (EGRESS_A,),
        [probe(ip_whitelist=f"{EGRESS_A},10.**.1", seen_ip=None)],
        {EGRESS_A: ("covered", False)},
        "1/1 platform IPs covered",
    ),
    (
        (EGRESS_A, "2001:db8::7"),
        [probe(ip_whitelist="203.**.154", seen_ip=None)],
        {EGRESS_A: ("covered (masked match)", False), "2001:db8::7": ("unknown", False)},
        "1/2 platform IPs covered, 1 unknown",
    ),
    (  # one masked entry, two of our IPs with the same first and last octet: ambiguous
        (EGRESS_A, "203.9.9.154"),
        [probe(ip_whitelist="203.**.154", seen_ip=None)],
        {EGRESS_A: ("unknown", False), "203.9.9.154": ("unknown", False)},
        "0/2 platform IPs covered, 2 unknown",
    ),
    (
        (EGRESS_A, "203.9.9.154"),
        [probe(ip_whitelist="203.**.154,203.**.154", seen_ip=None)],
        {
            EGRESS_A: ("covered (masked match)", False),
            "203.9.9.154": ("covered (masked match)", False),
        },
        "2/2 platform IPs covered",
    ),
    (  # an entry that cannot be compared might cover the IP
        (EGRESS_A,),
        [probe(ip_whitelist="10.0.0.0/8", seen_ip=None)],
        {EGRESS_A: ("unknown", False)},
        "0/1 platform IPs covered, 1 unknown",
    ),
    (
        (EGRESS_A, EGRESS_B),
        [probe(ip_whitelist=None)],
        {EGRESS_A: ("no whitelist", True), EGRESS_B: ("no whitelist", False)},
        "no whitelist",
    ),
    (  # what KuCoin did with our last call outranks the masks
        (EGRESS_A, EGRESS_B),
        [probe(minutes_ago=30, ip_whitelist=BOTH_MASKED), rejected("400006", seen_ip=EGRESS_A)],
        {EGRESS_A: ("not covered", True), EGRESS_B: ("covered (masked match)", False)},
        f"blocked: {EGRESS_A}",
    ),
    (
        (EGRESS_A, EGRESS_B),
        [probe(ip_whitelist="10.**.1", seen_ip=EGRESS_A)],
        {EGRESS_A: ("covered", True), EGRESS_B: ("not covered", False)},
        "1/2 platform IPs covered",
    ),
    (  # a whitelist appeared after the last key info: the rest is unknown
        (EGRESS_A, EGRESS_B),
        [probe(minutes_ago=30, ip_whitelist=None), rejected("400006", seen_ip=EGRESS_A)],
        {EGRESS_A: ("not covered", True), EGRESS_B: ("unknown", False)},
        f"blocked: {EGRESS_A}",
    ),
    (  # the IP KuCoin saw is not one of the platform's: shown too
        (EGRESS_A,),
        [rejected("400006", seen_ip="192.0.2.44")],
        {EGRESS_A: ("unknown", False), "192.0.2.44": ("not covered", True)},
        "blocked: 192.0.2.44",
    ),
    (
        (EGRESS_A,),
        [rejected("400004")],
        {EGRESS_A: ("unknown", False)},
        None,
    ),
    (
        (),
        [probe(ip_whitelist="203.**.154,198.**.7", seen_ip=None)],
        {},
        "2 IPs whitelisted",
    ),
]


@pytest.mark.parametrize(("egress", "probes", "expected", "summary"), WHITELIST_CASES)
def test_whitelist_coverage(
    egress: tuple[str, ...], probes: list[dict], expected: dict, summary: str | None
) -> None:
    policy = HealthPolicy(egress_ips=egress)
    _, history = frames([], probes)
    frame = whitelist_coverage(history, policy).set_index("ip")
    got = {ip: (r["coverage"], bool(r["confirmed"])) for ip, r in frame.iterrows()}
    assert got == expected
    assert frame.loc[list(egress), "is_platform_ip"].all()
    fleet_summary = health(probes, policy=policy)["whitelist"]
    assert (None if pd.isna(fleet_summary) else fleet_summary) == summary


def test_a_missing_platform_ip_is_a_risk_but_an_unknown_one_is_not() -> None:
    policy = HealthPolicy(egress_ips=(EGRESS_A, "2001:db8::7"))
    assert health([probe(ip_whitelist="203.**.154")], policy=policy)["status"] == Status.OK
    policy = HealthPolicy(egress_ips=(EGRESS_A, EGRESS_B))
    assert health([probe(ip_whitelist="203.**.154")], policy=policy)["status"] == Status.AT_RISK


# --- The fleet frame ---------------------------------------------------------------------


def test_fleet_has_typed_columns_and_puts_the_worst_first() -> None:
    accounts, probes = frames(
        [account(1), account(2), account(3, paused=True), account(4, created_at=ago(minutes=1))],
        [probe(1), rejected("400004", 2), probe(3)],
    )
    fleet = fleet_health(accounts, probes, POLICY, NOW)
    assert {c: str(t) for c, t in fleet.dtypes.items()} == {
        c: str(pd.Series(dtype=t).dtype) for c, t in FLEET_COLUMNS.items()
    }
    assert list(fleet["status"]) == ["WRONG_PASSPHRASE", "NEW", "PAUSED", "OK"]
    assert list(fleet["account_id"]) == [2, 4, 3, 1]
    assert fleet["status"].cat.ordered
    assert fleet["status"].min() == "WRONG_PASSPHRASE"


def test_fleet_without_any_probe() -> None:
    accounts, probes = frames([account(1, created_at=ago(minutes=1)), account(2)], [])
    fleet = fleet_health(accounts, probes, POLICY, NOW)
    assert list(fleet["status"]) == ["STALE", "NEW"]
    assert fleet["last_checked_at"].isna().all()


def test_fleet_ignores_row_order_and_other_accounts() -> None:
    probes = [rejected("400004", 1, minutes_ago=1), probe(1, minutes_ago=9), probe(2)]
    accounts, history = frames([account(1), account(2)], probes[::-1])
    fleet = fleet_health(accounts, history, POLICY, NOW).set_index("account_id")
    assert fleet.loc[1, "status"] == Status.WRONG_PASSPHRASE
    assert fleet.loc[2, "status"] == Status.OK
    assert account_health(account(2), history, POLICY, NOW)["status"] == Status.OK
    assert account_health(account(1), history, POLICY, NOW)["last_code"] == "400004"


@pytest.mark.parametrize("accounts_count", [3, 70])  # 70: the labels read one by one
def test_texts_are_stripped_and_blank_or_missing_ones_are_na(accounts_count: int) -> None:
    labels = [f" account {i}\t" for i in range(accounts_count)]
    labels[1], labels[2] = "  ", None
    uids = [" 165111215 ", "", None] * (accounts_count // 3) + [" 7"] * (accounts_count % 3)
    accounts, probes = frames(
        [account(i, label=label) for i, label in enumerate(labels)],
        [probe(i, uid=uid, sub_name=" desk ") for i, uid in enumerate(uids)],
    )
    fleet = fleet_health(accounts, probes, POLICY, NOW).set_index("account_id").sort_index()
    expected = [None if i in (1, 2) else f"account {i}" for i in range(accounts_count)]
    assert [None if pd.isna(v) else v for v in fleet["label"]] == expected
    expected = [None if not (u or "").strip() else u.strip() for u in uids]
    assert [None if pd.isna(v) else v for v in fleet["uid"]] == expected
    assert set(fleet["sub_name"]) == {"desk"}


def test_naive_now_is_refused() -> None:
    accounts, probes = frames([account()], [probe()])
    with pytest.raises(ValueError, match="timezone-aware"):
        fleet_health(accounts, probes, POLICY, NOW.replace(tzinfo=None))


def test_missing_input_columns_are_named() -> None:
    accounts, probes = frames([account()], [probe()])
    with pytest.raises(ValueError, match="seen_ip"):
        fleet_health(accounts, probes.drop(columns=["seen_ip"]), POLICY, NOW)


def test_status_counts_worst_first() -> None:
    accounts, probes = frames(
        [account(1), account(2), account(3), account(4)],
        [probe(1), probe(2), rejected("400003", 3), unreachable(4)],
    )
    counts = status_counts(fleet_health(accounts, probes, POLICY, NOW))
    assert list(zip(counts["status"], counts["count"], strict=True)) == [
        ("KEY_UNKNOWN", 1),
        ("STALE", 1),
        ("OK", 2),
    ]
    assert str(counts["count"].dtype) == "Int64"
    everything = status_counts(fleet_health(accounts, probes, POLICY, NOW), include_empty=True)
    assert len(everything) == len(Status) and everything["count"].sum() == 4


# --- Fleet incident ----------------------------------------------------------------------


def incident_fleet(probes: list[dict], paused: tuple[int, ...] = (), n: int = 5) -> pd.DataFrame:
    """Return the fleet of accounts 1..n after these probes."""
    accounts, history = frames(
        [account(i, paused=i in paused) for i in range(1, n + 1)],
        [probe(i, minutes_ago=40) for i in range(1, n + 1)] + probes,
    )
    return fleet_health(accounts, history, POLICY, NOW)


def test_fleet_incident_when_most_accounts_are_unreachable() -> None:
    fleet = incident_fleet(
        [unreachable(1, 8), unreachable(2, 3), unreachable(3, 2, code="429000"), probe(4, 1)],
        n=4,
    )
    incident = fleet_incident(fleet, POLICY, NOW)
    assert incident is not None
    assert (incident.status, incident.count, incident.checked) == (Status.DEGRADED, 3, 4)
    assert incident.since == ago(minutes=8)
    assert incident.summary.endswith("on 3 of 4 accounts since 2025-06-01 11:52 UTC")


def test_fleet_incident_when_most_accounts_get_the_same_code() -> None:
    fleet = incident_fleet([rejected("400006", i, minutes_ago=i) for i in (1, 2, 3)], n=3)
    incident = fleet_incident(fleet, POLICY, NOW)
    assert incident is not None
    assert (incident.status, incident.code, incident.count) == (Status.IP_BLOCKED, "400006", 3)
    assert incident.summary == (
        "IP not whitelisted (400006) on 3 of 3 accounts since 2025-06-01 11:57 UTC"
    )


@pytest.mark.parametrize(
    ("probes", "paused", "why"),
    [
        ([unreachable(i, 2) for i in (1, 2, 3)] + [probe(i, 1) for i in (4, 5, 6)], (), "half"),
        ([unreachable(i, 11) for i in (1, 2, 3, 4)], (), "outside the window"),
        ([unreachable(1, 2), unreachable(2, 2)], (), "fewer than 3 checked"),
        ([unreachable(i, 2) for i in (1, 2, 3)], (2, 3), "paused accounts do not count"),
        (
            [rejected(c, i, 2) for i, c in ((1, "400004"), (2, "400005"), (3, "400006"))],
            (),
            "mixed",
        ),
        ([probe(i, 1) for i in (1, 2, 3, 4)], (), "all fine"),
    ],
)
def test_no_fleet_incident(probes: list[dict], paused: tuple[int, ...], why: str) -> None:
    assert fleet_incident(incident_fleet(probes, paused, n=6), POLICY, NOW) is None


def test_fleet_incident_starts_at_sixty_percent() -> None:
    fleet = incident_fleet([unreachable(i, 2) for i in (1, 2, 3)] + [probe(4, 1), probe(5, 1)])
    incident = fleet_incident(fleet, POLICY, NOW)
    assert incident is not None and (incident.count, incident.checked) == (3, 5)


# --- Failing -----------------------------------------------------------------------------


def test_failing_is_every_status_from_frozen_down_to_stale() -> None:
    failing = [s for s in SEVERITY if s.failing]
    assert failing == list(SEVERITY[: Status.STALE.rank + 1])
    assert Status.SCOPE_MISSING.failing and Status.UNVERIFIED.failing and Status.STALE.failing
    assert not any(s.failing for s in (Status.DEGRADED, Status.AT_RISK, Status.NEW, Status.OK))
    assert all((s.level == "error") == s.failing for s in Status)  # the red tiles


def test_is_failing_reads_a_fleet_status_column() -> None:
    accounts, probes = frames(
        [account(i) for i in (1, 2, 3, 4)],
        [probe(1), rejected("400004", 2), unreachable(3), probe(4, permissions=("General",))],
    )
    fleet = fleet_health(accounts, probes, POLICY, NOW).set_index("account_id")
    assert is_failing(fleet["status"]).to_dict() == {2: True, 3: True, 4: True, 1: False}


# --- Transient ---------------------------------------------------------------------------

TRANSIENT_CASES = [
    # (outcome, code, clock offset, transient)
    ("unreachable", None, None, True),
    ("unreachable", "1015", 0, True),  # a CDN page
    ("rejected", "429000", None, True),
    ("rejected", "500000", None, True),
    ("rejected", "503000", None, True),
    ("rejected", "400002", 0, True),  # late in transit: the clocks agree
    ("rejected", "400002", -2_999, True),
    ("rejected", "400002", 3_000, False),  # the clocks disagree: a clock problem
    ("rejected", "400002", -9_000, False),
    ("rejected", "400002", None, False),  # not measured: cannot say the clocks agree
    ("rejected", "400004", 0, False),
    ("rejected", "400006", 0, False),
    ("rejected", None, 0, False),
    ("ok", None, 0, False),
]


@pytest.mark.parametrize(("outcome", "code", "offset", "transient"), TRANSIENT_CASES)
def test_is_transient(outcome: str, code: str | None, offset: int | None, transient: bool) -> None:
    assert is_transient(outcome, code, offset, POLICY) is transient
    expected = "ok" if outcome == "ok" else "retrying" if transient else "rejected"
    assert check_result(outcome, code, offset, POLICY) == expected


def test_check_results_of_a_frame_match_check_result_row_by_row() -> None:
    rows = [
        probe(outcome=o, code=c, clock_offset_ms=off, minutes_ago=i)
        for i, (o, c, off, _) in enumerate(TRANSIENT_CASES)
    ]
    _, history = frames([], rows)
    expected = [check_result(o, c, off, POLICY) for o, c, off, _ in TRANSIENT_CASES]
    assert list(check_results(history, POLICY)) == expected


def test_the_clock_threshold_of_the_policy_decides_whether_the_clocks_agree() -> None:
    strict = HealthPolicy(egress_ips=POLICY.egress_ips, clock_warn_ms=1_000)
    probes = [probe(minutes_ago=30), rejected("400002", clock_offset_ms=1_500)]
    assert health(probes)["status"] == Status.DEGRADED
    assert health(probes, policy=strict)["status"] == Status.CLOCK_SKEW


@pytest.mark.parametrize("offset", [0, 80, -900, 2_999, 3_000, -4_500, 9_000, None])
def test_a_400002_is_a_clock_problem_only_while_the_clocks_disagree(offset: int | None) -> None:
    row = health([probe(minutes_ago=30), rejected("400002", clock_offset_ms=offset)])
    agree = offset is not None and abs(offset) < POLICY.clock_warn_ms
    assert row["status"] == (Status.DEGRADED if agree else Status.CLOCK_SKEW)
    assert row["last_result"] == ("retrying" if agree else "rejected")
    if row["status"] == Status.CLOCK_SKEW:
        assert "agree" not in row["hint"] and "too late" not in row["diagnosis"]
    else:
        assert "Clock out of sync" not in row["diagnosis"] + row["hint"]


# --- One check, judged as the fleet will ------------------------------------------------


def one_check(**fields: Any) -> ProbeResult:
    """Return a check taken at NOW (an OK check of a healthy spot key unless told otherwise)."""
    row = probe(minutes_ago=0, **fields)
    return ProbeResult(**{k: v for k, v in row.items() if k != "account_id"})


ASSESS_CASES = [
    # (check fields, scopes, status)
    ({}, ["spot"], Status.OK),
    ({"key_created_at": ago(days=753)}, ["spot"], Status.AT_RISK),
    ({"permissions": ("General", "Spot")}, ["spot", "futures"], Status.SCOPE_MISSING),
    ({"ip_whitelist": None}, ["spot"], Status.AT_RISK),
    ({"clock_offset_ms": 3_400}, ["spot"], Status.AT_RISK),
    ({"outcome": "rejected", "code": "400002", "clock_offset_ms": 0}, ["spot"], Status.DEGRADED),
    ({"outcome": "rejected", "code": "400004"}, ["spot"], Status.WRONG_PASSPHRASE),
    ({"outcome": "rejected", "code": "400006"}, ["spot"], Status.IP_BLOCKED),
    ({"outcome": "unreachable"}, ["spot"], Status.DEGRADED),
]


@pytest.mark.parametrize(("fields", "scopes", "status"), ASSESS_CASES)
def test_a_check_is_judged_as_the_fleet_judges_the_account_bound_with_it(
    fields: dict, scopes: list[str], status: Status
) -> None:
    result = one_check(**fields)
    assessment = assess_check(result, scopes, POLICY)
    accounts, history = frames(
        [account(created_at=result.checked_at, scopes=scopes)],
        [probe(minutes_ago=0, **fields)],
    )
    row = fleet_health(accounts, history, POLICY, NOW).iloc[0]
    assert assessment.status == row["status"] == status
    assert (assessment.diagnosis, assessment.hint) == (row["diagnosis"], row["hint"])
    risks = "; ".join(r.what for r in assessment.risks) or None
    assert risks == (None if pd.isna(row["risks"]) else row["risks"])
    assert assessment.transient == (row["last_result"] == "retrying")


# Every kind of answer a check can bring, for the matrix below.
_WORKING = [
    {"permissions": permissions, "ip_whitelist": whitelist, **key, **clock}
    for permissions, whitelist, key, clock in itertools.product(
        [("General", "Spot"), ("General", "Spot", "Futures"), ("General", "Transfer"), ()],
        [BOTH_MASKED, None, "203.**.154", "10.**.1,2001:db8::/32"],
        [{}, {"key_created_at": ago(days=753)}, {"key_created_at": None}],
        [{}, {"clock_offset_ms": -4_000}, {"clock_offset_ms": None}],
    )
]
_REFUSED = [
    {"outcome": "rejected", "code": code, **extra}
    for code, extra in [
        ("400001", {}),
        ("400002", {"clock_offset_ms": 0}),
        ("400002", {"clock_offset_ms": 7_000}),
        ("400002", {}),
        ("400003", {}),
        ("400004", {}),
        ("400005", {}),
        ("400006", {"seen_ip": "192.0.2.9"}),
        ("400007", {"endpoint": "/api/v1/account-overview"}),
        ("400008", {}),
        ("411100", {}),
        ("429000", {}),
        ("503000", {}),
        (None, {}),
    ]
] + [{"outcome": "unreachable"}, {"outcome": "unreachable", "code": "1015"}]
_ODD = [
    {"permissions": ("General", "Spot", "Futures"), "futures_permission_missing": True},
    {"seen_ip": "198.51.100.99"},
    {"seen_ip": None},
]


@pytest.mark.parametrize(
    "policy",
    [
        POLICY,
        HealthPolicy(),
        HealthPolicy(egress_ips=(EGRESS_A,), clock_warn_ms=1_000, rotation_age=timedelta(days=7)),
        HealthPolicy(freshness_period=timedelta(0), freshness_grace=timedelta(0)),
    ],
    ids=["two egress IPs", "defaults", "strict", "no grace"],
)
def test_every_kind_of_check_is_judged_exactly_as_the_fleet_judges_it(
    policy: HealthPolicy,
) -> None:
    # The one-check facts (plain Python) and the fleet's (pandas) are found apart: hold them
    # to the same status, words, risks and retry verdict on every kind of answer.
    scope_sets = [[], ["spot"], ["spot", "futures"], ["margin"]]
    cases = list(itertools.product(_WORKING + _REFUSED + _ODD, scope_sets))
    accounts, history = frames(
        [account(i, created_at=NOW, scopes=scopes) for i, (_, scopes) in enumerate(cases)],
        [probe(i, minutes_ago=0, **fields) for i, (fields, _) in enumerate(cases)],
    )
    fleet = fleet_health(accounts, history, policy, NOW).set_index("account_id")
    for i, (fields, scopes) in enumerate(cases):
        row = fleet.loc[i]
        assessment = assess_check(one_check(**fields), scopes, policy)
        risks = "; ".join(r.what for r in assessment.risks) or None
        assert (
            assessment.status,
            assessment.diagnosis,
            assessment.hint,
            risks,
            assessment.transient,
        ) == (
            row["status"],
            row["diagnosis"],
            row["hint"],
            None if pd.isna(row["risks"]) else row["risks"],
            row["last_result"] == "retrying",
        ), (fields, scopes)


def test_a_failed_check_carries_what_its_code_means() -> None:
    late = assess_check(one_check(outcome="rejected", code="400002", clock_offset_ms=0), [], POLICY)
    assert late.failure is LATE_REQUEST and late.transient
    skew = assess_check(
        one_check(outcome="rejected", code="400002", clock_offset_ms=7_000), [], POLICY
    )
    assert skew.failure == diagnose("400002") and not skew.transient
    gone = assess_check(one_check(outcome="unreachable"), [], POLICY)
    assert gone.failure is UNREACHABLE and gone.transient
    assert assess_check(one_check(), [], POLICY).failure is None


def test_fleet_incident_names_its_accounts_and_the_fix_for_its_kind() -> None:
    fleet = incident_fleet([rejected("400002", i, 2, clock_offset_ms=30) for i in (1, 2, 3)], n=4)
    incident = fleet_incident(fleet, POLICY, NOW)
    assert incident is not None and incident.status is Status.DEGRADED
    assert (incident.title, incident.fix) == (LATE_REQUEST.title, LATE_REQUEST.fix)
    assert incident.account_ids == {1, 2, 3}
    skewed = incident_fleet([rejected("400002", i, 2, clock_offset_ms=8_000) for i in (1, 2, 3)])
    incident = fleet_incident(skewed, POLICY, NOW)
    assert incident is not None and incident.status is Status.CLOCK_SKEW
    assert incident.fix == diagnose("400002").fix


# --- The fleet judged once, read at later times --------------------------------------------


def _random_facts(rng: random.Random, count: int) -> dict[str, np.ndarray]:
    """Return AccountFacts arrays: `count` accounts, each with a variant per fact changed."""

    def times(*minutes: float) -> list[int]:
        return [NAT] + [nanoseconds(NOW - timedelta(minutes=m)) for m in minutes]

    pools: dict[str, list] = {
        "latest_code": [None, "400002", "429000", "500000", IP_BLOCKED_CODE],
        "verdict_code": [
            None,
            "400001",
            "400002",
            "400003",
            "400004",
            "400005",
            IP_BLOCKED_CODE,
            "411100",
            "400007",
            "400008",  # REJECTED, like any code without a status of its own
            "400350",
        ],
        "verdict_endpoint": [None, *(e.path for e in ENDPOINTS.values())],
        "latest_offset_ms": [None, 40, -4_200, 7_777],
        "verdict_offset_ms": [None, 12, 6_100, -9_050],
        "latest_limited_pool": [None, "spot", "futures"],
        "clock_offset_ms": [None, 3_149, -3_451, 4_050],
        "permissions": [frozenset(), frozenset({"General", "Spot"}), frozenset({"Futures"})],
        "missing_scopes": [(), ("Spot",), ("Futures",), ("Spot", "Margin")],
        "seen_ip": [None, EGRESS_A, "192.0.2.9"],
        "uncovered": [(), (EGRESS_B,), (EGRESS_A, EGRESS_B)],
        "key_age_days": [None, 91, 92, 400],
        # ages either side of format_age's steps; dates either side of midnight and of NOW
        "last_sync_at": times(0.5, 59.9, 75, 75.4, 1_439, 1_441, 4_000),
        "created_at": times(0.2, 61, 90, 3_000, 100_000)[1:],
        "expires_at": times(-1_500, -1, 1, 700, 20_000),
        "latest_reset_at": times(-0.5, -0.25),
    }
    # A flag that holds has the value it is about (as the rules find them).
    needs = {"clock": "clock_offset_ms", "old_key": "key_age_days", "exposed": "expires_at"}
    rows = []
    for _ in range(count):
        # A base account, then one variant per fact that differs from it in that fact alone.
        base = {name: rng.choice(pools.get(name, [False, True])) for name in AccountFacts._fields}
        rows.append(base)
        for name in AccountFacts._fields:
            others = [v for v in pools.get(name, [False, True]) if v != base[name]]
            rows.append({**base, name: rng.choice(others)})
    needs["ip_missing"] = "uncovered"
    for row in rows:
        for flag, name in needs.items():
            if row[flag] and row[name] in (None, NAT, ()):
                row[name] = pools[name][1]
        row["at_risk"] = any(row[flag] for flag in RISK_FLAGS)
        row["scope_missing"] = bool(row["missing_scopes"])
    facts = {}
    for name in AccountFacts._fields:
        values = np.empty(len(rows), dtype=object)
        values[:] = [row[name] for row in rows]
        facts[name] = values.astype(bool) if name not in pools else values
    for name in ("last_sync_at", "created_at", "expires_at", "latest_reset_at"):
        facts[name] = facts[name].astype(np.int64)
    return facts


@pytest.mark.parametrize("policy", [POLICY, HealthPolicy(inactivity_rule=timedelta(hours=36))])
def test_the_fleet_words_every_account_as_explain_does(policy: HealthPolicy) -> None:
    # The fleet words each group of accounts whose facts read alike once (what
    # lib.health.wording says its words read): an account and its variant differing in one
    # fact are worded alike only where that fact is declared unread, so a fact read but not
    # declared shows here.
    rng = random.Random(11)
    facts = _random_facts(rng, 600)
    rows = [AccountFacts(*values) for values in zip(*facts.values(), strict=True)]
    # Each account's status as the rules decide it from these facts (before a pause).
    rank = np.array(
        [
            worst_status(
                rejection_status(row.verdict_code) if row.rejected else Status.OK, row._asdict()
            ).rank
            for row in rows
        ]
    )
    assert len(set(rank)) >= 12
    diagnosis, hint, risk_texts = fleet_words(facts, rank, policy, pd.Timestamp(NOW))
    explain = Explainer(policy, NOW).explain
    for i, row in enumerate(rows):
        expected = explain(row, SEVERITY[rank[i]])[:3]
        if rank[i] == Status.OK.rank and not row.paused:
            expected = (*HEALTHY, None)
        assert (diagnosis[i], hint[i], risk_texts[i]) == expected, row


def test_age_texts_say_what_format_age_says() -> None:
    seconds = [0, 1, 59, 60, 61, 3_599, 3_600, 3_660, 86_399, 86_400, 90_000, 400_000, -5]
    ages = pd.Series(
        [*(pd.Timedelta(seconds=s, microseconds=999) for s in seconds), pd.NaT],
        dtype="timedelta64[ns]",
    )
    expected = [format_age(a.to_pytimedelta()) for a in ages[:-1]] + [None]
    assert list(age_texts(ages).astype(object).where(ages.notna(), None)) == expected


def test_a_judgement_holds_for_each_account_until_its_changes_at() -> None:
    # judge_fleet once; at every later time each account not due for judging again reads
    # exactly as the rules judge it then: status, words, ages, freshness, going stale.
    rng = random.Random(3)
    rows, checks = [], []
    for i in range(400):
        rows.append(
            account(
                i,
                scopes=rng.choice([["spot"], ["spot", "futures"]]),
                paused=rng.random() < 0.1,
                created_at=ago(minutes=rng.choice([5, 50, 70, 3_000])),
            )
        )
        for _ in range(rng.randint(0, 3)):
            minutes = rng.choice([1, 20, 58, 74, 80, 1_500])
            checks.append(
                rng.choice(
                    [
                        probe(i, minutes, key_created_at=ago(days=rng.choice([10, 89.99, 120]))),
                        probe(i, minutes, ip_whitelist=None, permissions=["General", "Spot"]),
                        probe(i, minutes, clock_offset_ms=rng.choice([10, 3_500])),
                        rejected("400003", i, minutes),
                        rejected("400002", i, minutes, clock_offset_ms=6_000),
                        unreachable(i, minutes),
                    ]
                )
            )
    accounts, history = frames(rows, checks)
    judged = judge_fleet(accounts, history, POLICY, NOW)
    due = judged["changes_at"]
    due_by = []
    for later in [NOW + timedelta(seconds=s) for s in (1, 59, 61, 900, 3_700, 86_500, 10**6)]:
        holds = (due.isna() | (due > later)).to_numpy()
        due_by.append(int((~holds).sum()))
        read = fleet_at(judged[holds], POLICY, later).set_index("account_id")
        fresh = fleet_health(accounts, history, POLICY, later).set_index("account_id")
        pd.testing.assert_frame_equal(read, fresh.loc[read.index])
    assert due_by == sorted(due_by) and 0 < due_by[2] < due_by[-1] < len(judged)
