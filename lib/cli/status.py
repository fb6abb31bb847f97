"""`python -m lib status`: print the fleet table, worst first: the Fleet page in a terminal."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import make_url

from lib.cli.installation import open_console
from lib.cli.terminal import EXIT_NO, EXIT_OK, EXIT_USAGE, fail
from lib.config import Config
from lib.console import alerts
from lib.console.errors import InvalidInput
from lib.console.export import fleet_json
from lib.console.fleet import FleetSnapshot, fleet_snapshot
from lib.health.fleet import is_failing
from lib.health.status import Status
from lib.health.wording import format_age

EMPTY_FLEET = (
    "No account is bound yet. Bind a key in the app (make run → Bind a key), or try "
    "the demo fleet: python -m lib demo"
)
_WIDTHS = {"status": 20, "label": 22, "diagnosis": 46, "sync": 15, "key": 7}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's options."""
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object per account instead"
    )
    parser.add_argument(
        "--since",
        metavar="WINDOW",
        help="list the transitions (status changes, new risks, incidents) of the last WINDOW "
        "instead, e.g. 90m, 24h, 7d",
    )
    parser.epilog = (
        "Reads the database named by BINDWATCH_DATA_DIR / BINDWATCH_DATABASE_URL. Exit status: "
        "0 when no account is failing, 1 when at least one is, 2 when the database or master "
        "key cannot be opened."
    )


def _missing_sqlite_file(config: Config) -> Path | None:
    """Return the configured SQLite file when it does not exist yet, else None."""
    url = make_url(config.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    path = Path(url.database)
    return None if path.exists() else path


def run(args: argparse.Namespace) -> int:
    """Print the fleet table (or JSON) and return the exit status."""
    config = Config.from_env()
    missing = _missing_sqlite_file(config)
    if missing is not None:
        # Reading must not create a database and a master key as a side effect.
        print("[]" if args.json else f"{EMPTY_FLEET}\n(There is no database at {missing} yet.)")
        return EXIT_OK
    window = None
    if args.since is not None:
        try:
            window = alerts.parse_since(args.since)
        except InvalidInput as error:
            fail(str(error))
            return EXIT_USAGE
    console = open_console(config)
    if console is None:
        return EXIT_USAGE
    if window is not None:
        try:
            since = datetime.now(UTC) - window
            changes = alerts.transitions(console, since=since, limit=None)
        finally:
            console.close()
        _print(transitions_json(changes) if args.json else render_transitions(changes, since))
        return EXIT_OK
    try:
        snapshot = fleet_snapshot(console)
    finally:
        console.close()
    _print(fleet_json(snapshot.fleet) if args.json else render_fleet(snapshot))
    return exit_status(snapshot.fleet)


def _print(text: str) -> None:
    """Print to stdout; stop quietly when it is a pipe closed early."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Piped into `head` or similar: stop quietly, the reader has what it wanted.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def render_transitions(changes: pd.DataFrame, since: datetime) -> str:
    """Return the transitions as text, oldest first: when, account, what, old → new."""
    if changes.empty:
        return f"No transition since {since:%Y-%m-%d %H:%M} UTC."
    lines = [f"{plural(len(changes), 'transition')} since {since:%Y-%m-%d %H:%M} UTC:"]
    for row in changes.iloc[::-1].itertuples(index=False):
        who = row.label if isinstance(row.label, str) else "fleet"
        sent = "" if row.alerted else f"  (not sent: {row.note})"
        lines.append(f"{row.at:%Y-%m-%d %H:%M:%S}  {_clip(who, 22):<22}  {row.title}{sent}")
    return "\n".join(lines)


def transitions_json(changes: pd.DataFrame) -> str:
    """Return the transitions as a JSON list, oldest first."""
    rows = changes.iloc[::-1].drop(columns=["body"])
    return rows.to_json(orient="records", date_format="iso", indent=2)


def plural(count: int, noun: str) -> str:
    """Return "1 transition" or "3 transitions"."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def exit_status(fleet: pd.DataFrame) -> int:
    """Return 1 when any account is failing (Status.failing), else 0."""
    return EXIT_NO if is_failing(fleet["status"]).any() else EXIT_OK


def _clip(text: object, width: int) -> str:
    """Return text cut to width with an ellipsis, "-" when missing."""
    value = "-" if text is None or pd.isna(text) else str(text)
    return value if len(value) <= width else value[: width - 1] + "…"


def render_fleet(snapshot: FleetSnapshot) -> str:
    """Return the fleet as a text table, worst first, each failing account with its next step."""
    fleet = snapshot.fleet
    if fleet.empty:
        return EMPTY_FLEET
    counts = ", ".join(f"{int(r.count)} {r.status}" for r in snapshot.counts.itertuples())
    lines = [f"{len(fleet)} accounts, as of {snapshot.as_of:%Y-%m-%d %H:%M:%S} UTC: {counts}"]
    incident = snapshot.incident
    if incident is not None:
        lines.append(f"FLEET INCIDENT: {incident.summary}. {incident.fix}")
    w = _WIDTHS
    lines.append("")
    lines.append(
        f"{'STATUS':<{w['status']}} {'ACCOUNT':<{w['label']}} {'DIAGNOSIS':<{w['diagnosis']}} "
        f"{'LAST SYNC':<{w['sync']}} {'KEY AGE':>{w['key']}}"
    )
    indent = " " * (w["status"] + w["label"] + 2)  # where the diagnosis column starts
    for row in fleet.itertuples(index=False):
        age = format_age(row.sync_age)
        key_age = f"{row.key_age_days} d" if pd.notna(row.key_age_days) else "-"
        diagnosis = _wrap(row.diagnosis, w["diagnosis"])
        lines.append(
            f"{_clip(row.status, w['status']):<{w['status']}} "
            f"{_clip(row.label, w['label']):<{w['label']}} "
            f"{diagnosis[0]:<{w['diagnosis']}} "
            f"{_clip(f'{age} ago' if age else 'never', w['sync']):<{w['sync']}} "
            f"{key_age:>{w['key']}}"
        )
        lines.extend(f"{indent}{part}" for part in diagnosis[1:])
        if Status(str(row.status)) not in (Status.OK, Status.PAUSED):
            hint = _wrap(row.hint, 96)
            lines.extend(
                f"{' ' * 4}{'→ ' if i == 0 else '  '}{part}" for i, part in enumerate(hint)
            )
    return "\n".join(lines)


def _wrap(text: object, width: int) -> list[str]:
    """Return text as lines of at most width, broken only between words ("-" when missing)."""
    value = "-" if text is None or pd.isna(text) else str(text)
    # A code, an IP or a URL is never cut: a word longer than the width keeps its own line.
    return textwrap.wrap(value, width, break_long_words=False, break_on_hyphens=False) or ["-"]
