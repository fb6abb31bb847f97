"""The SQL that reads the fleet: the checks the health rules decide on, and a change token.

The fleet service (lib.console.fleet) calls these; they belong with the store's readers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import String, and_, func, not_, or_, select, type_coerce, union
from sqlalchemy.orm import aliased
from sqlmodel import Session

from lib import health
from lib.health import HealthPolicy
from lib.kucoin import diagnosis
from lib.kucoin.probe_result import Outcome
from lib.models import Account, AuditEvent, ProbeRecord

if TYPE_CHECKING:
    from lib.console import Console

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


def data_version(console: Console) -> tuple[int, int]:
    """Return a cheap token that changes whenever a check, a binding or a setting is recorded."""
    # Every change writes an audit event and every check a probe row: their newest ids move.
    with console.reading() as session:
        audit = session.execute(select(func.max(AuditEvent.id))).scalar()
        probes = session.execute(select(func.max(ProbeRecord.id))).scalar()
    return int(audit or 0), int(probes or 0)
