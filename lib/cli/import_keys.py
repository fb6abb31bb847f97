"""`python -m lib import FILE`: bind many keys from a CSV or JSON file, verified before saving.

The same preview as the Import page (lib.console.bulk_import): every line cleaned, checked
and verified as a single bind, shown as a table; then the ready lines (and, when confirmed,
those with warnings or refused only for this machine's IP) are saved. The file holds
secrets: it must be readable by its owner only, and should be deleted once imported.
"""

from __future__ import annotations

import argparse
import json
import stat
import sys
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from lib.cli.installation import open_console
from lib.cli.terminal import (
    EXIT_NO,
    EXIT_OK,
    EXIT_USAGE,
    add_kucoin_urls,
    confirm,
    fail,
    interactive,
    kucoin_urls,
)
from lib.config import Config
from lib.console import Console, KucoinTarget, bulk_import
from lib.console.binding import BindingError
from lib.console.bulk_import import ImportPreview, ImportSummary, Verdict
from lib.console.errors import VaultError
from lib.console.import_file import MAX_FILE_BYTES, ImportFileError, template

DETAILS_WIDTH = 110  # a preview line's details are cut here in the table; --json has them whole


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's options."""
    parser.add_argument("file", nargs="?", type=Path, help="the CSV or JSON file of keys")
    parser.add_argument(
        "--yes",
        action="store_true",
        help="save without asking: the ready keys and those with warnings",
    )
    parser.add_argument(
        "--save-unverified",
        action="store_true",
        help="also save the keys KuCoin refused only for this machine's IP (400006), unverified",
    )
    parser.add_argument("--json", action="store_true", help="print the preview and summary as JSON")
    parser.add_argument(
        "--template",
        action="store_true",
        help="print a file to fill in (CSV; JSON with --json) and exit",
    )
    add_kucoin_urls(parser)
    parser.epilog = (
        "Columns: label, api_key, api_secret, passphrase, scopes (as spot;futures), optional "
        "note. The file must be readable by you only (chmod 600 FILE); delete it once imported. "
        "Exit status: 0 every line bound, 1 some line not bound, 2 bad file or usage."
    )


def run(args: argparse.Namespace) -> int:
    """Preview the file, save what is allowed, print the summary; return the exit status."""
    if args.template:
        print(template("json" if args.json else "csv"), end="")
        return EXIT_OK
    if args.file is None:
        fail("name the file of keys: python -m lib import FILE (or --template for one to fill in)")
        return EXIT_USAGE
    data = _read_private_file(args.file)
    if data is None:
        return EXIT_USAGE
    config = Config.from_env()
    console = open_console(config, KucoinTarget(*kucoin_urls(args, config)))
    if console is None:
        return EXIT_USAGE
    try:
        try:
            preview = _preview(console, data, args)
        except ImportFileError as error:
            fail(f"{args.file}: {error} Nothing was sent to KuCoin or saved.")
            _remind_to_delete(args.file)
            return EXIT_USAGE
        finally:
            del data
        summary = _decide(console, preview, args)
    except VaultError as error:
        fail(f"bindwatch cannot use its credential store: {error}")
        return EXIT_USAGE
    finally:
        console.close()
    if args.json:
        print(json.dumps(_document(preview, summary), indent=2))
    elif summary.lines:
        print(_table(summary.frame().drop(columns=["bound"])))
        print(summary.text())
    _remind_to_delete(args.file)
    return EXIT_OK if summary.bound == len(preview.lines) else EXIT_NO


def _read_private_file(path: Path) -> bytes | None:
    """Return the file's bytes; None, after saying why, if it is unreadable or not private."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            fail(f"{path} is not a file of keys: name a CSV or JSON file.")
            return None
        if info.st_mode & (stat.S_IRGRP | stat.S_IROTH):
            fail(
                f"{path} holds secrets and is readable by other users of this machine "
                f"(mode {stat.filemode(info.st_mode)}): make it yours only with "
                f"`chmod 600 {path}`, then import it again. Nothing was read."
            )
            return None
        if info.st_size > MAX_FILE_BYTES:
            fail(
                f"{path} is {info.st_size / 1_000_000:.1f} MB; a file of keys is at most "
                f"{MAX_FILE_BYTES // 1_000} KB. Split it and import each part."
            )
            return None
        return path.read_bytes()
    except OSError as error:
        fail(f"cannot read {path}: {error.strerror or error}.")
        return None


def _preview(console: Console, data: bytes, args: argparse.Namespace) -> ImportPreview:
    """Check every line with a progress bar on stderr (a terminal's only); print the table."""
    bar = None
    if sys.stderr.isatty():
        bar = tqdm(desc="Verifying", unit="key", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        """Move the bar."""
        if bar is not None:
            bar.total = total
            bar.n = done
            bar.refresh()

    try:
        preview = bulk_import.preview_import(
            console,
            data,
            name=args.file.name,
            on_progress=progress,
        )
    finally:
        if bar is not None:
            bar.close()
    if not args.json:
        table = preview.frame()
        cleaned = table.pop("cleaned")
        table["details"] = (
            table["details"] + " " + cleaned.where(cleaned == "", "Cleaned: " + cleaned)
        ).str.strip()
        print(_table(table))
        print(f"{preview.counts_text()} Verified in {preview.seconds:.1f} s.")
    return preview


def _table(frame: pd.DataFrame) -> str:
    """Return a table as plain text: the short columns aligned, the last one (details) after."""
    shown = frame.astype(object).where(frame.notna(), "").astype(str)
    *short, last = list(shown.columns)
    widths = [max([len(c), *shown[c].str.len()]) for c in short]
    rows = [[*short, last], *shown.itertuples(index=False, name=None)]
    return "\n".join(
        "  ".join([*(v.ljust(w) for v, w in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in rows
    )


def _decide(console: Console, preview: ImportPreview, args: argparse.Namespace) -> ImportSummary:
    """Save what the options or the operator allow; return what was bound (empty: nothing)."""
    nothing = ImportSummary(())
    if preview.token is None:
        print(
            "Nothing can be saved: fix the lines above and import the file again.", file=sys.stderr
        )
        return nothing
    accept_warnings, accept_unverified = args.yes, args.save_unverified
    if not args.yes and not interactive():
        bulk_import.discard_import(preview.token)
        print(
            "Nothing was saved: confirm with --yes (and --save-unverified for keys refused only "
            "for this machine's IP), or run in a terminal to be asked.",
            file=sys.stderr,
        )
        return nothing
    if not args.yes:
        if preview.with_warnings:
            accept_warnings = confirm(
                f"Also save the {preview.with_warnings} keys with the warnings listed above?"
            )
        if preview.unverified and not accept_unverified:
            accept_unverified = confirm(
                f"Also save the {preview.unverified} keys KuCoin refused only for this "
                "machine's IP, as unverified?"
            )
        if not confirm(f"Save now ({preview.count(Verdict.READY)} ready)?"):
            bulk_import.discard_import(preview.token)
            print("Nothing was saved.", file=sys.stderr)
            return nothing
    try:
        return bulk_import.confirm_import(
            console,
            preview.token,
            accept_warnings=accept_warnings,
            accept_unverified=accept_unverified,
        )
    except BindingError as error:
        fail(str(error))
        return nothing


def _document(preview: ImportPreview, summary: ImportSummary) -> dict:
    """Return the preview and the summary as one JSON document."""
    outcomes = {line.line: line for line in summary.lines}
    lines = []
    for line in preview.lines:
        saved = outcomes.get(line.line)
        lines.append(
            {
                "line": line.line,
                "label": line.label,
                "key_last4": line.key_last4,
                "cleaned": line.cleaned,
                "decision": line.verdict.value,
                "code": line.code,
                "details": list(line.details),
                "note": line.note,
                "bound": saved.bound if saved else False,
                "account_id": saved.account_id if saved else None,
                "outcome": saved.outcome if saved else "Not bound: nothing was saved.",
            }
        )
    bound = sum(line["bound"] for line in lines)
    return {"lines": lines, "bound": bound, "not_bound": len(lines) - bound}


def _remind_to_delete(path: Path) -> None:
    """Remind the operator that the file holds secrets in plaintext."""
    print(
        f"Reminder: {path} holds API secrets in plaintext. Delete it now that it is imported "
        f"(e.g. `shred -u {path}`), and empty any trash or backup holding it.",
        file=sys.stderr,
    )
