"""The fleet as a file: CSV for a spreadsheet (the Fleet page), JSON for a script (`status`).

Both carry the same fields, CSV_COLUMNS; the key itself, its secret and passphrase are never
in the fleet table, so none can leak into either.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd

# Everything an operator may share, in this order.
CSV_COLUMNS = (
    "account_id",
    "label",
    "status",
    "diagnosis",
    "hint",
    "risks",
    "scopes",
    "spot",
    "futures",
    "margin",
    "permissions",
    "dangerous_permissions",
    "whitelist",
    "seen_ip",
    "last_sync_at",
    "sync_age_s",
    "going_stale_at",
    "freshness",
    "key_created_at",
    "key_age_days",
    "expires_at",
    "is_master",
    "uid",
    "sub_name",
    "last_outcome",
    "last_code",
    "last_message",
    "last_checked_at",
    "clock_offset_ms",
    "paused",
    "unverified",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_column(values: pd.Series) -> pd.Series:
    """Return one CSV column: numbers as numbers, ISO 8601 UTC times, text with no formulas."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ").fillna("")
    if pd.api.types.is_numeric_dtype(values.dtype):
        return values  # -27 is a number, not a formula: quoting it would make it text
    text = values.astype("string").fillna("")
    # Labels and KuCoin messages are outside text: a spreadsheet must not run them.
    is_text = values.astype(object).map(lambda value: isinstance(value, str)).astype(bool)
    formula = text.str.startswith(_FORMULA_START).fillna(False).astype(bool) & is_text
    return text.where(~formula, "'" + text)


def fleet_csv(fleet: pd.DataFrame) -> bytes:
    """Return the fleet table as UTF-8 CSV (CSV_COLUMNS, worst first); never a secret."""
    seconds = fleet["sync_age"].dt.total_seconds().round().astype("Int64")
    frame = fleet.assign(sync_age_s=seconds)[list(CSV_COLUMNS)]
    text = pd.DataFrame({name: _csv_column(frame[name]) for name in CSV_COLUMNS})
    # CRLF rows (RFC 4180): the writer then quotes any cell holding a CR or LF of its own.
    return text.to_csv(index=False, lineterminator="\r\n").encode("utf-8")


def _json_value(value: object) -> object:
    """Return a cell as JSON: ISO 8601 UTC times, null for missing, plain numbers."""
    # No formula guard here, unlike the CSV: JSON is read by programs, never run as a sheet.
    if value is None or (not isinstance(value, list | tuple) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return pd.Timestamp(value).tz_convert(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, pd.Timedelta):
        return round(value.total_seconds())
    if hasattr(value, "item"):
        return value.item()  # numpy scalars
    return value if isinstance(value, bool | int | float) else str(value)


def fleet_json(fleet: pd.DataFrame) -> str:
    """Return the fleet as a JSON list, worst first, with the CSV export's fields."""
    frame = fleet.assign(sync_age_s=fleet["sync_age"])
    records = [
        {name: _json_value(value) for name, value in zip(CSV_COLUMNS, row, strict=True)}
        for row in frame[list(CSV_COLUMNS)].itertuples(index=False, name=None)
    ]
    return json.dumps(records, indent=2, ensure_ascii=False)
