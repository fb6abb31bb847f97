"""Reads and writes of bound accounts, their encrypted credentials, checks, settings and audit.

Every function takes a Session and runs inside the caller's transaction (see
lib.db.transaction); none commits. A change and its audit row are therefore written together
or not at all. Pages call these functions and read the DataFrames; they never touch the ORM.

    StoreError              a store call that cannot be done as asked
    ├── InvalidInput        a label, scope, credential or setting that is not acceptable
    ├── AccountNotFound     no account has this id
    ├── AccountUnbound      the account was unbound: its credentials are gone
    ├── DuplicateLabelError another account already has this label
    └── DuplicateKeyError   this API key is already bound to another account (names it)
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from lib.binding_input import label_problem
from lib.kucoin.auth import Credentials
from lib.kucoin.constants import ACCEPTED_KEY_VERSIONS, MAX_WHITELIST_IPS
from lib.kucoin.probe_result import Outcome, ProbeResult, SpotBalance
from lib.models import (
    Account,
    AuditAction,
    AuditEvent,
    Credential,
    ProbeRecord,
    Scope,
    SettingRow,
    Settings,
)
from lib.secret import Secret
from lib.vault import CREDENTIAL_FIELDS, Vault, credential_place


class StoreError(Exception):
    """Base of the store's errors; the message says what to do and never holds a secret."""


class InvalidInput(StoreError):
    """A label, scope, credential or setting that is not acceptable."""


class AccountNotFound(StoreError):
    """No account has this id."""


class AccountUnbound(StoreError):
    """The account was unbound; its credentials were destroyed."""


class DuplicateLabelError(StoreError):
    """Another account already has this label."""


class DuplicateKeyError(StoreError):
    """The API key is already bound to another account."""

    def __init__(self, label: str):
        self.label = label
        super().__init__(
            f"This API key is already bound to account {label!r}. Unbind it there first, or "
            "rotate that account's credential instead of binding the key twice."
        )


@dataclass(frozen=True)
class AccountView:
    """One account as pages see it: no secret, the API key only by its last four characters."""

    id: int
    label: str
    exchange: str
    scopes: tuple[str, ...]
    paused: bool
    unverified: bool
    unbound_at: datetime | None
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    key_last4: str | None
    key_version: str | None
    credential_created_at: datetime | None
    credential_rotated_at: datetime | None

    @property
    def bound(self) -> bool:
        """Return whether the account still has credentials."""
        return self.unbound_at is None


@dataclass(frozen=True)
class AuditEntry:
    """One audit event."""

    id: int
    at: datetime
    actor: str
    action: str
    account_id: int | None
    details: dict[str, Any]


# --- validation ----------------------------------------------------------------------------


def _has_control_chars(value: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in value)


def _clean_label(label: str) -> str:
    label = (label or "").strip()
    problem = label_problem(label)
    if problem:
        raise InvalidInput(problem)
    return label


def _clean_scopes(scopes: Iterable[str]) -> list[str]:
    chosen = set()
    for scope in scopes:
        try:
            chosen.add(Scope(str(scope).strip().lower()))
        except ValueError:
            raise InvalidInput(
                f"Unknown scope {scope!r}; choose among {', '.join(s.value for s in Scope)}."
            ) from None
    return [s.value for s in Scope if s in chosen]


def _check_credentials(credentials: Credentials) -> None:
    """Refuse empty values and pasted control characters; messages never echo the value."""
    fields = (
        ("API key", credentials.api_key),
        ("API secret", credentials.api_secret.reveal()),
        ("API passphrase", credentials.passphrase.reveal()),
    )
    for name, value in fields:
        if not value:
            raise InvalidInput(f"The {name} is empty.")
        if len(value) > 512:
            raise InvalidInput(f"The {name} is longer than 512 characters; paste it again.")
        if _has_control_chars(value):
            raise InvalidInput(
                f"The {name} contains a control character (a line break or tab?); paste it again."
            )
    if credentials.api_key != credentials.api_key.strip():
        raise InvalidInput("The API key starts or ends with a space; paste it again.")
    if str(credentials.key_version) not in ACCEPTED_KEY_VERSIONS:
        raise InvalidInput(f"Key version must be one of {', '.join(ACCEPTED_KEY_VERSIONS)}.")


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


def _short(fingerprint: str) -> str:
    """Return a fingerprint short enough for audit details: key id and 16 hex digits."""
    key_id, _, digest = fingerprint.partition(":")
    return f"{key_id}:{digest[:16]}"


def _now() -> datetime:
    return datetime.now(UTC)


# --- audit ---------------------------------------------------------------------------------


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
            at=at or _now(),
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


# --- accounts and credentials ----------------------------------------------------------------


def _account(session: Session, account_id: int) -> Account:
    account = session.get(Account, account_id)
    if account is None:
        raise AccountNotFound(f"No account has id {account_id}.")
    return account


def _bound_account(session: Session, account_id: int) -> Account:
    account = _account(session, account_id)
    if account.unbound_at is not None:
        raise AccountUnbound(
            f"Account {account.label!r} was unbound on {account.unbound_at:%Y-%m-%d %H:%M} UTC; "
            "its credentials were destroyed. Bind the key again under a new label to use it."
        )
    return account


def _holder_of(
    session: Session, vault: Vault, api_key: str, *, besides: int | None = None
) -> str | None:
    """Return the label of the account that holds this API key, if any (other than `besides`)."""
    query = (
        select(Account.label)
        .join(Credential, col(Credential.account_id) == col(Account.id))
        .where(col(Credential.fingerprint).in_(vault.fingerprints(api_key)))
    )
    if besides is not None:
        query = query.where(Credential.account_id != besides)
    return session.exec(query).first()


def _seal(vault: Vault, key_id: str, account_id: int, credentials: Credentials) -> dict[str, str]:
    """Return the encrypted columns, fingerprint and last four of a credential."""
    values = {
        "api_key": credentials.api_key,
        "api_secret": credentials.api_secret,
        "passphrase": credentials.passphrase,
    }
    sealed = {
        f"{name}_enc": vault.encrypt(
            values[name], credential_place(account_id, name), key_id=key_id
        )
        for name in CREDENTIAL_FIELDS
    }
    sealed["fingerprint"] = vault.fingerprint(credentials.api_key, key_id=key_id)
    sealed["key_last4"] = credentials.api_key[-4:]
    sealed["key_version"] = str(credentials.key_version)
    sealed["master_key_id"] = key_id
    return sealed


def _flush_unique(
    session: Session, vault: Vault, label: str, api_key: str, besides: int | None
) -> None:
    """Flush, turning a unique-constraint race into DuplicateLabelError or DuplicateKeyError."""
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        holder = _holder_of(session, vault, api_key, besides=besides)
        if holder is not None:
            raise DuplicateKeyError(holder) from None
        raise DuplicateLabelError(
            f"An account labelled {label!r} already exists; choose another label."
        ) from None


def create_account_with_credentials(
    session: Session,
    vault: Vault,
    *,
    label: str,
    credentials: Credentials,
    scopes: Iterable[str],
    actor: str,
    probe: ProbeResult | None = None,
) -> int:
    """Bind a key: account, encrypted credential, first check and audit row; return the id.

    The account is marked unverified unless `probe` is a passing check.
    """
    label = _clean_label(label)
    scope_list = _clean_scopes(scopes)
    _check_credentials(credentials)
    key_id = vault.lock_active_key(session)
    if session.exec(select(Account.id).where(Account.label == label)).first() is not None:
        raise DuplicateLabelError(
            f"An account labelled {label!r} already exists; choose another label."
        )
    holder = _holder_of(session, vault, credentials.api_key)
    if holder is not None:
        raise DuplicateKeyError(holder)
    now = _now()
    verified = probe is not None and probe.ok
    account = Account(
        label=label,
        scopes=scope_list,
        unverified=not verified,
        created_at=now,
        created_by=actor,
        updated_at=now,
        updated_by=actor,
    )
    session.add(account)
    _flush_unique(session, vault, label, credentials.api_key, None)
    assert account.id is not None
    sealed = _seal(vault, key_id, account.id, credentials)
    session.add(Credential(account_id=account.id, created_at=now, created_by=actor, **sealed))
    _flush_unique(session, vault, label, credentials.api_key, account.id)
    if probe is not None:
        record_probe(session, account.id, probe)
    record_audit(
        session,
        actor=actor,
        action=AuditAction.BIND,
        account_id=account.id,
        at=now,
        details={
            "label": label,
            "scopes": scope_list,
            "key_last4": sealed["key_last4"],
            "key_version": sealed["key_version"],
            "fingerprint": _short(sealed["fingerprint"]),
            "verified": verified,
            "outcome": probe.outcome.value if probe is not None else None,
        },
    )
    return account.id


def load_credentials(session: Session, vault: Vault, account_id: int) -> Credentials:
    """Return an account's credentials, decrypted now for the caller that signs with them."""
    _bound_account(session, account_id)
    row = session.get(Credential, account_id)
    if row is None:
        raise AccountUnbound(f"Account {account_id} has no credentials; bind its key again.")
    api_key = vault.decrypt(row.api_key_enc, credential_place(account_id, "api_key"))
    return Credentials(
        api_key=api_key.reveal(),
        api_secret=vault.decrypt(row.api_secret_enc, credential_place(account_id, "api_secret")),
        passphrase=vault.decrypt(row.passphrase_enc, credential_place(account_id, "passphrase")),
        key_version=row.key_version,
    )


def rotate_credentials(
    session: Session,
    vault: Vault,
    account_id: int,
    credentials: Credentials,
    *,
    actor: str,
    probe: ProbeResult | None = None,
) -> None:
    """Replace an account's credential in place (the old ciphertext is overwritten) and audit it."""
    _check_credentials(credentials)
    account = _bound_account(session, account_id)
    key_id = vault.lock_active_key(session)
    holder = _holder_of(session, vault, credentials.api_key, besides=account_id)
    if holder is not None:
        raise DuplicateKeyError(holder)
    row = session.get(Credential, account_id)
    if row is None:
        raise AccountUnbound(f"Account {account.label!r} has no credentials; bind its key again.")
    old = {"key_last4": row.key_last4, "fingerprint": _short(row.fingerprint)}
    now = _now()
    sealed = _seal(vault, key_id, account_id, credentials)
    for name, value in sealed.items():
        setattr(row, name, value)
    row.rotated_at = now
    row.rotated_by = actor
    verified = probe is not None and probe.ok
    account.unverified = not verified
    account.updated_at = now
    account.updated_by = actor
    session.add_all([row, account])
    _flush_unique(session, vault, account.label, credentials.api_key, account_id)
    if probe is not None:
        record_probe(session, account_id, probe)
    record_audit(
        session,
        actor=actor,
        action=AuditAction.ROTATE_CREDENTIAL,
        account_id=account_id,
        at=now,
        details={
            "old_key_last4": old["key_last4"],
            "old_fingerprint": old["fingerprint"],
            "key_last4": sealed["key_last4"],
            "fingerprint": _short(sealed["fingerprint"]),
            "key_version": sealed["key_version"],
            "verified": verified,
        },
    )


def _touch(account: Account, actor: str, now: datetime) -> None:
    account.updated_at = now
    account.updated_by = actor


def set_scopes(session: Session, account_id: int, scopes: Iterable[str], *, actor: str) -> bool:
    """Set the scopes the platform needs from an account's key; return whether they changed."""
    account = _bound_account(session, account_id)
    new = _clean_scopes(scopes)
    old = list(account.scopes)
    if new == old:
        return False
    now = _now()
    account.scopes = new
    _touch(account, actor, now)
    session.add(account)
    record_audit(
        session,
        actor=actor,
        action=AuditAction.CHANGE_SCOPES,
        account_id=account_id,
        at=now,
        details={"from": old, "to": new},
    )
    return True


def _set_paused(
    session: Session, account_id: int, paused: bool, actor: str, reason: str | None
) -> bool:
    account = _bound_account(session, account_id)
    if account.paused == paused:
        return False
    now = _now()
    account.paused = paused
    _touch(account, actor, now)
    session.add(account)
    record_audit(
        session,
        actor=actor,
        action=AuditAction.PAUSE if paused else AuditAction.RESUME,
        account_id=account_id,
        at=now,
        details={"reason": reason} if reason else {},
    )
    return True


def pause(session: Session, account_id: int, *, actor: str, reason: str | None = None) -> bool:
    """Stop checking an account; return whether it was running."""
    return _set_paused(session, account_id, True, actor, reason)


def resume(session: Session, account_id: int, *, actor: str, reason: str | None = None) -> bool:
    """Start checking a paused account again; return whether it was paused."""
    return _set_paused(session, account_id, False, actor, reason)


def mark_verified(session: Session, account_id: int, result: ProbeResult, *, actor: str) -> bool:
    """Record an operator's check of an account; a passing one clears `unverified`.

    Return whether the account is verified now.
    """
    account = _bound_account(session, account_id)
    record_probe(session, account_id, result)
    now = _now()
    was_unverified = account.unverified
    if result.ok and account.unverified:
        account.unverified = False
        _touch(account, actor, now)
        session.add(account)
    record_audit(
        session,
        actor=actor,
        action=AuditAction.VERIFY,
        account_id=account_id,
        at=now,
        details={
            "outcome": result.outcome.value,
            "code": result.code,
            "checked_at": result.checked_at.isoformat(),
            "was_unverified": was_unverified,
        },
    )
    return not account.unverified


def unbind(session: Session, account_id: int, *, actor: str, reason: str | None = None) -> None:
    """Destroy an account's credentials; the account row stays for its history to refer to."""
    account = _bound_account(session, account_id)
    row = session.get(Credential, account_id)
    now = _now()
    details: dict[str, Any] = {"label": account.label}
    if row is not None:
        details |= {"key_last4": row.key_last4, "fingerprint": _short(row.fingerprint)}
        session.delete(row)  # secure_delete zeroes the freed ciphertext on SQLite
    if reason:
        details["reason"] = reason
    account.unbound_at = now
    _touch(account, actor, now)
    session.add(account)
    record_audit(
        session,
        actor=actor,
        action=AuditAction.UNBIND,
        account_id=account_id,
        at=now,
        details=details,
    )
    session.flush()


def _view(account: Account, credential: Credential | None) -> AccountView:
    return AccountView(
        id=account.id or 0,
        label=account.label,
        exchange=account.exchange,
        scopes=tuple(account.scopes),
        paused=account.paused,
        unverified=account.unverified,
        unbound_at=account.unbound_at,
        created_at=account.created_at,
        created_by=account.created_by,
        updated_at=account.updated_at,
        updated_by=account.updated_by,
        key_last4=credential.key_last4 if credential else None,
        key_version=credential.key_version if credential else None,
        credential_created_at=credential.created_at if credential else None,
        credential_rotated_at=credential.rotated_at if credential else None,
    )


def get_account(session: Session, account_id: int) -> AccountView:
    """Return one account (bound or not)."""
    account = _account(session, account_id)
    return _view(account, session.get(Credential, account_id))


def list_accounts(session: Session, *, include_unbound: bool = False) -> list[AccountView]:
    """Return the accounts ordered by label; unbound ones only if asked."""
    query = (
        select(Account, Credential)
        .join(Credential, col(Credential.account_id) == col(Account.id), isouter=True)
        .order_by(Account.label)
    )
    if not include_unbound:
        query = query.where(col(Account.unbound_at).is_(None))
    return [_view(account, credential) for account, credential in session.exec(query).all()]


def find_account_by_api_key(
    session: Session, vault: Vault, api_key: str | Secret
) -> AccountView | None:
    """Return the bound account holding this API key (matched by keyed fingerprint), or None."""
    key = api_key.reveal() if isinstance(api_key, Secret) else api_key
    row = session.exec(
        select(Account, Credential)
        .join(Credential, col(Credential.account_id) == col(Account.id))
        .where(col(Credential.fingerprint).in_(vault.fingerprints(key)))
    ).first()
    return _view(*row) if row else None


# --- probe results ---------------------------------------------------------------------------


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


def latest_probe(session: Session, account_id: int) -> ProbeResult | None:
    """Return an account's newest check, or None."""
    results = probe_history(session, account_id, limit=1)
    return results[0] if results else None


# --- settings --------------------------------------------------------------------------------

_SETTING_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def get_settings(session: Session) -> Settings:
    """Return the operator settings, defaults filled in."""
    stored = {row.name: row.value for row in session.exec(select(SettingRow)).all()}
    values = {}
    for name, value in stored.items():
        if name in _SETTING_FIELDS:
            values[name] = tuple(value) if isinstance(value, list) else value
    return Settings(**values)


@dataclass(frozen=True)
class SettingRange:
    """The whole numbers a setting accepts, stated in the unit the operator types."""

    label: str
    unit: str
    low: int
    high: int
    per_unit: int = 1  # stored units in one operator unit: 60 seconds in a minute

    def describe(self) -> str:
        """Return the range as the operator reads it, e.g. "1 to 10,080 minutes"."""
        return f"{self.low:,} to {self.high:,} {self.unit}"

    def clean(self, value: Any) -> int:
        """Return the value (stored units) when a whole number in range; else raise InvalidInput."""
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise InvalidInput(f"{self.label} must be a whole number of {self.unit}.")
        try:
            number = int(value)
        except (TypeError, ValueError, OverflowError):
            raise InvalidInput(f"{self.label} must be a whole number of {self.unit}.") from None
        if isinstance(value, float) and number != value:
            raise InvalidInput(f"{self.label} must be a whole number of {self.unit}.")
        if not self.low * self.per_unit <= number <= self.high * self.per_unit:
            whole, part = divmod(number, self.per_unit)
            given = f"{whole:,}" if not part else f"{number / self.per_unit:,.2f}"
            given = f"{given} is" if len(given) <= 20 else "the value given is far"
            raise InvalidInput(f"{self.label} must be {self.describe()}; {given} out of range.")
        return number

    def clamp(self, value: Any, default: int) -> int:
        """Return a stored value held to the range (the default when it is not a number)."""
        try:
            number = int(value)
        except (TypeError, ValueError, OverflowError):
            return default
        return min(max(number, self.low * self.per_unit), self.high * self.per_unit)


# Every number the health rules read, with the range that keeps them meaningful.
SETTING_RANGES = {
    "freshness_seconds": SettingRange("Freshness period", "minutes", 1, 7 * 24 * 60, 60),
    "freshness_grace_seconds": SettingRange("Grace", "minutes", 0, 24 * 60, 60),
    "rotation_age_days": SettingRange("Rotate keys after", "days", 1, 10 * 365),
}
MAX_EGRESS_IPS = MAX_WHITELIST_IPS  # every key should whitelist them all
MAX_FUTURES_CURRENCIES = 10  # each check reads one futures overview per currency


def setting_in_range(settings: Settings, name: str) -> int:
    """Return a numeric setting as the health rules apply it: held to its range."""
    return SETTING_RANGES[name].clamp(getattr(settings, name), getattr(Settings(), name))


def invalid_settings(settings: Settings) -> dict[str, str]:
    """Return, by name, why each stored setting is not acceptable (stored before a rule)."""
    problems = {}
    for name in _SETTING_FIELDS:
        try:
            _clean_setting(name, getattr(settings, name))
        except InvalidInput as error:
            problems[name] = str(error)
    return problems


def _clean_list(value: Any, what: str, most: int, why: str) -> list[str]:
    """Return a setting's entries (a string is one entry); raise InvalidInput past `most`."""
    items = [value] if isinstance(value, str) else list(value)
    if len(items) > most:
        raise InvalidInput(f"{what}: at most {most:,} ({why}); {len(items):,} given.")
    return [str(item) for item in items]


def _clean_setting(name: str, value: Any) -> Any:
    """Return a setting's value in its stored type, or raise InvalidInput naming the rule."""
    if name in SETTING_RANGES:
        return SETTING_RANGES[name].clean(value)
    if name == "egress_ips":
        why = "KuCoin lets a key whitelist at most that many"
        cleaned = []
        for item in _clean_list(value, "Egress IPs", MAX_EGRESS_IPS, why):
            try:
                ip = str(ipaddress.ip_address(item.strip()))
            except ValueError:
                raise InvalidInput(f"{item!r} is not an IP address.") from None
            if ip not in cleaned:
                cleaned.append(ip)
        return tuple(cleaned)
    if name == "futures_currencies":
        why = "each check reads one overview per currency"
        cleaned = []
        for item in _clean_list(value, "Futures currencies", MAX_FUTURES_CURRENCIES, why):
            ccy = item.strip().upper()
            if not ccy.isalnum() or len(ccy) > 16:
                raise InvalidInput(f"{item!r} is not a currency code.")
            if ccy not in cleaned:
                cleaned.append(ccy)
        return tuple(cleaned)
    if str(value) not in ACCEPTED_KEY_VERSIONS:  # key_version, the one text setting
        raise InvalidInput(f"Key version must be one of {', '.join(ACCEPTED_KEY_VERSIONS)}.")
    return str(value)


def update_settings(session: Session, *, actor: str, **changes: Any) -> Settings:
    """Change operator settings by name, audit what changed, and return the new settings."""
    unknown = sorted(set(changes) - set(_SETTING_FIELDS))
    if unknown:
        raise InvalidInput(
            f"Unknown setting(s) {', '.join(unknown)}; known: {', '.join(_SETTING_FIELDS)}."
        )
    current = get_settings(session)
    now = _now()
    changed: dict[str, dict[str, Any]] = {}
    for name, raw in changes.items():
        value = _clean_setting(name, raw)
        old = getattr(current, name)
        if value == old:
            continue
        stored = list(value) if isinstance(value, tuple) else value
        session.merge(SettingRow(name=name, value=stored, updated_at=now, updated_by=actor))
        changed[name] = {"from": list(old) if isinstance(old, tuple) else old, "to": stored}
    if changed:
        record_audit(
            session, actor=actor, action=AuditAction.CHANGE_SETTINGS, at=now, details=changed
        )
        session.flush()
    return get_settings(session)


# --- DataFrames for pages and the fleet table -------------------------------------------------
#
# One SELECT of plain columns on the driver's cursor (no ORM objects, no Row wrappers), then one
# vectorised conversion per column: the whole history of a large fleet reads in about a second.

_TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy writes DATETIME in SQLite


def _ts_sql(dialect: str, column: str) -> str:
    if dialect == "postgresql":
        # Integers are far cheaper to fetch and convert than timestamptz objects.
        return f"(EXTRACT(EPOCH FROM {column}) * 1000000)::bigint"
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
    return pd.Series(values, dtype=object)


# Frame column -> (SQL column, kind). Kinds: ts (UTC datetime), int, Int64 (nullable), bool,
# boolean (nullable), str, json (text), perms and tuple (tuples of str).
PROBE_FRAME_COLUMNS: dict[str, tuple[str, str]] = {
    "probe_id": ("id", "int"),
    "account_id": ("account_id", "int"),
    "checked_at": ("checked_at", "ts"),
    "outcome": ("outcome", "str"),
    "latency_ms": ("latency_ms", "int"),
    "code": ("code", "str"),
    "message": ("message", "str"),
    "http_status": ("http_status", "Int64"),
    "endpoint": ("endpoint", "str"),
    "permissions": ("permissions", "perms"),
    "ip_whitelist": ("ip_whitelist", "str"),
    "is_master": ("is_master", "boolean"),
    "sub_name": ("sub_name", "str"),
    "uid": ("uid", "str"),
    "remark": ("remark", "str"),
    "api_version": ("api_version", "Int64"),
    "key_created_at": ("key_created_at", "ts"),
    "clock_offset_ms": ("clock_offset_ms", "Int64"),
    "seen_ip": ("seen_ip", "str"),
    "rate_limit_remaining": ("rate_limit_remaining", "Int64"),
    "balances_json": ("balances", "json"),
    "futures_permission_missing": ("futures_permission_missing", "bool"),
    "vip_level": ("vip_level", "Int64"),
}

ACCOUNT_FRAME_COLUMNS: dict[str, tuple[str, str]] = {
    "account_id": ("a.id", "int"),
    "label": ("a.label", "str"),
    "exchange": ("a.exchange", "str"),
    "scopes": ("a.scopes", "tuple"),
    "paused": ("a.paused", "bool"),
    "unverified": ("a.unverified", "bool"),
    "unbound_at": ("a.unbound_at", "ts"),
    "created_at": ("a.created_at", "ts"),
    "created_by": ("a.created_by", "str"),
    "updated_at": ("a.updated_at", "ts"),
    "updated_by": ("a.updated_by", "str"),
    "key_last4": ("c.key_last4", "str"),
    "key_version": ("c.key_version", "str"),
    "credential_created_at": ("c.created_at", "ts"),
    "credential_rotated_at": ("c.rotated_at", "ts"),
}


def _read_frame(
    session: Session, columns: Mapping[str, tuple[str, str]], source: str, alias: str = ""
) -> pd.DataFrame:
    """Return the frame of one SELECT over `source`, one typed column per entry of `columns`."""
    dialect = session.get_bind().dialect.name
    select_list = []
    for sql_column, kind in columns.values():
        name = f"{alias}{sql_column}"
        if kind == "ts":
            name = _ts_sql(dialect, name)
        elif kind in ("json", "tuple"):
            name = f"CAST({name} AS TEXT)"  # PostgreSQL would parse JSON per row otherwise
        select_list.append(name)
    sql = f"SELECT {', '.join(select_list)} FROM {source}"
    # The driver's own cursor, inside the session's transaction: no Row objects to build.
    cursor = session.connection().connection.driver_connection.cursor()
    try:
        cursor.execute(sql)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    table = np.empty((len(rows), len(columns)), dtype=object)
    if rows:
        table[:] = rows
    return pd.DataFrame(
        {
            name: _column(dialect, kind, table[:, j])
            for j, (name, (_, kind)) in enumerate(columns.items())
        },
        copy=False,
    )


def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Return the frame sorted in memory (cheaper than an ORDER BY that walks an index)."""
    keys = [k for k in keys if k in frame.columns]
    if not keys or frame.empty:
        return frame.reset_index(drop=True)
    return frame.sort_values(keys, kind="stable", ignore_index=True)


def accounts_frame(session: Session, *, include_unbound: bool = False) -> pd.DataFrame:
    """Return one row per bound account (all, with `include_unbound`) and its key metadata.

    Columns: the keys of ACCOUNT_FRAME_COLUMNS plus `bound`; scopes are tuples of str, times
    are UTC (NaT when absent). Never a secret.
    """
    where = "" if include_unbound else " WHERE a.unbound_at IS NULL"
    frame = _read_frame(
        session,
        ACCOUNT_FRAME_COLUMNS,
        f"accounts a LEFT JOIN credentials c ON c.account_id = a.id{where}",
    )
    frame.insert(6, "bound", frame["unbound_at"].isna())
    return _sorted(frame, ["account_id"])


def _probe_columns(columns: Iterable[str] | None) -> dict[str, tuple[str, str]]:
    if columns is None:
        return PROBE_FRAME_COLUMNS
    wanted = set(columns) | {"account_id", "checked_at"}
    unknown = sorted(wanted - set(PROBE_FRAME_COLUMNS))
    if unknown:
        raise ValueError(f"unknown probe frame column(s): {', '.join(unknown)}")
    return {k: v for k, v in PROBE_FRAME_COLUMNS.items() if k in wanted}


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
    wanted = _probe_columns(columns)
    where = f" WHERE p.account_id = {int(account_id)}" if account_id is not None else ""
    if per_account_limit is None:
        source = f"probe_results p{where}"
    else:
        source = (
            "(SELECT q.*, ROW_NUMBER() OVER (PARTITION BY q.account_id "
            "ORDER BY q.checked_at DESC, q.id DESC) AS rn FROM probe_results q) p"
            f"{where or ' WHERE 1 = 1'} AND p.rn <= {int(per_account_limit)}"
        )
    frame = _read_frame(session, wanted, source, alias="p.")
    return _sorted(frame, ["account_id", "checked_at", "probe_id"])


def latest_probes_frame(session: Session, *, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """Return each account's newest check, one row per account ever checked; columns as above."""
    if session.get_bind().dialect.name == "postgresql":
        source = (
            "accounts a CROSS JOIN LATERAL (SELECT q.* FROM probe_results q "
            "WHERE q.account_id = a.id ORDER BY q.checked_at DESC, q.id DESC LIMIT 1) p"
        )
    else:
        # One index seek per account on (account_id, checked_at).
        source = (
            "probe_results p WHERE p.id IN (SELECT (SELECT q.id FROM probe_results q WHERE "
            "q.account_id = a.id ORDER BY q.checked_at DESC, q.id DESC LIMIT 1) FROM accounts a)"
        )
    return _sorted(
        _read_frame(session, _probe_columns(columns), source, alias="p."), ["account_id"]
    )
