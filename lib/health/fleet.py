"""The rules over a whole fleet at once: one row per account, worst status first.

fleet_health reads the accounts and probes frames the store provides (lib.health.inputs) and
applies every rule vectorised, so that 10,000 accounts take a fraction of a second. What it
finds per account are AccountFacts; their status, risks and words are decided by the same
functions that judge a single check (lib.health.assessment).

- The latest non-transient answer decides the key's verdict: a rejection stands until a
  later check passes (a timeout after a 400004 does not make the passphrase right).
- Freshness counts from the last successful sync, or from `created_at` for an account that
  never synced: a never-synced account is NEW with no checks, DEGRADED with only transient
  failures, and STALE either way once period + grace has passed since it was bound.
- Going stale (`going_stale_at`, Healthchecks' going_down_after): when the account turns
  STALE without another successful sync; none once it is stale already or while it is paused.
- PAUSED overrides everything (the operator asked for no alarms); the diagnosis still says
  what the last state was.
- Clock offset from a passing check is only an AT_RISK reason: checks sign with
  KuCoin-corrected time, so CLOCK_SKEW is KuCoin's 400002 while the clocks disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from lib.health.checks import ip_evidence, is_transient
from lib.health.coverage import (
    DANGEROUS_PERMISSIONS,
    SCOPE_PERMISSIONS,
    grants_withdrawal,
    has_scope,
    names,
    trades,
    whitelist_summary,
)
from lib.health.facts import AccountFacts
from lib.health.inputs import ACCOUNT_COLUMNS, PROBE_COLUMNS
from lib.health.policy import DEFAULT_POLICY, HealthPolicy
from lib.health.risks import RISK_FLAGS
from lib.health.status import PROPOSED_BY, SEVERITY, Status, rejection_status
from lib.health.wording import HEALTHY, Explainer
from lib.kucoin.probe_result import Outcome, ProbeResult

_DT = "datetime64[ns, UTC]"
STATUS_DTYPE = pd.CategoricalDtype([s.value for s in SEVERITY], ordered=True)
SCOPE_STATE_DTYPE = pd.CategoricalDtype(["missing", "granted", "not needed"])
FRESHNESS_DTYPE = pd.CategoricalDtype(["stale", "late", "fresh"], ordered=True)
OUTCOME_DTYPE = pd.CategoricalDtype([o.value for o in Outcome])
# What one check says: passed, failed in a way a retry may fix, or KuCoin's verdict.
CHECK_RESULT_DTYPE = pd.CategoricalDtype(["ok", "retrying", "rejected"])

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


def probe_frame(result: ProbeResult, account_id: int = 0) -> pd.DataFrame:
    """Return one check as a one-row probes frame (PROBE_COLUMNS)."""
    row: dict[str, Any] = {name: getattr(result, name, None) for name in PROBE_COLUMNS}
    row.update(account_id=account_id, outcome=result.outcome.value)
    row["permissions"] = list(result.permissions)
    return pd.DataFrame([row])


def check_results(probes: pd.DataFrame, policy: HealthPolicy = DEFAULT_POLICY) -> pd.Categorical:
    """Return lib.health.checks.check_result for every row of a probes frame."""
    flags = _check_flags(probes, policy)
    return pd.Categorical.from_codes(
        np.select([flags.ok, flags.transient], [0, 1], 2), dtype=CHECK_RESULT_DTYPE
    )


def is_failing(statuses: pd.Series) -> pd.Series:
    """Return per account whether its status is failing (Status.failing)."""
    failing = {s.value: s.failing for s in Status}
    return statuses.astype(str).map(failing).astype(bool)


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


# --- Column helpers ----------------------------------------------------------------------


def utc_now(now: datetime) -> pd.Timestamp:
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


def _ints(values: pd.Series) -> pd.Series:
    """Return a column of whole numbers with NA for missing ones (Int64)."""
    return pd.to_numeric(values).astype("Int64")


def _flags(columns: Sequence[pd.Series], *tests: Callable[..., object]) -> list[np.ndarray]:
    """Return test(*values) for every row per test, computing each once per distinct row."""
    # Each column's values are numbered (NA as 0); the numbers combine into one key per row.
    key = np.zeros(len(columns[0]), dtype=np.int64)
    tables = []
    for column in columns:
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
        key = key * (len(uniques) + 1) + codes + 1
        tables.append([None, *uniques])
    rows, distinct = pd.factorize(key)
    values = []
    for combined in distinct:
        row = []
        for table in reversed(tables):
            combined, position = divmod(int(combined), len(table))
            row.append(table[position])
        values.append(row[::-1])
    return [np.array([bool(test(*v)) for v in values], dtype=bool)[rows] for test in tests]


# --- Which checks decide -----------------------------------------------------------------


class _CheckFlags(NamedTuple):
    """Per check: passed; failed in a way a retry may fix; shows whether our IP passes."""

    ok: np.ndarray
    transient: np.ndarray
    shows_ip: np.ndarray


def _check_flags(probes: pd.DataFrame, policy: HealthPolicy) -> _CheckFlags:
    """Return what each check says (lib.health.checks), computed once per distinct answer."""
    answer = (probes["outcome"], probes["code"])
    ok, shows_ip, transient, when_clocks_agree = _flags(
        answer,
        lambda o, c: o == Outcome.OK,
        lambda o, c: ip_evidence(o, c) is not None,
        lambda o, c: is_transient(o, c, None, policy),
        lambda o, c: is_transient(o, c, 0, policy),
    )
    # A 400002 is transient only while the clocks agree: ask about those checks' offsets.
    depends = transient != when_clocks_agree
    if depends.any():
        offsets = _objects(probes["clock_offset_ms"])[depends]
        outcomes, codes = (_objects(column)[depends] for column in answer)
        transient[depends] = [
            is_transient(o, c, offset, policy)
            for o, c, offset in zip(outcomes, codes, offsets, strict=True)
        ]
    return _CheckFlags(ok, transient, shows_ip)


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


_LATEST = [
    "checked_at",
    "outcome",
    "code",
    "message",
    "clock_offset_ms",
    "rate_limited_pool",
    "rate_limit_reset_ms",
]


class _Deciding(NamedTuple):
    """Per account, the checks the rules decide on (all NA for an account without one)."""

    latest: pd.DataFrame  # the newest check
    verdict: pd.DataFrame  # the newest non-transient answer: KuCoin's verdict on the key
    success: pd.DataFrame  # the newest passing check: the key info
    evidence: pd.DataFrame  # the newest check showing whether our IP passes
    latest_result: np.ndarray  # CHECK_RESULT_DTYPE codes of the newest; -1: never checked


def _deciding_checks(probes: pd.DataFrame, ids: pd.Index, policy: HealthPolicy) -> _Deciding:
    """Return per account its newest check, verdict, success and IP evidence: one sort."""
    account_id = probes["account_id"].to_numpy(dtype="int64")
    order = _history_order(account_id, _utc(probes["checked_at"]).array.asi8)
    flags = _check_flags(probes, policy)
    latest_at = _latest(account_id, order, None)
    result = np.select([flags.ok, flags.transient], [0, 1], 2)
    return _Deciding(
        latest=_rows_at(probes, latest_at, _LATEST, ids),
        verdict=_rows_at(
            probes,
            _latest(account_id, order, ~flags.transient),
            ["outcome", "code", "endpoint", "clock_offset_ms"],
            ids,
        ),
        success=_rows_at(probes, _latest(account_id, order, flags.ok), _KEY_INFO, ids),
        evidence=_rows_at(
            probes,
            _latest(account_id, order, flags.shows_ip),
            ["outcome", "code", "seen_ip"],
            ids,
        ),
        latest_result=(
            pd.Series(result[latest_at], index=account_id[latest_at])
            .reindex(ids, fill_value=-1)
            .to_numpy(dtype=np.int64)
        ),
    )


# --- Facts per account -------------------------------------------------------------------


def _facts(
    accounts: pd.DataFrame, probes: pd.DataFrame, policy: HealthPolicy, now: datetime
) -> pd.DataFrame:
    """Return every fleet column per account, indexed by account_id, in `accounts` order."""
    _require(accounts, ACCOUNT_COLUMNS, "accounts")
    _require(probes, PROBE_COLUMNS, "probes")
    now = utc_now(now)
    ids = pd.Index(accounts["account_id"].to_numpy(dtype="int64"), name="account_id")
    checks = _deciding_checks(probes, ids, policy)
    # col: the fleet's columns; fact: the AccountFacts fields, one array each.
    col: dict[str, Any] = {"label": _strings(accounts["label"]).array}
    fact: dict[str, Any] = {}
    _account_facts(accounts, checks, ids, policy, now, col, fact)
    _key_facts(accounts, checks, policy, now, col, fact)
    _whitelist_facts(checks, policy, col, fact)
    _latest_facts(checks, col, fact)
    _status_and_words(policy, now, col, fact)
    return pd.DataFrame(
        {k: (v.array if isinstance(v, pd.Series) else v) for k, v in col.items()}, index=ids
    )


def _account_facts(
    accounts: pd.DataFrame,
    checks: _Deciding,
    ids: pd.Index,
    policy: HealthPolicy,
    now: pd.Timestamp,
    col: dict[str, Any],
    fact: dict[str, Any],
) -> None:
    """Add the account's own flags and its freshness: Healthchecks' up → grace → down."""
    created_at = pd.Series(_utc(accounts["created_at"]).array, index=ids)
    paused = accounts["paused"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    unverified = accounts["unverified"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    last_sync_at = _utc(checks.success["checked_at"])
    anchor = last_sync_at.fillna(created_at)  # the last success, or the binding
    stale_at = policy.stale_at(anchor)
    stale = (stale_at <= now).to_numpy()
    late = (policy.late_at(anchor) <= now).to_numpy()
    verified = (last_sync_at >= created_at).fillna(False).to_numpy(dtype=bool)
    col.update(
        paused=paused,
        unverified=unverified,
        created_at=created_at,
        last_sync_at=last_sync_at,
        sync_age=now - last_sync_at,
        # Like going_down_after: no deadline once it has passed, nor while nothing is watched.
        going_stale_at=stale_at.where(~stale & ~paused),
        freshness=pd.Categorical.from_codes(
            np.select([stale, late], [0, 1], 2), dtype=FRESHNESS_DTYPE
        ),
    )
    fact.update(
        paused=paused,
        unverified=unverified & ~verified,
        stale=stale,
        last_sync_at=last_sync_at.array.asi8,
        created_at=created_at.array.asi8,
    )


def _key_facts(
    accounts: pd.DataFrame,
    checks: _Deciding,
    policy: HealthPolicy,
    now: pd.Timestamp,
    col: dict[str, Any],
    fact: dict[str, Any],
) -> None:
    """Add what the last key info says: scopes, permissions, key age, clock, the 30-day rule."""
    good = checks.success
    known = good["checked_at"].notna().to_numpy()
    permissions = [
        names(v) if k else frozenset() for v, k in zip(good["permissions"], known, strict=True)
    ]
    needed = [names(v) for v in accounts["scopes"]]
    futures_missing = (
        good["futures_permission_missing"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    )
    missing: dict[str, np.ndarray] = {}
    for scope, permission in SCOPE_PERMISSIONS.items():
        has = np.array(
            [has_scope(scope, g, fm) for g, fm in zip(permissions, futures_missing, strict=True)],
            dtype=bool,
        )
        need = np.array([scope in n for n in needed], dtype=bool)
        # Categories: missing, granted, not needed; -1 (NA) before key info was read.
        col[scope] = pd.Categorical.from_codes(
            np.select([~known, has, need], [-1, 1, 0], 2), dtype=SCOPE_STATE_DTYPE
        )
        missing[permission] = known & need & ~has
    whitelists = _objects(_strings(good["ip_whitelist"]))
    trading = known & np.array([trades(g) for g in permissions], dtype=bool)
    exposed = trading & np.array([w is None for w in whitelists], dtype=bool)
    last_sync_at = _utc(good["checked_at"])
    key_created_at = _utc(good["key_created_at"])
    key_age = now - key_created_at
    clock_offset = _ints(good["clock_offset_ms"])
    # 30-day rule: counted from the last successful signed call.
    expires_at = policy.deleted_if_unused_at(last_sync_at.where(exposed))
    col.update(
        dangerous_permissions=[
            ", ".join(p for p in DANGEROUS_PERMISSIONS if p in g) if k else None
            for g, k in zip(permissions, known, strict=True)
        ],
        permissions=[
            ", ".join(sorted(g)) if k else None for g, k in zip(permissions, known, strict=True)
        ],
        key_created_at=key_created_at,
        key_age_days=(key_age // pd.Timedelta(days=1)).astype("Int64"),
        clock_offset_ms=clock_offset,
        expires_at=expires_at,
        is_master=good["is_master"].astype("boolean"),
        uid=_strings(good["uid"]),
        sub_name=_strings(good["sub_name"]),
    )
    fact.update(
        known=known,
        whitelists=whitelists,
        permissions=permissions,
        futures_missing=futures_missing,
        missing_scopes=[
            tuple(name for name, flag in zip(missing, flags, strict=True) if flag)
            for flags in zip(*missing.values(), strict=True)
        ],
        scope_missing=np.logical_or.reduce(list(missing.values())),
        withdrawal=known & np.array([grants_withdrawal(g) for g in permissions], dtype=bool),
        exposed=exposed,
        old_key=known & policy.key_too_old(key_age).fillna(False).to_numpy(dtype=bool),
        clock=known & policy.clock_off(clock_offset).fillna(False).to_numpy(dtype=bool),
        expires_at=expires_at.array.asi8,
        key_age_days=_objects(col["key_age_days"]),
        clock_offset_ms=_objects(clock_offset),
    )


def _whitelist_facts(
    checks: _Deciding, policy: HealthPolicy, col: dict[str, Any], fact: dict[str, Any]
) -> None:
    """Add the whitelist against the platform's egress IPs; the last call from here decides."""
    evidence = checks.evidence
    kinds = [
        ip_evidence(o, c)
        for o, c in zip(_objects(evidence["outcome"]), _objects(evidence["code"]), strict=True)
    ]
    seen_ip = _objects(_strings(evidence["seen_ip"]))
    summaries = [
        whitelist_summary(w, bool(k), policy.egress_ips, ip, kind)
        for w, k, ip, kind in zip(fact["whitelists"], fact["known"], seen_ip, kinds, strict=True)
    ]
    uncovered = [s[1] for s in summaries]
    col.update(whitelist=[s[0] for s in summaries], seen_ip=seen_ip)
    fact.update(
        seen_ip=seen_ip,
        uncovered=uncovered,
        ip_missing=fact["known"] & np.array([bool(u) for u in uncovered], dtype=bool),
    )


def _latest_facts(checks: _Deciding, col: dict[str, Any], fact: dict[str, Any]) -> None:
    """Add the newest check and the verdict on the key."""
    latest, verdict = checks.latest, checks.verdict
    col.update(
        last_checked_at=_utc(latest["checked_at"]),
        last_outcome=latest["outcome"].astype(OUTCOME_DTYPE),
        last_code=_strings(latest["code"]),
        last_message=_strings(latest["message"]),
        last_result=pd.Categorical.from_codes(checks.latest_result, dtype=CHECK_RESULT_DTYPE),
    )
    fact.update(
        never_checked=latest["checked_at"].isna().to_numpy(),
        latest_transient=checks.latest_result == 1,
        latest_code=_objects(col["last_code"]),
        latest_offset_ms=_objects(_ints(latest["clock_offset_ms"])),
        latest_limited_pool=_objects(_strings(latest["rate_limited_pool"])),
        latest_reset_at=(
            _utc(latest["checked_at"])
            + pd.to_timedelta(_ints(latest["rate_limit_reset_ms"]).astype("float64"), unit="ms")
        ).array.asi8,
        rejected=(verdict["outcome"].astype(OUTCOME_DTYPE) == Outcome.REJECTED).to_numpy(),
        verdict_code=_objects(_strings(verdict["code"])),
        verdict_endpoint=_objects(_strings(verdict["endpoint"])),
        verdict_offset_ms=_objects(_ints(verdict["clock_offset_ms"])),
    )


def _status_and_words(
    policy: HealthPolicy, now: pd.Timestamp, col: dict[str, Any], fact: dict[str, Any]
) -> None:
    """Add the status (the worst proposal wins; PAUSED overrides) and each account's words."""
    fact["at_risk"] = np.logical_or.reduce([fact[name] for name in RISK_FLAGS])
    verdict_rank = np.array(
        [rejection_status(c).rank for c in fact["verdict_code"]], dtype=np.int64
    )
    rank = np.where(fact["rejected"], verdict_rank, Status.OK.rank)
    for name, status in PROPOSED_BY:  # lib.health.status.worst_status, one column at a time
        rank = np.where(fact[name], np.minimum(rank, status.rank), rank)
    paused = fact["paused"]
    final = np.where(paused, Status.PAUSED.rank, rank)
    col["status"] = pd.Categorical.from_codes(final, dtype=STATUS_DTYPE)  # codes are ranks
    col["severity"] = final

    explain = Explainer(policy, now.to_pydatetime()).explain
    values = zip(*(fact[name] for name in AccountFacts._fields), strict=True)
    rows = zip(rank, paused, values, strict=True)
    # A healthy account needs no words of its own.
    texts = [
        explain(AccountFacts._make(values), SEVERITY[r])
        if r != Status.OK.rank or p
        else (*HEALTHY, None, ())
        for r, p, values in rows
    ]
    for i, name in enumerate(("diagnosis", "hint", "risks", "risk_list")):
        col[name] = [t[i] for t in texts]
