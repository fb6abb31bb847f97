"""Opening this installation's database and master key for a command, or saying why not."""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from lib.cli.terminal import fail
from lib.config import Config
from lib.console import Console, KucoinTarget
from lib.console.errors import VaultError


def open_console(
    config: Config | None = None, kucoin: KucoinTarget | None = None
) -> Console | None:
    """Return the configured console; None, after saying why on stderr, if it cannot open."""
    try:
        return Console.open(config, kucoin=kucoin)
    except VaultError as error:
        fail(f"bindwatch cannot open its credential store: {error}")
    except (SQLAlchemyError, OSError) as error:
        fail(f"cannot open bindwatch's database: {error}")
    return None
