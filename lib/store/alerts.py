"""Alerts and drift: channels (sealed URLs), key baselines, alert state, transitions, deliveries.

A channel's URL holds tokens, so it is stored sealed by the vault like a credential, bound to
its row (`seal` below is the vault's); only its masked form is ever read back in the open.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import bindparam, func, insert, update
from sqlmodel import Session, col, select

from lib.kucoin.probe_result import Outcome, ProbeResult
from lib.store.audit import record_audit
from lib.store.errors import InvalidInput
from lib.store.models import (
    Account,
    AlertChannel,
    AlertDelivery,
    AlertState,
    AuditAction,
    KeyBaseline,
    ProbeRecord,
    Transition,
)

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"

# --- channels ---------------------------------------------------------------------------------


def add_channel(
    session: Session, seal: Callable[[int], tuple[str, str]], masked: str, *, actor: str
) -> int:
    """Add a channel whose URL `seal(row id)` encrypts (token, key id); audit it; return its id."""
    now = datetime.now(UTC)
    row = AlertChannel(
        url_enc="", master_key_id="", masked=masked, created_at=now, created_by=actor
    )
    session.add(row)
    session.flush()  # the id the sealed URL is bound to
    assert row.id is not None
    row.url_enc, row.master_key_id = seal(row.id)
    session.add(row)
    record_audit(
        session,
        actor=actor,
        action=AuditAction.ADD_ALERT_CHANNEL,
        at=now,
        details={"channel": row.id, "masked": masked},
    )
    return row.id


def list_channels(session: Session) -> list[AlertChannel]:
    """Return every channel, oldest first (each URL still sealed)."""
    return list(session.exec(select(AlertChannel).order_by(col(AlertChannel.id))).all())


def remove_channel(session: Session, channel_id: int, *, actor: str) -> str:
    """Remove a channel (its past deliveries keep their history); return its masked URL."""
    row = session.get(AlertChannel, channel_id)
    if row is None:
        known = ", ".join(str(c.id) for c in list_channels(session)) or "none"
        raise InvalidInput(f"No alert channel has number {channel_id}; channels: {known}.")
    session.execute(
        update(AlertDelivery)
        .where(col(AlertDelivery.channel_id) == channel_id)
        .values(channel_id=None)
    )
    masked = row.masked
    session.delete(row)
    record_audit(
        session,
        actor=actor,
        action=AuditAction.REMOVE_ALERT_CHANNEL,
        details={"channel": channel_id, "masked": masked},
    )
    return masked


def channels_sealed_elsewhere(session: Session, key_id: str) -> list[AlertChannel]:
    """Return the channels sealed with another key than `key_id`, locked until commit."""
    query = select(AlertChannel).where(AlertChannel.master_key_id != key_id).with_for_update()
    return list(session.exec(query).all())


# --- drift baselines --------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyInfo:
    """What KuCoin said about a key in one passing check: the facts drift is measured on."""

    permissions: tuple[str, ...]
    ip_whitelist: str | None
    uid: str | None
    is_master: bool | None
    sub_name: str | None
    at: datetime  # when KuCoin said it (a baseline: when it was recorded)
    by: str | None = None  # a baseline's: who recorded it


def _split(permissions: str | None) -> tuple[str, ...]:
    return tuple(p for p in (permissions or "").split(",") if p)


def key_info_of(result: ProbeResult) -> KeyInfo:
    """Return the key facts a passing check read."""
    return KeyInfo(
        tuple(result.permissions),
        result.ip_whitelist,
        result.uid,
        result.is_master,
        result.sub_name,
        result.checked_at,
    )


def put_baseline(session: Session, account_id: int, info: KeyInfo, *, actor: str) -> None:
    """Make these key facts the account's baseline (what later checks are compared with)."""
    session.merge(
        KeyBaseline(
            account_id=account_id,
            permissions=",".join(info.permissions),
            ip_whitelist=info.ip_whitelist,
            uid=info.uid,
            is_master=info.is_master,
            sub_name=info.sub_name,
            recorded_at=datetime.now(UTC),
            recorded_by=actor,
        )
    )


_BASELINES = KeyBaseline.__table__
_PROBES = ProbeRecord.__table__
_ACCOUNTS = Account.__table__


def baselines(session: Session, account_ids: Iterable[int] | None = None) -> dict[int, KeyInfo]:
    """Return the baselines of these accounts (or all), by account."""
    b = _BASELINES
    query = select(b)
    if account_ids is not None:
        query = query.where(b.c.account_id.in_([int(a) for a in account_ids]))
    return {
        int(row.account_id): KeyInfo(
            _split(row.permissions),
            row.ip_whitelist,
            row.uid,
            row.is_master,
            row.sub_name,
            row.recorded_at,
            row.recorded_by,
        )
        for row in session.execute(query).all()
    }


def latest_key_info(
    session: Session, account_ids: Iterable[int] | None = None, *, without_baseline: bool = False
) -> dict[int, KeyInfo]:
    """Return, per bound account that ever passed a check, what its newest passing check read.

    `without_baseline`: only the accounts that have no baseline yet.
    """
    a, q, p = _ACCOUNTS.alias("a"), _PROBES.alias("q"), _PROBES
    # One index seek per account on (account_id, checked_at): its newest passing check.
    newest = (
        select(q.c.id)
        .where(q.c.account_id == a.c.id, q.c.outcome == Outcome.OK.value)
        .order_by(q.c.checked_at.desc(), q.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    chosen = select(newest).select_from(a).where(a.c.unbound_at.is_(None))
    if account_ids is not None:
        chosen = chosen.where(a.c.id.in_([int(i) for i in account_ids]))
    if without_baseline:
        chosen = chosen.where(~a.c.id.in_(select(_BASELINES.c.account_id)))
    # Only the key facts: a check's balances are never read here.
    query = select(
        p.c.account_id,
        p.c.permissions,
        p.c.ip_whitelist,
        p.c.uid,
        p.c.is_master,
        p.c.sub_name,
        p.c.checked_at,
    ).where(p.c.id.in_(chosen))
    return {
        int(row.account_id): KeyInfo(
            _split(row.permissions),
            row.ip_whitelist,
            row.uid,
            row.is_master,
            row.sub_name,
            row.checked_at,
        )
        for row in session.execute(query).all()
    }


def adopt_baselines(session: Session, *, actor: str) -> int:
    """Give each account with a passing check and no baseline that check as its baseline."""
    found = latest_key_info(session, without_baseline=True)
    for account_id, info in found.items():
        put_baseline(session, account_id, info, actor=actor)
    return len(found)


# --- alert state and transitions --------------------------------------------------------------


ALERTS_LOCK = 0x62770A1E  # PostgreSQL advisory lock: one process decides on alerts at a time


def lock_alerts(session: Session) -> None:
    """Hold the alerts lock until commit (SQLite's write transactions are serialised already)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(ALERTS_LOCK)))


def alert_states(session: Session) -> dict[int, dict[str, Any]]:
    """Return every account's alert state (the alert_state columns), by account."""
    rows = session.execute(select(AlertState.__table__)).mappings().all()
    return {int(row["account_id"]): dict(row) for row in rows}


def save_alert_states(
    session: Session, changed: Iterable[dict[str, Any]], known: Iterable[int]
) -> None:
    """Store accounts' alert states: update those in `known`, insert the others."""
    table = AlertState.__table__
    known = set(known)
    rows = list(changed)
    updates = [r for r in rows if r["account_id"] in known]
    inserts = [r for r in rows if r["account_id"] not in known]
    if updates:
        values = {name: bindparam(f"v_{name}") for name in updates[0] if name != "account_id"}
        statement = (
            update(table).where(table.c.account_id == bindparam("v_account_id")).values(values)
        )
        session.execute(statement, [{f"v_{k}": v for k, v in r.items()} for r in updates])
    if inserts:
        session.execute(insert(table), inserts)


def record_transition(session: Session, row: Transition, channel_ids: Iterable[int]) -> int:
    """Store a transition, and one pending delivery per channel when it is sent; return its id."""
    session.add(row)
    session.flush()
    assert row.id is not None
    if row.alerted:
        queue_message(session, row.title, row.body, channel_ids, transition_id=row.id)
    return row.id


def queue_message(
    session: Session,
    title: str,
    body: str,
    channel_ids: Iterable[int],
    *,
    transition_id: int | None = None,
) -> list[int]:
    """Queue one message to each channel; return the deliveries' ids."""
    now = datetime.now(UTC)
    rows = [
        AlertDelivery(
            transition_id=transition_id,
            channel_id=channel_id,
            title=title,
            body=body,
            state=PENDING,
            created_at=now,
        )
        for channel_id in channel_ids
    ]
    session.add_all(rows)
    session.flush()
    return [int(r.id) for r in rows if r.id is not None]


def latest_incident(session: Session) -> Transition | None:
    """Return the newest fleet incident transition (opened or over), if any."""
    query = (
        select(Transition)
        .where(col(Transition.account_id).is_(None))
        .order_by(col(Transition.at).desc(), col(Transition.id).desc())
        .limit(1)
    )
    return session.exec(query).first()


TRANSITION_COLUMNS = [
    "id",
    "at",
    "account_id",
    "label",
    "kind",
    "old_status",
    "new_status",
    "title",
    "body",
    "alerted",
    "note",
]


def transitions_frame(
    session: Session,
    *,
    since: datetime | None = None,
    account_id: int | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """Return transitions newest first, with the account's label (TRANSITION_COLUMNS)."""
    query = select(Transition, Account.label).join(
        Account, col(Account.id) == Transition.account_id, isouter=True
    )
    if since is not None:
        query = query.where(Transition.at >= since)
    if account_id is not None:
        query = query.where(Transition.account_id == int(account_id))
    query = query.order_by(col(Transition.at).desc(), col(Transition.id).desc())
    if limit is not None:
        query = query.limit(limit)
    rows = [{**row.model_dump(), "label": label} for row, label in session.exec(query).all()]
    frame = pd.DataFrame(rows, columns=TRANSITION_COLUMNS)
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    return frame.astype({"account_id": "Int64", "alerted": "boolean"})


# --- deliveries ---------------------------------------------------------------------------------


def claim_deliveries(
    session: Session, *, now: datetime, lease_until: datetime, limit: int = 50
) -> list[AlertDelivery]:
    """Claim pending deliveries (and those whose sender's lease ran out) for this sender."""
    waiting = (
        select(AlertDelivery)
        .where(
            (col(AlertDelivery.state) == PENDING)
            | ((col(AlertDelivery.state) == SENDING) & (col(AlertDelivery.claimed_until) < now))
        )
        .order_by(col(AlertDelivery.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = list(session.exec(waiting).all())
    for row in rows:
        row.state, row.claimed_until = SENDING, lease_until
        session.add(row)
    return rows


def finish_delivery(
    session: Session, delivery_id: int, *, sent: bool, attempts: int, error: str | None
) -> None:
    """Record how a delivery ended: sent, or failed with the channel's error."""
    row = session.get(AlertDelivery, delivery_id)
    if row is None:
        return
    row.state = SENT if sent else FAILED
    row.attempts, row.error = attempts, error
    row.finished_at, row.claimed_until = datetime.now(UTC), None
    session.add(row)


def get_channel(session: Session, channel_id: int | None) -> AlertChannel | None:
    """Return a channel (its URL sealed), None when it was removed."""
    return None if channel_id is None else session.get(AlertChannel, channel_id)


DELIVERY_COLUMNS = [
    "id",
    "created_at",
    "finished_at",
    "channel_number",
    "channel",
    "state",
    "attempts",
    "title",
    "error",
    "transition_id",
    "account_id",
]


def deliveries_frame(
    session: Session,
    *,
    state: str | None = None,
    account_id: int | None = None,
    limit: int = 50,
) -> pd.DataFrame:
    """Return deliveries newest first, with the channel's masked URL (DELIVERY_COLUMNS)."""
    query = (
        select(AlertDelivery, AlertChannel.masked, Transition.account_id)
        .join(AlertChannel, col(AlertChannel.id) == AlertDelivery.channel_id, isouter=True)
        .join(Transition, col(Transition.id) == AlertDelivery.transition_id, isouter=True)
    )
    if state is not None:
        query = query.where(AlertDelivery.state == state)
    if account_id is not None:
        query = query.where(Transition.account_id == int(account_id))
    query = query.order_by(col(AlertDelivery.id).desc()).limit(limit)
    rows = [
        {
            **row.model_dump(exclude={"body", "claimed_until", "channel_id"}),
            "channel_number": row.channel_id,
            "channel": masked or "(removed)",
            "account_id": owner,
        }
        for row, masked, owner in session.exec(query).all()
    ]
    frame = pd.DataFrame(rows, columns=DELIVERY_COLUMNS).astype({"channel_number": "Int64"})
    for name in ("created_at", "finished_at"):
        frame[name] = pd.to_datetime(frame[name], utc=True)
    return frame
