"""The check schedule: when each account is due, the leases watchers hold, their heartbeats.

The database is the coordinator. A watcher claims due accounts with an expiring lease in one
transaction (`SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL, so watchers on several
machines never wait for one another nor take the same account; SQLite's single writer
serialises the claim on one host). The lease is released, and the next due time set, in the
transaction that stores the account's check. A watcher that dies leaves its leases to expire,
and the accounts go back to whoever claims next.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from lib.kucoin.probe_result import ProbeResult
from lib.store.checks import latest_probe
from lib.store.models import Account, CheckSchedule, WatcherBeat

_SCHEDULE = CheckSchedule.__table__
_WATCHERS = WatcherBeat.__table__


@dataclass(frozen=True)
class Heartbeat:
    """What one watcher last said about itself."""

    name: str
    started_at: datetime
    beat_at: datetime
    round_started_at: datetime | None
    round_finished_at: datetime | None
    round_checked: int
    round_seconds: float | None
    next_due_at: datetime | None
    stopped_at: datetime | None

    @property
    def accounts_per_minute(self) -> float | None:
        """Return the pace of the last round, None before one finished."""
        if not self.round_seconds or not self.round_checked:
            return None
        return self.round_checked * 60 / self.round_seconds


def _upsert(session: Session, table: Any, rows: list[dict[str, Any]], key: str) -> None:
    """Insert rows, or update the columns given where the key exists (SQLite and PostgreSQL)."""
    if not rows:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    columns = [name for name in rows[0] if name != key]
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[key], set_={name: statement.excluded[name] for name in columns}
        ),
        rows,
    )


def _checkable(
    *, include_paused: bool = False, account_ids: Iterable[int] | None = None
) -> list[Any]:
    """Return the conditions of the accounts a check may be claimed for: bound, not paused."""
    conditions = [col(Account.unbound_at).is_(None)]
    if not include_paused:
        conditions.append(col(Account.paused).is_(False))
    if account_ids is not None:
        conditions.append(col(Account.id).in_(list(account_ids)))
    return conditions


def unscheduled_accounts(session: Session) -> dict[int, ProbeResult | None]:
    """Return the bound accounts without a schedule yet, each with its newest check (or None)."""
    ids = session.exec(
        select(Account.id)
        .outerjoin(CheckSchedule, col(CheckSchedule.account_id) == col(Account.id))
        .where(col(Account.unbound_at).is_(None), col(CheckSchedule.account_id).is_(None))
    ).all()
    return {int(account_id): latest_probe(session, int(account_id)) for account_id in ids}


def schedule_checks(session: Session, due: Mapping[int, datetime]) -> None:
    """Set when each account's next check is due (a lease held on it stays)."""
    rows = [{"account_id": a, "due_at": at} for a, at in due.items()]
    _upsert(session, _SCHEDULE, rows, "account_id")


def claim_due(
    session: Session,
    owner: str,
    *,
    now: datetime,
    lease_until: datetime,
    limit: int,
    account_ids: Iterable[int] | None = None,
    due_only: bool = True,
    include_paused: bool = False,
) -> list[int]:
    """Lease up to `limit` accounts to `owner` until `lease_until`, the most overdue first.

    Only scheduled accounts not leased to another watcher (or whose lease has expired) are
    taken; `due_only=False` takes them whether due or not (Refresh all, `refresh --all`).
    Return the ids claimed.
    """
    free = or_(
        col(CheckSchedule.lease_expires_at).is_(None),
        col(CheckSchedule.lease_expires_at) <= now,
        col(CheckSchedule.lease_owner) == owner,
    )
    query = (
        select(CheckSchedule.account_id)
        .join(Account, col(Account.id) == col(CheckSchedule.account_id))
        .where(free, *_checkable(include_paused=include_paused, account_ids=account_ids))
        .order_by(col(CheckSchedule.due_at), col(CheckSchedule.account_id))
        .limit(limit)
        # PostgreSQL: rows another watcher is claiming right now are skipped, not waited for.
        .with_for_update(skip_locked=True, of=_SCHEDULE)
    )
    if due_only:
        query = query.where(col(CheckSchedule.due_at) <= now)
    ids = [int(account_id) for account_id in session.exec(query).all()]
    if ids:
        session.execute(
            update(_SCHEDULE)
            .where(_SCHEDULE.c.account_id.in_(ids))
            .values(lease_owner=owner, lease_expires_at=lease_until)
        )
    return ids


def finish_checks(session: Session, owner: str, due: Mapping[int, datetime]) -> None:
    """Set each checked account's next due time and release `owner`'s lease on it."""
    if not due:
        return
    schedule_checks(session, due)
    release_leases(session, owner, due)


def release_leases(session: Session, owner: str, account_ids: Iterable[int]) -> None:
    """Give back `owner`'s leases on these accounts (checked, or left unchecked on stopping)."""
    ids = list(account_ids)
    if ids:
        session.execute(
            update(_SCHEDULE)
            .where(_SCHEDULE.c.account_id.in_(ids), _SCHEDULE.c.lease_owner == owner)
            .values(lease_owner=None, lease_expires_at=None)
        )


def next_due_at(session: Session) -> datetime | None:
    """Return when the next scheduled, checkable account falls due (None: none is scheduled)."""
    return session.exec(
        select(func.min(CheckSchedule.due_at))
        .join(Account, col(Account.id) == col(CheckSchedule.account_id))
        .where(*_checkable())
    ).one()


def leases(session: Session, *, now: datetime) -> dict[int, str]:
    """Return the accounts leased right now, with the watcher holding each."""
    rows = session.exec(
        select(CheckSchedule.account_id, CheckSchedule.lease_owner).where(
            and_(
                col(CheckSchedule.lease_owner).is_not(None),
                col(CheckSchedule.lease_expires_at) > now,
            )
        )
    ).all()
    return {int(account_id): str(owner) for account_id, owner in rows}


def record_heartbeat(session: Session, name: str, **fields: Any) -> None:
    """Write a watcher's heartbeat: `beat_at` and whichever other WatcherBeat fields are given."""
    row = {"name": name, **fields}
    known = set(_WATCHERS.c.keys())
    unknown = sorted(set(row) - known)
    if unknown:
        raise ValueError(f"unknown heartbeat field(s): {', '.join(unknown)}")
    existing = session.get(WatcherBeat, name)
    if existing is None:
        session.add(WatcherBeat(**{"started_at": fields["beat_at"], **row}))
    else:
        for key, value in fields.items():
            setattr(existing, key, value)
        session.add(existing)
    session.flush()


def heartbeats(session: Session) -> list[Heartbeat]:
    """Return every watcher's last heartbeat, the most recent first."""
    rows = session.exec(select(WatcherBeat).order_by(col(WatcherBeat.beat_at).desc())).all()
    return [
        Heartbeat(
            name=r.name,
            started_at=r.started_at,
            beat_at=r.beat_at,
            round_started_at=r.round_started_at,
            round_finished_at=r.round_finished_at,
            round_checked=r.round_checked,
            round_seconds=r.round_seconds,
            next_due_at=r.next_due_at,
            stopped_at=r.stopped_at,
        )
        for r in rows
    ]
