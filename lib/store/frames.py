"""DataFrames of accounts and checks for pages, the fleet table and notebooks.

One SELECT of plain columns on the driver's cursor (no ORM objects, no Row wrappers), then one
vectorised conversion per column: the whole history of a large fleet reads in about a second.
Every query is built from the models' tables and compiled for the session's database.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import BigInteger, Column, Text, and_, cast, extract, func, not_, or_, select
from sqlalchemy import true as sql_true
from sqlalchemy.sql import ColumnElement, FromClause, Select
from sqlmodel import Session

from lib.kucoin import diagnosis
from lib.kucoin.probe_result import Outcome
from lib.store.models import Account, AuditEvent, Credential, ProbeRecord

_ACCOUNTS = Account.__table__
_CREDENTIALS = Credential.__table__
_PROBES = ProbeRecord.__table__
_TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy writes DATETIME in SQLite
_MANY_IDS = 20_000  # past this many accounts, a list of ids costs more than asking about all
_CHUNK_ROWS = 20_000  # rows converted at a time

# Frame column -> (table column, kind). Kinds: ts (UTC datetime), int, Int64 (nullable), bool,
# boolean (nullable), str, json (text), perms and tuple (tuples of str).
PROBE_FRAME_COLUMNS: dict[str, tuple[Column, str]] = {
    "probe_id": (_PROBES.c.id, "int"),
    "account_id": (_PROBES.c.account_id, "int"),
    "checked_at": (_PROBES.c.checked_at, "ts"),
    "outcome": (_PROBES.c.outcome, "str"),
    "latency_ms": (_PROBES.c.latency_ms, "int"),
    "code": (_PROBES.c.code, "str"),
    "message": (_PROBES.c.message, "str"),
    "http_status": (_PROBES.c.http_status, "Int64"),
    "endpoint": (_PROBES.c.endpoint, "str"),
    "permissions": (_PROBES.c.permissions, "perms"),
    "ip_whitelist": (_PROBES.c.ip_whitelist, "str"),
    "is_master": (_PROBES.c.is_master, "boolean"),
    "sub_name": (_PROBES.c.sub_name, "str"),
    "uid": (_PROBES.c.uid, "str"),
    "remark": (_PROBES.c.remark, "str"),
    "api_version": (_PROBES.c.api_version, "Int64"),
    "key_created_at": (_PROBES.c.key_created_at, "ts"),
    "clock_offset_ms": (_PROBES.c.clock_offset_ms, "Int64"),
    "seen_ip": (_PROBES.c.seen_ip, "str"),
    "rate_limit_remaining": (_PROBES.c.rate_limit_remaining, "Int64"),
    "balances_json": (_PROBES.c.balances, "json"),
    "futures_permission_missing": (_PROBES.c.futures_permission_missing, "bool"),
    "vip_level": (_PROBES.c.vip_level, "Int64"),
    "rate_limited_pool": (_PROBES.c.rate_limited_pool, "str"),
    "rate_limit_reset_ms": (_PROBES.c.rate_limit_reset_ms, "Int64"),
}

ACCOUNT_FRAME_COLUMNS: dict[str, tuple[Column, str]] = {
    "account_id": (_ACCOUNTS.c.id, "int"),
    "label": (_ACCOUNTS.c.label, "str"),
    "exchange": (_ACCOUNTS.c.exchange, "str"),
    "scopes": (_ACCOUNTS.c.scopes, "tuple"),
    "paused": (_ACCOUNTS.c.paused, "bool"),
    "unverified": (_ACCOUNTS.c.unverified, "bool"),
    "unbound_at": (_ACCOUNTS.c.unbound_at, "ts"),
    "created_at": (_ACCOUNTS.c.created_at, "ts"),
    "created_by": (_ACCOUNTS.c.created_by, "str"),
    "updated_at": (_ACCOUNTS.c.updated_at, "ts"),
    "updated_by": (_ACCOUNTS.c.updated_by, "str"),
    "key_last4": (_CREDENTIALS.c.key_last4, "str"),
    "key_version": (_CREDENTIALS.c.key_version, "str"),
    "credential_created_at": (_CREDENTIALS.c.created_at, "ts"),
    "credential_rotated_at": (_CREDENTIALS.c.rotated_at, "ts"),
}


# --- reading and converting -------------------------------------------------------------------


def _selected(dialect: str, column: ColumnElement, kind: str) -> ColumnElement:
    """Return what to SELECT for one column: values the converters below read cheaply."""
    if kind == "ts" and dialect == "postgresql":
        # Integers are far cheaper to fetch and convert than timestamptz objects.
        return cast(extract("epoch", column) * 1_000_000, BigInteger)
    if kind in ("json", "tuple"):
        return cast(column, Text)  # PostgreSQL would parse JSON per row otherwise
    return column


def _ts_values(dialect: str, values: np.ndarray) -> pd.Series:
    if dialect == "postgresql":
        micros = values.astype("datetime64[us]")  # None becomes NaT
        return pd.Series(micros).dt.tz_localize("UTC").astype("datetime64[ns, UTC]")
    return pd.Series(pd.to_datetime(values, format=_TS_FORMAT, utc=True))


def _by_unique(values: np.ndarray, parse: Callable[[Any], Any]) -> pd.Series:
    """Return values parsed once per distinct value (scopes and permissions repeat a lot)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    parsed = np.empty(len(uniques), dtype=object)
    parsed[:] = [parse(v) for v in uniques]
    return pd.Series(parsed[codes], dtype=object)


def _json_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return tuple(json.loads(value) if isinstance(value, str) else value)


def _permission_tuple(value: str | None) -> tuple[str, ...]:
    return tuple(p for p in (value or "").split(",") if p)


def _column(dialect: str, kind: str, values: np.ndarray) -> pd.Series:
    """Return one typed column from an object array of the values the driver returned."""
    if kind == "ts":
        return _ts_values(dialect, values)
    if kind == "int":
        return pd.Series(values.astype(np.int64))
    if kind == "Int64":
        return pd.Series(pd.array(values, dtype="Int64"))
    if kind == "bool":
        return pd.Series(values.astype(bool))
    if kind == "boolean":
        return pd.Series(pd.array(values, dtype="boolean"))
    if kind == "perms":
        return _by_unique(values, _permission_tuple)
    if kind == "tuple":
        return _by_unique(values, _json_tuple)
    # Never a view of the row table: it would keep every other column alive too.
    return pd.Series(shared_texts(values), dtype=object)


def shared_texts(values: np.ndarray) -> np.ndarray:
    """Return texts as an object array of one object per distinct value, None for NA.

    The driver makes one object per row. Outcomes, codes and whitelists repeat: the rules then
    read a few objects, not one per row, and memory holds fewer.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return np.append(uniques.astype(object), None)[codes]  # code -1 (NA) takes the last


def _read_frame(
    session: Session,
    columns: Mapping[str, tuple[Column, str]],
    source: Mapping[Any, FromClause],
    where: Callable[[Select], Select] = lambda query: query,
) -> pd.DataFrame:
    """Return the frame of one SELECT, one typed column per entry of `columns`.

    `source` maps each table of `columns` to what the query reads it as (an alias or a
    subquery); `where` adds the conditions.
    """
    return _stacked(list(_read_chunks(session, columns, source, where)))


def _stacked(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Return frames of the same columns one after the other, column by column."""
    # pd.concat of whole frames looks at every value of a column that is all NA in one frame.
    if len(frames) == 1:
        return frames[0]
    return pd.DataFrame(
        {name: pd.concat([f[name] for f in frames], ignore_index=True) for name in frames[0]},
        copy=False,
    )


def _read_chunks(
    session: Session,
    columns: Mapping[str, tuple[Column, str]],
    source: Mapping[Any, FromClause],
    where: Callable[[Select], Select] = lambda query: query,
) -> Iterator[pd.DataFrame]:
    """Yield the rows of one SELECT as typed frames of up to _CHUNK_ROWS rows (at least one).

    The driver's tuples of a large read never all sit in memory at once.
    """
    dialect = session.get_bind().dialect
    query = select(
        *(
            _selected(dialect.name, source[column.table].c[column.name], kind)
            for column, kind in columns.values()
        )
    )
    # Literal values (ids, limits, codes) are ours, never an operator's text.
    sql = str(where(query).compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    # The driver's own cursor, inside the session's transaction: no Row objects to build.
    cursor = session.connection().connection.driver_connection.cursor()
    try:
        cursor.execute(sql)
        first = True
        while True:
            rows = cursor.fetchmany(_CHUNK_ROWS)
            if rows or first:  # an empty read still gives typed columns
                yield pd.DataFrame(_typed(dialect.name, columns, rows), copy=False)
            first = False
            if len(rows) < _CHUNK_ROWS:
                break
    finally:
        cursor.close()


def _typed(
    dialect: str, columns: Mapping[str, tuple[Column, str]], rows: list[Any]
) -> dict[str, pd.Series]:
    """Return the driver's rows as one typed column per entry of `columns`."""
    table = np.empty((len(rows), len(columns)), dtype=object)
    if rows:
        table[:] = rows
    return {
        name: _column(dialect, kind, table[:, j])
        for j, (name, (_, kind)) in enumerate(columns.items())
    }


def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Return the frame sorted in memory (cheaper than an ORDER BY that walks an index)."""
    keys = [k for k in keys if k in frame.columns]
    if not keys or frame.empty:
        return frame.reset_index(drop=True)
    numbers = [_sort_numbers(frame[k]) for k in keys]
    if any(n is None for n in numbers):
        return frame.sort_values(keys, kind="stable", ignore_index=True)
    # Whole numbers and times without NA: numpy's lexsort (stable, last key first) is several
    # times faster than pandas' sort of several keys, in the same order.
    return frame.take(np.lexsort(numbers[::-1])).reset_index(drop=True)


def _sort_numbers(values: pd.Series) -> np.ndarray | None:
    """Return a column as int64 numbers that sort as its values do; None if it cannot be."""
    if values.hasnans:
        return None
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values):
        return values.array.asi8
    if pd.api.types.is_integer_dtype(values.dtype):
        return values.to_numpy(dtype=np.int64)
    return None


def _some_columns(
    every: Mapping[str, tuple[Column, str]],
    columns: Iterable[str] | None,
    always: tuple[str, ...],
    kind: str,
) -> dict[str, tuple[Column, str]]:
    """Return the entries of `every` named in `columns` or `always` (all for None)."""
    if columns is None:
        return dict(every)
    wanted = {*columns, *always}
    unknown = sorted(wanted - set(every))
    if unknown:
        raise ValueError(f"unknown {kind} frame column(s): {', '.join(unknown)}")
    return {k: v for k, v in every.items() if k in wanted}


def _probe_columns(columns: Iterable[str] | None) -> dict[str, tuple[Column, str]]:
    if columns is None:
        return PROBE_FRAME_COLUMNS
    return _some_columns(PROBE_FRAME_COLUMNS, columns, ("account_id", "checked_at"), "probe")


def _newest_first(q: FromClause) -> tuple[ColumnElement, ColumnElement]:
    """Return the order of an account's checks, newest first (ties: the later row)."""
    return q.c.checked_at.desc(), q.c.id.desc()


# --- the frames -------------------------------------------------------------------------------


def accounts_frame(
    session: Session,
    *,
    include_unbound: bool = False,
    columns: Iterable[str] | None = None,
    account_ids: Iterable[int] | None = None,
) -> pd.DataFrame:
    """Return one row per bound account (all, with `include_unbound`) and its key metadata.

    Columns: the keys of ACCOUNT_FRAME_COLUMNS plus `bound` (or only `columns`, plus
    account_id); scopes are tuples of str, times are UTC (NaT when absent). Never a secret.
    `account_ids`: only these accounts.
    """
    a, c = _ACCOUNTS.alias("a"), _CREDENTIALS.alias("c")
    wanted = _some_columns(ACCOUNT_FRAME_COLUMNS, columns, ("account_id",), "account")
    joined = any(column.table is _CREDENTIALS for column, _ in wanted.values())

    def where(query: Select) -> Select:
        query = query.select_from(a.outerjoin(c, c.c.account_id == a.c.id) if joined else a)
        if account_ids is not None:
            query = query.where(a.c.id.in_(sorted({int(i) for i in account_ids})))
        return query if include_unbound else query.where(a.c.unbound_at.is_(None))

    frame = _read_frame(session, wanted, {_ACCOUNTS: a, _CREDENTIALS: c}, where)
    if "unbound_at" in frame.columns:
        frame.insert(list(frame.columns).index("unbound_at"), "bound", frame["unbound_at"].isna())
    return _sorted(frame, ["account_id"])


def probe_history_frame(
    session: Session,
    per_account_limit: int | None = None,
    *,
    account_id: int | None = None,
    columns: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Return checks sorted by account and time: all of them, or each account's newest N.

    Columns: the keys of PROBE_FRAME_COLUMNS (or only `columns`, plus account_id and
    checked_at): the ProbeResult fields, probe_id, and balances_json (decode_balances reads
    it). Permissions are tuples of str; times are UTC; nullable numbers are Int64.
    """
    if per_account_limit is None:
        p = _PROBES.alias("p")
    else:
        q = _PROBES.alias("q")
        rank = func.row_number().over(partition_by=q.c.account_id, order_by=_newest_first(q))
        p = select(q, rank.label("rn")).subquery("p")

    def where(query: Select) -> Select:
        if account_id is not None:
            query = query.where(p.c.account_id == int(account_id))
        if per_account_limit is not None:
            query = query.where(p.c.rn <= int(per_account_limit))
        return query

    frame = _read_frame(session, _probe_columns(columns), {_PROBES: p}, where)
    return _sorted(frame, ["account_id", "checked_at", "probe_id"])


def latest_probes_frame(session: Session, *, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """Return each account's newest check, one row per account ever checked; columns as above."""
    a, q = _ACCOUNTS.alias("a"), _PROBES.alias("q")
    newest = select(q).where(q.c.account_id == a.c.id).order_by(*_newest_first(q)).limit(1)
    if session.get_bind().dialect.name == "postgresql":
        p = newest.lateral("p")

        def where(query: Select) -> Select:
            return query.select_from(a.join(p, sql_true()))

    else:
        # One index seek per account on (account_id, checked_at).
        p = _PROBES.alias("p")
        newest_id = newest.with_only_columns(q.c.id).scalar_subquery()

        def where(query: Select) -> Select:
            return query.where(p.c.id.in_(select(newest_id).select_from(a)))

    frame = _read_frame(session, _probe_columns(columns), {_PROBES: p}, where)
    return _sorted(frame, ["account_id"])


# --- the checks the health rules decide on ----------------------------------------------------


def _is_ok(q: FromClause) -> ColumnElement:
    """Return the SQL condition: the check passed."""
    return q.c.outcome == Outcome.OK.value


def _is_transient(q: FromClause, clock_warn_ms: int) -> ColumnElement:
    """Return the SQL form of the health rules' is_transient, built from their own constants."""
    # Unreachable; or rejected with an overload code (diagnosis.is_transient_code), or with
    # 400002 while the clocks agree (|offset| below clock_warn_ms; an unmeasured one does not).
    code = func.coalesce(q.c.code, "")
    offset = func.coalesce(func.abs(q.c.clock_offset_ms), clock_warn_ms)
    prefix = diagnosis.SERVER_ERROR_PREFIX
    return or_(
        q.c.outcome == Outcome.UNREACHABLE.value,
        and_(
            q.c.outcome == Outcome.REJECTED.value,
            or_(
                code.in_(sorted(diagnosis.TRANSIENT_CODES)),
                func.substr(code, 1, len(prefix)) == prefix,
                and_(code == diagnosis.TIMESTAMP_CODE, offset < clock_warn_ms),
            ),
        ),
    )


def _shows_ip(q: FromClause, ip_blocked_code: str) -> ColumnElement:
    """Return the SQL form of the rules' IP evidence: a success, or KuCoin's IP refusal."""
    return or_(_is_ok(q), and_(q.c.outcome == Outcome.REJECTED.value, q.c.code == ip_blocked_code))


def deciding_checks_frame(
    session: Session,
    columns: Iterable[str],
    *,
    clock_warn_ms: int,
    ip_blocked_code: str,
    account_ids: Iterable[int] | None = None,
) -> pd.DataFrame:
    """Return, per bound account, the checks the health rules decide on; columns as above.

    They are the newest check, the newest non-transient one (the key's verdict), the newest
    success (key info) and the newest that shows whether our IP passes: at most four rows per
    account, found through the (account_id, checked_at) index instead of reading history.
    The caller passes the rules' own numbers: HealthPolicy.clock_warn_ms (a 400002 below it
    is transient) and the code KuCoin refuses an IP with. `account_ids`: only these accounts.
    """
    requested = _probe_columns([*columns, "probe_id"])
    wanted = _probe_columns([*requested, "outcome"])
    ids = None if account_ids is None else sorted({int(i) for i in account_ids})
    # A newest check that passed is also the newest verdict, success and IP evidence: only
    # the accounts whose newest check failed need the other three looked up.
    newest = _deciding(session, wanted, ids, (None,))
    failed = newest.loc[newest["outcome"] != Outcome.OK.value, "account_id"].tolist()
    if failed:
        conditions: tuple[Callable[[FromClause], ColumnElement] | None, ...] = (
            lambda q: not_(_is_transient(q, clock_warn_ms)),
            _is_ok,
            lambda q: _shows_ip(q, ip_blocked_code),
        )
        some = failed if len(failed) <= _MANY_IDS else ids
        newest = _stacked([newest, _deciding(session, wanted, some, conditions)])
        newest = newest.drop_duplicates("probe_id")
    return _sorted(newest[list(requested)], ["account_id", "checked_at", "probe_id"])


def _deciding(
    session: Session,
    wanted: Mapping[str, tuple[Column, str]],
    account_ids: list[int] | None,
    conditions: Iterable[Callable[[FromClause], ColumnElement] | None],
) -> pd.DataFrame:
    """Return per bound account (of `account_ids`) its newest check meeting each condition."""
    a = _ACCOUNTS.alias("a")
    deciding = []
    for condition in conditions:
        q = _PROBES.alias()
        newest = select(q.c.id).where(q.c.account_id == a.c.id)
        if condition is not None:
            newest = newest.where(condition(q))
        newest_id = newest.order_by(*_newest_first(q)).limit(1).scalar_subquery()
        bound = select(newest_id).where(a.c.unbound_at.is_(None))
        if account_ids is not None:
            bound = bound.where(a.c.id.in_(account_ids))
        deciding.append(bound)
    p = _PROBES.alias("p")

    def where(query: Select) -> Select:
        return query.where(p.c.id.in_(deciding[0].union(*deciding[1:])))

    return _read_frame(session, wanted, {_PROBES: p}, where)


def new_checks_frame(
    session: Session, after_id: int, *, also: Iterable[int] = (), columns: Iterable[str]
) -> pd.DataFrame:
    """Return the checks recorded after the one with `after_id` (and those with ids in `also`).

    Columns as probe_history_frame's, with probe_id; in id order.
    """
    p = _PROBES.alias("p")
    others = sorted({int(i) for i in also})

    def where(query: Select) -> Select:
        newer = p.c.id > int(after_id)
        return query.where(or_(newer, p.c.id.in_(others)) if others else newer)

    frame = _read_frame(session, _probe_columns([*columns, "probe_id"]), {_PROBES: p}, where)
    return _sorted(frame, ["probe_id"])


def checks_since_chunks(
    session: Session, since: datetime, *, columns: Iterable[str]
) -> Iterator[pd.DataFrame]:
    """Yield every check of a bound account since `since`, in chunks, in no particular order.

    Columns as probe_history_frame's (account_id and checked_at always). A week of a large
    fleet's checks is millions of rows: the caller folds each chunk in as it comes.
    """
    a, p = _ACCOUNTS.alias("a"), _PROBES.alias("p")
    bound = select(a.c.id).where(a.c.unbound_at.is_(None))

    def where(query: Select) -> Select:
        return query.where(p.c.checked_at >= since, p.c.account_id.in_(bound))

    yield from _read_chunks(session, _probe_columns(columns), {_PROBES: p}, where)


def data_version(session: Session) -> tuple[int, int]:
    """Return a cheap token that changes whenever a check, a binding or a setting is recorded."""
    # Every change writes an audit event and every check a probe row: their newest ids move.
    audit = session.execute(select(func.max(AuditEvent.id))).scalar()
    probes = session.execute(select(func.max(ProbeRecord.id))).scalar()
    return int(audit or 0), int(probes or 0)
