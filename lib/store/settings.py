"""Operator settings: one row per changed setting, each value checked against its range."""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlmodel import Session, select

from lib.kucoin.constants import ACCEPTED_KEY_VERSIONS, MAX_WHITELIST_IPS
from lib.store.audit import record_audit
from lib.store.errors import InvalidInput
from lib.store.models import AuditAction, SettingRow, Settings

_SETTING_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def get_settings(session: Session) -> Settings:
    """Return the operator settings, defaults filled in."""
    stored = {row.name: row.value for row in session.exec(select(SettingRow)).all()}
    values = {}
    for name, value in stored.items():
        if name in _SETTING_FIELDS:
            values[name] = tuple(value) if isinstance(value, list) else value
    return Settings(**values)


@dataclass(frozen=True)
class SettingRange:
    """The whole numbers a setting accepts, stated in the unit the operator types."""

    label: str
    unit: str
    low: int
    high: int
    per_unit: int = 1  # stored units in one operator unit: 60 seconds in a minute

    def describe(self) -> str:
        """Return the range as the operator reads it, e.g. "1 to 10,080 minutes"."""
        return f"{self.low:,} to {self.high:,} {self.unit}"

    def clean(self, value: Any) -> int:
        """Return the value (stored units) when a whole number in range; else raise InvalidInput."""
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise InvalidInput(f"{self.label} must be a whole number of {self.unit}.")
        try:
            number = int(value)
        except (TypeError, ValueError, OverflowError):
            raise InvalidInput(f"{self.label} must be a whole number of {self.unit}.") from None
        if isinstance(value, float) and number != value:
            raise InvalidInput(f"{self.label} must be a whole number of {self.unit}.")
        if not self.low * self.per_unit <= number <= self.high * self.per_unit:
            whole, part = divmod(number, self.per_unit)
            given = f"{whole:,}" if not part else f"{number / self.per_unit:,.2f}"
            given = f"{given} is" if len(given) <= 20 else "the value given is far"
            raise InvalidInput(f"{self.label} must be {self.describe()}; {given} out of range.")
        return number

    def clamp(self, value: Any, default: int) -> int:
        """Return a stored value held to the range (the default when it is not a number)."""
        try:
            number = int(value)
        except (TypeError, ValueError, OverflowError):
            return default
        return min(max(number, self.low * self.per_unit), self.high * self.per_unit)


# Every number the health rules read, with the range that keeps them meaningful.
SETTING_RANGES = {
    "freshness_seconds": SettingRange("Freshness period", "minutes", 1, 7 * 24 * 60, 60),
    "freshness_grace_seconds": SettingRange("Grace", "minutes", 0, 24 * 60, 60),
    "rotation_age_days": SettingRange("Rotate keys after", "days", 1, 10 * 365),
}
# The alerts' numbers (lib.console.alerts), shown in the Settings page's Alerts section.
ALERT_SETTING_RANGES = {
    "alert_reminder_hours": SettingRange("Remind every", "hours (0: never)", 0, 7 * 24),
    "deletion_warning_days": SettingRange("Warn of KuCoin's deletion", "days ahead", 1, 30),
}
_RANGES = SETTING_RANGES | ALERT_SETTING_RANGES
MAX_URL_CHARS = 500
MAX_EGRESS_IPS = MAX_WHITELIST_IPS  # every key should whitelist them all
MAX_FUTURES_CURRENCIES = 10  # each check reads one futures overview per currency


def setting_in_range(settings: Settings, name: str) -> int:
    """Return a numeric setting as the health rules apply it: held to its range."""
    return _RANGES[name].clamp(getattr(settings, name), getattr(Settings(), name))


def invalid_settings(settings: Settings) -> dict[str, str]:
    """Return, by name, why each stored setting is not acceptable (stored before a rule)."""
    problems = {}
    for name in _SETTING_FIELDS:
        try:
            _clean_setting(name, getattr(settings, name))
        except InvalidInput as error:
            problems[name] = str(error)
    return problems


def _clean_list(value: Any, what: str, most: int, why: str) -> list[str]:
    """Return a setting's entries (a string is one entry); raise InvalidInput past `most`."""
    items = [value] if isinstance(value, str) else list(value)
    if len(items) > most:
        raise InvalidInput(f"{what}: at most {most:,} ({why}); {len(items):,} given.")
    return [str(item) for item in items]


def _clean_setting(name: str, value: Any) -> Any:
    """Return a setting's value in its stored type, or raise InvalidInput naming the rule."""
    if name in _RANGES:
        return _RANGES[name].clean(value)
    if name == "console_url":
        return clean_console_url(value)
    if name == "egress_ips":
        why = "KuCoin lets a key whitelist at most that many"
        cleaned = []
        for item in _clean_list(value, "Egress IPs", MAX_EGRESS_IPS, why):
            try:
                ip = str(ipaddress.ip_address(item.strip()))
            except ValueError:
                raise InvalidInput(f"{item!r} is not an IP address.") from None
            if ip not in cleaned:
                cleaned.append(ip)
        return tuple(cleaned)
    if name == "futures_currencies":
        why = "each check reads one overview per currency"
        cleaned = []
        for item in _clean_list(value, "Futures currencies", MAX_FUTURES_CURRENCIES, why):
            ccy = item.strip().upper()
            if not ccy.isalnum() or len(ccy) > 16:
                raise InvalidInput(f"{item!r} is not a currency code.")
            if ccy not in cleaned:
                cleaned.append(ccy)
        return tuple(cleaned)
    return clean_key_version(value)  # key_version, the one text setting


def clean_console_url(value: Any) -> str:
    """Return the console's address (http or https, no credentials, no query), or ""."""
    url = str(value or "").strip().rstrip("/")
    if not url:
        return ""
    parsed = urlsplit(url)
    if (
        parsed.scheme not in ("http", "https")
        or not parsed.hostname
        or parsed.username
        or parsed.password
        or parsed.query
        or parsed.fragment
        or len(url) > MAX_URL_CHARS
    ):
        raise InvalidInput(
            "The console's address must be an http:// or https:// address such as "
            "https://bindwatch.example.com, without a user name, password or query."
        )
    return url


def clean_key_version(value: Any) -> str:
    """Return a KC-API-KEY-VERSION KuCoin accepts, as text; raise InvalidInput otherwise."""
    if str(value) not in ACCEPTED_KEY_VERSIONS:
        raise InvalidInput(f"Key version must be one of {', '.join(ACCEPTED_KEY_VERSIONS)}.")
    return str(value)


def update_settings(session: Session, *, actor: str, **changes: Any) -> Settings:
    """Change operator settings by name, audit what changed, and return the new settings."""
    unknown = sorted(set(changes) - set(_SETTING_FIELDS))
    if unknown:
        raise InvalidInput(
            f"Unknown setting(s) {', '.join(unknown)}; known: {', '.join(_SETTING_FIELDS)}."
        )
    current = get_settings(session)
    now = datetime.now(UTC)
    changed: dict[str, dict[str, Any]] = {}
    for name, raw in changes.items():
        value = _clean_setting(name, raw)
        old = getattr(current, name)
        if value == old:
            continue
        stored = list(value) if isinstance(value, tuple) else value
        session.merge(SettingRow(name=name, value=stored, updated_at=now, updated_by=actor))
        changed[name] = {"from": list(old) if isinstance(old, tuple) else old, "to": stored}
    if changed:
        record_audit(
            session, actor=actor, action=AuditAction.CHANGE_SETTINGS, at=now, details=changed
        )
        session.flush()
    return get_settings(session)
