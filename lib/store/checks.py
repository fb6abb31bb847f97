"""Checks of accounts: each probe result stored as one row, read back exactly as it was."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, col, select

from lib.kucoin.probe_result import Outcome, ProbeResult, SpotBalance
from lib.store.models import ProbeRecord


def encode_balances(
    spot: Iterable[SpotBalance], futures: Mapping[str, Mapping[str, Decimal]]
) -> dict[str, Any]:
    """Return the balances of a check as JSON, every Decimal as a string."""
    return {
        "spot": [
            {
                "account_type": b.account_type,
                "currency": b.currency,
                "balance": str(b.balance),
                "available": str(b.available),
                "holds": str(b.holds),
            }
            for b in spot
        ],
        "futures": {
            ccy: {k: str(v) for k, v in overview.items()} for ccy, overview in futures.items()
        },
    }


def decode_balances(
    value: str | Mapping[str, Any] | None,
) -> tuple[tuple[SpotBalance, ...], dict[str, dict[str, Decimal]]]:
    """Return (spot balances, futures overviews) from stored JSON (text or parsed)."""
    doc = json.loads(value) if isinstance(value, str) else (value or {})
    spot = tuple(
        SpotBalance(
            account_type=b["account_type"],
            currency=b["currency"],
            balance=Decimal(b["balance"]),
            available=Decimal(b["available"]),
            holds=Decimal(b["holds"]),
        )
        for b in doc.get("spot", ())
    )
    futures = {
        ccy: {k: Decimal(v) for k, v in overview.items()}
        for ccy, overview in doc.get("futures", {}).items()
    }
    return spot, futures


def _probe_values(account_id: int, result: ProbeResult) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "checked_at": result.checked_at,
        "outcome": Outcome(result.outcome).value,
        "latency_ms": result.latency_ms,
        "code": result.code,
        "message": result.message,
        "http_status": result.http_status,
        "endpoint": result.endpoint,
        "permissions": ",".join(result.permissions),
        "ip_whitelist": result.ip_whitelist,
        "is_master": result.is_master,
        "sub_name": result.sub_name,
        "uid": result.uid,
        "remark": result.remark,
        "api_version": result.api_version,
        "key_created_at": result.key_created_at,
        "clock_offset_ms": result.clock_offset_ms,
        "seen_ip": result.seen_ip,
        "rate_limit_remaining": result.rate_limit_remaining,
        "balances": encode_balances(result.spot_balances, result.futures),
        "futures_permission_missing": result.futures_permission_missing,
        "vip_level": result.vip_level,
        "rate_limited_pool": result.rate_limited_pool,
        "rate_limit_reset_ms": result.rate_limit_reset_ms,
    }


def _probe_result(row: ProbeRecord) -> ProbeResult:
    spot, futures = decode_balances(row.balances)
    return ProbeResult(
        checked_at=row.checked_at,
        outcome=Outcome(row.outcome),
        latency_ms=row.latency_ms,
        code=row.code,
        message=row.message,
        http_status=row.http_status,
        endpoint=row.endpoint,
        permissions=tuple(p for p in row.permissions.split(",") if p),
        ip_whitelist=row.ip_whitelist,
        is_master=row.is_master,
        sub_name=row.sub_name,
        uid=row.uid,
        remark=row.remark,
        api_version=row.api_version,
        key_created_at=row.key_created_at,
        clock_offset_ms=row.clock_offset_ms,
        seen_ip=row.seen_ip,
        rate_limit_remaining=row.rate_limit_remaining,
        spot_balances=spot,
        futures=futures,
        futures_permission_missing=row.futures_permission_missing,
        vip_level=row.vip_level,
        rate_limited_pool=row.rate_limited_pool,
        rate_limit_reset_ms=row.rate_limit_reset_ms,
    )


def record_probe(session: Session, account_id: int, result: ProbeResult) -> int:
    """Store one check of an account; return its row id."""
    row = ProbeRecord(**_probe_values(account_id, result))
    session.add(row)
    session.flush()
    assert row.id is not None
    return row.id


def record_probes(session: Session, results: Iterable[tuple[int, ProbeResult]]) -> int:
    """Store many checks in one statement (a refresh of the fleet); return how many."""
    values = [_probe_values(account_id, result) for account_id, result in results]
    if values:
        session.execute(insert(ProbeRecord), values)
    return len(values)


def probe_history(
    session: Session, account_id: int, *, limit: int | None = None
) -> list[ProbeResult]:
    """Return an account's checks, newest first."""
    query = (
        select(ProbeRecord)
        .where(ProbeRecord.account_id == account_id)
        .order_by(col(ProbeRecord.checked_at).desc(), col(ProbeRecord.id).desc())
    )
    if limit is not None:
        query = query.limit(limit)
    return [_probe_result(row) for row in session.exec(query).all()]


def last_success_keys(
    session: Session, account_ids: Iterable[int]
) -> dict[int, tuple[str | None, tuple[str, ...]]]:
    """Return, per account that ever passed a check, the UID and permissions that check read."""
    ids = [int(a) for a in account_ids]
    if not ids:
        return {}
    q = ProbeRecord.__table__.alias("q")
    newest = (
        select(q.c.id)
        .where(q.c.account_id == ProbeRecord.account_id, q.c.outcome == Outcome.OK.value)
        .order_by(q.c.checked_at.desc(), q.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    rows = session.exec(
        select(ProbeRecord.account_id, ProbeRecord.uid, ProbeRecord.permissions).where(
            col(ProbeRecord.account_id).in_(ids), ProbeRecord.id == newest
        )
    ).all()
    return {
        int(account_id): (uid, tuple(p for p in (permissions or "").split(",") if p))
        for account_id, uid, permissions in rows
    }


def latest_probe(session: Session, account_id: int) -> ProbeResult | None:
    """Return an account's newest check, or None."""
    results = probe_history(session, account_id, limit=1)
    return results[0] if results else None
