"""Master key rotation: a new key in the key file, every credential moved to it, the old retired.

Every stored value is opened before anything changes, so a value the current keys cannot open
stops the rotation with the key file and the database as they were. Each later step is safe to
interrupt, and running the rotation again finishes one left half done.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lib.store import AuditAction, alerts, master_keys, record_audit
from lib.store.database import read_session, transaction
from lib.vault.errors import RotationError, UnreadableCredentials, UnreadableValue, VaultError
from lib.vault.key_file import remove_stale_temp_files, write_keyring
from lib.vault.keyring import KeyState, new_master_key
from lib.vault.vault import (
    CREDENTIAL_FIELDS,
    Vault,
    channel_place,
    credential_place,
    register_key,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RotationReport:
    """What one run of a master key rotation did."""

    new_key_id: str
    retired_key_ids: tuple[str, ...]
    rows_reencrypted: int
    resumed: bool  # it finished a rotation an earlier run left half done


@contextlib.contextmanager
def _rotation_lock(key_file: Path) -> Iterator[None]:
    """Hold an exclusive lock next to the key file; the kernel drops it if the process dies."""
    lock_path = key_file.with_name(key_file.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RotationError(
                f"Another master key rotation is running (lock {lock_path}). Wait for it to "
                "finish, then run this again if needed."
            ) from None
        yield
    finally:
        os.close(fd)


def rotate_master_key(
    engine: Engine,
    vault: Vault,
    *,
    actor: str,
    batch_size: int = 200,
    progress: Callable[[int, int], None] | None = None,
) -> RotationReport:
    """Add a master key, re-encrypt every credential with it, then retire the old key.

    First every stored value is opened with the current keys: UnreadableCredentials names
    those that fail, and nothing is changed. Then each step is safe to interrupt: the key file
    gets the new key before any value uses it, rows move in batches of their own transactions,
    and the old key is retired only once no row uses it. Running it again after a crash
    finishes the interrupted rotation.
    """
    with _rotation_lock(vault.path):
        remove_stale_temp_files(vault.path)
        keyring = vault.reload()
        _check_every_value_opens(engine, vault, batch_size)
        old_ids = tuple(k.key_id for k in keyring.keys if k.state is KeyState.RETIRING)
        resumed = bool(old_ids)
        if not resumed:
            old_ids = (keyring.active.key_id,)
            keyring = keyring.with_state(keyring.active.key_id, KeyState.RETIRING).with_key(
                new_master_key()
            )
            write_keyring(vault.path, keyring)
            log.info("rotation: new master key %s written to %s", keyring.active.key_id, vault.path)
        new_id = keyring.active.key_id

        # The database learns the new key, and that the old ones are retiring: from this commit
        # on, writers encrypt with the new key (see Vault.lock_active_key).
        with transaction(engine) as session:
            register_key(session, keyring.active, KeyState.ACTIVE)
            master_keys.set_key_states(session, old_ids, KeyState.RETIRING, unless=KeyState.RETIRED)
        vault.reload()

        moved = 0
        while True:
            moved += _reencrypt_remaining(engine, vault, new_id, batch_size, progress)
            _reseal_channels(engine, vault, new_id)
            try:
                _retire_in_database(engine, old_ids, new_id, actor, moved, resumed)
            except _RowsLeft:
                continue  # a writer that still held the old key committed meanwhile: move it too
            break

        keyring = vault.reload()
        for key_id in old_ids:
            keyring = keyring.with_state(key_id, KeyState.RETIRED)
        write_keyring(vault.path, keyring)
        vault.mark_retired(frozenset(old_ids))
        vault.refresh(force=True)
        log.info("rotation: master key %s active, retired %s", new_id, ", ".join(old_ids))
        return RotationReport(new_id, old_ids, moved, resumed)


def _check_every_value_opens(engine: Engine, vault: Vault, batch_size: int) -> None:
    """Open every stored credential field with the keys in use; raise UnreadableCredentials."""
    unreadable: list[UnreadableValue] = []
    after: int | None = None
    while True:
        with read_session(engine) as session:
            page = master_keys.sealed_page(session, after, batch_size)
        if not page:
            break
        for account_id, label, sealed in page:
            for name in CREDENTIAL_FIELDS:
                try:
                    # Opened to prove it opens; the plaintext is dropped at once.
                    vault.decrypt(
                        getattr(sealed, f"{name}_enc"), credential_place(account_id, name)
                    )
                except VaultError as error:
                    unreadable.append(UnreadableValue(account_id, label, name, error.reason))
        after = page[-1][0]
    if unreadable:
        raise UnreadableCredentials(tuple(unreadable))


class _RowsLeft(Exception):
    """Rows still use an old key: roll the retiring transaction back."""


def _retire_in_database(
    engine: Engine, old_ids: tuple[str, ...], new_id: str, actor: str, moved: int, resumed: bool
) -> None:
    """Mark the old keys retired and audit the rotation, once no row uses them (else _RowsLeft)."""
    with transaction(engine) as session:
        states = master_keys.key_states(session, old_ids)
        # Locks the old keys' rows: waits for any writer still using them.
        master_keys.set_key_states(session, old_ids, KeyState.RETIRED)
        if master_keys.count_sealed_elsewhere(session, new_id):
            raise _RowsLeft
        if all(state == KeyState.RETIRED for state in states.values()):
            return  # an earlier run already retired them and wrote the audit row
        record_audit(
            session,
            actor=actor,
            action=AuditAction.ROTATE_MASTER_KEY,
            details={
                "new_key_id": new_id,
                "retired_key_ids": list(old_ids),
                "rows_reencrypted": moved,
                "resumed": resumed,
            },
        )


def _reseal_channels(engine: Engine, vault: Vault, new_id: str) -> None:
    """Move every alert channel's URL to the new key (a handful of rows: one transaction)."""
    with transaction(engine) as session:
        for row in alerts.channels_sealed_elsewhere(session, new_id):
            assert row.id is not None
            place = channel_place(row.id)
            row.url_enc = vault.reencrypt(row.url_enc, place, key_id=new_id)
            row.master_key_id = new_id
            session.add(row)


def _reencrypt_remaining(
    engine: Engine,
    vault: Vault,
    new_id: str,
    batch_size: int,
    progress: Callable[[int, int], None] | None,
) -> int:
    """Move every credential row to the new key, one batch per transaction; return rows moved."""
    with transaction(engine) as session:
        total = master_keys.count_sealed_elsewhere(session, new_id)
    moved = 0
    while True:
        with transaction(engine) as session:
            batch = master_keys.sealed_elsewhere(session, new_id, batch_size)
            if not batch:
                return moved
            for account_id, sealed in batch:
                credentials = vault.open_credential(account_id, sealed)
                resealed = vault.seal_credential(account_id, credentials, key_id=new_id)
                del credentials
                master_keys.replace_sealed(session, account_id, resealed)
        moved += len(batch)
        if progress is not None:
            progress(moved, max(total, moved))
