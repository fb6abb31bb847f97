"""History written as if it had happened earlier, for the demo fleet and imported accounts.

No operator acts here, so nothing is audited: these edits stage a fleet, they change no key.
Stage before the fleet is first read: a kept fleet judgement (lib.console.fleet) learns of
changes from the audit log and new checks, which these edits do not write.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session

from lib.store.errors import AccountNotFound
from lib.store.models import Account, Credential, ProbeRecord


def backdate_binding(session: Session, account_id: int, bound_at: datetime) -> None:
    """Move an account's binding, and its credential's creation, back to `bound_at`."""
    account = session.get(Account, account_id)
    if account is None:
        raise AccountNotFound(f"No account has id {account_id}.")
    account.created_at = bound_at
    credential = session.get(Credential, account_id)
    if credential is not None:
        credential.created_at = bound_at
    session.flush()


def retime_checks(session: Session, account_id: int, checked_at: datetime) -> None:
    """Give every check of an account the time `checked_at`."""
    mine = update(ProbeRecord).where(ProbeRecord.account_id == account_id)
    session.execute(mine.values(checked_at=checked_at))


def mark_verified_elsewhere(session: Session, account_id: int) -> None:
    """Clear an account's `unverified` flag: its key was verified before it was imported."""
    account = session.get(Account, account_id)
    if account is None:
        raise AccountNotFound(f"No account has id {account_id}.")
    account.unverified = False
    session.flush()


def swap_sealed_fields(session: Session, account_id: int) -> None:
    """Swap the sealed API key and secret of a credential, as a botched restore might."""
    credential = session.get(Credential, account_id)
    if credential is None:
        raise AccountNotFound(f"No credential for account {account_id}.")
    credential.api_key_enc, credential.api_secret_enc = (
        credential.api_secret_enc,
        credential.api_key_enc,
    )
    session.flush()
