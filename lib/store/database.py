"""Opening the database: engine settings per backend, migrations at start-up, transactions.

SQLite (the default) runs in WAL mode with synchronous=FULL, foreign keys and secure_delete on,
and every write transaction starts with BEGIN IMMEDIATE so concurrent writers queue on the busy
timeout instead of failing with "database is locked". PostgreSQL serves several app instances
and refresh workers on one database.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlmodel import Session

from lib.config import Config, ensure_private_dir, redact_url

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 15_000
# Serialises migrations when several instances start at once on one PostgreSQL database.
_PG_MIGRATION_LOCK = 0x62696E6477617463  # "bindwatc"
_READ_ONLY = "bindwatch_read_only"


def create_engine(
    url: str | URL, *, echo: bool | str = False, hide_parameters: bool = True
) -> Engine:
    """Return an engine with bindwatch's per-backend settings; no migrations are run."""
    url = make_url(url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, echo=echo, hide_parameters=hide_parameters)
    return sa.create_engine(
        url, echo=echo, hide_parameters=hide_parameters, pool_pre_ping=True, future=True
    )


def _sqlite_engine(url: URL, *, echo: bool | str, hide_parameters: bool) -> Engine:
    """Return a SQLite engine: WAL, FULL sync, busy timeout, and BEGIN IMMEDIATE for writers."""
    _prepare_sqlite_file(url)
    engine = sa.create_engine(
        url,
        echo=echo,
        hide_parameters=hide_parameters,
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Take BEGIN away from the sqlite3 module: it would start transactions late (legacy mode).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            f"busy_timeout = {BUSY_TIMEOUT_MS}",
            "journal_mode = WAL",
            "synchronous = FULL",  # durable across power loss in WAL mode
            "foreign_keys = ON",
            "secure_delete = ON",  # replaced ciphertext is zeroed, not left in free pages
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A deferred transaction that reads then writes can fail at once with SQLITE_BUSY;
        # taking the write lock up front makes writers wait their turn instead.
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")

    return engine


def _prepare_sqlite_file(url: URL) -> None:
    """Create the database file 0600 in a 0700 directory; SQLite gives -wal/-shm the same mode."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database).absolute()
    if path.parent == Config.from_env().data_dir:
        ensure_private_dir(path.parent)
    elif not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Never open and close a database file SQLite may have open: closing any descriptor of
        # it drops every POSIX lock this process holds on it, and another process may then
        # checkpoint and reset the WAL under this process's connections, losing their writes.
        return
    os.close(fd)


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    """Return an Alembic configuration for lib/store/migrations that does not depend on the cwd."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine) -> None:
    """Apply every pending migration in one transaction, one instance at a time."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
        command.upgrade(alembic_config(connection), "head")


def open_database(
    url: str | URL | None = None, *, echo: bool | str = False, hide_parameters: bool = True
) -> Engine:
    """Return an engine for the configured database, migrated to the newest schema."""
    url = url or Config.from_env().database_url
    engine = create_engine(url, echo=echo, hide_parameters=hide_parameters)
    upgrade(engine)
    log.info("database ready: %s", redact_url(url))
    return engine


def sqlite_path(engine: Engine) -> Path | None:
    """Return the SQLite database file of an engine, or None for another backend."""
    if engine.dialect.name != "sqlite" or not engine.url.database:
        return None
    return Path(engine.url.database)


def checkpoint(engine: Engine) -> None:
    """Copy the SQLite WAL into the database file and truncate it; nothing on other backends."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as connection:
        # On the driver connection: a checkpoint cannot run inside the BEGIN the engine adds.
        connection.connection.driver_connection.execute(
            "PRAGMA wal_checkpoint(TRUNCATE)"
        ).fetchall()


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """Yield a session in one write transaction: committed on success, rolled back on error."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """Yield a session for reading only; on SQLite it does not take the write lock."""
    options = {_READ_ONLY: True}
    if engine.dialect.name == "postgresql":
        options["postgresql_readonly"] = True
    # Closing ends the transaction without expiring what was read, so results stay usable.
    with Session(engine.execution_options(**options), expire_on_commit=False) as session:
        yield session
