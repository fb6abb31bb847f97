"""Alembic environment: bindwatch's tables, on the connection lib.store.database hands over."""

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import lib.store.models  # noqa: F401  (registers the tables on SQLModel.metadata)

target_metadata = SQLModel.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place: batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        transactional_ddl=True,
        compare_type=True,
    )


def run_migrations_online() -> None:
    """Run the migrations on the given connection, or on the configured database."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    from lib.config import Config
    from lib.store.database import create_engine

    url = context.config.get_main_option("sqlalchemy.url") or Config.from_env().database_url
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


def run_migrations_offline() -> None:
    """Emit the migrations as SQL for the configured URL."""
    from lib.config import Config

    url = context.config.get_main_option("sqlalchemy.url") or Config.from_env().database_url
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
