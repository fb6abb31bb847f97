"""The operator's settings: the health policy they define, the Settings form, the change log.

Every number is held to its range (lib.store.SETTING_RANGES) the same way here, in the
rules and on the Settings page, so a value stored before its range existed breaks nothing.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from lib import store
from lib.health.policy import HealthPolicy
from lib.kucoin.constants import ACCEPTED_KEY_VERSIONS, DEFAULT_KEY_VERSION
from lib.store import MAX_EGRESS_IPS, MAX_FUTURES_CURRENCIES, SETTING_RANGES, invalid_settings
from lib.store.models import AuditAction, Settings
from lib.store.settings import ALERT_SETTING_RANGES

if TYPE_CHECKING:
    from lib.console import Console

__all__ = [
    "ACCEPTED_KEY_VERSIONS",
    "ALERT_SETTING_RANGES",
    "MAX_EGRESS_IPS",
    "MAX_FUTURES_CURRENCIES",
    "SETTING_RANGES",
    "coverage_summary",
    "invalid_settings",
    "latest_seen_ip",
    "parse_list",
    "policy_changes",
    "policy_form",
    "policy_from_settings",
    "save_settings",
    "settings_changes",
]


def policy_from_settings(settings: Settings) -> HealthPolicy:
    """Return the health policy for the operator's settings, each number held to its range."""
    # A value stored before its range existed must not break the rules (or overflow a timedelta).
    return HealthPolicy(
        egress_ips=settings.egress_ips,
        freshness_period=timedelta(seconds=store.setting_in_range(settings, "freshness_seconds")),
        freshness_grace=timedelta(
            seconds=store.setting_in_range(settings, "freshness_grace_seconds")
        ),
        rotation_age=timedelta(days=store.setting_in_range(settings, "rotation_age_days")),
    )


def parse_list(text: str) -> list[str]:
    """Return the entries of a list typed one per line or separated by , ; or spaces."""
    return [item for item in re.split(r"[\s,;]+", text or "") if item]


def policy_form(settings: Settings) -> dict[str, Any]:
    """Return what the policy form shows: each setting as the rules apply it, in its unit."""
    shown: dict[str, Any] = {
        name: round(store.setting_in_range(settings, name) / rule.per_unit)
        for name, rule in SETTING_RANGES.items()
    }
    known_version = settings.key_version in ACCEPTED_KEY_VERSIONS
    shown["key_version"] = settings.key_version if known_version else DEFAULT_KEY_VERSION
    shown["futures_currencies"] = ", ".join(settings.futures_currencies)
    return shown


def policy_changes(settings: Settings, typed: dict[str, Any]) -> dict[str, Any]:
    """Return the settings to save from the policy form, in stored units."""
    # Only what the operator changed, and what must be corrected: an untouched field is
    # never rewritten, so the change log lists only what the operator did.
    shown, problems = policy_form(settings), invalid_settings(settings)
    changes = {
        name: value for name, value in typed.items() if value != shown[name] or name in problems
    }
    for name, rule in SETTING_RANGES.items():
        if name in changes:
            changes[name] = int(changes[name]) * rule.per_unit
    if "futures_currencies" in changes:
        changes["futures_currencies"] = parse_list(changes["futures_currencies"])
    return changes


def save_settings(console: Console, **changes: Any) -> Settings:
    """Validate, store and audit settings changes; raise store.InvalidInput with the reason."""
    console.require_admin("change settings")
    with console.transaction() as session:
        return store.update_settings(session, actor=console.actor, **changes)


def latest_seen_ip(console: Console) -> tuple[str, datetime] | None:
    """Return the IP KuCoin most recently reported seeing, and when; None before any check."""
    with console.reading() as session:
        latest = store.latest_probes_frame(session, columns=["seen_ip"])
    seen = latest[latest["seen_ip"].notna()]
    if seen.empty:
        return None
    newest = seen.sort_values("checked_at").iloc[-1]
    return str(newest["seen_ip"]), newest["checked_at"].to_pydatetime()


def coverage_summary(fleet: pd.DataFrame) -> pd.DataFrame:
    """Return how many accounts show each whitelist coverage, most common first."""
    summary = fleet["whitelist"].astype("string").fillna("key info not read yet")
    counts = summary.value_counts()
    return pd.DataFrame({"whitelist": counts.index.astype(str), "accounts": counts.to_numpy()})


def settings_changes(console: Console, limit: int = 20) -> pd.DataFrame:
    """Return the latest settings changes, newest first: when, who, what from and to."""
    with console.reading() as session:
        events = store.audit_log(session, action=AuditAction.CHANGE_SETTINGS, limit=limit)
    rows = [
        {
            "at": event.at,
            "actor": event.actor,
            "setting": name,
            "from": _plain(change.get("from")),
            "to": _plain(change.get("to")),
        }
        for event in events
        for name, change in event.details.items()
        if isinstance(change, dict)
    ]
    return pd.DataFrame(rows, columns=["at", "actor", "setting", "from", "to"])


def _plain(value: Any) -> str:
    """Return a setting's value as text ("a, b" for lists)."""
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "(none)"
    return "" if value is None else str(value)
