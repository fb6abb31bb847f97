"""The master keys the database knows (vault_keys), and which one seals each credential.

The vault reads and writes its rows here: a key's state and check value, and the credentials
a rotation moves from one key to another. States are lib.vault's KeyState values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from lib.store.accounts import SealedCredential, put_sealed, sealed_credential
from lib.store.models import Account, AlertChannel, Credential, VaultKey


@dataclass(frozen=True)
class KnownKey:
    """A master key the database knows: its state and the marker it encrypted."""

    key_id: str
    state: str
    check_value: str = field(repr=False)


def known_keys(session: Session) -> dict[str, KnownKey]:
    """Return every master key the database knows, by id."""
    rows = session.exec(select(VaultKey)).all()
    return {row.key_id: KnownKey(row.key_id, row.state, row.check_value) for row in rows}


def key_ids_in_use(session: Session) -> set[str]:
    """Return the ids of the master keys that seal at least one credential or alert channel."""
    credentials = set(session.exec(select(Credential.master_key_id).distinct()).all())
    return credentials | set(session.exec(select(AlertChannel.master_key_id).distinct()).all())


def key_state(session: Session, key_id: str, *, share_lock: bool = False) -> str | None:
    """Return a key's state (None when unknown); `share_lock` holds its row until commit."""
    query = select(VaultKey.state).where(VaultKey.key_id == key_id)
    if share_lock:
        query = query.with_for_update(read=True)
    return session.exec(query).first()


def key_states(session: Session, key_ids: Iterable[str]) -> dict[str, str]:
    """Return the states of the keys the database knows among `key_ids`."""
    query = select(VaultKey.key_id, VaultKey.state).where(col(VaultKey.key_id).in_(key_ids))
    return dict(session.exec(query).all())


def register_key(session: Session, key_id: str, state: str, check_value: str) -> None:
    """Insert a key's row unless another transaction already did."""
    now = datetime.now(UTC)
    values = {
        "key_id": key_id,
        "state": str(state),
        "check_value": check_value,
        "created_at": now,
        "updated_at": now,
    }
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(VaultKey).values(**values).on_conflict_do_nothing(index_elements=["key_id"])
    )


def set_key_states(
    session: Session, key_ids: Iterable[str], state: str, *, unless: str | None = None
) -> None:
    """Move keys to `state` (those not in state `unless`), locking their rows until commit."""
    query = update(VaultKey).where(col(VaultKey.key_id).in_(list(key_ids)))
    if unless is not None:
        query = query.where(VaultKey.state != str(unless))
    session.execute(query.values(state=str(state), updated_at=datetime.now(UTC)))


def count_sealed_elsewhere(session: Session, key_id: str) -> int:
    """Return how many credentials are sealed with another key than `key_id`."""
    query = select(func.count()).select_from(Credential).where(Credential.master_key_id != key_id)
    return session.exec(query).one()


def sealed_elsewhere(
    session: Session, key_id: str, limit: int
) -> list[tuple[int, SealedCredential]]:
    """Return up to `limit` credentials sealed with another key, locked until commit."""
    rows = session.exec(
        select(Credential)
        .where(Credential.master_key_id != key_id)
        .order_by(Credential.account_id)
        .limit(limit)
        .with_for_update()
    ).all()
    return [(row.account_id, sealed_credential(row)) for row in rows]


def sealed_with(session: Session, key_id: str) -> tuple[int, SealedCredential] | None:
    """Return one credential sealed with `key_id` (the lowest account id), or None."""
    row = session.exec(
        select(Credential)
        .where(Credential.master_key_id == key_id)
        .order_by(Credential.account_id)
        .limit(1)
    ).first()
    return None if row is None else (row.account_id, sealed_credential(row))


def sealed_page(
    session: Session, after: int | None, limit: int
) -> list[tuple[int, str, SealedCredential]]:
    """Return up to `limit` credentials by account id after `after`, with their account's label."""
    query = select(Credential, Account.label).join(Account, Account.id == Credential.account_id)
    if after is not None:
        query = query.where(Credential.account_id > after)
    rows = session.exec(query.order_by(Credential.account_id).limit(limit)).all()
    return [(row.account_id, label, sealed_credential(row)) for row, label in rows]


def replace_sealed(session: Session, account_id: int, sealed: SealedCredential) -> None:
    """Overwrite a credential that sealed_elsewhere returned (a rotation moving its key)."""
    row = session.get(Credential, account_id)
    assert row is not None, "sealed_elsewhere locked it in this transaction"
    put_sealed(row, sealed)
    session.add(row)
