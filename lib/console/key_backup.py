"""The master key file's backup: where the file is, and whether an admin confirmed a copy.

Without the key file every stored credential is lost, and nothing in the database can bring it
back, so the console says where it is until an admin confirms a copy was made apart from the
database. The confirmation is an audit event naming the key: a new master key (after
`rotate-master-key`) asks again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from lib import store
from lib.store.models import AuditAction

if TYPE_CHECKING:
    from lib.console import Console


@dataclass(frozen=True)
class KeyBackup:
    """The active master key's file and who confirmed its backup, when (None: nobody yet)."""

    key_file: Path
    key_id: str
    confirmed_by: str | None = None
    confirmed_at: datetime | None = None

    @property
    def confirmed(self) -> bool:
        """Return whether an admin confirmed a backup of this key."""
        return self.confirmed_at is not None


def key_backup(console: Console) -> KeyBackup:
    """Return the active master key's file and its backup confirmation, if any."""
    key_id = console.vault.active_key_id
    with console.reading() as session:
        events = store.audit_log(session, action=AuditAction.CONFIRM_KEY_BACKUP)
    confirmation = next((e for e in events if e.details.get("key_id") == key_id), None)
    if confirmation is None:
        return KeyBackup(console.vault.path, key_id)
    return KeyBackup(console.vault.path, key_id, confirmation.actor, confirmation.at)


def confirm_key_backup(console: Console) -> KeyBackup:
    """Record (audited) that the operator, an admin, backed up the active master key file."""
    console.require_admin("confirm the master key backup")
    key_id = console.vault.active_key_id
    with console.transaction() as session:
        store.record_audit(
            session,
            actor=console.actor,
            action=AuditAction.CONFIRM_KEY_BACKUP,
            details={"key_id": key_id, "key_file": str(console.vault.path)},
        )
    return key_backup(console)
