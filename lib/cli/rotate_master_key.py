"""`python -m lib rotate-master-key`: move every stored secret to a new master key."""

from __future__ import annotations

import argparse
import getpass
import sys

from lib.cli.terminal import EXIT_OK, EXIT_USAGE
from lib.config import Config
from lib.store import database as db
from lib.vault import VaultError, open_vault, rotate_master_key


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the command's options."""
    parser.add_argument(
        "--batch-size",
        type=int,
        default=200,
        help="credentials re-encrypted per transaction (default 200)",
    )
    parser.add_argument(
        "--actor",
        default=None,
        help="who to name in the audit log (default: cli:<login name>)",
    )
    parser.epilog = (
        "Uses BINDWATCH_DATABASE_URL and BINDWATCH_MASTER_KEY_FILE (defaults under data/). "
        "Safe to run again after an interruption: it finishes the rotation it finds half done."
    )


def run(args: argparse.Namespace) -> int:
    """Rotate the master key, printing progress; return 0 on success, 2 on a vault error."""
    if args.batch_size < 1:
        print("--batch-size must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    config = Config.from_env()
    actor = args.actor or f"cli:{_login_name()}"
    try:
        engine = db.open_database(config.database_url)
        try:
            vault = open_vault(engine, config.master_key_file, private_dir=config.data_dir)
            print(f"master key file: {config.master_key_file}", flush=True)

            def progress(done: int, total: int) -> None:
                """Say how far the re-encryption got."""
                print(f"re-encrypted {done}/{total} credentials", flush=True)

            report = rotate_master_key(
                engine, vault, actor=actor, batch_size=args.batch_size, progress=progress
            )
        finally:
            engine.dispose()
    except VaultError as exc:
        print(f"rotate-master-key: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if report.resumed:
        print("finished a rotation an earlier run left half done", flush=True)
    print(
        f"done: {report.rows_reencrypted} credentials re-encrypted; master key "
        f"{report.new_key_id} active; retired {', '.join(report.retired_key_ids)}",
        flush=True,
    )
    print("Back up the key file now: the old backups of it no longer open new data.", flush=True)
    return EXIT_OK


def _login_name() -> str:
    """Return who is logged in, as the audit log names a command's operator."""
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
