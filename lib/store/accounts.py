"""Bound accounts and their encrypted credentials: bind, rotate, scopes, pause, verify, unbind.

A credential is sealed by the vault (encrypted in its place, fingerprinted) before it is
written; labels, scopes and pasted text are checked by lib.account_fields, as binding checks
them. Every change writes its audit row in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from lib.account_fields import clean_scopes, control_character_position, label_problem
from lib.kucoin.auth import Credentials
from lib.kucoin.probe_result import ProbeResult
from lib.secret import Secret
from lib.store.alerts import key_info_of, put_baseline
from lib.store.audit import record_audit, short_fingerprint
from lib.store.checks import record_probe, record_probes
from lib.store.errors import (
    AccountNotFound,
    AccountUnbound,
    DuplicateKeyError,
    DuplicateLabelError,
    InvalidInput,
)
from lib.store.models import Account, AuditAction, Credential
from lib.store.settings import clean_key_version

MAX_CREDENTIAL_LENGTH = 512  # far beyond KuCoin's values: a longer one is a bad paste


@dataclass(frozen=True)
class SealedCredential:
    """A credential as stored: each value encrypted in its place, the API key fingerprinted."""

    api_key_enc: str = field(repr=False)
    api_secret_enc: str = field(repr=False)
    passphrase_enc: str = field(repr=False)
    fingerprint: str  # "<key id>:<HMAC-SHA256 hex>" of the API key
    master_key_id: str
    key_last4: str
    key_version: str


class CredentialVault(Protocol):
    """The vault as the store uses it (lib.vault.Vault): seal, open and recognise credentials."""

    def lock_active_key(self, session: Session) -> str:
        """Return the master key id to seal with in this transaction, share-locking its row."""
        ...

    def fingerprints(self, api_key: str) -> tuple[str, ...]:
        """Return the API key's fingerprint under every master key still in use."""
        ...

    def seal_credential(
        self, account_id: int, credentials: Credentials, *, key_id: str
    ) -> SealedCredential:
        """Return an account's credential sealed with one master key."""
        ...

    def open_credential(self, account_id: int, sealed: SealedCredential) -> Credentials:
        """Return an account's credential, decrypted now."""
        ...


def sealed_credential(row: Credential) -> SealedCredential:
    """Return the sealed values of a credential row."""
    return SealedCredential(
        api_key_enc=row.api_key_enc,
        api_secret_enc=row.api_secret_enc,
        passphrase_enc=row.passphrase_enc,
        fingerprint=row.fingerprint,
        master_key_id=row.master_key_id,
        key_last4=row.key_last4,
        key_version=row.key_version,
    )


def put_sealed(row: Credential, sealed: SealedCredential) -> None:
    """Write sealed values into a credential row (the old ciphertext is overwritten)."""
    for name, value in asdict(sealed).items():
        setattr(row, name, value)


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


def _clean_label(label: str) -> str:
    """Return the label without surrounding spaces; raise InvalidInput as binding would."""
    label = (label or "").strip()
    problem = label_problem(label)
    if problem:
        raise InvalidInput(problem)
    return label


def _clean_scopes(scopes: Iterable[str]) -> list[str]:
    """Return the scopes in their order; raise InvalidInput as binding would."""
    try:
        return list(clean_scopes(scopes))
    except ValueError as error:
        raise InvalidInput(str(error).capitalize() + ".") from None


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
        if len(value) > MAX_CREDENTIAL_LENGTH:
            raise InvalidInput(
                f"The {name} is longer than {MAX_CREDENTIAL_LENGTH} characters; paste it again."
            )
        if control_character_position(value) is not None:
            raise InvalidInput(
                f"The {name} contains a control character (a line break or tab?); paste it again."
            )
    if credentials.api_key != credentials.api_key.strip():
        raise InvalidInput("The API key starts or ends with a space; paste it again.")
    clean_key_version(credentials.key_version)


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
    session: Session, vault: CredentialVault, api_key: str, *, besides: int | None = None
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


def _flush_unique(
    session: Session, vault: CredentialVault, label: str, api_key: str, besides: int | None
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
    vault: CredentialVault,
    *,
    label: str,
    credentials: Credentials,
    scopes: Iterable[str],
    actor: str,
    probe: ProbeResult | None = None,
    note: str | None = None,
) -> int:
    """Bind a key: account, encrypted credential, first check and audit row; return the id.

    The account is marked unverified unless `probe` is a passing check; a `note` (who or what
    uses the key, from an import) is kept in the audit row.
    """
    label = _clean_label(label)
    scope_list = _clean_scopes(scopes)
    _check_credentials(credentials)
    key_id = vault.lock_active_key(session)
    if label_in_use(session, label):
        raise DuplicateLabelError(
            f"An account labelled {label!r} already exists; choose another label."
        )
    holder = _holder_of(session, vault, credentials.api_key)
    if holder is not None:
        raise DuplicateKeyError(holder)
    now = datetime.now(UTC)
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
    sealed = vault.seal_credential(account.id, credentials, key_id=key_id)
    session.add(
        Credential(account_id=account.id, created_at=now, created_by=actor, **asdict(sealed))
    )
    _flush_unique(session, vault, label, credentials.api_key, account.id)
    if probe is not None:
        record_probe(session, account.id, probe)
        if probe.ok:  # what KuCoin said at bind: drift is measured from it
            put_baseline(session, account.id, key_info_of(probe), actor=actor)
    record_audit(
        session,
        actor=actor,
        action=AuditAction.BIND,
        account_id=account.id,
        at=now,
        details={
            "label": label,
            "scopes": scope_list,
            "key_last4": sealed.key_last4,
            "key_version": sealed.key_version,
            "fingerprint": short_fingerprint(sealed.fingerprint),
            "verified": verified,
            "outcome": probe.outcome.value if probe is not None else None,
            **({"note": note} if note else {}),
        },
    )
    return account.id


def load_credentials(session: Session, vault: CredentialVault, account_id: int) -> Credentials:
    """Return an account's credentials, decrypted now for the caller that signs with them."""
    _bound_account(session, account_id)
    row = session.get(Credential, account_id)
    if row is None:
        raise AccountUnbound(f"Account {account_id} has no credentials; bind its key again.")
    return vault.open_credential(account_id, sealed_credential(row))


def rotate_credentials(
    session: Session,
    vault: CredentialVault,
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
    old = {"key_last4": row.key_last4, "fingerprint": short_fingerprint(row.fingerprint)}
    now = datetime.now(UTC)
    sealed = vault.seal_credential(account_id, credentials, key_id=key_id)
    put_sealed(row, sealed)
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
        if probe.ok:  # a new key: drift is measured from what KuCoin says of it
            put_baseline(session, account_id, key_info_of(probe), actor=actor)
    record_audit(
        session,
        actor=actor,
        action=AuditAction.ROTATE_CREDENTIAL,
        account_id=account_id,
        at=now,
        details={
            "old_key_last4": old["key_last4"],
            "old_fingerprint": old["fingerprint"],
            "key_last4": sealed.key_last4,
            "fingerprint": short_fingerprint(sealed.fingerprint),
            "key_version": sealed.key_version,
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
    now = datetime.now(UTC)
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
    now = datetime.now(UTC)
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
    record_checks(session, [(account_id, result)], actor=actor)
    return not account.unverified


def record_checks(
    session: Session, results: Sequence[tuple[int, ProbeResult]], *, actor: str
) -> list[int]:
    """Record checks of accounts, each with its audit row; return the accounts recorded.

    A passing check clears the account's `unverified`. An account unbound since its check
    began is skipped: its key is gone, and so is the point of the answer.
    """
    ids = {account_id for account_id, _ in results}
    accounts = {
        account.id: account
        for account in session.exec(
            select(Account).where(col(Account.id).in_(ids), col(Account.unbound_at).is_(None))
        ).all()
    }
    kept = [(account_id, result) for account_id, result in results if account_id in accounts]
    record_probes(session, kept)
    now = datetime.now(UTC)
    for account_id, result in kept:
        account = accounts[account_id]
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
    return [account_id for account_id, _ in kept]


def unbind(session: Session, account_id: int, *, actor: str, reason: str | None = None) -> None:
    """Destroy an account's credentials; the account row stays for its history to refer to."""
    account = _bound_account(session, account_id)
    row = session.get(Credential, account_id)
    now = datetime.now(UTC)
    details: dict[str, Any] = {"label": account.label}
    if row is not None:
        details |= {"key_last4": row.key_last4, "fingerprint": short_fingerprint(row.fingerprint)}
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


def list_accounts(
    session: Session, *, include_unbound: bool = False, account_ids: Iterable[int] | None = None
) -> list[AccountView]:
    """Return the accounts (all, or those of `account_ids`) ordered by label; unbound if asked."""
    query = (
        select(Account, Credential)
        .join(Credential, col(Credential.account_id) == col(Account.id), isouter=True)
        .order_by(Account.label)
    )
    if not include_unbound:
        query = query.where(col(Account.unbound_at).is_(None))
    if account_ids is not None:
        query = query.where(col(Account.id).in_(list(account_ids)))
    return [_view(account, credential) for account, credential in session.exec(query).all()]


def label_in_use(session: Session, label: str) -> bool:
    """Return whether an account (bound or unbound since) has this label."""
    return session.exec(select(Account.id).where(Account.label == label)).first() is not None


def find_account_by_api_key(
    session: Session, vault: CredentialVault, api_key: str | Secret
) -> AccountView | None:
    """Return the bound account holding this API key (matched by keyed fingerprint), or None."""
    key = api_key.reveal() if isinstance(api_key, Secret) else api_key
    row = session.exec(
        select(Account, Credential)
        .join(Credential, col(Credential.account_id) == col(Account.id))
        .where(col(Credential.fingerprint).in_(vault.fingerprints(key)))
    ).first()
    return _view(*row) if row else None
