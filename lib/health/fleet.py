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
- Time alone changes an account's answers only at known instants, and `changes_at` says the
  next one (it turns STALE, its key grows too old, KuCoin's 30-day rule passes, the age its
  words give moves on). The ages, the freshness and the going-stale time are read from `now`
  when the table is drawn (`fleet_at`): a judgement of the fleet stays true until then, so
  lib.console.fleet keeps one and judges again only the accounts that changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api.extensions import ExtensionDtype

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
from lib.health.facts import NAT, AccountFacts
from lib.health.inputs import ACCOUNT_COLUMNS, PROBE_COLUMNS
from lib.health.policy import DEFAULT_POLICY, HealthPolicy
from lib.health.risks import RISK_FACTS, RISK_FLAGS, risks
from lib.health.status import PROPOSED_BY, SEVERITY, Status, rejection_status
from lib.health.wording import (
    AGE_FACTS,
    AGE_STEPS_S,
    DATE_FACTS,
    HEALTHY,
    READ_ONLY_WHEN,
    WORDS_LIST_RISKS,
    WORDS_READ,
    Explainer,
    format_age,
    risk_text,
)
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


# The columns read from `now` when the table is drawn, not judged.
TIME_COLUMNS = ("sync_age", "going_stale_at", "freshness", "key_age_days")
# A judgement: the other columns, where freshness counts from (the last successful sync, or
# the binding) and when time alone next changes an answer (NaT: never).
JUDGED_COLUMNS: dict[str, object] = {
    **{name: dtype for name, dtype in FLEET_COLUMNS.items() if name not in TIME_COLUMNS},
    "fresh_from": _DT,
    "changes_at": _DT,
}
WORST_FIRST = ["severity", "label", "account_id"]


def fleet_health(
    accounts: pd.DataFrame, probes: pd.DataFrame, policy: HealthPolicy, now: datetime
) -> pd.DataFrame:
    """Return one row per account, worst status first (FLEET_COLUMNS: names and dtypes)."""
    return fleet_at(judge_fleet(accounts, probes, policy, now), policy, now)


def judge_fleet(
    accounts: pd.DataFrame, probes: pd.DataFrame, policy: HealthPolicy, now: datetime
) -> pd.DataFrame:
    """Return every account judged at `now`, in `accounts` order (JUDGED_COLUMNS).

    The judgement holds until the account's `changes_at` while its checks, its own row and
    the policy stay as they were; fleet_at reads a later `now`'s ages from it.
    """
    judged = _facts(accounts, probes, policy, now)
    return pd.DataFrame(
        {name: _typed(judged[name], dtype) for name, dtype in JUDGED_COLUMNS.items()}, copy=False
    )


def _typed(values: Any, dtype: object) -> pd.Series:
    """Return a column's values as a Series of `dtype`, copied only if they are not already."""
    values = values.array if isinstance(values, pd.Series) else values
    return pd.Series(values, copy=False).astype(dtype, copy=False)


def fleet_at(
    judged: pd.DataFrame, policy: HealthPolicy, now: datetime, *, ordered: bool = False
) -> pd.DataFrame:
    """Return the fleet at `now` from a judgement still true then, worst first (FLEET_COLUMNS).

    `ordered`: the judgement is sorted worst first already (WORST_FIRST). Columns the caller
    added to the judgement are kept, after the status.
    """
    now = utc_now(now)
    stale_at = policy.stale_at(judged["fresh_from"])
    stale = (stale_at <= now).to_numpy()
    late = (policy.late_at(judged["fresh_from"]) <= now).to_numpy()
    paused = judged["paused"].to_numpy(dtype=bool, na_value=False)
    times = {
        "sync_age": now - judged["last_sync_at"],
        # Like going_down_after: no deadline once it has passed, nor while nothing is watched.
        "going_stale_at": stale_at.where(~stale & ~paused),
        "freshness": pd.Categorical.from_codes(
            np.select([stale, late], [0, 1], 2), dtype=FRESHNESS_DTYPE
        ),
        "key_age_days": ((now - judged["key_created_at"]) // pd.Timedelta(days=1)).astype("Int64"),
    }
    # Columns a caller added to the judgement (the scopes an account needs) follow the status.
    added = [name for name in judged.columns if name not in JUDGED_COLUMNS]
    columns = [*list(FLEET_COLUMNS)[:3], *added, *list(FLEET_COLUMNS)[3:]]
    fleet = pd.DataFrame(
        {name: times[name] if name in times else judged[name] for name in columns},
        index=judged.index,
        copy=False,  # shares the judgement's columns: each caller passes a frame of its own
    )
    if not ordered:
        fleet = fleet.take(worst_first(fleet))
    return fleet.reset_index(drop=True)


def worst_first(fleet: pd.DataFrame) -> np.ndarray:
    """Return the positions of the fleet's rows worst first (WORST_FIRST; a stable sort)."""
    # Arrow sorts the labels in C++, several times faster than pandas' sort of Python strings,
    # in the same order (UTF-8 bytes sort as code points; a missing value sorts last).
    columns = {name: pa.array(fleet[name].array) for name in WORST_FIRST}
    keys = [(name, "ascending", "at_end") for name in WORST_FIRST]
    return pc.sort_indices(pa.table(columns), sort_keys=keys).to_numpy()


def deciding_checks(probes: pd.DataFrame, policy: HealthPolicy) -> pd.DataFrame:
    """Return the checks the rules decide on, in input order: at most four per account.

    Per account: the newest check, the newest non-transient one (KuCoin's verdict), the newest
    success (the key info) and the newest that shows whether our IP passes. The rules over
    these give the same answers as over the whole history.
    """
    ids = pd.unique(probes["account_id"].to_numpy(dtype="int64"))
    checks = _deciding_positions(probes, ids, policy)
    positions = np.concatenate([checks.latest, checks.verdict, checks.success, checks.evidence])
    return probes.iloc[np.unique(positions[positions >= 0])]


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
    return pd.Series(pd.array(_texts(values), dtype="string"), index=values.index)


def _texts(values: pd.Series) -> np.ndarray:
    """Return values as stripped strings in an object array; None, NA and "" become None."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values):
        values = values.astype("Int64")  # a UID read as a number, or made float by NA
    values = values.to_numpy()
    sample = values[:_SAMPLE]
    if len(sample) == _SAMPLE and len(pd.unique(sample)) == _SAMPLE:
        # Distinct values (a column of UIDs or labels): each is read once, in one pass.
        texts = np.empty(len(values), dtype=object)
        texts[:] = [(v.strip() or None) if type(v) is str else _text(v) for v in values]
        return texts
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    texts = [_text(v) for v in uniques]
    return np.array([*texts, None], dtype=object)[codes]  # code -1 (NA) takes the last


_SAMPLE = 64  # the values _texts looks at to tell a column of distinct values


def _text(value: object) -> str | None:
    """Return a value as stripped text; None, NA and "" become None."""
    if value is None or value is pd.NA or value != value:  # NaN and NaT: unequal to themselves
        return None
    return str(value).strip() or None


def _objects(values: pd.Series) -> np.ndarray:
    """Return a column as an object array with None for NA."""
    return values.to_numpy(dtype=object, na_value=None)


def _taken(values: pd.Series, rows: np.ndarray) -> Any:
    """Return a column's values at `rows` (positions)."""
    if isinstance(values.dtype, ExtensionDtype):
        return values.array.take(rows)
    # Not through .array: pandas looks for NA in all of an object column it wraps that way.
    return values.to_numpy()[rows]


def _categorical(values: pd.Series, dtype: pd.CategoricalDtype) -> pd.Series:
    """Return values as a Categorical of `dtype` (others NA), matched once per distinct value."""
    codes, uniques = pd.factorize(values.to_numpy(), use_na_sentinel=True)
    known = pd.Index(dtype.categories).get_indexer(pd.Index(uniques, dtype=object).astype(str))
    found = np.append(known, -1)[codes]  # code -1 (NA) takes the -1
    return pd.Series(pd.Categorical.from_codes(found, dtype=dtype), index=values.index)


def _ints(values: pd.Series) -> pd.Series:
    """Return a column of whole numbers with NA for missing ones (Int64)."""
    return pd.to_numeric(values).astype("Int64")


def _factorize(values: Any) -> tuple[np.ndarray, int]:
    """Return a column's values numbered from 0 (NA: -1), and how many distinct ones it has."""
    if isinstance(values, pd.arrays.NumpyExtensionArray):
        values = np.asarray(values)  # its to_numpy() would look for NA in every value first
    if isinstance(values, np.ndarray) and values.dtype == bool:
        return values.astype(np.int64), 2
    try:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    except TypeError:  # lists (permissions, scopes): numbered as tuples
        # A fleet shares a few list objects: each distinct object is made a tuple once.
        objects = np.asarray(values, dtype=object)
        by_object, first = np.unique(
            np.fromiter(map(id, objects), dtype=np.int64, count=len(objects)),
            return_index=True,
            return_inverse=True,
        )[1:]
        hashable = np.empty(len(by_object), dtype=object)
        hashable[:] = [tuple(v) if isinstance(v, list) else v for v in objects[by_object]]
        codes, uniques = pd.factorize(hashable, use_na_sentinel=True)
        codes = codes[first]
    return codes, len(uniques)


def _distinct_rows(columns: Sequence[object]) -> tuple[np.ndarray, np.ndarray]:
    """Return each row's number among the distinct rows of `columns`, and a row of each."""
    # Each column's values are numbered (NA as 0); the numbers combine into one key per row,
    # renumbered before the key could overflow.
    key = np.zeros(len(columns[0]), dtype=np.int64)
    width = 1
    for column in columns:
        codes, count = _factorize(column)
        if width * (count + 1) >= 2**62:
            key, distinct = pd.factorize(key)
            width = len(distinct)
        key = key * (count + 1) + codes + 1
        width *= count + 1
    rows, distinct = pd.factorize(key)
    first = np.full(len(distinct), len(rows), dtype=np.int64)
    np.minimum.at(first, rows, np.arange(len(rows)))
    return rows, first


def _per_distinct(columns: Sequence[object], *functions: Callable[..., Any]) -> list[np.ndarray]:
    """Return function(*values) for every row per function, each called once per distinct row."""
    # Values reach the functions as plain objects, None for NA.
    rows, first = _distinct_rows(columns)
    values = [_objects(pd.Series(_taken(pd.Series(c, copy=False), first))) for c in columns]
    results = []
    for function in functions:
        found = np.empty(len(first), dtype=object)
        for i, row in enumerate(zip(*values, strict=True)):
            found[i] = function(*row)
        results.append(found[rows])
    return results


# --- Which checks decide -----------------------------------------------------------------


class _CheckFlags(NamedTuple):
    """Per check: passed; failed in a way a retry may fix; shows whether our IP passes."""

    ok: np.ndarray
    transient: np.ndarray
    shows_ip: np.ndarray


def _check_flags(probes: pd.DataFrame, policy: HealthPolicy) -> _CheckFlags:
    """Return what each check says (lib.health.checks), asked once per distinct failure."""
    ok = _passed(probes["outcome"])
    transient = np.zeros(len(ok), dtype=bool)
    shows_ip = ok.copy()
    failed = np.flatnonzero(~ok)  # most checks pass: only the failures need a closer look
    if len(failed):
        answer = [
            _objects(pd.Series(probes[name].to_numpy()[failed])) for name in ("outcome", "code")
        ]
        shows, when_unmeasured, when_clocks_agree = _per_distinct(
            answer,
            lambda o, c: ip_evidence(o, c) is not None,
            lambda o, c: is_transient(o, c, None, policy),
            lambda o, c: is_transient(o, c, 0, policy),
        )
        shows_ip[failed] = shows.astype(bool)
        found = when_unmeasured.astype(bool)
        # A 400002 is transient only while the clocks agree: ask about those checks' offsets.
        depends = found != when_clocks_agree.astype(bool)
        if depends.any():
            offsets = _objects(probes["clock_offset_ms"].take(failed[depends]))
            outcomes, codes = (a[depends] for a in answer)
            found[depends] = [
                is_transient(o, c, offset, policy)
                for o, c, offset in zip(outcomes, codes, offsets, strict=True)
            ]
        transient[failed] = found
    return _CheckFlags(ok, transient, shows_ip)


def _passed(outcome: pd.Series) -> np.ndarray:
    """Return per check whether it passed."""
    if outcome.dtype == object:  # numpy compares object arrays far faster than pandas
        return outcome.to_numpy() == Outcome.OK.value
    return (outcome == Outcome.OK.value).to_numpy(dtype=bool, na_value=False)


def _flag_rows(
    flags: _CheckFlags, probes: pd.DataFrame, rows: np.ndarray, policy: HealthPolicy
) -> None:
    """Set `flags` at `rows` to what those checks say."""
    # Most checks pass: only the failures' other columns are taken and looked at.
    ok = _passed(pd.Series(_taken(probes["outcome"], rows)))
    flags.ok[rows], flags.transient[rows], flags.shows_ip[rows] = ok, False, ok
    failed = rows[~ok]
    if len(failed):
        taken = pd.DataFrame({name: _taken(probes[name], failed) for name in _FLAG_COLUMNS})
        found = _check_flags(taken, policy)
        for every, some in zip(flags, found, strict=True):
            every[failed] = some


_FLAG_COLUMNS = ("outcome", "code", "clock_offset_ms")  # what _check_flags reads


def _account_positions(account_id: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Return each row's account as a position in `ids`, -1 for an account not there."""
    if len(ids) and ids.min() >= 0 and ids.max() < 4 * len(ids) + 1024:
        table = np.full(int(ids.max()) + 2, -1, dtype=np.int64)  # the last slot: not there
        table[ids] = np.arange(len(ids))
        if len(account_id) and account_id.min() >= 0 and account_id.max() <= ids.max():
            return table[account_id]
        return table[np.where((account_id >= 0) & (account_id <= ids.max()), account_id, -1)]
    return pd.Index(ids).get_indexer(account_id)


def _newest(
    account: np.ndarray, times: np.ndarray, count: int, rows: np.ndarray | None
) -> np.ndarray:
    """Return per account the position of its newest row among `rows` (ties: the later row).

    rows: positions of rows of an account; None for every row, when each is of an account.
    """
    # -1 for an account without one. Two passes of a running maximum: no sort of the history.
    accounts, at = (account, times) if rows is None else (account[rows], times[rows])
    newest = np.full(count, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(newest, accounts, at)
    ties = at == newest[accounts]
    rows = np.flatnonzero(ties) if rows is None else rows[ties]
    latest = np.full(count, -1, dtype=np.int64)
    np.maximum.at(latest, account[rows], rows)
    return latest


def _newest_where(
    account: np.ndarray, times: np.ndarray, latest: np.ndarray, rows: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """Return per account the position of its newest row among `mask`, given its newest row."""
    # Where the newest row is one, it is the answer; the other accounts' `rows` are searched.
    found = latest >= 0
    found[found] = mask[latest[found]]
    search = rows[mask[rows]]
    newest = _newest(account, times, len(latest), search)
    return np.where(found, latest, newest)


class _Positions(NamedTuple):
    """Per account, the position of each check the rules decide on (-1: none)."""

    latest: np.ndarray  # the newest check
    verdict: np.ndarray  # the newest non-transient answer: KuCoin's verdict on the key
    success: np.ndarray  # the newest passing check: the key info
    evidence: np.ndarray  # the newest check showing whether our IP passes
    flags: _CheckFlags


def _deciding_positions(probes: pd.DataFrame, ids: np.ndarray, policy: HealthPolicy) -> _Positions:
    """Return per account of `ids` the positions in `probes` of the checks that decide."""
    account = _account_positions(probes["account_id"].to_numpy(dtype="int64"), ids)
    times = _utc(probes["checked_at"]).array.asi8
    ours = account >= 0  # rows of other accounts are left out
    latest = _newest(account, times, len(ids), None if ours.all() else np.flatnonzero(ours))
    # A newest check that passed is also the newest verdict, success and IP evidence: only the
    # history of accounts whose newest check failed needs a search, and only the checks
    # searched (and the newest) need asking what they say.
    flags = _CheckFlags(*(np.zeros(len(probes), dtype=bool) for _ in _CheckFlags._fields))
    _flag_rows(flags, probes, latest[latest >= 0], policy)
    failed = np.flatnonzero(latest >= 0)
    failed = failed[~flags.ok[latest[failed]]]
    searched = np.zeros(len(ids) + 1, dtype=bool)  # the last slot: rows of no account
    searched[failed] = True
    rows = np.flatnonzero(searched[account])
    _flag_rows(flags, probes, rows, policy)
    return _Positions(
        latest,
        *(
            _newest_where(account, times, latest, rows, mask)
            for mask in (~flags.transient, flags.ok, flags.shows_ip)
        ),
        flags=flags,
    )


# The columns read from each deciding check.
_LATEST = [
    "checked_at",
    "outcome",
    "code",
    "message",
    "clock_offset_ms",
    "rate_limited_pool",
    "rate_limit_reset_ms",
]
_VERDICT = ["outcome", "code", "endpoint", "clock_offset_ms"]
_EVIDENCE = ["outcome", "code", "seen_ip"]
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


class _Deciding(NamedTuple):
    """Per account, the checks the rules decide on (all NA for an account without one)."""

    latest: dict[str, pd.Series]  # the newest check
    verdict: dict[str, pd.Series]  # the newest non-transient answer: KuCoin's verdict on the key
    success: dict[str, pd.Series]  # the newest passing check: the key info
    evidence: dict[str, pd.Series]  # the newest check showing whether our IP passes
    latest_result: np.ndarray  # CHECK_RESULT_DTYPE codes of the newest; -1: never checked


def _rows_at(
    probes: pd.DataFrame, positions: np.ndarray, columns: list[str], ids: pd.Index
) -> dict[str, pd.Series]:
    """Return `columns` of the probes at `positions`, one row per id (all NA for -1)."""
    taken = {}
    for name in columns:
        values = probes[name]
        array = values.array if isinstance(values.dtype, ExtensionDtype) else values.to_numpy()
        taken[name] = pd.Series(
            pd.api.extensions.take(array, positions, allow_fill=True), index=ids, copy=False
        )
    return taken


def _deciding_checks(probes: pd.DataFrame, ids: pd.Index, policy: HealthPolicy) -> _Deciding:
    """Return per account its newest check, verdict, success and IP evidence."""
    found = _deciding_positions(probes, ids.to_numpy(), policy)
    flags = found.flags
    result = np.select([flags.ok, flags.transient], [0, 1], 2)
    return _Deciding(
        latest=_rows_at(probes, found.latest, _LATEST, ids),
        verdict=_rows_at(probes, found.verdict, _VERDICT, ids),
        success=_rows_at(probes, found.success, _KEY_INFO, ids),
        evidence=_rows_at(probes, found.evidence, _EVIDENCE, ids),
        latest_result=np.append(result, -1)[found.latest],  # position -1 takes the -1
    )


# --- Facts per account -------------------------------------------------------------------


def _facts(
    accounts: pd.DataFrame, probes: pd.DataFrame, policy: HealthPolicy, now: datetime
) -> dict[str, Any]:
    """Return every judged column by name, an array or Series each, in `accounts` order."""
    _require(accounts, ACCOUNT_COLUMNS, "accounts")
    _require(probes, PROBE_COLUMNS, "probes")
    now = utc_now(now)
    ids = pd.Index(accounts["account_id"].to_numpy(dtype="int64"), name="account_id")
    checks = _deciding_checks(probes, ids, policy)
    # col: the judged columns; fact: the AccountFacts fields, one array each.
    col: dict[str, Any] = {"label": _strings(accounts["label"]).array}
    fact: dict[str, Any] = {}
    _account_facts(accounts, checks, ids, policy, now, col, fact)
    _key_facts(accounts, checks, policy, now, col, fact)
    _whitelist_facts(checks, policy, col, fact)
    _latest_facts(checks, col, fact)
    _status_andfleet_words(policy, now, col, fact)
    _changes_at(policy, now, col, fact)
    col["account_id"] = ids.to_numpy()
    return col


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
    fresh_from = last_sync_at.fillna(created_at)  # the last success, or the binding
    stale_at = policy.stale_at(fresh_from)
    stale = (stale_at <= now).to_numpy()
    verified = (last_sync_at >= created_at).fillna(False).to_numpy(dtype=bool)
    col.update(
        paused=paused,
        unverified=unverified,
        last_sync_at=last_sync_at,
        fresh_from=fresh_from,
    )
    fact.update(
        paused=paused,
        unverified=unverified & ~verified,
        stale=stale,
        stale_at=stale_at.array.asi8,
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
    futures_missing = (
        good["futures_permission_missing"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    )
    # A fleet repeats a few permission lists and scope lists: each is read once.
    (permissions,) = _per_distinct(
        [good["permissions"], known], lambda v, k: names(v) if k else frozenset()
    )
    scopes = list(SCOPE_PERMISSIONS)
    trading, withdrawal, dangerous, granted, *has = _per_distinct(
        [permissions, known, futures_missing],
        lambda g, k, fm: k and trades(g),
        lambda g, k, fm: k and grants_withdrawal(g),
        lambda g, k, fm: ", ".join(p for p in DANGEROUS_PERMISSIONS if p in g) if k else None,
        lambda g, k, fm: ", ".join(sorted(g)) if k else None,
        *(lambda g, k, fm, s=scope: has_scope(s, g, bool(fm)) for scope in scopes),
    )
    need = _per_distinct(
        [accounts["scopes"]], *(lambda n, s=scope: s in names(n) for scope in scopes)
    )
    missing: dict[str, np.ndarray] = {}
    for scope, has_it, needs_it in zip(scopes, has, need, strict=True):
        has_it, needs_it = has_it.astype(bool), needs_it.astype(bool)
        # Categories: missing, granted, not needed; -1 (NA) before key info was read.
        col[scope] = pd.Categorical.from_codes(
            np.select([~known, has_it, needs_it], [-1, 1, 0], 2), dtype=SCOPE_STATE_DTYPE
        )
        missing[SCOPE_PERMISSIONS[scope]] = known & needs_it & ~has_it
    whitelists = _texts(good["ip_whitelist"])
    exposed = trading.astype(bool) & (whitelists == None)  # noqa: E711 (elementwise)
    last_sync_at = _utc(good["checked_at"])
    key_created_at = _utc(good["key_created_at"])
    key_age = now - key_created_at
    key_age_days = (key_age // pd.Timedelta(days=1)).astype("Int64")
    clock_offset = _ints(good["clock_offset_ms"])
    # 30-day rule: counted from the last successful signed call.
    expires_at = policy.deleted_if_unused_at(last_sync_at.where(exposed))
    # The permission names each account lacks, found once per combination of gaps.
    gaps = np.zeros(len(known), dtype=np.int64)
    for bit, flags in enumerate(missing.values()):
        gaps |= flags.astype(np.int64) << bit
    by_gaps = np.empty(1 << len(missing), dtype=object)
    by_gaps[:] = [
        tuple(name for bit, name in enumerate(missing) if combination >> bit & 1)
        for combination in range(len(by_gaps))
    ]
    col.update(
        dangerous_permissions=dangerous,
        permissions=granted,
        key_created_at=key_created_at,
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
        missing_scopes=by_gaps[gaps],
        scope_missing=gaps != 0,
        withdrawal=withdrawal.astype(bool),
        exposed=exposed,
        old_key=known & policy.key_too_old(key_age).fillna(False).to_numpy(dtype=bool),
        clock=known & policy.clock_off(clock_offset).fillna(False).to_numpy(dtype=bool),
        expires_at=expires_at.array.asi8,
        key_created_at=key_created_at.array.asi8,
        key_age_days=_objects(key_age_days),
        clock_offset_ms=_objects(clock_offset),
    )


def _whitelist_facts(
    checks: _Deciding, policy: HealthPolicy, col: dict[str, Any], fact: dict[str, Any]
) -> None:
    """Add the whitelist against the platform's egress IPs; the last call from here decides."""
    evidence = checks.evidence
    (kinds,) = _per_distinct([evidence["outcome"], evidence["code"]], ip_evidence)
    seen_ip = _texts(evidence["seen_ip"])
    summary, uncovered = _per_distinct(
        [fact["whitelists"], fact["known"], seen_ip, kinds],
        lambda w, k, ip, kind: whitelist_summary(w, bool(k), policy.egress_ips, ip, kind)[0],
        lambda w, k, ip, kind: whitelist_summary(w, bool(k), policy.egress_ips, ip, kind)[1],
    )
    col.update(whitelist=summary, seen_ip=seen_ip)
    fact.update(
        seen_ip=seen_ip,
        uncovered=uncovered,
        ip_missing=fact["known"] & (_per_distinct([uncovered], bool)[0].astype(bool)),
    )


def _latest_facts(checks: _Deciding, col: dict[str, Any], fact: dict[str, Any]) -> None:
    """Add the newest check and the verdict on the key."""
    latest, verdict = checks.latest, checks.verdict
    last_code = _strings(latest["code"])
    col.update(
        last_checked_at=_utc(latest["checked_at"]),
        last_outcome=_categorical(latest["outcome"], OUTCOME_DTYPE),
        last_code=last_code,
        last_message=_strings(latest["message"]),
        last_result=pd.Categorical.from_codes(checks.latest_result, dtype=CHECK_RESULT_DTYPE),
    )
    fact.update(
        never_checked=latest["checked_at"].isna().to_numpy(),
        latest_transient=checks.latest_result == 1,
        latest_code=_objects(last_code),
        latest_offset_ms=_objects(_ints(latest["clock_offset_ms"])),
        latest_limited_pool=_objects(_strings(latest["rate_limited_pool"])),
        latest_reset_at=(
            _utc(latest["checked_at"])
            + pd.to_timedelta(_ints(latest["rate_limit_reset_ms"]), unit="ms")
        ).array.asi8,
        rejected=(_categorical(verdict["outcome"], OUTCOME_DTYPE) == Outcome.REJECTED).to_numpy(),
        verdict_code=_texts(verdict["code"]),
        verdict_endpoint=_texts(verdict["endpoint"]),
        verdict_offset_ms=_objects(_ints(verdict["clock_offset_ms"])),
    )


def _status_andfleet_words(
    policy: HealthPolicy, now: pd.Timestamp, col: dict[str, Any], fact: dict[str, Any]
) -> None:
    """Add the status (the worst proposal wins; PAUSED overrides) and each account's words."""
    fact["at_risk"] = np.logical_or.reduce([fact[name] for name in RISK_FLAGS])
    (verdict_rank,) = _per_distinct([fact["verdict_code"]], lambda c: rejection_status(c).rank)
    rank = np.where(fact["rejected"], verdict_rank.astype(np.int64), Status.OK.rank)
    for name, status in PROPOSED_BY:  # lib.health.status.worst_status, one column at a time
        rank = np.where(fact[name], np.minimum(rank, status.rank), rank)
    paused = fact["paused"]
    final = np.where(paused, Status.PAUSED.rank, rank)
    col["status"] = pd.Categorical.from_codes(final, dtype=STATUS_DTYPE)  # codes are ranks
    col["severity"] = final
    fact["rank"] = rank

    col["diagnosis"], col["hint"], col["risks"] = fleet_words(fact, rank, policy, now)


def fleet_words(
    fact: Mapping[str, np.ndarray], rank: np.ndarray, policy: HealthPolicy, now: pd.Timestamp
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return every account's diagnosis, hint and risks as Explainer.explain words them.

    facts: the AccountFacts fields, an array each; rank: each status before a pause.
    """
    # The risks are found once per distinct reading of RISK_FACTS; the words once per status,
    # risks (where they list them) and reading of the other facts.
    read = _as_read(fact, policy, now)

    def facts_at(rows: np.ndarray) -> list[AccountFacts]:
        """Return the facts of the accounts at `rows`."""
        values = [np.asarray(fact[name])[rows] for name in AccountFacts._fields]
        return [AccountFacts._make(row) for row in zip(*values, strict=True)]

    risk_rows, first = _distinct_rows([key for name in RISK_FACTS for key in read[name]])
    found = [risks(facts, policy) for facts in facts_at(first)]
    risk_texts = np.array([*(risk_text(f) for f in found), None], dtype=object)
    # Only some statuses' words list the risks, and each status's words read their own facts:
    # the accounts of a status are told apart by those alone.
    listed = _of_statuses(rank, WORDS_LIST_RISKS)
    paused = fact["paused"]
    readings = [rank, paused, np.where(listed, risk_rows, -1)]
    for name in AccountFacts._fields:
        reads = _words_read(rank, name)
        if reads.all():
            readings.extend(read[name])
        elif reads.any():
            readings.extend(_numbered_where(reads, values) for values in read[name])
    rows, first = _distinct_rows(readings)
    explain = Explainer(policy, now.to_pydatetime()).explain
    texts = [
        explain(facts, SEVERITY[rank[i]], found[risk_rows[i]])[:2]
        if rank[i] != Status.OK.rank or paused[i]
        else HEALTHY  # a healthy account needs no words of its own
        for i, facts in zip(first, facts_at(first), strict=True)
    ]
    words = np.empty((len(texts), 2), dtype=object)
    words[:] = texts or words
    return words[rows, 0], words[rows, 1], risk_texts[risk_rows]


def _words_read(rank: np.ndarray, name: str) -> np.ndarray:
    """Return per account whether the words of its status read the fact `name` (WORDS_READ)."""
    return _of_statuses(rank, [status for status, read in WORDS_READ.items() if name in read])


def _of_statuses(rank: np.ndarray, statuses: Sequence[Status]) -> np.ndarray:
    """Return per account whether its status (by rank) is one of `statuses`."""
    of = np.zeros(len(SEVERITY), dtype=bool)
    of[[status.rank for status in statuses]] = True
    return of[rank]


def _numbered_where(where: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Return the values numbered from 0 where `where` holds (-1 elsewhere, NA included)."""
    numbers = np.full(len(where), -1, dtype=np.int64)
    numbers[where] = _factorize(np.asarray(values)[where])[0]
    return numbers


def _as_read(
    fact: Mapping[str, Any], policy: HealthPolicy, now: pd.Timestamp
) -> dict[str, list[np.ndarray]]:
    """Return per AccountFacts field what the words read of it (lib.health.wording)."""
    # A fact the words do not read becomes NaT or 0; an age, its step of format_age; a date,
    # its day (KuCoin's 30-day rule being whole days) and whether it has passed.
    read = {}
    for name in AccountFacts._fields:
        value = fact[name]
        if name in READ_ONLY_WHEN:
            read_when = np.asarray(READ_ONLY_WHEN[name](fact), dtype=bool)
            value = np.where(read_when, value, NAT if name in AGE_FACTS else 0)
        if name in AGE_FACTS:
            read[name] = [np.where(value == NAT, -1, _age_step(_age_ns(now, value))[0])]
        elif name in DATE_FACTS:
            whole_days = policy.inactivity_rule % timedelta(days=1) == timedelta(0)
            day = value - value % _DAY_NS if whole_days else value
            read[name] = [day, (value != NAT) & (value <= now.value)]
        else:
            read[name] = [value]
    return read


_DAY_NS = 86_400 * 10**9


def _age_ns(now: pd.Timestamp, since: np.ndarray) -> np.ndarray:
    """Return now - since in nanoseconds as format_age reads it: from whole microseconds."""
    since = np.where(since == NAT, now.value, since)
    return now.value - now.value % 1_000 - (since - since % 1_000)


def _age_step(age_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return an age's text step (format_age: what it shows) and the seconds until the next."""
    # format_age truncates to whole seconds (from microseconds) and shows nothing below 0 s.
    seconds = np.maximum(age_ns // 1_000 // 1_000_000, 0)
    step = np.select([seconds >= start for start, _ in AGE_STEPS_S], [s for _, s in AGE_STEPS_S])
    shown = seconds - seconds % step
    return shown, shown + step - seconds


def age_texts(ages: pd.Series) -> pd.Series:
    """Return format_age of every age ("2 d 4 h", "3 h 20 min", "45 s"), NA when unknown."""
    ns = ages.array.asi8 if len(ages) else np.zeros(0, dtype=np.int64)
    known = ages.notna().to_numpy()
    shown, _ = _age_step(np.where(known, ns, 0))
    codes, steps = pd.factorize(np.where(known, shown, -1))
    texts = [format_age(timedelta(seconds=int(s))) if s >= 0 else None for s in steps]
    shown_texts = np.array(texts, dtype=object)[codes]
    return pd.Series(pd.array(shown_texts, dtype="string"), index=ages.index)


def _changes_at(
    policy: HealthPolicy, now: pd.Timestamp, col: dict[str, Any], fact: dict[str, Any]
) -> None:
    """Add when time alone next changes the account's status or words (NaT: never)."""
    key_created = fact["key_created_at"]
    dated = fact["known"] & (key_created != NAT)
    key_created = np.where(dated, key_created, 0)
    key_age_days = (now.value - key_created) // _DAY_NS
    rotate_at = key_created + pd.Timedelta(policy.rotation_age).value
    candidates = [
        fact["stale_at"],  # turns STALE
        np.where(dated, rotate_at, NAT),  # the key grows too old: rotate it
        # An old key's risk says its age in days.
        np.where(dated & fact["old_key"], key_created + (key_age_days + 1) * _DAY_NS, NAT),
        fact["expires_at"],  # KuCoin's 30-day rule has likely deleted it
    ]
    # Some statuses' words say how long since the last sync (or the binding): STALE's.
    for name in AGE_FACTS:
        since = fact[name]
        read = _words_read(fact["rank"], name)
        if name in READ_ONLY_WHEN:
            read &= np.asarray(READ_ONLY_WHEN[name](fact), dtype=bool)
        age = _age_ns(now, since)
        _, wait_s = _age_step(age)
        later = now.value + np.where(age >= 0, wait_s * 10**9 - age % 10**9, -age)
        candidates.append(np.where(read & (since != NAT), later, NAT))
    times = np.stack(candidates)
    times = np.where((times != NAT) & (times > now.value), times, np.iinfo(np.int64).max)
    soonest = times.min(axis=0)
    col["changes_at"] = pd.DatetimeIndex(
        np.where(soonest == np.iinfo(np.int64).max, NAT, soonest).astype("datetime64[ns]"),
        tz="UTC",
    )
