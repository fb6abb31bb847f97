"""Canary: a marker inside every secret never reaches the database files, logs or error text."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from store_fixtures import ACTOR, credentials, database_url_fixture, encodings, probe

from lib import store
from lib.kucoin.auth import Credentials
from lib.secret import Secret
from lib.store import database
from lib.store.models import Credential
from lib.vault import VaultError, credential_place, open_vault, rotate_master_key

FIXTURES = (database_url_fixture,)


def _hits(blob: bytes, forms: list[bytes]) -> list[bytes]:
    return [form for form in forms if form in blob]


def _files(engine: sa.Engine) -> list[Path]:
    """Return every file the database keeps on disk that this process can read."""
    path = database.sqlite_path(engine)
    if path is not None:
        return [p for p in path.parent.iterdir() if p.is_file()]
    pg_dir = os.environ.get("BINDWATCH_PG_DIR")
    if not pg_dir or not os.access(pg_dir, os.R_OK):
        return []
    with engine.begin() as conn:
        conn.exec_driver_sql("CHECKPOINT")  # write shared buffers to the data files
    return [p for p in Path(pg_dir).rglob("*") if p.is_file() and os.access(p, os.R_OK)]


def _table_dump(engine: sa.Engine) -> bytes:
    """Return every row of every table as text."""
    out = []
    with engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            for row in conn.exec_driver_sql(f"SELECT * FROM {table}"):
                out.append(repr(tuple(row)))
    return "\n".join(out).encode()


def test_no_secret_reaches_disk_logs_or_errors(database_url, tmp_path, caplog, capsys):
    marker = f"CANARY{uuid.uuid4().hex}"
    forms = encodings(marker)
    caplog.set_level(logging.DEBUG)
    for name in ("sqlalchemy", "sqlalchemy.engine", "sqlalchemy.pool", "lib", "alembic"):
        caplog.set_level(logging.DEBUG, logger=name)
    # Parameters and result rows are logged too: they must hold ciphertext only.
    engine = database.open_database(database_url, echo="debug", hide_parameters=False)
    key_file = tmp_path / "keys" / "master.key"
    vault = open_vault(engine, key_file)
    errors: list[BaseException] = []

    def expect_error(action, *exceptions: type[BaseException]) -> None:
        with pytest.raises(exceptions or (Exception,)) as caught:
            action()
        errors.append(caught.value)

    # Bind, with and without a first check.
    with database.transaction(engine) as session:
        ids = [
            store.create_account_with_credentials(
                session,
                vault,
                label=f"canary {n}",
                credentials=credentials(n, marker),
                scopes=["spot", "futures"],
                actor=ACTOR,
                probe=probe() if n % 2 else None,
            )
            for n in range(4)
        ]
    path = database.sqlite_path(engine)
    if path is not None:
        assert Path(f"{path}-wal").stat().st_size > 0  # the scan covers a WAL with content
    for blob in (_table_dump(engine), *(p.read_bytes() for p in _files(engine))):
        assert _hits(blob, forms) == []

    # Every path that touches a secret, including the failing ones.
    with database.transaction(engine) as session:
        loaded = store.load_credentials(session, vault, ids[0])
        store.rotate_credentials(session, vault, ids[1], credentials(10, marker), actor=ACTOR)
        store.mark_verified(session, ids[2], probe(), actor=ACTOR)
        store.set_scopes(session, ids[2], ["margin"], actor=ACTOR)
        store.pause(session, ids[3], actor=ACTOR)
    assert marker in loaded.api_secret.reveal()
    for text in (repr(loaded), str(loaded), repr(loaded.api_secret), f"{loaded.passphrase}"):
        assert marker not in text

    def bind_again(creds: Credentials, label: str = "dup") -> None:
        with database.transaction(engine) as session:
            store.create_account_with_credentials(
                session, vault, label=label, credentials=creds, scopes=["spot"], actor=ACTOR
            )

    expect_error(lambda: bind_again(credentials(0, marker)), store.DuplicateKeyError)
    expect_error(lambda: bind_again(credentials(77, marker), "canary 0"), store.DuplicateLabelError)
    expect_error(
        lambda: bind_again(Credentials("k1", f"{marker}\n", f"{marker}")), store.InvalidInput
    )
    expect_error(lambda: bind_again(Credentials(f" {marker}", marker, marker)), store.InvalidInput)

    def audit_a_secret() -> None:
        with database.transaction(engine) as session:
            store.record_audit(session, actor=ACTOR, action="login", details={"x": Secret(marker)})

    expect_error(audit_a_secret, TypeError)

    def load_tampered() -> None:
        with database.transaction(engine) as session:
            row = session.get(Credential, ids[0])
            other = session.get(Credential, ids[2])
            row.api_secret_enc, other.api_secret_enc = other.api_secret_enc, row.api_secret_enc
            session.flush()
            store.load_credentials(session, vault, ids[0])

    expect_error(load_tampered, VaultError)

    def decrypt_elsewhere() -> None:
        with database.read_session(engine) as session:
            row = session.get(Credential, ids[0])
            vault.decrypt(row.passphrase_enc, credential_place(ids[0], "api_secret"))

    expect_error(decrypt_elsewhere, VaultError)

    # Master key rotation, then unbind, then a checkpoint.
    rotate_master_key(engine, vault, actor=ACTOR, batch_size=2)
    with database.transaction(engine) as session:
        store.unbind(session, ids[3], actor=ACTOR)
        assert store.load_credentials(session, vault, ids[1]) == credentials(10, marker)
    if path is not None:
        before_checkpoint = [p.read_bytes() for p in _files(engine)]
        database.checkpoint(engine)
        assert Path(f"{path}-wal").stat().st_size == 0
        for blob in before_checkpoint:
            assert _hits(blob, forms) == []
    engine.dispose()

    # Nothing anywhere: files, rows, logs, captured output, error text.
    engine = database.create_engine(database_url)
    try:
        blobs = [_table_dump(engine), *(p.read_bytes() for p in _files(engine))]
    finally:
        engine.dispose()
    if path is not None:
        names = {p.name for p in path.parent.iterdir()}
        assert {"bindwatch.db"} <= names
    out, err = capsys.readouterr()
    logs = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    assert len(caplog.records) > 100  # SQL, parameters and rows really were logged
    texts = [logs, out, err, *(f"{e!s} {e!r}" for e in errors)]
    blobs += [t.encode() for t in texts]
    for blob in blobs:
        assert _hits(blob, forms) == []
    assert len(errors) == 7


def test_the_scan_finds_a_marker_that_was_stored_in_clear(database_url):
    marker = f"CANARY{uuid.uuid4().hex}"
    engine = database.open_database(database_url)
    try:
        with database.transaction(engine) as session:
            store.record_audit(session, actor=marker, action="login")
        database.checkpoint(engine)
        files = _files(engine)
        assert _hits(_table_dump(engine), encodings(marker))
        if files:
            assert any(_hits(p.read_bytes(), encodings(marker)) for p in files)
    finally:
        engine.dispose()
    if "postgresql" in database_url and os.environ.get("BINDWATCH_PG_DIR"):
        assert files, "the PostgreSQL data directory was not scanned"
