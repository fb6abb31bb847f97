"""Transitions that matter, said once: when an account's change is an alert, and its words.

An account is working (OK, AT_RISK, DEGRADED), failing (Status.failing) or neither (NEW,
PAUSED: never an alarm). Alerted, each once: working → failing, failing → working, one
failure kind → another, and a new risk (drift since binding, KuCoin's 30-day deletion within
the warning days, a key past the rotation age). While an account stays failing a reminder
repeats every `reminder` (off by default). An account that went between failing and working
`flap_changes` times within `flap_window` is flapping: one message says so, its changes are
recorded but not sent, and one more says where it settled once it has been quiet for the
window. Accounts in a fleet
incident are said once, in the incident's message, not one by one, and so is their recovery
when the incident ends.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from lib.health.drift import Drift
from lib.health.incident import FleetIncident
from lib.health.policy import HealthPolicy
from lib.health.risks import IP_RESTRICTION
from lib.health.status import Status
from lib.kucoin.diagnosis import API_MANAGEMENT


class Kind(enum.StrEnum):
    """What changed."""

    FAILING = "failing"  # working (or new) → failing
    RECOVERED = "recovered"  # failing → working
    CHANGED = "changed"  # one failure kind → another
    RISK = "risk"  # a new risk
    REMINDER = "reminder"  # still failing
    FLAPPING = "flapping"  # changing back and forth: summarised
    SETTLED = "settled"  # quiet again after flapping
    INCIDENT = "incident"  # most accounts failing the same way
    INCIDENT_OVER = "incident_over"


STATUS_CHANGES = (Kind.FAILING, Kind.RECOVERED, Kind.CHANGED)
IN_INCIDENT = "part of a fleet incident: said once in its messages"
WHILE_FLAPPING = "flapping: summarised, not sent"


@dataclass(frozen=True)
class AlertPolicy:
    """When a change is sent: reminders, flapping, the 30-day rule's warning."""

    reminder: timedelta | None = None  # None: no reminders
    flap_window: timedelta = timedelta(minutes=15)
    flap_changes: int = 3  # status changes within the window that make an account flapping
    deletion_warning: timedelta = timedelta(days=7)


@dataclass(frozen=True)
class Remembered:
    """What alerts were last decided on for one account."""

    status: Status
    risks: frozenset[str]
    changed_at: datetime
    alerted_at: datetime | None = None
    recent_changes: tuple[datetime, ...] = ()
    flapping: bool = False


@dataclass(frozen=True)
class AccountNow:
    """One account as the rules judge it now: its status, words and alertable risks."""

    account_id: int
    label: str
    status: Status
    diagnosis: str
    hint: str
    risks: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (what, fix)


@dataclass(frozen=True)
class Event:
    """One transition to record; `alerted` False when it is recorded but not sent."""

    kind: Kind
    old_status: Status | None
    new_status: Status | None
    detail: tuple[tuple[str, str], ...] = ()  # new risks: (what, fix)
    alerted: bool = True
    note: str | None = None


def condition(status: Status | None) -> str | None:
    """Return "failing", "working" or None (not checked yet, paused, unknown)."""
    if status is None or status in (Status.NEW, Status.PAUSED):
        return None
    return "failing" if status.failing else "working"


def status_change(old: Status | None, new: Status) -> Kind | None:
    """Return the kind of a status change that matters, None for one that does not."""
    before, after = condition(old), condition(new)
    if after == "failing" and before != "failing":
        return Kind.FAILING
    if after == "working" and before == "failing":
        return Kind.RECOVERED
    if after == before == "failing" and old is not new:
        return Kind.CHANGED
    return None


def decide(
    before: Remembered | None,
    now_state: AccountNow,
    now: datetime,
    policy: AlertPolicy,
    *,
    in_incident: bool = False,
) -> tuple[tuple[Event, ...], Remembered]:
    """Return the events of one account's change since `before`, and what to remember now.

    `in_incident`: its status change is part of a fleet incident (beginning or ending), which
    the incident's own message says.
    """
    old = before.status if before is not None else None
    new = now_state.status
    events: list[Event] = []
    recent = tuple(
        t for t in (before.recent_changes if before else ()) if now - t < policy.flap_window
    )
    flapping = before.flapping if before else False
    alerted_at = before.alerted_at if before else None
    changed_at = before.changed_at if before and before.status is new else now

    kind = status_change(old, new)
    if kind is not None:
        if kind is not Kind.CHANGED:  # flapping is going back and forth, failing and working
            recent = (*recent, now)
        if in_incident:
            events.append(Event(kind, old, new, alerted=False, note=IN_INCIDENT))
        elif len(recent) >= policy.flap_changes:
            if flapping:
                events.append(Event(kind, old, new, alerted=False, note=WHILE_FLAPPING))
            else:
                flapping = True
                events.append(Event(Kind.FLAPPING, old, new))
                alerted_at = now
        else:
            events.append(Event(kind, old, new))
            alerted_at = now
    elif flapping and not recent:
        flapping = False  # quiet for a whole window: say where it settled
        events.append(Event(Kind.SETTLED, old, new))
        alerted_at = now
    elif (
        policy.reminder is not None
        and condition(new) == "failing"
        and not flapping
        and now - (alerted_at or changed_at) >= policy.reminder
    ):
        events.append(Event(Kind.REMINDER, old, new))
        alerted_at = now

    known = before.risks if before else frozenset()
    # A paused account is never an alarm: its risks are said once it is resumed.
    risks = known if new is Status.PAUSED else frozenset(now_state.risks)
    fresh = tuple(now_state.risks[k] for k in sorted(risks - known))
    if fresh:
        events.append(Event(Kind.RISK, old, new, detail=fresh))
    remembered = Remembered(
        status=new,
        risks=risks,
        changed_at=changed_at,
        alerted_at=alerted_at,
        recent_changes=recent,
        flapping=flapping,
    )
    return tuple(events), remembered


def first_sight(now_state: AccountNow, now: datetime) -> Remembered:
    """Return what to remember of an account seen for the first time by an installation."""
    return Remembered(now_state.status, frozenset(now_state.risks), now)


def incident_key(incident: FleetIncident | None) -> str | None:
    """Return what identifies an incident: the status and code the accounts share."""
    if incident is None:
        return None
    return f"{incident.status.value}:{incident.code or ''}"


def incident_change(incident: FleetIncident | None, open_key: str | None) -> Kind | None:
    """Return INCIDENT when a new incident began, INCIDENT_OVER when the open one ended."""
    key = incident_key(incident)
    if key is not None and key != open_key:
        return Kind.INCIDENT
    if key is None and open_key is not None:
        return Kind.INCIDENT_OVER
    return None


def alertable_risks(
    key_age_days: int | None,
    expires_at: datetime | None,
    drifts: tuple[Drift, ...],
    health: HealthPolicy,
    policy: AlertPolicy,
    now: datetime,
) -> dict[str, tuple[str, str]]:
    """Return the risks that alert, by stable key: drift, deletion soon, a key past rotation."""
    found = {d.key: (f"{d.what} ({d.change})", d.fix) for d in drifts}
    if expires_at is not None and expires_at - now <= policy.deletion_warning:
        found["deletion"] = (
            f"KuCoin may delete the key on {expires_at:%Y-%m-%d} under its "
            f"{health.inactivity_rule.days}-day rule (trading without an IP whitelist)",
            f"In {IP_RESTRICTION}, whitelist the platform's IPs.",
        )
    if key_age_days is not None and health.key_too_old(timedelta(days=key_age_days)):
        found["old_key"] = (
            f"key is {key_age_days} days old (rotate every {health.rotation_age.days} days)",
            f"Create a new key in {API_MANAGEMENT} and rotate this account's credentials.",
        )
    return found


# --- the words ----------------------------------------------------------------------------------


def _title(status: Status | None) -> str:
    return status.title if status is not None else "Not known"


def account_message(
    event: Event, account: AccountNow, link: str | None, flap_window: timedelta
) -> tuple[str, str]:
    """Return (title, body) of one account's alert: label, old → new, diagnosis, fix, link."""
    change = f"{_title(event.old_status)} → {_title(event.new_status)}"
    headline = {
        Kind.FAILING: f"{account.label} is failing: {_title(event.new_status)}",
        Kind.RECOVERED: f"{account.label} works again",
        Kind.CHANGED: f"{account.label} fails another way: {_title(event.new_status)}",
        Kind.REMINDER: f"{account.label} is still failing: {_title(event.new_status)}",
        Kind.FLAPPING: f"{account.label} is flapping",
        Kind.SETTLED: f"{account.label} stopped flapping: {_title(event.new_status)}",
        Kind.RISK: f"{account.label} has a new risk",
    }[event.kind]
    lines = [f"Account: {account.label}", f"Status: {change}"]
    if event.kind is Kind.FLAPPING:
        minutes = int(flap_window.total_seconds() // 60)
        lines.append(
            f"It changed status several times within {minutes} minutes; further changes are "
            "recorded on its Account page and not sent until it has been quiet that long."
        )
    if event.kind is Kind.RISK:
        for what, fix in event.detail:
            lines += [f"Risk: {what}", f"Fix: {fix}"]
    else:
        lines += [f"Diagnosis: {account.diagnosis}", f"Fix: {account.hint}"]
    if link:
        lines.append(f"Open: {link}")
    return f"bindwatch: {headline}", "\n".join(lines)


def incident_message(
    kind: Kind, incident: FleetIncident | None, link: str | None
) -> tuple[str, str]:
    """Return (title, body) of a fleet incident's message, or of its end."""
    if kind is Kind.INCIDENT_OVER or incident is None:
        lines = ["Fleet incident over: most recently checked accounts no longer fail the same way."]
        if link:
            lines.append(f"Open: {link}")
        return "bindwatch: fleet incident over", "\n".join(lines)
    lines = [
        f"Fleet incident: {incident.summary}.",
        f"Fix: {incident.fix}",
        "The accounts in it are not alerted one by one.",
    ]
    if link:
        lines.append(f"Open: {link}")
    return f"bindwatch: fleet incident, {incident.title}", "\n".join(lines)
