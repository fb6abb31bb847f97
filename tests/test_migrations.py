"""Migrations: an empty database upgrades to head and matches the models exactly."""

from __future__ import annotations

import subprocess
import sys

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel
from store_fixtures import database_url_fixture, sqlite_url_fixture

from lib.config import REPO_ROOT
from lib.store import database

FIXTURES = (database_url_fixture, sqlite_url_fixture)


def test_empty_database_upgrades_to_head_and_matches_the_models(database_url):
    engine = database.open_database(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn)
            assert compare_metadata(context, SQLModel.metadata) == []
            head = ScriptDirectory.from_config(database.alembic_config()).get_current_head()
            assert context.get_current_revision() == head
            tables = set(sa.inspect(conn).get_table_names())
        assert {
            "accounts",
            "credentials",
            "probe_results",
            "settings",
            "operators",
            "audit_events",
            "vault_keys",
        } <= tables
    finally:
        engine.dispose()


def test_opening_twice_is_a_no_op_and_downgrade_removes_everything(database_url):
    database.open_database(database_url).dispose()
    engine = database.open_database(database_url)
    try:
        with engine.begin() as conn:
            command.downgrade(database.alembic_config(conn), "base")
        with engine.connect() as conn:
            assert set(sa.inspect(conn).get_table_names()) <= {"alembic_version"}
        database.upgrade(engine)
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
    finally:
        engine.dispose()


def test_migrations_do_not_depend_on_the_working_directory(database_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    engine = database.open_database(database_url)
    try:
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() is not None
    finally:
        engine.dispose()


def test_sqlite_connections_are_durable_and_strict(sqlite_url):
    engine = database.open_database(sqlite_url)
    try:
        with engine.connect() as conn:
            pragmas = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in (
                    "journal_mode",
                    "synchronous",
                    "busy_timeout",
                    "foreign_keys",
                    "secure_delete",
                )
            }
        assert pragmas == {
            "journal_mode": "wal",
            "synchronous": 2,  # FULL
            "busy_timeout": database.BUSY_TIMEOUT_MS,
            "foreign_keys": 1,
            "secure_delete": 1,
        }
        assert database.BUSY_TIMEOUT_MS >= 5000
    finally:
        engine.dispose()


def test_sqlite_write_transactions_begin_immediately(sqlite_url):
    engine = database.open_database(sqlite_url)
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    try:
        with database.transaction(engine) as session:
            session.exec(sa.select(1))  # type: ignore[call-overload]
        with database.read_session(engine) as session:
            session.exec(sa.select(1))  # type: ignore[call-overload]
        assert "BEGIN IMMEDIATE" in statements
        assert "BEGIN DEFERRED" in statements
    finally:
        engine.dispose()


def test_the_newest_revision_is_read_from_the_scripts_as_alembic_reads_it():
    scripts = ScriptDirectory.from_config(database.alembic_config())
    assert database.script_heads() == set(scripts.get_heads())


def test_a_database_at_the_newest_revision_opens_without_loading_alembic(sqlite_url):
    # Alembic takes longer to import than the rest of the store: only a migration needs it.
    database.open_database(sqlite_url).dispose()
    opened = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from lib.store import database; "
            f"database.open_database({sqlite_url!r}).dispose(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert opened.stdout.strip() == "[]"
