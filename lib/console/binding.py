"""Bind a KuCoin key: clean, verify live, then store; and the account's lifecycle after that.

Binding is two steps so that the operator can read what KuCoin said before anything is saved:
`check_key` cleans the paste, refuses duplicates, runs the probe and returns a `KeyCheck`
(no secret in it). A check that may be saved leaves its credentials in a short-lived pending
slot in this process's memory, named by `KeyCheck.token` and dropped once saved, discarded or
PENDING_TTL_S old (a timer sees to it); `save(console, token, ...)` stores them, once the
operator has confirmed any warnings. The secrets never pass through the caller's state
(Streamlit session state, a notebook variable) after the first call.
`bind()` does both steps at once for the CLI and scripts.
"""

from __future__ import annotations

import enum
import math
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Generic, TypeVar

import pandas as pd
from sqlmodel import Session

from lib import store
from lib.account_fields import clean_scopes, label_problem
from lib.console.binding_input import clean_credentials
from lib.health.account import permission_coverage, whitelist_coverage
from lib.health.assessment import CheckAssessment, assess_check
from lib.health.fleet import probe_frame
from lib.health.status import Status
from lib.health.wording import api_status, key_warnings
from lib.kucoin.auth import Credentials
from lib.kucoin.diagnosis import Diagnosis
from lib.kucoin.probe_result import ProbeResult
from lib.secret import Secret

if TYPE_CHECKING:
    from lib.console import Console

PENDING_TTL_S = 600  # a verified key waits this long for the operator's confirmation
MAX_PENDING = 64  # checked keys waiting at once; beyond, the oldest is dropped
T = TypeVar("T")


class Decision(enum.StrEnum):
    """What may happen with a checked key."""

    READY = "ready"  # verified, no warnings: save
    NEEDS_CONFIRMATION = "needs_confirmation"  # verified with warnings: save once confirmed
    WHITELIST_ONLY = "whitelist_only"  # 400006 from here: may be saved as unverified
    FAILED = "failed"  # KuCoin refused the key, or could not be reached: nothing saved
    DUPLICATE = "duplicate"  # the key is already bound: nothing sent, nothing saved
    INVALID = "invalid"  # the paste has errors: nothing sent, nothing saved


# What a verified key may become: saved now, or once the operator confirms.
SAVEABLE = (Decision.READY, Decision.NEEDS_CONFIRMATION, Decision.WHITELIST_ONLY)


class BindingError(Exception):
    """A save that cannot happen as asked; the message says what to do."""


@dataclass(frozen=True)
class KeyCheck:
    """What checking a pasted key found; holds no secret."""

    label: str
    scopes: tuple[str, ...]
    decision: Decision
    errors: dict[str, str] = field(default_factory=dict)
    notices: tuple[str, ...] = ()
    duplicate_of: str | None = None
    result: ProbeResult | None = None
    diagnosis: Diagnosis | None = None
    warnings: tuple[str, ...] = ()
    permissions: pd.DataFrame | None = None
    whitelist: pd.DataFrame | None = None
    token: str | None = None
    account_id: int | None = None  # set when the check is for rotating an account's key
    # What the health rules make of the check: the status the Fleet shows once it is saved.
    assessment: CheckAssessment | None = None

    @property
    def connected(self) -> bool:
        """Return whether KuCoin accepted the key."""
        return self.result is not None and self.result.ok

    @property
    def status(self) -> Status | None:
        """Return the account's status once this check is saved; None when nothing was sent."""
        return self.assessment.status if self.assessment is not None else None

    @property
    def api_status(self) -> str | None:
        """Return the report's verdict, after "API Status: "; None when nothing was sent."""
        if self.result is None or self.assessment is None:
            return None
        return api_status(self.result, self.assessment)

    @property
    def transient(self) -> bool:
        """Return whether the check failed in a way a retry may fix (the health rules say)."""
        return self.assessment is not None and self.assessment.transient

    @property
    def saveable(self) -> bool:
        """Return whether `save` may store this key (perhaps after confirmation)."""
        return self.token is not None


@dataclass
class _Pending(Generic[T]):
    """Something holding credentials, waiting for the operator's confirmation."""

    value: T = field(repr=False)
    expires: float


@dataclass
class ParkedKey:
    """A checked key's credentials and what checking it found."""

    credentials: Credentials = field(repr=False)
    check: KeyCheck
    note: str = ""  # kept in the bind's audit row


class PendingKeys(Generic[T]):
    """Checked keys waiting for confirmation, by token: each gone once taken or expired.

    Expired keys are dropped on every access and by a timer armed for the next expiry, so a
    check nobody confirms leaves this process's memory on time, with no other session acting.
    At most `limit` (MAX_PENDING unless given) wait at once; each waits PENDING_TTL_S.
    """

    def __init__(self, limit: int | None = None) -> None:
        self._keys: dict[str, _Pending[T]] = {}  # oldest first
        self._limit = limit
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._timer_due = math.inf

    def park(self, value: T) -> str:
        """Keep credentials for confirmation; return the token that names them."""
        token = secrets.token_urlsafe(18)
        limit = MAX_PENDING if self._limit is None else self._limit
        with self._lock:
            self._purge()
            while len(self._keys) >= limit:
                del self._keys[next(iter(self._keys))]
            self._keys[token] = _Pending(value, time.monotonic() + PENDING_TTL_S)
            self._arm_timer()
        return token

    def take(self, token: str) -> _Pending[T] | None:
        """Remove and return what a token names, unless it expired."""
        with self._lock:
            self._purge()
            return self._keys.pop(token, None)

    def put_back(self, token: str, pending: _Pending[T]) -> None:
        """Park a value again under its token, until it was due to expire anyway."""
        with self._lock:
            self._keys[token] = pending
            self._purge()
            self._arm_timer()

    def discard(self, token: str) -> None:
        """Forget what a token names."""
        with self._lock:
            self._keys.pop(token, None)
            self._purge()

    def _purge(self) -> None:
        """Drop every expired key (lock held)."""
        now = time.monotonic()
        for token in [t for t, pending in self._keys.items() if pending.expires <= now]:
            del self._keys[token]

    def _arm_timer(self) -> None:
        """Have a timer purge at the next expiry (lock held)."""
        if not self._keys:
            return
        due = min(pending.expires for pending in self._keys.values())
        if self._timer is not None and self._timer_due <= due:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(max(0.0, due - time.monotonic()), self._on_timer)
        self._timer.daemon = True
        self._timer_due = due
        self._timer.start()

    def _on_timer(self) -> None:
        """Purge what expired, and arm the timer for what is left."""
        with self._lock:
            self._timer, self._timer_due = None, math.inf
            self._purge()
            self._arm_timer()


_pending: PendingKeys[ParkedKey] = PendingKeys()


def _take(token: str) -> _Pending[ParkedKey]:
    """Remove and return a pending key; raise BindingError when it expired or is unknown."""
    pending = _pending.take(token)
    if pending is None:
        raise BindingError("This check has expired or was already used: check the key again.")
    return pending


def discard(token: str | None) -> None:
    """Forget a pending key (the operator cancelled)."""
    if token:
        _pending.discard(token)


def duplicate_text(check: KeyCheck) -> str:
    """Return why a key bound already was refused, and what to do instead."""
    return (
        f"This API key is already bound to account '{check.duplicate_of}'. The same key "
        "cannot be bound twice: unbind it there first, or rotate that account's "
        "credentials. Nothing was sent to KuCoin."
    )


@dataclass(frozen=True)
class ScreenedKey:
    """A paste cleaned and screened before any request: refused, or credentials to verify."""

    label: str
    scopes: tuple[str, ...]
    notices: tuple[str, ...]
    account_id: int | None
    refused: KeyCheck | None  # INVALID or DUPLICATE: nothing to send
    credentials: Credentials | None = field(default=None, repr=False)

    @property
    def base(self) -> dict:
        """Return the fields every KeyCheck of this paste shares."""
        return {"label": self.label, "scopes": self.scopes, "notices": self.notices}


def normal_label(label: str) -> str:
    """Return a label as it is stored: runs of whitespace made one space, ends trimmed."""
    return " ".join((label or "").split())


def screen_key(
    console: Console,
    *,
    label: str,
    api_key: str,
    api_secret: str | Secret,
    passphrase: str | Secret,
    scopes: Iterable[str] | str,
    account_id: int | None = None,
) -> ScreenedKey:
    """Clean a paste and refuse what needs no request (errors, a key bound already)."""
    console.require_admin("bind a key" if account_id is None else "rotate a credential")
    cleaned = clean_credentials(api_key, api_secret, passphrase)
    errors = dict(cleaned.errors)
    try:
        wanted = clean_scopes(scopes)
    except ValueError as error:
        wanted = ()
        errors["scopes"] = str(error).capitalize() + "."
    label = normal_label(label)
    with console.reading() as session:
        if account_id is None:
            label_error = _label_error(session, label)
            if label_error:
                errors["label"] = label_error
        else:
            account_error = _rotation_error(session, account_id)
            if account_error:
                errors["account"] = account_error
            else:
                label = store.get_account(session, account_id).label
        holder = None
        if not errors:
            holder = store.find_account_by_api_key(session, console.vault, cleaned.api_key)
        settings = store.get_settings(session)
    screened = ScreenedKey(label, wanted, tuple(cleaned.notices), account_id, None)
    base = {**screened.base, "account_id": account_id}
    if errors:
        refused = KeyCheck(decision=Decision.INVALID, errors=errors, **base)
    elif holder is not None and holder.id != account_id:
        refused = KeyCheck(decision=Decision.DUPLICATE, duplicate_of=holder.label, **base)
    else:
        return replace(screened, credentials=cleaned.credentials(settings.key_version))
    return replace(screened, refused=refused)


def check_key(
    console: Console,
    *,
    label: str,
    api_key: str,
    api_secret: str | Secret,
    passphrase: str | Secret,
    scopes: Iterable[str] | str,
    account_id: int | None = None,
) -> KeyCheck:
    """Clean the paste, refuse duplicates, verify live; return what was found (no secret)."""
    screened = screen_key(
        console,
        label=label,
        api_key=api_key,
        api_secret=api_secret,
        passphrase=passphrase,
        scopes=scopes,
        account_id=account_id,
    )
    if screened.refused is not None:
        return screened.refused
    assert screened.credentials is not None
    with console.reading() as session:
        currencies = store.get_settings(session).futures_currencies
    # A key not seen before: its futures overview is read in the same wave (a 400007 there
    # is how a missing Futures permission shows).
    result = console.kucoin.probe(screened.credentials, futures_currencies=currencies)
    check = verified_check(console, screened, result)
    if check.decision in SAVEABLE:
        check = _with_token(check, _pending.park(ParkedKey(screened.credentials, check)))
    return check


def _label_error(session: Session, label: str) -> str | None:
    """Return what is wrong with a new account's label, or None."""
    problem = label_problem(label)
    if problem:
        return problem
    if store.label_in_use(session, label):
        return f"An account labelled {label!r} already exists: choose another label."
    return None


def _rotation_error(session: Session, account_id: int) -> str | None:
    """Return why an account's key cannot be rotated, or None."""
    try:
        account = store.get_account(session, account_id)
    except store.AccountNotFound as error:
        return str(error)
    if not account.bound:
        return (
            f"Account {account.label!r} was unbound: its credentials are gone. Bind the key "
            "again under a new label."
        )
    return None


def _with_token(check: KeyCheck, token: str) -> KeyCheck:
    """Return the check with the token naming its parked credentials."""
    return KeyCheck(**{**check.__dict__, "token": token})


def verified_check(console: Console, screened: ScreenedKey, result: ProbeResult) -> KeyCheck:
    """Return the KeyCheck of a screened key KuCoin answered: decision, warnings, coverage."""
    policy = console.policy()  # the stored thresholds, as the Fleet applies them
    assessment = assess_check(result, screened.scopes, policy)
    whitelist = whitelist_coverage(probe_frame(result), policy)
    permissions = permission_coverage(
        screened.scopes,
        result.permissions if result.ok else None,
        result.futures_permission_missing,
    )
    common = {
        "result": result,
        "assessment": assessment,
        "permissions": permissions,
        "whitelist": whitelist,
        "account_id": screened.account_id,
        **screened.base,
    }
    if result.ok:
        warnings = key_warnings(assessment)
        decision = Decision.NEEDS_CONFIRMATION if warnings else Decision.READY
        return KeyCheck(decision=decision, warnings=warnings, **common)
    # Only KuCoin refusing this machine's IP leaves a key worth saving (unverified).
    decision = (
        Decision.WHITELIST_ONLY if assessment.status is Status.IP_BLOCKED else Decision.FAILED
    )
    return KeyCheck(decision=decision, diagnosis=assessment.failure, **common)


def confirmation_missing(
    check: KeyCheck, *, accept_warnings: bool = False, accept_unverified: bool = False
) -> str | None:
    """Return what the operator must confirm before this checked key is saved, or None."""
    if check.decision is Decision.NEEDS_CONFIRMATION and not accept_warnings:
        return "Confirm the warnings before saving this key."
    if check.decision is Decision.WHITELIST_ONLY and not accept_unverified:
        return (
            "KuCoin refused this machine's IP (400006): confirm saving the key as unverified, "
            "or add the IP to the key's whitelist and check again."
        )
    return None


def save(
    console: Console,
    token: str,
    *,
    accept_warnings: bool = False,
    accept_unverified: bool = False,
) -> int:
    """Store a checked key (bind, or rotate the account it was checked for); return the id."""
    console.require_admin("save a key")
    pending = _take(token)
    missing = confirmation_missing(
        pending.value.check, accept_warnings=accept_warnings, accept_unverified=accept_unverified
    )
    if missing:
        _pending.put_back(token, pending)
        raise BindingError(missing)
    return store_checked(console, pending.value)


def store_checked(console: Console, parked: ParkedKey) -> int:
    """Store a checked, confirmed key with its first check and audit row; return the id."""
    console.require_admin("save a key")
    check = parked.check
    try:
        with console.transaction() as session:
            if check.account_id is None:
                return store.create_account_with_credentials(
                    session,
                    console.vault,
                    label=check.label,
                    credentials=parked.credentials,
                    scopes=check.scopes,
                    actor=console.actor,
                    probe=check.result,
                    note=parked.note or None,
                )
            store.rotate_credentials(
                session,
                console.vault,
                check.account_id,
                parked.credentials,
                actor=console.actor,
                probe=check.result,
            )
            return check.account_id
    except store.StoreError as error:
        # Someone bound the label or key meanwhile, or unbound the account: nothing was
        # written, and the operator must check again with a fix.
        raise BindingError(f"{error} Nothing was saved.") from None


@dataclass(frozen=True)
class BindOutcome:
    """What `bind` did: the check, and the account id when the key was saved."""

    check: KeyCheck
    account_id: int | None


def bind(
    console: Console,
    *,
    label: str,
    api_key: str,
    api_secret: str | Secret,
    passphrase: str | Secret,
    scopes: Iterable[str] | str = ("spot",),
    accept_warnings: bool = False,
    accept_unverified: bool = False,
    account_id: int | None = None,
) -> BindOutcome:
    """Check and, when allowed, save in one call (CLI, scripts); nothing saved otherwise."""
    check = check_key(
        console,
        label=label,
        api_key=api_key,
        api_secret=api_secret,
        passphrase=passphrase,
        scopes=scopes,
        account_id=account_id,
    )
    if not check.saveable:
        return BindOutcome(check, None)
    allowed = (
        check.decision is Decision.READY
        or (check.decision is Decision.NEEDS_CONFIRMATION and accept_warnings)
        or (check.decision is Decision.WHITELIST_ONLY and accept_unverified)
    )
    if not allowed:
        discard(check.token)
        return BindOutcome(check, None)
    assert check.token is not None
    return BindOutcome(
        check,
        save(
            console,
            check.token,
            accept_warnings=accept_warnings,
            accept_unverified=accept_unverified,
        ),
    )


def accounts(console: Console, *, include_unbound: bool = False) -> list[store.AccountView]:
    """Return the accounts by label (no secret), unbound ones only if asked."""
    with console.reading() as session:
        return store.list_accounts(session, include_unbound=include_unbound)


def account_by_label(console: Console, label: str) -> store.AccountView | None:
    """Return the bound account with this label, or None."""
    wanted = " ".join(label.split())
    return next((a for a in accounts(console) if a.label == wanted), None)


# Lifecycle of a bound account: each writes its audit event with the acting operator.


def set_scopes(console: Console, account_id: int, scopes: Iterable[str] | str) -> bool:
    """Change the scopes the platform needs from the account's key; return whether changed."""
    console.require_admin("change an account's scopes")
    wanted = clean_scopes(scopes)
    with console.transaction() as session:
        return store.set_scopes(session, account_id, wanted, actor=console.actor)


def pause(console: Console, account_id: int) -> bool:
    """Stop monitoring an account (its status shows PAUSED); return whether it changed."""
    console.require_admin("pause monitoring")
    with console.transaction() as session:
        return store.pause(session, account_id, actor=console.actor)


def resume(console: Console, account_id: int) -> bool:
    """Resume monitoring an account; return whether it changed."""
    console.require_admin("resume monitoring")
    with console.transaction() as session:
        return store.resume(session, account_id, actor=console.actor)


def unbind_summary(console: Console, account_id: int) -> str:
    """Return what unbinding will delete and keep, for the confirmation."""
    with console.reading() as session:
        account = store.get_account(session, account_id)
    key = f"…{account.key_last4}" if account.key_last4 else "(none)"
    return (
        f"Unbinding '{account.label}' permanently deletes its API Key {key}, Secret and "
        "Passphrase from bindwatch. Its check history and audit log are kept. The key itself "
        "still exists on KuCoin: delete it there too if it is unused or compromised "
        "(KuCoin → API Management → Delete)."
    )


def unbind(console: Console, account_id: int) -> None:
    """Destroy the account's credentials; its history and audit log stay."""
    console.require_admin("unbind an account")
    with console.transaction() as session:
        store.unbind(session, account_id, actor=console.actor)
