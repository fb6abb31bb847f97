"""Bind many keys at once from a file: each line checked as a single bind, saved once confirmed.

`preview_import` reads the file (lib.console.import_file), screens every line with binding's
own cleaning, format checks, swapped-field detection and duplicate guard, refuses a label or
key that an earlier line of the file holds, and verifies the rest with KuCoin concurrently
through the checking engine (lib.console.refresh.verify_keys: one clock and IP measurement
for the batch, within KuCoin's budgets). It returns an `ImportPreview`, one `ImportLine` per
line, holding no secret; the credentials of the lines that may be saved wait in this
process's memory under the preview's token, as a single bind's do (binding.PendingKeys).
`confirm_import` saves the ready lines (and those the operator confirmed), each with its
audit row, and returns an `ImportSummary` of what was bound and what was not, and why.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from lib.console import binding
from lib.console.binding import (
    BindingError,
    Decision,
    KeyCheck,
    ParkedKey,
    PendingKeys,
    ScreenedKey,
    confirmation_missing,
    duplicate_text,
    normal_label,
    screen_key,
    store_checked,
    verified_check,
)
from lib.console.binding_input import FIELD_NAMES, KEY_SHAPE
from lib.console.import_file import KeyLine, read_key_file
from lib.console.refresh import verify_keys
from lib.kucoin.auth import Credentials
from lib.kucoin.probe_result import ProbeResult

if TYPE_CHECKING:
    from lib.console import Console

MAX_PENDING_IMPORTS = 4  # previews waiting for confirmation at once; beyond, the oldest goes


class Verdict(enum.StrEnum):
    """What the preview says of a line."""

    READY = "ready"
    NEEDS_CONFIRMATION = "needs confirmation"
    REFUSED = "refused"
    DUPLICATE = "duplicate"


VERDICTS = {
    Decision.READY: Verdict.READY,
    Decision.NEEDS_CONFIRMATION: Verdict.NEEDS_CONFIRMATION,
    Decision.WHITELIST_ONLY: Verdict.NEEDS_CONFIRMATION,
    Decision.FAILED: Verdict.REFUSED,
    Decision.INVALID: Verdict.REFUSED,
    Decision.DUPLICATE: Verdict.DUPLICATE,
}
PREVIEW_COLUMNS = ["line", "label", "key", "note", "cleaned", "decision", "details"]
SUMMARY_COLUMNS = ["line", "label", "key", "bound", "account_id", "outcome"]


@dataclass(frozen=True)
class ImportLine:
    """One line of the file as the preview shows it; holds no secret."""

    line: int
    label: str
    key_last4: str  # "" unless the key has a KuCoin key's shape (never a piece of a secret)
    cleaned: str  # what cleaning removed, in binding's words
    verdict: Verdict
    details: tuple[str, ...]  # the warnings, the fix per field, KuCoin's diagnosis, the duplicate
    note: str = ""
    decision: Decision | None = None  # binding's decision; None for a line that was not read
    code: str | None = None  # KuCoin's code when it refused the key
    check: KeyCheck | None = field(default=None, repr=False, compare=False)

    @property
    def unverified_only(self) -> bool:
        """Return whether KuCoin refused only this machine's IP (may be saved unverified)."""
        return self.decision is Decision.WHITELIST_ONLY


@dataclass(frozen=True)
class ImportPreview:
    """What checking a file's lines found; `token` names the credentials that may be saved."""

    lines: tuple[ImportLine, ...]
    token: str | None
    seconds: float

    def count(self, verdict: Verdict) -> int:
        """Return how many lines have this verdict."""
        return sum(line.verdict is verdict for line in self.lines)

    @property
    def with_warnings(self) -> int:
        """Return how many verified lines wait for their warnings to be confirmed."""
        return sum(line.decision is Decision.NEEDS_CONFIRMATION for line in self.lines)

    @property
    def unverified(self) -> int:
        """Return how many lines KuCoin refused only for this machine's IP."""
        return sum(line.unverified_only for line in self.lines)

    def frame(self) -> pd.DataFrame:
        """Return the preview table: one row per line (no secret)."""
        return pd.DataFrame(
            [
                {
                    "line": line.line,
                    "label": line.label,
                    "key": f"…{line.key_last4}" if line.key_last4 else "",
                    "note": line.note,
                    "cleaned": line.cleaned,
                    "decision": line.verdict.value,
                    "details": " ".join(line.details),
                }
                for line in self.lines
            ],
            columns=PREVIEW_COLUMNS,
        )

    def counts_text(self) -> str:
        """Return the preview's counts in a sentence."""
        parts = [f"{self.count(v)} {v.value}" for v in Verdict if self.count(v)]
        return f"{len(self.lines)} lines: " + ", ".join(parts) + "."


@dataclass(frozen=True)
class ImportedLine:
    """What confirming did with one line."""

    line: int
    label: str
    key_last4: str
    bound: bool
    outcome: str  # "bound", "bound, unverified", or why it was not bound
    account_id: int | None = None


@dataclass(frozen=True)
class ImportSummary:
    """What an import bound and what it did not, and why."""

    lines: tuple[ImportedLine, ...]

    @property
    def bound(self) -> int:
        """Return how many lines were bound."""
        return sum(line.bound for line in self.lines)

    def frame(self) -> pd.DataFrame:
        """Return the summary table: one row per line (no secret)."""
        return pd.DataFrame(
            [
                {
                    "line": line.line,
                    "label": line.label,
                    "key": f"…{line.key_last4}" if line.key_last4 else "",
                    "bound": line.bound,
                    "account_id": line.account_id,
                    "outcome": line.outcome,
                }
                for line in self.lines
            ],
            columns=SUMMARY_COLUMNS,
        ).astype({"account_id": "Int64"})

    def text(self) -> str:
        """Return the summary in a sentence."""
        missed = len(self.lines) - self.bound
        return f"Bound {self.bound} of {len(self.lines)} lines; {missed} not bound."


@dataclass
class _ParkedImport:
    """The keys of one preview that may be saved, by line."""

    keys: dict[int, ParkedKey] = field(repr=False)
    lines: tuple[ImportLine, ...]


_pending: PendingKeys[_ParkedImport] = PendingKeys(MAX_PENDING_IMPORTS)


def preview_import(
    console: Console,
    data: bytes,
    *,
    name: str = "",
    on_progress: Callable[[int, int], None] | None = None,
) -> ImportPreview:
    """Check every line of a file of keys, saving nothing; raise ImportFileError for the file.

    `on_progress(done, total)` is called in this thread as each key's verification lands.
    """
    console.require_admin("import keys")
    started = time.monotonic()
    key_lines = read_key_file(data, name)
    screened, refused = _screen(console, key_lines)
    to_verify = {n: one.credentials for n, one in screened.items() if one.credentials is not None}
    checks = _verify(console, screened, to_verify, on_progress)
    lines = tuple(
        refused.get(key_line.line)
        or _line_of(key_line, screened[key_line.line], checks.get(key_line.line))
        for key_line in key_lines
    )
    notes = {key_line.line: key_line.note for key_line in key_lines}
    parked = {
        n: ParkedKey(credentials, checks[n], notes[n])
        for n, credentials in to_verify.items()
        if n in checks and checks[n].decision in binding.SAVEABLE
    }
    token = _pending.park(_ParkedImport(parked, lines)) if parked else None
    return ImportPreview(lines, token, time.monotonic() - started)


def _screen(
    console: Console, key_lines: list[KeyLine]
) -> tuple[dict[int, ScreenedKey], dict[int, ImportLine]]:
    """Screen each line as a single bind, refusing a label or key an earlier line holds.

    Return the screened lines and the lines refused before screening, by line.
    """
    screened: dict[int, ScreenedKey] = {}
    refused: dict[int, ImportLine] = {}
    labels: dict[str, int] = {}
    keys: dict[str, int] = {}
    for key_line in key_lines:
        number, label = key_line.line, normal_label(key_line.label)
        if key_line.problem:
            refused[number] = ImportLine(number, "", "", "", Verdict.REFUSED, (key_line.problem,))
            continue
        if label and label in labels:
            refused[number] = _line_duplicate(key_line, label, "label", labels[label])
            continue
        one = screen_key(
            console,
            label=key_line.label,
            api_key=key_line.api_key,
            api_secret=key_line.api_secret,
            passphrase=key_line.passphrase,
            scopes=key_line.scopes,
        )
        key = one.credentials.api_key if one.credentials is not None else None
        if key is not None and key in keys:
            refused[number] = _line_duplicate(key_line, label, "API key", keys[key])
            continue
        labels.setdefault(label, number)
        if key is not None:
            keys[key] = number
        screened[number] = one
    return screened, refused


def _verify(
    console: Console,
    screened: dict[int, ScreenedKey],
    to_verify: dict[int, Credentials],
    on_progress: Callable[[int, int], None] | None,
) -> dict[int, KeyCheck]:
    """Verify the screened keys as one batch; return every screened line's check, by line.

    A line missing from the result was not checked (the engine logged why).
    """
    total, done = len(to_verify), 0
    if on_progress:
        on_progress(0, total)

    def landed(_: int, __: ProbeResult) -> None:
        """Count one verification."""
        nonlocal done
        done += 1
        if on_progress:
            on_progress(done, total)

    results = verify_keys(console, list(to_verify.values()), on_result=landed)
    checks = {n: one.refused for n, one in screened.items() if one.refused is not None}
    for index, number in enumerate(to_verify):
        if index in results:
            checks[number] = verified_check(console, screened[number], results[index])
    return checks


def _line_duplicate(key_line: KeyLine, label: str, what: str, earlier: int) -> ImportLine:
    """Return the preview of a line whose label or key an earlier line of the file holds."""
    return ImportLine(
        key_line.line,
        label,
        _last4(key_line.api_key),
        "",
        Verdict.DUPLICATE,
        (
            f"Same {what} as line {earlier} of this file: each {what} is bound once. Remove one "
            "of the two lines. Nothing was sent to KuCoin.",
        ),
        note=key_line.note,
        decision=Decision.DUPLICATE,
    )


def _last4(api_key: str) -> str:
    """Return a key's last 4 characters when it has a KuCoin key's shape, else ""."""
    key = "".join(api_key.split())
    return key[-4:] if KEY_SHAPE.fullmatch(key) else ""


def _line_of(key_line: KeyLine, screened: ScreenedKey, check: KeyCheck | None) -> ImportLine:
    """Return the preview of a screened line from what checking it found."""
    cleaned = list(screened.notices)
    if screened.label != key_line.label:
        cleaned.append("Removed extra spaces from the label.")
    common = {
        "line": key_line.line,
        "label": screened.label,
        "key_last4": _last4(
            screened.credentials.api_key if screened.credentials else key_line.api_key
        ),
        "cleaned": " ".join(cleaned),
        "note": key_line.note,
    }
    if check is None:
        return ImportLine(
            verdict=Verdict.REFUSED,
            details=("The check of this key failed unexpectedly: import the line again.",),
            **common,
        )
    return ImportLine(
        verdict=VERDICTS[check.decision],
        details=_details(check),
        decision=check.decision,
        code=check.result.code if check.result is not None and not check.result.ok else None,
        check=check,
        **common,
    )


def _details(check: KeyCheck) -> tuple[str, ...]:
    """Return what the preview says of a checked line, in binding's words."""
    if check.decision is Decision.INVALID:
        return tuple(
            f"{FIELD_NAMES.get(name, name)}: {error}" for name, error in check.errors.items()
        )
    if check.decision is Decision.DUPLICATE:
        return (duplicate_text(check),)
    if check.decision is Decision.READY:
        return (f"Verified: {check.api_status}.",)
    if check.decision is Decision.NEEDS_CONFIRMATION:
        return tuple(f"Warning: {warning}" for warning in check.warnings)
    failure = check.diagnosis
    assert failure is not None
    said = f"KuCoin {failure.code}: {failure.title}. {failure.cause} Fix: {failure.fix}"
    if check.decision is Decision.WHITELIST_ONLY:
        return (said, "May be saved as unverified if you choose to.")
    return (said,)


def discard_import(token: str | None) -> None:
    """Forget a preview's credentials (the operator cancelled)."""
    if token:
        _pending.discard(token)


def confirm_import(
    console: Console,
    token: str,
    *,
    accept_warnings: bool = False,
    accept_unverified: bool = False,
) -> ImportSummary:
    """Save a preview's ready lines (and the confirmed ones); return what was bound and why not.

    Each line is saved in its own transaction with its audit row: a line another operator
    bound meanwhile is reported, and the others are still saved.
    """
    console.require_admin("import keys")
    pending = _pending.take(token)
    if pending is None:
        raise BindingError("This preview has expired or was already used: import the file again.")
    parked = pending.value
    summary = []
    for line in parked.lines:
        summary.append(
            _save_line(
                console,
                line,
                parked.keys.pop(line.line, None),
                accept_warnings=accept_warnings,
                accept_unverified=accept_unverified,
            )
        )
    return ImportSummary(tuple(summary))


def _save_line(
    console: Console,
    line: ImportLine,
    key: ParkedKey | None,
    *,
    accept_warnings: bool,
    accept_unverified: bool,
) -> ImportedLine:
    """Save one line if it may be; return what happened to it."""
    common = {"line": line.line, "label": line.label, "key_last4": line.key_last4}
    if key is None:
        return ImportedLine(
            bound=False, outcome=f"Not bound ({line.verdict}): {line.details[0]}", **common
        )
    missing = confirmation_missing(
        key.check, accept_warnings=accept_warnings, accept_unverified=accept_unverified
    )
    if missing:
        return ImportedLine(
            bound=False, outcome=f"Not bound: {_not_confirmed(key.check)}", **common
        )
    try:
        account_id = store_checked(console, key)
    except BindingError as error:
        return ImportedLine(bound=False, outcome=f"Not bound: {error}", **common)
    state = "bound, unverified" if key.check.decision is Decision.WHITELIST_ONLY else "bound"
    return ImportedLine(
        bound=True, outcome=state.capitalize() + ".", account_id=account_id, **common
    )


def _not_confirmed(check: KeyCheck) -> str:
    """Return why a line that may be saved was not, in the import's words."""
    if check.decision is Decision.WHITELIST_ONLY:
        return (
            "KuCoin refused only this machine's IP (400006), and saving it as unverified was "
            "not chosen."
        )
    return "its warnings were not confirmed."
