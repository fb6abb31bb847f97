"""Operators, their sessions, and the failed sign-ins counted against guessing.

The store keeps what the console decides: a password hash (never a password), a session's
SHA-256 id (never its token), and failure counts; lib.console.operators owns the rules (how
long a session lives, how long a name waits after failures). Every change writes its audit row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, func
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from lib.store.audit import record_audit
from lib.store.errors import InvalidInput, LastAdmin, OperatorNotFound, SetupAlreadyDone
from lib.store.models import (
    AuditAction,
    ConsoleSetup,
    LoginThrottle,
    Operator,
    OperatorSession,
    Role,
    SignInMethod,
)

# Letters, digits and . _ @ - ; an e-mail address is a valid name. Names are kept lower case.
OPERATOR_NAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
OPERATOR_NAME_RULE = (
    "An operator name is 1 to 64 letters, digits or . _ @ - and starts with a letter or digit."
)


@dataclass(frozen=True)
class OperatorView:
    """An operator as the console shows it: no password hash."""

    name: str
    role: Role
    created_at: datetime


@dataclass(frozen=True)
class SessionView:
    """A stored operator session: who, with which role, how, since when, last used when."""

    id: str
    operator_name: str
    role: Role
    method: SignInMethod
    created_at: datetime
    last_seen_at: datetime


def operator_name_problem(name: str) -> str | None:
    """Return what is wrong with an operator name, or None when it may be used."""
    return None if OPERATOR_NAME.fullmatch(name.strip().lower()) else OPERATOR_NAME_RULE


def clean_operator_name(name: str) -> str:
    """Return the name as stored (trimmed, lower case); raise InvalidInput saying what to fix."""
    problem = operator_name_problem(name)
    if problem:
        raise InvalidInput(problem)
    return name.strip().lower()


def _role(role: Role | str) -> Role:
    """Return the role, or raise InvalidInput naming the roles there are."""
    try:
        return Role(role)
    except ValueError:
        raise InvalidInput(
            f"A role is one of {', '.join(r.value for r in Role)}, not {str(role)[:40]!r}."
        ) from None


def _view(row: Operator) -> OperatorView:
    return OperatorView(row.name, Role(row.role), row.created_at)


def _row(session: Session, name: str, *, lock: bool = False) -> Operator:
    """Return the operator row by (clean) name; raise OperatorNotFound."""
    query = select(Operator).where(Operator.name == name)
    row = session.exec(query.with_for_update() if lock else query).first()
    if row is None:
        raise OperatorNotFound(
            f"No operator is named {name!r}: `python -m lib operators list` shows them."
        )
    return row


def setup_done(session: Session) -> bool:
    """Return whether the first admin exists (then the setup page is gone for good)."""
    marked = session.exec(select(ConsoleSetup.id)).first() is not None
    return marked or session.exec(select(Operator.id).limit(1)).first() is not None


def list_operators(session: Session) -> list[OperatorView]:
    """Return every operator by name."""
    return [_view(r) for r in session.exec(select(Operator).order_by(Operator.name)).all()]


def get_operator(session: Session, name: str) -> OperatorView:
    """Return one operator; raise OperatorNotFound."""
    return _view(_row(session, clean_operator_name(name)))


def password_hash(session: Session, name: str) -> str | None:
    """Return the stored hash of an enabled operator's password, None if there is no such one."""
    row = session.exec(select(Operator).where(Operator.name == name.strip().lower())).first()
    return None if row is None or row.disabled else row.password_hash


def add_operator(
    session: Session,
    *,
    name: str,
    password_hash: str,
    role: Role | str,
    actor: str,
    first_admin: bool = False,
    at: datetime | None = None,
) -> OperatorView:
    """Add an operator; the first one must be an admin and marks the setup done.

    With `first_admin`, succeed only if there is no operator yet: of two setups racing, the
    database lets one insert the single console_setup row, and the other gets SetupAlreadyDone.
    """
    name, role, at = clean_operator_name(name), _role(role), at or datetime.now(UTC)
    first = not setup_done(session)
    if first_admin and not first:
        raise SetupAlreadyDone("The first admin exists already: sign in instead.")
    if first:
        if role is not Role.ADMIN:
            raise InvalidInput("The first operator must be an admin: add one with --role admin.")
        session.add(ConsoleSetup(operator_name=name, done_at=at))
        try:
            session.flush()  # a racing setup fails here on the primary key, before any operator
        except IntegrityError:
            # PostgreSQL lets both setups see no admin, then holds the loser's insert until the
            # winner commits; SQLite's writers take turns, so there the check above suffices.
            raise SetupAlreadyDone("The first admin exists already: sign in instead.") from None
    elif session.exec(select(Operator.id).where(Operator.name == name)).first() is not None:
        raise _name_taken(name)
    session.add(Operator(name=name, password_hash=password_hash, role=role.value, created_at=at))
    try:
        session.flush()
    except IntegrityError:  # two admins adding one name at once, on PostgreSQL
        raise _name_taken(name) from None
    record_audit(
        session,
        actor=actor if not first_admin else name,
        action=AuditAction.ADD_OPERATOR,
        details={"operator": name, "role": role.value, "first_admin": first},
        at=at,
    )
    return OperatorView(name, role, at)


def _name_taken(name: str) -> InvalidInput:
    return InvalidInput(f"An operator named {name!r} exists already: pick another name.")


def _locked_admins(session: Session) -> list[str]:
    """Return the admins' names, locking their rows (PostgreSQL; SQLite writers are serial).

    Locked in name order before any other operator row: two admins demoting each other at
    once then queue instead of both seeing the other (or deadlocking), and one admin stays.
    """
    query = select(Operator.name).where(Operator.role == Role.ADMIN.value)
    return list(session.exec(query.order_by(Operator.name).with_for_update()).all())


def _refuse_last_admin(session: Session, row: Operator, admins: list[str], doing: str) -> None:
    """Raise LastAdmin if `row` is the only admin."""
    if row.role == Role.ADMIN.value and not [a for a in admins if a != row.name]:
        raise LastAdmin(f"{row.name!r} is the only admin: add another admin before you {doing}.")


def remove_operator(session: Session, name: str, *, actor: str) -> None:
    """Remove an operator and end their sessions; never the last admin."""
    admins = _locked_admins(session)
    row = _row(session, clean_operator_name(name), lock=True)
    _refuse_last_admin(session, row, admins, "remove it")
    end_sessions_of(session, row.name)
    session.delete(row)
    record_audit(
        session, actor=actor, action=AuditAction.REMOVE_OPERATOR, details={"operator": row.name}
    )


def set_role(session: Session, name: str, role: Role | str, *, actor: str) -> bool:
    """Give an operator another role; never demote the last admin. Return whether it changed."""
    admins = _locked_admins(session)
    row, role = _row(session, clean_operator_name(name), lock=True), _role(role)
    if row.role == role.value:
        return False
    if role is not Role.ADMIN:
        _refuse_last_admin(session, row, admins, "make it a viewer")
    record_audit(
        session,
        actor=actor,
        action=AuditAction.CHANGE_ROLE,
        details={"operator": row.name, "from": row.role, "to": role.value},
    )
    row.role = role.value
    session.add(row)
    return True


def set_password_hash(session: Session, name: str, password_hash: str, *, actor: str) -> int:
    """Replace an operator's password hash, end their sessions; return how many ended."""
    row = _row(session, clean_operator_name(name))
    row.password_hash = password_hash
    session.add(row)
    ended = end_sessions_of(session, row.name)
    record_audit(
        session,
        actor=actor,
        action=AuditAction.CHANGE_PASSWORD,
        details={"operator": row.name, "sessions_ended": ended},
    )
    return ended


def rehash_password(session: Session, name: str, password_hash: str) -> None:
    """Store a stronger hash of the same password (sign-in found the old one's cost too low)."""
    row = _row(session, clean_operator_name(name))
    row.password_hash = password_hash
    session.add(row)


# --- Sessions ---------------------------------------------------------------------------------


def start_session(
    session: Session,
    *,
    session_id: str,
    operator_name: str,
    role: Role,
    method: SignInMethod,
    at: datetime,
    details: dict[str, str] | None = None,
) -> None:
    """Store a new session and audit the sign-in."""
    session.add(
        OperatorSession(
            id=session_id,
            operator_name=operator_name,
            method=method.value,
            role=role.value,
            created_at=at,
            last_seen_at=at,
        )
    )
    record_audit(
        session,
        actor=operator_name,
        action=AuditAction.LOGIN,
        details={"method": method.value, "role": role.value, **(details or {})},
        at=at,
    )


def get_session(session: Session, session_id: str) -> SessionView | None:
    """Return a stored session with its operator's current role; None if it is gone.

    A password session whose operator was removed or disabled is gone too.
    """
    stored = session.get(OperatorSession, session_id)
    if stored is None:
        return None
    role = stored.role
    if stored.method == SignInMethod.PASSWORD.value:
        operator = session.exec(
            select(Operator).where(Operator.name == stored.operator_name)
        ).first()
        if operator is None or operator.disabled:
            return None
        role = operator.role
    return SessionView(
        stored.id,
        stored.operator_name,
        Role(role),
        SignInMethod(stored.method),
        stored.created_at,
        stored.last_seen_at,
    )


def touch_session(session: Session, session_id: str, at: datetime) -> None:
    """Record that the session was used at `at`."""
    stored = session.get(OperatorSession, session_id)
    if stored is not None:
        stored.last_seen_at = at
        session.add(stored)


def end_session(
    session: Session, session_id: str, *, reason: str, at: datetime | None = None
) -> str | None:
    """Delete one session and audit the sign-out; return whose it was, None if already gone."""
    stored = session.get(OperatorSession, session_id)
    if stored is None:
        return None
    session.delete(stored)
    record_audit(
        session,
        actor=stored.operator_name,
        action=AuditAction.LOGOUT,
        details={"method": stored.method, "reason": reason},
        at=at,
    )
    return stored.operator_name


def end_sessions_of(session: Session, operator_name: str) -> int:
    """Delete every session of one operator; return how many there were."""
    result = session.exec(
        delete(OperatorSession).where(col(OperatorSession.operator_name) == operator_name)
    )
    return int(result.rowcount or 0)


def end_sessions_before(session: Session, *, created: datetime, seen: datetime) -> int:
    """Delete sessions created before `created` or unused since `seen`; return how many."""
    result = session.exec(
        delete(OperatorSession).where(
            (col(OperatorSession.created_at) < created) | (col(OperatorSession.last_seen_at) < seen)
        )
    )
    return int(result.rowcount or 0)


def active_sessions(session: Session) -> dict[str, int]:
    """Return how many stored sessions each operator has."""
    rows = session.exec(
        select(OperatorSession.operator_name, func.count()).group_by(OperatorSession.operator_name)
    ).all()
    return {name: int(count) for name, count in rows}


# --- Failed sign-ins --------------------------------------------------------------------------


def login_failures(session: Session, keys: list[str]) -> dict[str, tuple[int, datetime]]:
    """Return (failures, last failure) per key counted so far, locking those rows meanwhile.

    A key without failures has a row of none made first, so that concurrent sign-ins on
    PostgreSQL queue on its lock instead of racing to insert it.
    """
    dialect = session.get_bind().dialect.name
    make = postgresql_insert if dialect == "postgresql" else sqlite_insert
    for key in keys:
        session.exec(
            make(LoginThrottle)
            .values(key=key, failures=0, last_failure_at=datetime.now(UTC))
            .on_conflict_do_nothing(index_elements=["key"])
        )
    rows = session.exec(
        select(LoginThrottle).where(col(LoginThrottle.key).in_(keys)).with_for_update()
    ).all()
    return {row.key: (row.failures, row.last_failure_at) for row in rows if row.failures}


def set_login_failures(session: Session, key: str, failures: int, at: datetime) -> None:
    """Set the failure count of one key, the last failure at `at`; zero forgets the key."""
    row = session.get(LoginThrottle, key)
    if failures <= 0:
        if row is not None:
            session.delete(row)
        return
    if row is None:
        row = LoginThrottle(key=key, failures=failures, last_failure_at=at)
    else:
        row.failures, row.last_failure_at = failures, at
    session.add(row)


def record_failed_login(
    session: Session, *, name_tried: str, reason: str, address: str | None, at: datetime
) -> None:
    """Audit a failed sign-in with the name tried (cut to 200 characters)."""
    record_audit(
        session,
        actor="anonymous",
        action=AuditAction.FAILED_LOGIN,
        details={"name": name_tried[:200], "reason": reason, "from": address or "unknown"},
        at=at,
    )
