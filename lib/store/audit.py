"""The audit log: one append-only row per change, written in the change's own transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, col, select

from lib.kucoin.auth import Credentials
from lib.secret import Secret
from lib.store.models import AuditAction, AuditEvent


@dataclass(frozen=True)
class AuditEntry:
    """One audit event."""

    id: int
    at: datetime
    actor: str
    action: str
    account_id: int | None
    details: dict[str, Any]


def _check_details(value: Any) -> Any:
    """Return audit details unchanged if they are plain JSON; a Secret is refused outright."""
    if isinstance(value, Secret | Credentials):
        raise TypeError("audit details must never hold a secret")
    if isinstance(value, Mapping):
        return {str(k): _check_details(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_check_details(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"audit details hold only JSON values, not {type(value).__name__}")


def short_fingerprint(fingerprint: str) -> str:
    """Return a fingerprint short enough for audit details: key id and 16 hex digits."""
    key_id, _, digest = fingerprint.partition(":")
    return f"{key_id}:{digest[:16]}"


def record_audit(
    session: Session,
    *,
    actor: str,
    action: AuditAction | str,
    account_id: int | None = None,
    details: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Add one audit event to the caller's transaction."""
    session.add(
        AuditEvent(
            at=at or datetime.now(UTC),
            actor=actor,
            action=AuditAction(action).value,
            account_id=account_id,
            details=_check_details(dict(details or {})),
        )
    )


def audit_log(
    session: Session,
    *,
    account_id: int | None = None,
    action: AuditAction | str | None = None,
    limit: int | None = None,
) -> list[AuditEntry]:
    """Return audit events, newest first, optionally for one account or one action."""
    query = select(AuditEvent).order_by(col(AuditEvent.id).desc())
    if account_id is not None:
        query = query.where(AuditEvent.account_id == account_id)
    if action is not None:
        query = query.where(AuditEvent.action == AuditAction(action).value)
    if limit is not None:
        query = query.limit(limit)
    return [
        AuditEntry(e.id, e.at, e.actor, e.action, e.account_id, dict(e.details))
        for e in session.exec(query).all()
    ]


def audit_since(
    session: Session, after_id: int, *, also: Iterable[int] = ()
) -> list[tuple[int, str, int | None]]:
    """Return (id, action, account_id) of the events after `after_id` (and with ids in `also`)."""
    newer = col(AuditEvent.id) > int(after_id)
    others = sorted({int(i) for i in also})
    query = select(AuditEvent.id, AuditEvent.action, AuditEvent.account_id).where(
        or_(newer, col(AuditEvent.id).in_(others)) if others else newer
    )
    return [(int(i), str(a), None if c is None else int(c)) for i, a, c in session.exec(query)]
