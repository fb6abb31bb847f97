"""Who may open the console: operators and roles, signing in and out, sessions, the first admin.

The rules live here, each once: how long a session lasts (idle and in all), how long a name
(and every name together) waits after failed sign-ins, what a password must be. The store
keeps hashes and counts; lib.web_session puts a session's token in a signed cookie.

A sign-in counts as a failure before its password is checked, and is forgiven once it
succeeds: many sign-ins sent at once cannot all slip past the wait.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd

from lib import store
from lib.console.passwords import (
    PASSWORD_RULE,
    hash_password,
    needs_rehash,
    password_problem,
    verify_password,
)
from lib.secret import Secret
from lib.store import InvalidInput, OperatorView, Role, SignInMethod, operator_name_problem
from lib.store.models import AuditAction
from lib.store.operators import OPERATOR_NAME_RULE

if TYPE_CHECKING:
    from lib.console import Console

__all__ = [
    "OPERATOR_NAME_RULE",
    "PASSWORD_RULE",
    "SESSION_IDLE",
    "SESSION_LIFETIME",
    "OperatorView",
    "Role",
    "SignIn",
    "SignInMethod",
    "SignedIn",
    "add_operator",
    "create_first_admin",
    "list_operators",
    "operator_name_problem",
    "operators_frame",
    "password_problem",
    "remove_operator",
    "set_password",
    "set_role",
    "setup_needed",
    "sign_in",
    "sign_in_sso",
    "sign_out",
    "signed_in",
    "sso_role",
]

SESSION_IDLE = timedelta(minutes=30)  # a session unused this long ends
SESSION_LIFETIME = timedelta(hours=12)  # and every session ends this long after sign-in
TOUCH_EVERY = timedelta(minutes=1)  # how often a session's last use is written
# Failed sign-ins: the first few are free, then each waits twice as long as the last, up to a
# cap; a count with no failure for FORGET_AFTER starts over. Per name tried, and over all names.
FREE_FAILURES_PER_NAME = 3
FREE_FAILURES_OVERALL = 30
NAME_WAIT_CAP = timedelta(minutes=15)
OVERALL_WAIT_CAP = timedelta(minutes=1)  # short: a guesser cannot lock everyone out for long
FORGET_AFTER = timedelta(hours=1)
OVERALL_KEY = "*"  # the count over every name; never a name's key ("name:...")
SIGN_IN_EVENTS = (
    AuditAction.LOGIN,
    AuditAction.FAILED_LOGIN,
    AuditAction.LOGOUT,
    AuditAction.ADD_OPERATOR,
    AuditAction.REMOVE_OPERATOR,
    AuditAction.CHANGE_ROLE,
    AuditAction.CHANGE_PASSWORD,
)


@dataclass(frozen=True)
class SignedIn:
    """An operator with an open session: who, with which role, and the session's id."""

    name: str
    role: Role
    method: SignInMethod
    session_id: str


@dataclass(frozen=True)
class SignIn:
    """What a sign-in came to: a session token, or a refusal (and how long to wait)."""

    token: str | None = None  # the session's token, for the cookie; never stored
    wait_seconds: int = 0  # > 0: refused unchecked, too many failures; try again after this

    @property
    def ok(self) -> bool:
        """Return whether the operator is signed in."""
        return self.token is not None


def session_id(token: str) -> str:
    """Return the id a session is stored under: the SHA-256 of its token (hex)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> str:
    """Return a fresh session token (256 random bits)."""
    return secrets.token_urlsafe(32)


def _password(password: Secret | str) -> Secret:
    return password if isinstance(password, Secret) else Secret(password)


def _hash_new(password: Secret | str) -> str:
    """Return the hash of a new password; raise InvalidInput saying what a password needs."""
    password = _password(password)
    problem = password_problem(password)
    if problem:
        raise InvalidInput(problem)
    return hash_password(password)


# --- Operators --------------------------------------------------------------------------------


def setup_needed(console: Console) -> bool:
    """Return whether no admin exists yet (the console then shows its setup page)."""
    with console.reading() as session:
        return not store.setup_done(session)


def create_first_admin(console: Console, name: str, password: Secret | str) -> str:
    """Create the first admin and sign them in; return the session token.

    Raise SetupAlreadyDone once any operator exists: of two browsers racing, one wins.
    """
    password_hash = _hash_new(password)
    now = datetime.now(UTC)
    token = _new_token()
    with console.transaction() as session:
        admin = store.add_operator(
            session,
            name=name,
            password_hash=password_hash,
            role=Role.ADMIN,
            actor=console.actor,
            first_admin=True,
            at=now,
        )
        store.start_session(
            session,
            session_id=session_id(token),
            operator_name=admin.name,
            role=Role.ADMIN,
            method=SignInMethod.PASSWORD,
            at=now,
        )
    return token


def add_operator(
    console: Console, name: str, password: Secret | str, role: Role | str
) -> OperatorView:
    """Add an operator with a password (the first one must be an admin)."""
    console.require_admin("add operators")
    password_hash = _hash_new(password)
    with console.transaction() as session:
        return store.add_operator(
            session, name=name, password_hash=password_hash, role=role, actor=console.actor
        )


def operator(console: Console, name: str) -> OperatorView:
    """Return one operator; raise OperatorNotFound."""
    with console.reading() as session:
        return store.get_operator(session, name)


def list_operators(console: Console) -> list[OperatorView]:
    """Return every operator by name (no password hash)."""
    with console.reading() as session:
        return store.list_operators(session)


def operators_frame(console: Console) -> pd.DataFrame:
    """Return the operators as the Operators page lists them, with their open sessions."""
    with console.reading() as session:
        operators = store.list_operators(session)
        sessions = store.active_sessions(session)
    rows = [
        {
            "name": o.name,
            "role": o.role.value,
            "since": o.created_at,
            "sessions": sessions.get(o.name, 0),
        }
        for o in operators
    ]
    return pd.DataFrame(rows, columns=["name", "role", "since", "sessions"])


def sign_in_events(console: Console, limit: int = 50) -> pd.DataFrame:
    """Return the latest sign-ins, failures, sign-outs and operator changes, newest first."""
    with console.reading() as session:
        events = [
            e
            for e in store.audit_log(session, limit=limit * 4)
            if e.action in {a.value for a in SIGN_IN_EVENTS}
        ][:limit]
    rows = [
        {
            "at": e.at,
            "actor": e.actor,
            "action": e.action,
            "details": ", ".join(f"{k}={v}" for k, v in e.details.items()),
        }
        for e in events
    ]
    return pd.DataFrame(rows, columns=["at", "actor", "action", "details"])


def remove_operator(console: Console, name: str) -> None:
    """Remove an operator and end their sessions; never the last admin."""
    console.require_admin("remove operators")
    with console.transaction() as session:
        store.remove_operator(session, name, actor=console.actor)


def set_role(console: Console, name: str, role: Role | str) -> bool:
    """Change an operator's role (never demoting the last admin); return whether it changed."""
    console.require_admin("change operators' roles")
    with console.transaction() as session:
        return store.set_role(session, name, role, actor=console.actor)


def set_password(console: Console, name: str, password: Secret | str) -> int:
    """Set an operator's password, end their sessions and forgive their failed sign-ins.

    Return how many sessions ended.
    """
    console.require_admin("change operators' passwords")
    password_hash = _hash_new(password)
    with console.transaction() as session:
        ended = store.set_password_hash(session, name, password_hash, actor=console.actor)
        store.set_login_failures(
            session, _name_key(store.clean_operator_name(name)), 0, datetime.now(UTC)
        )
    return ended


# --- Signing in -------------------------------------------------------------------------------


def _name_key(name: str) -> str:
    return f"name:{name[:200]}"


def failure_wait(
    failures: int, last_failure: datetime, *, free: int, cap: timedelta, now: datetime
) -> timedelta:
    """Return how long a key with `failures` must still wait before its next sign-in."""
    if failures < free or now - last_failure >= FORGET_AFTER:
        return timedelta(0)
    wait = min(cap, timedelta(seconds=2 ** (failures - free)))
    return max(timedelta(0), last_failure + wait - now)


def _counted(failures: tuple[int, datetime] | None, now: datetime) -> int:
    """Return a key's failures still counted (none once forgotten)."""
    if failures is None or now - failures[1] >= FORGET_AFTER:
        return 0
    return failures[0]


def sign_in(
    console: Console,
    name: str,
    password: Secret | str,
    *,
    address: str | None = None,
    now: datetime | None = None,
) -> SignIn:
    """Check a name and password; return a session token, or how long to wait.

    Every failure is audited with the name tried; a sign-in refused unchecked (waiting) is
    not, or a script could fill the append-only audit log as fast as it can send.
    """
    now = now or datetime.now(UTC)
    password = _password(password)
    tried = " ".join(name.split()).lower()[:200]
    name_key = _name_key(tried)
    limits = {
        name_key: (FREE_FAILURES_PER_NAME, NAME_WAIT_CAP),
        OVERALL_KEY: (FREE_FAILURES_OVERALL, OVERALL_WAIT_CAP),
    }
    with console.transaction() as session:
        counts = store.login_failures(session, list(limits))
        wait = max(
            failure_wait(*counts[key], free=free, cap=cap, now=now)
            if key in counts
            else timedelta(0)
            for key, (free, cap) in limits.items()
        )
        if wait > timedelta(0):
            return SignIn(wait_seconds=max(1, int(-(-wait.total_seconds() // 1))))
        for key in limits:  # counted as failed until the password is found right
            store.set_login_failures(session, key, _counted(counts.get(key), now) + 1, now)
        stored = store.password_hash(session, tried)
    if not verify_password(stored, password):
        with console.transaction() as session:
            store.record_failed_login(
                session,
                name_tried=tried,
                reason="wrong password" if stored else "no such operator",
                address=address,
                at=now,
            )
        return SignIn()
    token = _new_token()
    with console.transaction() as session:
        # Sessions nobody came back to are gone for good: drop them here, now and then.
        store.end_sessions_before(session, created=now - SESSION_LIFETIME, seen=now - SESSION_IDLE)
        counts = store.login_failures(session, list(limits))
        store.set_login_failures(session, name_key, 0, now)
        if OVERALL_KEY in counts:  # this attempt was no failure after all
            failures, last = counts[OVERALL_KEY]
            store.set_login_failures(session, OVERALL_KEY, failures - 1, last)
        operator = store.get_operator(session, tried)
        if stored is not None and needs_rehash(stored):
            store.rehash_password(session, tried, hash_password(password))
        store.start_session(
            session,
            session_id=session_id(token),
            operator_name=operator.name,
            role=operator.role,
            method=SignInMethod.PASSWORD,
            at=now,
            details={"from": address or "unknown"},
        )
    return SignIn(token=token)


def signed_in(
    console: Console, session: str, *, touch: bool = True, now: datetime | None = None
) -> SignedIn | None:
    """Return who holds the session `session` (an id), None if it is unknown or ended.

    A session unused for SESSION_IDLE, or older than SESSION_LIFETIME, ends here. With
    `touch` the use counts as activity.
    """
    now = now or datetime.now(UTC)
    with console.reading() as reading:
        view = store.get_session(reading, session)
    if view is None:
        return None
    if now - view.created_at >= SESSION_LIFETIME or now - view.last_seen_at >= SESSION_IDLE:
        reason = "expired" if now - view.created_at >= SESSION_LIFETIME else "idle"
        with console.transaction() as writing:
            store.end_session(writing, session, reason=reason, at=now)
        return None
    if touch and now - view.last_seen_at >= TOUCH_EVERY:
        with console.transaction() as writing:
            store.touch_session(writing, session, now)
    return SignedIn(view.operator_name, view.role, view.method, view.id)


def sign_out(console: Console, session: str, *, reason: str = "signed out") -> str | None:
    """End a session (an id); return whose it was, None if it had ended already."""
    with console.transaction() as writing:
        return store.end_session(writing, session, reason=reason)


# --- Single sign-on ---------------------------------------------------------------------------


def sso_role(
    email: str | None, allowed: Mapping[str, Iterable[str]], *, verified: bool | None = None
) -> Role | None:
    """Return the role an identity provider's e-mail maps to, None if it may not sign in.

    `allowed` maps a role ("admin", "viewer") to e-mail addresses, compared without case; an
    address on both lists is an admin. An address the provider says is unverified gets none.
    """
    if not email or verified is False:
        return None
    wanted = email.strip().lower()
    for role in (Role.ADMIN, Role.VIEWER):
        if wanted in {str(a).strip().lower() for a in allowed.get(role.value, ())}:
            return role
    return None


def sign_in_sso(console: Console, email: str, role: Role, *, now: datetime | None = None) -> str:
    """Open a session for an identity-provider sign-in already mapped to `role`; return its id."""
    now = now or datetime.now(UTC)
    session = session_id(_new_token())
    with console.transaction() as writing:
        store.start_session(
            writing,
            session_id=session,
            operator_name=email.strip().lower()[:200],
            role=role,
            method=SignInMethod.SSO,
            at=now,
        )
    return session
