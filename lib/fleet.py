"""The fleet: check accounts live, record what was seen, and build the tables pages show.

The Fleet page, `python -m lib status` and a notebook all read the same frame:

    from lib.console import Console
    from lib.fleet import fleet_table
    fleet = fleet_table(Console.open())     # one row per account, worst first
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import String, and_, func, not_, or_, select, type_coerce, union
from sqlalchemy.orm import aliased
from sqlmodel import Session

from lib import health, store
from lib.console import Console, policy_from_settings
from lib.health.account import account_health, permission_coverage, whitelist_coverage
from lib.health.fleet import check_results, fleet_health, status_counts
from lib.health.fleet import is_failing as statuses_failing
from lib.health.incident import FleetIncident, fleet_incident
from lib.health.policy import HealthPolicy
from lib.health.status import Status
from lib.health.wording import format_age
from lib.kucoin import diagnosis
from lib.kucoin.probe import probe
from lib.kucoin.probe_result import Outcome, ProbeResult
from lib.models import Account, AuditAction, AuditEvent, ProbeRecord, Settings
from lib.refresh import RefreshTarget, refresh

# --- Reading the fleet ---------------------------------------------------------------------


def _latest_id(condition: Any = None) -> Any:
    """Return a scalar subquery: the id of the account's newest check meeting `condition`."""
    q = aliased(ProbeRecord)
    query = select(q.id).where(q.account_id == Account.id)
    if condition is not None:
        query = query.where(condition(q))
    return query.order_by(q.checked_at.desc(), q.id.desc()).limit(1).scalar_subquery()


def _is_ok(q: Any) -> Any:
    """Return the SQL condition: the check passed."""
    return q.outcome == Outcome.OK.value


def _is_transient(q: Any, policy: HealthPolicy) -> Any:
    """Return the SQL form of health.is_transient, built from the rules' own constants."""
    # Unreachable; or rejected with an overload code (diagnosis.is_transient_code), or with
    # 400002 while the clocks agree (health.clocks_agree; an unmeasured offset does not).
    code = func.coalesce(q.code, "")
    offset = func.coalesce(func.abs(q.clock_offset_ms), policy.clock_warn_ms)
    return or_(
        q.outcome == Outcome.UNREACHABLE.value,
        and_(
            q.outcome == Outcome.REJECTED.value,
            or_(
                code.in_(sorted(diagnosis.TRANSIENT_CODES)),
                code.like(f"{diagnosis.SERVER_ERROR_PREFIX}%"),
                and_(code == diagnosis.TIMESTAMP_CODE, offset < policy.clock_warn_ms),
            ),
        ),
    )


def _shows_ip(q: Any) -> Any:
    """Return the SQL form of what health._evidence reads: a success, or KuCoin's 400006."""
    return or_(
        _is_ok(q),
        and_(q.outcome == Outcome.REJECTED.value, q.code == health.IP_BLOCKED_CODE),
    )


def deciding_checks_frame(session: Session, policy: HealthPolicy) -> pd.DataFrame:
    """Return, per bound account, the checks the health rules decide on (health.PROBE_COLUMNS)."""
    # The newest check, the newest non-transient one (the key's verdict), the newest success
    # (key info) and the newest that shows whether our IP passes: at most four rows per
    # account, found through the (account_id, checked_at) index instead of reading history.
    per_account = [
        select(_latest_id(condition)).where(Account.unbound_at.is_(None))
        for condition in (None, lambda q: not_(_is_transient(q, policy)), _is_ok, _shows_ip)
    ]
    ids = union(*per_account).subquery()
    wanted = [
        # Times as the driver returns them, parsed below in one vectorised call per column.
        type_coerce(getattr(ProbeRecord, name), String)
        if name in _TIMES
        else getattr(ProbeRecord, name)
        for name in health.PROBE_COLUMNS
    ]
    query = select(*wanted).where(ProbeRecord.id.in_(select(ids.c[0])))
    rows = session.connection().execute(query).all()
    values = list(zip(*rows, strict=True)) if rows else [()] * len(wanted)
    data = dict(zip(health.PROBE_COLUMNS, values, strict=True))
    frame = pd.DataFrame({name: _objects(column) for name, column in data.items()})
    for name in _TIMES:
        frame[name] = _utc_times(data[name])
    frame["account_id"] = frame["account_id"].astype("int64")
    parsed = {v: tuple(p for p in (v or "").split(",") if p) for v in set(data["permissions"])}
    frame["permissions"] = _objects([parsed[v] for v in data["permissions"]])
    frame["is_master"] = frame["is_master"].astype("boolean")
    frame["clock_offset_ms"] = frame["clock_offset_ms"].astype("Int64")
    frame["futures_permission_missing"] = frame["futures_permission_missing"].astype(bool)
    return frame.sort_values(["account_id", "checked_at"], kind="stable", ignore_index=True)


_TIMES = ("checked_at", "key_created_at")


def _objects(values: Sequence[Any]) -> pd.Series:
    """Return the values as an object Series, kept as they are (tuples included)."""
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return pd.Series(out, dtype=object)


def _utc_times(values: Sequence[Any]) -> pd.Series:
    """Return SQLite's UTC text or PostgreSQL's aware datetimes as datetime64[ns, UTC]."""
    sample = next((v for v in values if v is not None), None)
    parsed = pd.to_datetime(
        pd.Series(list(values), dtype=object),
        utc=True,
        format="ISO8601" if isinstance(sample, str) else None,
    )
    return parsed.astype("datetime64[ns, UTC]")


def fleet_inputs(console: Console) -> tuple[pd.DataFrame, pd.DataFrame, HealthPolicy]:
    """Return what the health rules read: bound accounts, their deciding checks, the policy."""
    with console.reading() as session:
        policy = policy_from_settings(store.get_settings(session))
        accounts = store.accounts_frame(session)
        probes = deciding_checks_frame(session, policy)
    return accounts, probes, policy


def fleet_table(console: Console, now: datetime | None = None) -> pd.DataFrame:
    """Return one row per bound account, worst status first (health.FLEET_COLUMNS + scopes)."""
    accounts, probes, policy = fleet_inputs(console)
    return _with_scopes(fleet_health(accounts, probes, policy, now or datetime.now(UTC)), accounts)


def _with_scopes(fleet: pd.DataFrame, accounts: pd.DataFrame) -> pd.DataFrame:
    """Return the fleet with `scopes`: what the platform needs from each key ("spot, futures")."""
    needed = dict(
        zip(accounts["account_id"], (", ".join(s) for s in accounts["scopes"]), strict=True)
    )
    scopes = fleet["account_id"].map(needed).astype("string")
    return fleet.assign(scopes=scopes)[[*fleet.columns[:3], "scopes", *fleet.columns[3:]]]


def data_version(console: Console) -> tuple[int, int]:
    """Return a cheap token that changes whenever a check, a binding or a setting is recorded."""
    # Every change writes an audit event and every check a probe row: their newest ids move.
    with console.reading() as session:
        audit = session.execute(select(func.max(AuditEvent.id))).scalar()
        probes = session.execute(select(func.max(ProbeRecord.id))).scalar()
    return int(audit or 0), int(probes or 0)


@dataclass(frozen=True)
class FleetSnapshot:
    """The fleet table, the policy it was judged by and when: what the Fleet page draws."""

    fleet: pd.DataFrame
    policy: HealthPolicy
    as_of: datetime

    @property
    def incident(self) -> FleetIncident | None:
        """Return the shared failure of most recently checked accounts, if any."""
        return fleet_incident(self.fleet, self.policy, self.as_of)

    @property
    def counts(self) -> pd.DataFrame:
        """Return the number of accounts per status, worst first."""
        return status_counts(self.fleet)

    @property
    def failing(self) -> pd.Series:
        """Return, per account, whether it is failing (health.Status.failing: the red tiles)."""
        return statuses_failing(self.fleet["status"])

    def incident_accounts(self) -> pd.Series:
        """Return, per account, whether its latest check is part of the incident."""
        incident = self.incident
        members = incident.account_ids if incident is not None else frozenset()
        return self.fleet["account_id"].isin(members).astype(bool)


def refresh_summary(snapshot: FleetSnapshot, account_ids: Iterable[int]) -> tuple[bool, str]:
    """Return whether any account just checked needs attention, and the sentence saying so."""
    # Failing is the rules' (the red tiles); retrying: not failing yet, its check transient.
    fleet = snapshot.fleet
    checked = fleet["account_id"].isin(list(account_ids)).to_numpy(dtype=bool)
    failing = snapshot.failing.to_numpy(dtype=bool) & checked
    retrying = (fleet["last_result"] == "retrying").to_numpy(dtype=bool) & checked & ~failing
    total, bad, late = int(checked.sum()), int(failing.sum()), int(retrying.sum())
    noun = "account" if total == 1 else "accounts"
    text = f"Checked {total} {noun}: {bad} failing, {late} retrying, {total - bad - late} working."
    return bool(bad or late), text


def fleet_snapshot(console: Console, now: datetime | None = None) -> FleetSnapshot:
    """Return the fleet table with its policy and time."""
    now = now or datetime.now(UTC)
    accounts, probes, policy = fleet_inputs(console)
    fleet = _with_scopes(fleet_health(accounts, probes, policy, now), accounts)
    return FleetSnapshot(fleet, policy, now)


# --- Filtering, display and export -----------------------------------------------------------

KINDS = ("master", "sub-account", "unknown")
FAILING = "failing"  # a status filter that keeps every failing status


def is_failing(status: str) -> bool:
    """Return whether accounts in this status are failing, as the health rules define it."""
    return Status(status).failing


def plural(count: int, noun: str) -> str:
    """Return "1 account" or "3 accounts"."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def account_kind(fleet: pd.DataFrame) -> pd.Series:
    """Return "master", "sub-account" or "unknown" (key info not read yet) per account."""
    master = fleet["is_master"].astype("boolean")
    kind = pd.Series("unknown", index=fleet.index, dtype="string")
    kind[master.fillna(False).to_numpy(dtype=bool)] = "master"
    kind[(~master).fillna(False).to_numpy(dtype=bool)] = "sub-account"
    return kind


def filter_fleet(
    fleet: pd.DataFrame,
    *,
    statuses: Iterable[str] = (),
    scopes: Iterable[str] = (),
    kinds: Iterable[str] = (),
    search: str = "",
) -> pd.DataFrame:
    """Return the accounts matching every filter given, worst first (an empty filter keeps all)."""
    # statuses: Status names, FAILING for every failing one; scopes: accounts that need any
    # of them; kinds: "master", "sub-account", "unknown"; search: part of the label,
    # sub-account name or UID, any case.
    keep = pd.Series(True, index=fleet.index)
    statuses = {str(s) for s in statuses}
    if FAILING in statuses:
        statuses |= {s.value for s in Status if is_failing(s)}
    if statuses:
        keep &= fleet["status"].astype(str).isin(statuses)
    scopes = [s.strip().lower() for s in scopes]
    if scopes:
        needed = fleet["scopes"].fillna("").astype(str).str.split(", ")
        keep &= needed.map(lambda names: any(s in names for s in scopes)).astype(bool)
    kinds = list(kinds)
    if kinds:
        keep &= account_kind(fleet).isin(kinds).to_numpy(dtype=bool)
    text = (search or "").strip()
    if text:
        pattern = re.escape(text)
        hit = pd.Series(False, index=fleet.index)
        for name in ("label", "uid", "sub_name"):
            hit |= fleet[name].astype("string").str.contains(pattern, case=False).fillna(False)
        keep &= hit
    return fleet[keep.to_numpy(dtype=bool)]


_SCOPE_MARKS = {"granted": "✓", "missing": "✗", "not needed": "–"}
# Colours and icons by Status.level: red act now, orange needs attention, blue for information.
LEVEL_COLOURS = {"error": "red", "warning": "orange", "info": "blue", "ok": "green"}
LEVEL_ICONS = {"error": "error", "warning": "warning", "info": "info", "ok": "check_circle"}


def status_colour(status: str) -> str:
    """Return the colour a status is drawn in ("red", "orange", "blue" or "green")."""
    return LEVEL_COLOURS[Status(status).level]


def _level_icon(level: str) -> str:
    """Return a level's coloured Markdown icon (":red[:material/error:]")."""
    return f":{LEVEL_COLOURS[level]}[:material/{LEVEL_ICONS[level]}:]"


def status_label(status: str) -> str:
    """Return a status as Markdown: coloured icon, plain words, code ("… Key unknown `KEY_…`")."""
    found = Status(status)
    return f"{_level_icon(found.level)} {found.title} `{found.value}`"


def tile_label(tile: str, count: int) -> str:
    """Return a status tile (or the FAILING tile) as Markdown, with its number of accounts."""
    text = f"{_level_icon('error')} Everything failing" if tile == FAILING else status_label(tile)
    return f"{text} **{count}**"


def fleet_view(fleet: pd.DataFrame) -> pd.DataFrame:
    """Return the table the Fleet page shows: one row per account, worst first, no secret."""
    # What is wrong and what to do come first: they must fit beside the label on one screen.
    kind = account_kind(fleet).replace({"unknown": pd.NA})
    sub = fleet["sub_name"].astype("string")
    return pd.DataFrame(
        {
            "account_id": fleet["account_id"].astype("Int64"),
            "label": fleet["label"].astype("string"),
            # One-item lists: the page draws them as coloured labels (MultiselectColumn).
            "status": [[s] for s in fleet["status"].astype(str)],
            "diagnosis": fleet["diagnosis"].astype("string"),
            "hint": fleet["hint"].astype("string"),
            "spot": fleet["spot"].astype(object).map(_SCOPE_MARKS).fillna("?"),
            "futures": fleet["futures"].astype(object).map(_SCOPE_MARKS).fillna("?"),
            "margin": fleet["margin"].astype(object).map(_SCOPE_MARKS).fillna("?"),
            "whitelist": fleet["whitelist"].astype("string").fillna("key info not read yet"),
            "last_sync_at": fleet["last_sync_at"],
            "sync_age": [format_age(a) for a in fleet["sync_age"]],
            "going_stale_at": fleet["going_stale_at"],
            "key_age_days": fleet["key_age_days"].astype("Int64"),
            "expires_at": fleet["expires_at"],
            "account": kind.where(sub.isna(), kind + " " + sub.fillna("")).astype("string"),
            "uid": fleet["uid"].astype("string"),
        }
    ).reset_index(drop=True)


# Everything an operator may share: the key itself, its secret and passphrase are never in
# the fleet table, so none can leak into the file.
CSV_COLUMNS = (
    "account_id",
    "label",
    "status",
    "diagnosis",
    "hint",
    "risks",
    "scopes",
    "spot",
    "futures",
    "margin",
    "permissions",
    "dangerous_permissions",
    "whitelist",
    "seen_ip",
    "last_sync_at",
    "sync_age_s",
    "going_stale_at",
    "freshness",
    "key_created_at",
    "key_age_days",
    "expires_at",
    "is_master",
    "uid",
    "sub_name",
    "last_outcome",
    "last_code",
    "last_message",
    "last_checked_at",
    "clock_offset_ms",
    "paused",
    "unverified",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_column(values: pd.Series) -> pd.Series:
    """Return one CSV column: numbers as numbers, ISO 8601 UTC times, text with no formulas."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ").fillna("")
    if pd.api.types.is_numeric_dtype(values.dtype):
        return values  # -27 is a number, not a formula: quoting it would make it text
    text = values.astype("string").fillna("")
    # Labels and KuCoin messages are outside text: a spreadsheet must not run them.
    is_text = values.astype(object).map(lambda value: isinstance(value, str)).astype(bool)
    formula = text.str.startswith(_FORMULA_START).fillna(False).astype(bool) & is_text
    return text.where(~formula, "'" + text)


def fleet_csv(fleet: pd.DataFrame) -> bytes:
    """Return the fleet table as UTF-8 CSV (CSV_COLUMNS, worst first); never a secret."""
    seconds = fleet["sync_age"].dt.total_seconds().round().astype("Int64")
    frame = fleet.assign(sync_age_s=seconds)[list(CSV_COLUMNS)]
    text = pd.DataFrame({name: _csv_column(frame[name]) for name in CSV_COLUMNS})
    # CRLF rows (RFC 4180): the writer then quotes any cell holding a CR or LF of its own.
    return text.to_csv(index=False, lineterminator="\r\n").encode("utf-8")


# --- Checking accounts ---------------------------------------------------------------------


def check_account(console: Console, account_id: int) -> ProbeResult:
    """Probe one account's key now, record the result and audit it; return the result."""
    with console.reading() as session:
        credentials = store.load_credentials(session, console.vault, account_id)
        account = store.get_account(session, account_id)
        settings = store.get_settings(session)
    result = probe(
        credentials,
        futures_currencies=settings.futures_currencies,
        want_futures="futures" in account.scopes,
        **console.kucoin.client_kwargs(),
    )
    del credentials
    with console.transaction() as session:
        store.mark_verified(session, account_id, result, actor=console.actor)
    return result


def refresh_fleet(
    console: Console,
    account_ids: Iterable[int] | None = None,
    *,
    concurrency: int = 8,
    on_result: Callable[[int, ProbeResult], None] | None = None,
) -> dict[int, ProbeResult]:
    """Probe every bound, non-paused account (or the given ones) concurrently; record each."""
    with console.reading() as session:
        accounts = store.accounts_frame(session)
        latest = store.latest_probes_frame(session, columns=["uid"])
        settings = store.get_settings(session)
    if account_ids is not None:
        accounts = accounts[accounts["account_id"].isin(list(account_ids))]
    else:
        accounts = accounts[~accounts["paused"]]
    uids = dict(zip(latest["account_id"], latest["uid"], strict=True)) if len(latest) else {}

    def loader(account_id: int) -> Callable:
        """Return what decrypts this account's credentials when its turn comes."""

        def load():
            """Return the credentials, decrypted now."""
            with console.reading() as session:
                return store.load_credentials(session, console.vault, account_id)

        return load

    targets = [
        RefreshTarget(int(a), loader(int(a)), uids.get(a) if isinstance(uids.get(a), str) else None)
        for a in accounts["account_id"]
    ]

    def record(account_id: int, result: ProbeResult) -> None:
        """Store one result as it arrives."""
        # One transaction per result: a crash mid-refresh loses nothing already checked.
        with console.transaction() as session:
            store.mark_verified(session, account_id, result, actor=console.actor)
        if on_result:
            on_result(account_id, result)

    return refresh(
        targets,
        concurrency=concurrency,
        futures_currencies=settings.futures_currencies,
        on_result=record,
        **console.kucoin.client_kwargs(),
    )


def refreshable_count(console: Console) -> int:
    """Return how many accounts "Refresh all" would check (bound and not paused)."""
    with console.reading() as session:
        accounts = store.accounts_frame(session)
    return int((~accounts["paused"]).sum())


# --- One account ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountDetail:
    """Everything the account page shows about one account; no secret."""

    account: store.AccountView
    health: pd.Series
    permissions: pd.DataFrame
    whitelist: pd.DataFrame
    spot_balances: pd.DataFrame
    futures_balances: pd.DataFrame
    history: pd.DataFrame
    latest: ProbeResult | None
    audit: list[store.AuditEntry]
    whitelist_entries: tuple[str, ...] = ()  # as KuCoin shows them (masked), last success
    balances_at: datetime | None = None  # when the balances shown were read


def account_detail(console: Console, account_id: int, now: datetime | None = None) -> AccountDetail:
    """Return the account page's data for one account (bound or unbound)."""
    now = now or datetime.now(UTC)
    with console.reading() as session:
        account = store.get_account(session, account_id)
        accounts = store.accounts_frame(session, include_unbound=True)
        mine = store.probe_history_frame(session, account_id=account_id)
        latest = store.latest_probe(session, account_id)
        settings = store.get_settings(session)
        audit = store.audit_log(session, account_id=account_id, limit=200)
    policy = policy_from_settings(settings)
    row = accounts[accounts["account_id"] == account_id].iloc[0]
    ok_rows = mine[mine["outcome"] == Outcome.OK.value]
    last_ok = ok_rows.iloc[-1] if len(ok_rows) else None
    spot, futures = store.decode_balances(last_ok["balances_json"] if last_ok is not None else None)
    history = mine[
        ["checked_at", "outcome", "code", "message", "http_status", "endpoint", "latency_ms"]
    ].reset_index(drop=True)
    history.insert(1, "result", check_results(mine, policy).astype(str))
    whitelist_text = last_ok["ip_whitelist"] if last_ok is not None else None
    return AccountDetail(
        account=account,
        health=account_health(row, mine, policy, now),
        permissions=permission_coverage(
            account.scopes,
            last_ok["permissions"] if last_ok is not None else None,
            bool(last_ok["futures_permission_missing"]) if last_ok is not None else False,
        ),
        whitelist=whitelist_coverage(mine, policy),
        spot_balances=spot_frame(spot),
        futures_balances=futures_frame(futures),
        history=history,
        latest=latest,
        audit=audit,
        whitelist_entries=tuple(
            e.strip() for e in (whitelist_text or "").split(",") if e and e.strip()
        ),
        balances_at=last_ok["checked_at"].to_pydatetime() if last_ok is not None else None,
    )


def spot_frame(balances: ProbeResult | Sequence[Any] | None) -> pd.DataFrame:
    """Return spot balances by account type and currency (non-zero rows)."""
    rows_in = balances.spot_balances if isinstance(balances, ProbeResult) else balances or ()
    rows = [
        {
            "account_type": b.account_type,
            "currency": b.currency,
            "balance": float(b.balance),
            "available": float(b.available),
            "holds": float(b.holds),
        }
        for b in rows_in
        if b.balance != 0
    ]
    columns = ["account_type", "currency", "balance", "available", "holds"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["account_type", "currency"], ignore_index=True)


FUTURES_FIELDS = ("accountEquity", "availableBalance", "unrealisedPNL", "marginBalance")


def futures_frame(
    futures: ProbeResult | dict[str, dict[str, Decimal]] | None,
) -> pd.DataFrame:
    """Return the futures overview per currency."""
    overviews = futures.futures if isinstance(futures, ProbeResult) else futures or {}
    rows = [
        {
            "currency": currency,
            **{name: float(overview.get(name, Decimal(0))) for name in FUTURES_FIELDS},
        }
        for currency, overview in overviews.items()
    ]
    return pd.DataFrame(rows, columns=["currency", *FUTURES_FIELDS])


# --- Settings ------------------------------------------------------------------------------


def parse_list(text: str) -> list[str]:
    """Return the entries of a list typed one per line or separated by , ; or spaces."""
    return [item for item in re.split(r"[\s,;]+", text or "") if item]


def latest_seen_ip(console: Console) -> tuple[str, datetime] | None:
    """Return the IP KuCoin most recently reported seeing, and when; None before any check."""
    with console.reading() as session:
        latest = store.latest_probes_frame(session, columns=["seen_ip"])
    seen = latest[latest["seen_ip"].notna()]
    if seen.empty:
        return None
    newest = seen.sort_values("checked_at").iloc[-1]
    return str(newest["seen_ip"]), newest["checked_at"].to_pydatetime()


def save_settings(console: Console, **changes: Any) -> Settings:
    """Validate, store and audit settings changes; raise store.InvalidInput with the reason."""
    with console.transaction() as session:
        return store.update_settings(session, actor=console.actor, **changes)


def coverage_summary(fleet: pd.DataFrame) -> pd.DataFrame:
    """Return how many accounts show each whitelist coverage, most common first."""
    summary = fleet["whitelist"].astype("string").fillna("key info not read yet")
    counts = summary.value_counts()
    return pd.DataFrame({"whitelist": counts.index.astype(str), "accounts": counts.to_numpy()})


def settings_changes(console: Console, limit: int = 20) -> pd.DataFrame:
    """Return the latest settings changes, newest first: when, who, what from and to."""
    with console.reading() as session:
        events = store.audit_log(session, action=AuditAction.CHANGE_SETTINGS, limit=limit)
    rows = [
        {
            "at": event.at,
            "actor": event.actor,
            "setting": name,
            "from": _plain(change.get("from")),
            "to": _plain(change.get("to")),
        }
        for event in events
        for name, change in event.details.items()
        if isinstance(change, dict)
    ]
    return pd.DataFrame(rows, columns=["at", "actor", "setting", "from", "to"])


def _plain(value: Any) -> str:
    """Return a setting's value as text ("a, b" for lists)."""
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "(none)"
    return "" if value is None else str(value)
