"""Read a file of keys to import (CSV or JSON) into lines; no message ever echoes a value.

The format: columns `label, api_key, api_secret, passphrase, scopes` (scopes as `spot;futures`)
and an optional `note`; in JSON, a list of objects with those fields. What is wrong with the
file as a whole raises ImportFileError; what is wrong with one line stays on that line, and
binding's rules then judge each line's values as they judge a pasted key.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field

from lib.account_fields import SCOPES
from lib.console.binding_input import SHAPES
from lib.secret import Secret

REQUIRED = ("label", "api_key", "api_secret", "passphrase", "scopes")
OPTIONAL = ("note",)
COLUMNS = REQUIRED + OPTIONAL
SCOPE_SEPARATOR = ";"  # a comma already separates CSV fields
MAX_FILE_BYTES = 1_000_000  # some 5,000 lines: far more keys than a desk holds
MAX_LINES = 1_000
NOTE_MAX = 500
SCOPE_NAME_MAX = 20  # longer is not a scope name but a value put under the wrong column
CREDENTIAL_COLUMNS = ("api_key", "api_secret", "passphrase")
SHOWN_COLUMNS = ("label", "scopes", "note")  # what the preview and the summary may show
FORMATS = ("csv", "json")
TEMPLATE_ROW = {
    "label": "mm-bot-01",
    "api_key": "24 hexadecimal characters from KuCoin API Management",
    "api_secret": "the Secret UUID shown when the key was created",
    "passphrase": "the API Passphrase typed when the key was created",
    "scopes": SCOPE_SEPARATOR.join(SCOPES[:2]),
    "note": "optional: who or what uses the key",
}


class ImportFileError(ValueError):
    """The file cannot be read as a file of keys; the message says what to fix."""


@dataclass(frozen=True)
class KeyLine:
    """One line of the file: its values as written, or why they cannot be read."""

    line: int  # where it starts in a CSV file (the header is line 1); the item (from 1) in JSON
    label: str = ""
    api_key: str = field(default="", repr=False)
    api_secret: Secret = field(default_factory=lambda: Secret(""), repr=False)
    passphrase: Secret = field(default_factory=lambda: Secret(""), repr=False)
    scopes: tuple[str, ...] = ()
    note: str = ""
    problem: str | None = None  # the line cannot be read: nothing of it is checked


def template(file_format: str = "csv") -> str:
    """Return a file to fill in: the columns, and one line saying what goes in each."""
    if file_format == "json":
        return json.dumps([TEMPLATE_ROW], indent=2) + "\n"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerow(TEMPLATE_ROW)
    return out.getvalue()


def read_key_file(data: bytes, name: str = "") -> list[KeyLine]:
    """Return the lines of a CSV or JSON file of keys; raise ImportFileError for the file."""
    if len(data) > MAX_FILE_BYTES:
        raise ImportFileError(
            f"The file is {len(data) / 1_000_000:.1f} MB; a file of keys is at most "
            f"{MAX_FILE_BYTES // 1_000} KB ({MAX_LINES:,} lines). Split it and import each part."
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ImportFileError(
            f"The file is not UTF-8 text (byte {error.start + 1} cannot be read): save it as "
            "UTF-8 (in a spreadsheet: CSV UTF-8) and import it again."
        ) from None
    if not text.strip():
        raise ImportFileError(
            "The file is empty: fill in the template (one line per key under the header)."
        )
    is_json = name.lower().endswith(".json") or text.lstrip()[:1] in ("[", "{")
    lines = _json_lines(text) if is_json else _csv_lines(text)
    if not lines:
        raise ImportFileError("The file has its header but no key: add one line per key.")
    if len(lines) > MAX_LINES:
        raise ImportFileError(
            f"The file has {len(lines):,} keys; import at most {MAX_LINES:,} at a time."
        )
    return lines


def _check_columns(columns: list[str], where: str) -> None:
    """Raise ImportFileError when required columns are missing or unknown ones are present."""
    if len(columns) == 1 and (separator := next((c for c in ";\t" if c in columns[0]), None)):
        shown = "a tab" if separator == "\t" else repr(separator)
        raise ImportFileError(
            f"{where} separates its columns with {shown}: save the file as CSV with commas "
            "between columns (or fill in the template)."
        )
    missing = [c for c in REQUIRED if c not in columns]
    unknown = [c for c in columns if c not in COLUMNS]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    problems = []
    if missing:
        problems.append(f"missing {_names(missing)}")
    if unknown:
        problems.append(f"unknown {_names(unknown)}")
    if repeated:
        problems.append(f"repeated {_names(repeated)}")
    if problems:
        raise ImportFileError(
            f"{where}: {'; '.join(problems)}. The columns are {', '.join(REQUIRED)} and, "
            f"optionally, {', '.join(OPTIONAL)} (download the template)."
        )


def _names(columns: list[str]) -> str:
    """Return column names for a message (an unknown header is shown, but cut short)."""
    shown = [repr(c[:40]) if c else "an empty column name" for c in columns]
    return ("column " if len(shown) == 1 else "columns ") + ", ".join(shown)


def _csv_lines(text: str) -> list[KeyLine]:
    """Return the lines of a CSV file under its header."""
    rows = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(rows)
        columns = [c.strip().lower() for c in header]
        _check_columns(columns, "The header (line 1)")
        lines = []
        number = rows.line_num + 1  # where the next record starts (a quoted value may span lines)
        for fields in rows:
            start_next = rows.line_num + 1
            if not any(value.strip() for value in fields):
                pass  # a blank line
            elif len(fields) != len(columns):
                lines.append(KeyLine(number, problem=_field_count(len(fields), len(columns))))
            else:
                lines.append(_key_line(number, dict(zip(columns, fields, strict=True))))
            number = start_next
    except csv.Error as error:
        # csv's messages name the problem, never the value ("unexpected end of data").
        raise ImportFileError(
            f"Line {rows.line_num} cannot be read as CSV ({error}): a value holding a comma, "
            "a quote or a line break must be in double quotes, with its quotes doubled."
        ) from None
    return lines


def _field_count(found: int, expected: int) -> str:
    """Return why a CSV line with the wrong number of fields is not read."""
    if found > expected:
        return (
            f"This line has {found} fields, the header {expected}: a value holding a comma "
            "must be in double quotes. Nothing of this line was read."
        )
    return f"This line has {found} fields, the header {expected}: fill in every column."


def _json_lines(text: str) -> list[KeyLine]:
    """Return the lines of a JSON file: a list of objects (or {"keys": [...]})."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        # The position only: the decoder's message holds no value of the file.
        raise ImportFileError(
            f"The file is not valid JSON (line {error.lineno}, column {error.colno}: "
            f"{error.msg}). Fix it, or use the CSV template."
        ) from None
    items = document.get("keys") if isinstance(document, dict) else document
    if not isinstance(items, list):
        raise ImportFileError(
            'A JSON file of keys is a list of objects (or {"keys": [...]}), one per key, with '
            f"the fields {', '.join(REQUIRED)} and, optionally, {', '.join(OPTIONAL)}."
        )
    lines = []
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            lines.append(KeyLine(number, problem="This item is not an object with the fields."))
            continue
        _check_columns([str(name) for name in item], f"Item {number}")
        values = {name: _json_text(value) for name, value in item.items()}
        wrong = [name for name, value in values.items() if value is None]
        if wrong:
            lines.append(
                KeyLine(number, problem=f"Give {', '.join(wrong)} as text (in double quotes).")
            )
            continue
        lines.append(_key_line(number, values))
    return lines


def _json_text(value: object) -> str | None:
    """Return a JSON value as the text a CSV cell would hold; None for what cannot be text."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return SCOPE_SEPARATOR.join(value)  # scopes given as a list
    if value is None:
        return ""
    return None


def _key_line(number: int, values: dict[str, str]) -> KeyLine:
    """Return one line's values; its note checked here, the rest judged by binding's rules."""
    note = " ".join(values.get("note", "").split())
    scopes = tuple(s.strip() for s in values["scopes"].split(SCOPE_SEPARATOR) if s.strip())
    problem = _misplaced_credential(values) or _scope_shape(scopes)
    if problem is None and len(note) > NOTE_MAX:
        problem = f"The note is {len(note)} characters; keep it under {NOTE_MAX}."
    if problem:
        return KeyLine(number, problem=problem)  # nothing of it is shown or checked
    return KeyLine(
        number,
        label=values["label"],
        api_key=values["api_key"],
        api_secret=Secret(values["api_secret"]),
        passphrase=Secret(values["passphrase"]),
        scopes=scopes,
        note=note,
    )


def _misplaced_credential(values: dict[str, str]) -> str | None:
    """Return why a shown column (label, scopes, note) seems to hold a credential, or None."""
    credentials = {values[name].strip() for name in CREDENTIAL_COLUMNS} - {""}
    for name in SHOWN_COLUMNS:
        value = values.get(name, "").strip()
        if value and (value in credentials or any(s.fullmatch(value) for s in SHAPES.values())):
            return (
                f"The {name} column holds what looks like a credential: put each value under "
                "its column (compare with the template). Nothing of this line was read or shown."
            )
    return None


def _scope_shape(scopes: tuple[str, ...]) -> str | None:
    """Return why the scopes column does not hold scope names at all, or None."""
    if all(scope.isalpha() and len(scope) <= SCOPE_NAME_MAX for scope in scopes):
        return None  # which names are known is binding's rule
    return (
        f"The scopes column holds something other than scope names: write them as "
        f"{SCOPE_SEPARATOR.join(SCOPES)} (any of them, separated by {SCOPE_SEPARATOR!r}). "
        "Nothing of this line was read or shown."
    )
