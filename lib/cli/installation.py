"""Opening this installation's database and master key for a command, or saying why not;
running a command's action on it."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping

from sqlalchemy.exc import SQLAlchemyError

from lib.cli.terminal import EXIT_NO, EXIT_USAGE, fail
from lib.config import Config
from lib.console import Console, KucoinTarget
from lib.console.errors import InvalidInput, StoreError, VaultError


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


def run_action(
    actions: Mapping[str, Callable[[Console, argparse.Namespace], int]], args: argparse.Namespace
) -> int:
    """Run `args.action` on the configured console; return the exit status (bad input: 2)."""
    console = open_console()
    if console is None:
        return EXIT_USAGE
    try:
        return actions[args.action](console, args)
    except InvalidInput as error:
        fail(str(error))
        return EXIT_USAGE
    except StoreError as error:
        fail(str(error))
        return EXIT_NO
    finally:
        console.close()
