"""Alerts: tell the operators' channels when something changes, once, off the check path.

Whatever stores a check (the watcher, `refresh`, "Refresh all", "Check now") wakes this
process's alert worker (`checks_stored`) and goes on. The worker judges the whole fleet
(lib.health.transitions decides what is a transition and its words), records each transition
with one pending delivery per channel in one transaction, then sends the deliveries with
apprise, each retried with back-off (tenacity). A failure is recorded on the delivery (the
Settings page lists it) and logged; it never reaches a check.

Channels are apprise URLs (`json://host:port/path`, `slack://...`, `tgram://...`): they hold
tokens, so they are sealed by the vault like credentials and only ever shown masked.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import apprise
import pandas as pd
from tenacity import Retrying, stop_after_attempt, wait_exponential

from lib import store
from lib.console import snapshot as kept_fleets
from lib.console.fleet import FleetSnapshot, data_version, fleet_snapshot
from lib.health.drift import key_drift, masked_note
from lib.health.status import Status
from lib.health.transitions import (
    AccountNow,
    AlertPolicy,
    Event,
    Kind,
    Remembered,
    account_message,
    alertable_risks,
    decide,
    first_sight,
    incident_change,
    incident_key,
    incident_message,
)
from lib.secret import Secret
from lib.store import alerts as alert_store
from lib.store.errors import InvalidInput
from lib.store.models import AlertChannel, Settings, Transition
from lib.vault import VaultError
from lib.vault.vault import channel_place

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlmodel import Session

    from lib.console import Console

log = logging.getLogger(__name__)
# apprise's own log lines may hold a channel's host or whole URL (its tokens, at DEBUG): none
# below WARNING is made, none reaches the process's log; what a delivery said is logged here,
# scrubbed of every part of the URL.
_APPRISE_LOG = logging.getLogger("apprise")
_APPRISE_LOG.setLevel(logging.WARNING)
_APPRISE_LOG.propagate = False

ACCOUNT_URL_PATH = "account"  # the Account page's address (pages/account.py), ?account=ID
ATTEMPTS = 4  # tries per delivery: the first and three retries
TEST_ATTEMPTS = 2  # "Send test" waits for the answer: fewer retries
BACKOFF_S = 1.0  # the first retry's wait; doubled each time
BACKOFF_MAX_S = 30.0
CLAIM_S = 300.0  # a sender that died mid-delivery leaves it to another after this
IDLE_EXIT_S = 60.0  # an alert worker idle this long ends
STOP_WAIT_S = 60.0  # the longest a closing console waits for its alerts in hand
ALERTS_ACTOR = "alerts"  # who the worker acts as (it records baselines, never an action)
TEST_TITLE = "bindwatch: test alert"
TEST_BODY = "This channel receives bindwatch's alerts. Nothing to do."


# --- channels -----------------------------------------------------------------------------------


def mask_url(url: str) -> str:
    """Return a channel URL as it may be shown: its scheme and its last four characters."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://…{rest[-4:]}" if len(rest) > 8 else f"{scheme}://…"


def check_channel_url(url: str) -> str:
    """Return the URL when apprise can send to it; raise InvalidInput saying what to fix."""
    url = url.strip()
    if not url:
        raise InvalidInput("Give the channel's apprise URL, e.g. json://host:port/path.")
    if len(url) > store.settings.MAX_URL_CHARS * 4:
        raise InvalidInput("That channel URL is too long to be an apprise URL.")
    if not apprise.Apprise().add(url):
        scheme = url.partition("://")[0] if "://" in url else "(none)"
        raise InvalidInput(
            f"apprise cannot send to that URL (scheme {scheme!r}): use one of its URL forms, "
            "e.g. json://host:port/path, slack://TokenA/TokenB/TokenC, tgram://bottoken/ChatID, "
            "mailto://user:password@example.com. Nothing was saved."
        )
    return url


def add_channel(console: Console, url: Secret | str) -> int:
    """Add a channel (sealed, audited); return its number."""
    console.require_admin("add an alert channel")
    plain = check_channel_url(url.reveal() if isinstance(url, Secret) else url)
    with console.transaction() as session:
        key_id = console.vault.lock_active_key(session)

        def seal(channel_id: int) -> tuple[str, str]:
            """Return the URL sealed in its row's place, and the key it was sealed with."""
            return console.vault.encrypt(plain, channel_place(channel_id), key_id=key_id), key_id

        return alert_store.add_channel(session, seal, mask_url(plain), actor=console.actor)


def remove_channel(console: Console, number: int) -> str:
    """Remove channel number N (audited); return its masked URL."""
    console.require_admin("remove an alert channel")
    with console.transaction() as session:
        return alert_store.remove_channel(session, int(number), actor=console.actor)


def channels(console: Console) -> pd.DataFrame:
    """Return the channels, masked: number, channel, added (UTC), by."""
    with console.reading() as session:
        rows = alert_store.list_channels(session)
    return pd.DataFrame(
        [(r.id, r.masked, r.created_at, r.created_by) for r in rows],
        columns=["number", "channel", "added", "by"],
    )


# --- sending ------------------------------------------------------------------------------------


class DeliveryFailed(Exception):
    """A channel did not take a message; the text never holds the channel's URL."""


def _scrubbed(text: str, url: str) -> str:
    """Return apprise's words with every part of the URL that may be a token taken out."""
    for part in sorted(set(re.split(r"[/:@?&=#]+", url)), key=len, reverse=True):
        if len(part) >= 4:
            text = text.replace(part, "…")
    return " ".join(text.split())[:500]


def send(url: str, title: str, body: str) -> None:
    """Send one message to one channel now; raise DeliveryFailed with the channel's answer."""
    sender = apprise.Apprise()
    sender.add(url)
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as said:
        sent = sender.notify(title=title, body=body)
    if not sent:
        answer = _scrubbed(said.getvalue(), url) or "apprise could not send the message"
        raise DeliveryFailed(answer)


def _send_retried(url: str, title: str, body: str, attempts: int) -> tuple[bool, int, str | None]:
    """Send with retries and back-off; return (sent, attempts made, the last error)."""
    tries = 0
    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=BACKOFF_S, max=BACKOFF_MAX_S),
        reraise=True,
    )
    try:
        for attempt in retrying:
            with attempt:
                tries += 1
                send(url, title, body)
    except DeliveryFailed as error:
        return False, tries, str(error)
    return True, tries, None


def deliver_pending(console: Console, *, attempts: int = ATTEMPTS) -> int:
    """Send every pending delivery (claimed, so two processes never send one twice); return sent."""
    sent = 0
    while True:
        now = datetime.now(UTC)
        with console.transaction() as session:
            claimed = alert_store.claim_deliveries(
                session, now=now, lease_until=now + timedelta(seconds=CLAIM_S)
            )
            jobs = []
            for row in claimed:
                channel = alert_store.get_channel(session, row.channel_id)
                jobs.append((row.id, row.title, row.body, channel))
        if not jobs:
            return sent
        for delivery_id, title, body, channel in jobs:
            ok, tries, error = _deliver(console, title, body, channel, attempts)
            with console.transaction() as session:
                alert_store.finish_delivery(
                    session, int(delivery_id), sent=ok, attempts=tries, error=error
                )
            sent += ok


def _deliver(
    console: Console, title: str, body: str, channel: AlertChannel | None, attempts: int
) -> tuple[bool, int, str | None]:
    """Send one claimed delivery to its channel; return (sent, attempts, error)."""
    if channel is None or channel.id is None:
        return False, 0, "the channel was removed before the message was sent"
    masked = channel.masked
    try:
        url = console.vault.decrypt(channel.url_enc, channel_place(channel.id))
    except VaultError as error:  # the vault's errors name the row, never the value
        log.warning("alert to %s not sent: its URL cannot be read: %s", masked, error)
        return False, 0, f"the channel's URL cannot be read: {error}"
    ok, tries, error = _send_retried(url.reveal(), title, body, attempts)
    del url
    if not ok:
        log.warning("alert %r to %s failed after %d attempts: %s", title, masked, tries, error)
    return ok, tries, error


@dataclass(frozen=True)
class TestOutcome:
    """One channel's answer to "Send test"."""

    channel: str  # its number and masked URL
    sent: bool
    error: str | None


def send_test(console: Console) -> list[TestOutcome]:
    """Send a test message to every channel now and record each delivery; return the answers."""
    console.require_admin("send a test alert")
    with console.transaction() as session:
        ids = [int(c.id) for c in alert_store.list_channels(session) if c.id is not None]
        alert_store.queue_message(session, TEST_TITLE, TEST_BODY, ids)
    deliver_pending(console, attempts=TEST_ATTEMPTS)
    with console.reading() as session:
        recent = alert_store.deliveries_frame(session, limit=max(len(ids), 1) * 4)
    tests = recent[recent["title"] == TEST_TITLE].drop_duplicates("channel_number")
    return [
        TestOutcome(
            f"channel {r.channel_number} ({r.channel})", r.state == alert_store.SENT, r.error
        )
        for r in tests.iloc[::-1].itertuples()
    ]


# --- deciding: the fleet's transitions ----------------------------------------------------------


def alert_policy(settings: Settings) -> AlertPolicy:
    """Return when changes are sent, from the settings."""
    hours = store.setting_in_range(settings, "alert_reminder_hours")
    days = store.setting_in_range(settings, "deletion_warning_days")
    return AlertPolicy(
        reminder=timedelta(hours=hours) if hours else None,
        deletion_warning=timedelta(days=days),
    )


def account_link(settings: Settings, account_id: int | None) -> str | None:
    """Return the address of an account's page (the Fleet's without one); None without a URL."""
    base = settings.console_url.rstrip("/")
    if not base:
        return None
    return f"{base}/{ACCOUNT_URL_PATH}?account={account_id}" if account_id else f"{base}/"


def _remembered(row: dict[str, Any]) -> Remembered:
    """Return what was remembered of an account, from its alert_state row."""
    return Remembered(
        status=Status(row["status"]),
        risks=frozenset(row["risks"]),
        changed_at=row["changed_at"],
        alerted_at=row["alerted_at"],
        recent_changes=tuple(datetime.fromisoformat(t) for t in row["recent_changes"]),
        flapping=row["flapping"],
    )


def _state_row(account_id: int, remembered: Remembered) -> dict[str, Any]:
    """Return an account's alert_state row for what to remember of it."""
    return {
        "account_id": account_id,
        "status": remembered.status.value,
        "risks": sorted(remembered.risks),
        "changed_at": remembered.changed_at,
        "alerted_at": remembered.alerted_at,
        "recent_changes": [t.isoformat() for t in remembered.recent_changes],
        "flapping": remembered.flapping,
    }


def _accounts_now(snapshot: FleetSnapshot, policy: AlertPolicy) -> list[AccountNow]:
    """Return every account of the fleet as the transition rules read it."""
    found = []
    for row in snapshot.fleet.itertuples(index=False):
        expires = row.expires_at
        age = row.key_age_days
        risks = alertable_risks(
            None if pd.isna(age) else int(age),
            None if pd.isna(expires) else expires.to_pydatetime(),
            snapshot.drifts.get(int(row.account_id), ()),
            snapshot.policy,
            policy,
            snapshot.as_of,
        )
        found.append(
            AccountNow(
                int(row.account_id),
                str(row.label),
                Status(str(row.status)),
                str(row.diagnosis),
                str(row.hint),
                risks,
            )
        )
    return found


OBSERVE_TRIES = 3  # judge again when checks were stored meanwhile, up to this many times


@dataclass(frozen=True)
class _Judged:
    """The fleet judged at one moment, with the settings it was judged by."""

    snapshot: FleetSnapshot
    settings: Settings
    policy: AlertPolicy
    accounts: list[AccountNow]
    version: tuple[int, int]  # the data version it was judged at

    @classmethod
    def judge(cls, console: Console, now: datetime | None) -> _Judged:
        """Return the fleet as the rules judge it now."""
        version = data_version(console)
        snapshot = fleet_snapshot(console, now)
        settings = console.settings()
        policy = alert_policy(settings)
        return cls(snapshot, settings, policy, _accounts_now(snapshot, policy), version)


def observe(console: Console, now: datetime | None = None) -> list[int]:
    """Judge the fleet now, record its transitions and queue their messages; return their ids.

    The fleet is judged outside the write transaction (SQLite's writers, checks among them,
    never wait for it); under the alerts lock a judgement is used only if no check was stored
    since, so two processes looking at once never undo each other's transitions.
    """
    with console.transaction() as session:
        alert_store.lock_alerts(session)
        # Accounts bound unverified, or before baselines existed: their first passing check.
        alert_store.adopt_baselines(session, actor=console.actor)
    tries = 1
    while True:
        judged = _Judged.judge(console, now)
        with console.transaction() as session:
            alert_store.lock_alerts(session)
            if store.data_version(session) == judged.version or tries >= OBSERVE_TRIES:
                return _record_changes(session, judged)
        tries += 1


def _record_changes(session: Session, judged: _Judged) -> list[int]:
    """Decide each account's transitions and the incident's; record them; return their ids."""
    now, settings, policy = judged.snapshot.as_of, judged.settings, judged.policy
    states = alert_store.alert_states(session)
    channel_ids = [int(c.id) for c in alert_store.list_channels(session) if c.id]
    if not states:
        # The first look at a fleet sets what later changes are measured from: an
        # installation that starts alerting is not told about every account at once.
        first = [_state_row(a.account_id, first_sight(a, now)) for a in judged.accounts]
        alert_store.save_alert_states(session, first, known=())
        return []
    incident = judged.snapshot.incident
    members = incident.account_ids if incident is not None else frozenset()
    last = alert_store.latest_incident(session)
    open_key = last.note if last is not None and last.kind == Kind.INCIDENT else None
    change = incident_change(incident, open_key)
    # An incident ending: its accounts' recoveries are said once, in its end's message.
    ended = last.new_status if change is Kind.INCIDENT_OVER and last is not None else None
    recorded: list[int] = []
    changed: list[dict[str, Any]] = []
    for account in judged.accounts:
        row = states.get(account.account_id)
        before = _remembered(row) if row is not None else None
        events, remembered = decide(
            before,
            account,
            now,
            policy,
            in_incident=account.account_id in members
            or (before is not None and ended is not None and before.status.value == ended),
        )
        if remembered != before:  # most accounts did not change: nothing to write
            changed.append(_state_row(account.account_id, remembered))
        for event in events:
            recorded.append(_record(session, event, account, settings, policy, now, channel_ids))
    alert_store.save_alert_states(session, changed, known=states)
    if change is not None:
        title, body = incident_message(change, incident, account_link(settings, None))
        row = Transition(
            at=now,
            kind=change.value,
            new_status=incident.status.value if incident is not None else None,
            title=title,
            body=body,
            note=incident_key(incident),  # which incident is open
        )
        recorded.append(alert_store.record_transition(session, row, channel_ids))
    return recorded


def _record(
    session: Session,
    event: Event,
    account: AccountNow,
    settings: Settings,
    policy: AlertPolicy,
    now: datetime,
    channel_ids: list[int],
) -> int:
    """Record one account's transition with its message; return its id."""
    title, body = account_message(
        event, account, account_link(settings, account.account_id), policy.flap_window
    )
    row = Transition(
        at=now,
        account_id=account.account_id,
        kind=event.kind.value,
        old_status=event.old_status.value if event.old_status else None,
        new_status=event.new_status.value if event.new_status else None,
        title=title,
        body=body,
        alerted=event.alerted,
        note=event.note,
    )
    return alert_store.record_transition(session, row, channel_ids)


def flush(console: Console) -> int:
    """Judge the fleet and send what is pending now, in this thread; return the messages sent."""
    try:
        observe(console)
    except Exception:  # a bug deciding alerts never stops the sending of what is queued
        log.exception("alerts: judging the fleet failed")
    return deliver_pending(console)


# --- the worker: off the check path -------------------------------------------------------------


class AlertWorker:
    """One thread per database in this process: judges the fleet and sends, when woken.

    It ends once idle for IDLE_EXIT_S (the next wake starts another), so a process that
    opened many databases keeps no thread for each.
    """

    def __init__(self, console: Console) -> None:
        self._console = console
        self._stopping = False
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name="alert-worker", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Ask for a look at the fleet and a round of sending (returns at once)."""
        self._idle.clear()
        self._wake.set()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every wake so far has been handled; return whether it was."""
        return self._idle.wait(timeout)

    def stop(self, timeout: float) -> None:
        """Finish the work in hand, then end (the database is about to close)."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            if not self._wake.wait(IDLE_EXIT_S):
                with _workers_lock:  # a wake comes under this lock: none is lost
                    if not self._wake.is_set():
                        _workers.pop(self._console.engine, None)
                        return
            self._wake.clear()
            if self._stopping:
                self._idle.set()
                return
            try:
                flush(self._console)
            except Exception:  # the database is gone or failing: say so, wait for the next wake
                log.exception("alerts: sending failed")
            if not self._wake.is_set():
                self._idle.set()


_workers: dict[Engine, AlertWorker] = {}
_workers_lock = threading.Lock()


def worker(console: Console, *, wake: bool = False) -> AlertWorker:
    """Return this process's alert worker for the console's database (woken if asked)."""
    with _workers_lock:
        found = _workers.get(console.engine)
        if found is None:
            found = _workers[console.engine] = AlertWorker(console.as_actor(ALERTS_ACTOR))
        if wake:
            found.wake()
        return found


def settle(console: Console, timeout: float = STOP_WAIT_S) -> bool:
    """Have the worker judge the fleet and send what is pending; return whether it finished."""
    return worker(console, wake=True).wait_idle(timeout)


def stop_worker(console: Console, timeout: float = STOP_WAIT_S) -> None:
    """End the console's database's worker once its work in hand is done (before closing)."""
    with _workers_lock:
        found = _workers.pop(console.engine, None)
    if found is not None:
        found.stop(timeout)


def stop_all_workers(timeout: float = STOP_WAIT_S) -> None:
    """End every alert worker in this process once its work in hand is done.

    For a process about to drop or close databases it did not close one by one (a test
    run's teardown): no worker is left reading a schema while it goes away.
    """
    with _workers_lock:
        found = list(_workers.values())
        _workers.clear()
    for each in found:
        each.stop(timeout)


def checks_stored(console: Console) -> None:
    """Tell the alert worker checks were stored: it decides and sends in its own thread."""
    try:
        worker(console, wake=True)
    except Exception:  # alerts never fail a check
        log.exception("alerts: the worker could not be woken")


# --- reading: history, feed, drift, the fleet over time -----------------------------------------


def transitions(
    console: Console,
    *,
    since: datetime | None = None,
    account_id: int | None = None,
    limit: int | None = 200,
) -> pd.DataFrame:
    """Return transitions newest first: when, account, what, old → new, sent or why not."""
    with console.reading() as session:
        return alert_store.transitions_frame(
            session, since=since, account_id=account_id, limit=limit
        )


def deliveries(
    console: Console, *, failed_only: bool = False, account_id: int | None = None, limit: int = 50
) -> pd.DataFrame:
    """Return deliveries newest first (channel masked; the error the channel gave)."""
    with console.reading() as session:
        return alert_store.deliveries_frame(
            session,
            state=alert_store.FAILED if failed_only else None,
            account_id=account_id,
            limit=limit,
        )


@dataclass(frozen=True)
class AccountDrift:
    """An account's key now against its baseline: the changes, and what the masks hide."""

    baseline_at: datetime | None
    baseline_by: str | None
    changes: pd.DataFrame  # what, before, after, dangerous, fix
    note: str | None


def account_drift(console: Console, account_id: int) -> AccountDrift:
    """Return one account's drift since binding (or its last acknowledgement)."""
    with console.reading() as session:
        base = alert_store.baselines(session, [account_id]).get(account_id)
        latest = alert_store.latest_key_info(session, [account_id]).get(account_id)
    columns = ["what", "before", "after", "dangerous", "fix"]
    if base is None or latest is None:
        return AccountDrift(None, None, pd.DataFrame(columns=columns), None)
    found = key_drift(base, latest)
    changes = pd.DataFrame(
        [(d.what, d.before, d.after, d.dangerous, d.fix) for d in found], columns=columns
    )
    return AccountDrift(base.at, base.by, changes, masked_note(base, latest))


def acknowledge_drift(console: Console, account_id: int) -> int:
    """Make what KuCoin says now the account's baseline (admin, audited); return changes taken."""
    console.require_admin("acknowledge a change of a key")
    with console.transaction() as session:
        account = store.get_account(session, account_id)
        latest = alert_store.latest_key_info(session, [account_id]).get(account_id)
        if latest is None:
            raise InvalidInput(
                f"{account.label} has no passing check yet: check it first, then acknowledge."
            )
        base = alert_store.baselines(session, [account_id]).get(account_id)
        found = key_drift(base, latest) if base is not None else ()
        alert_store.put_baseline(session, account_id, latest, actor=console.actor)
        store.record_audit(
            session,
            actor=console.actor,
            action=store.AuditAction.ACKNOWLEDGE_DRIFT,
            account_id=account_id,
            details={"changes": [f"{d.what}: {d.change}" for d in found]},
        )
    return len(found)


def fleet_over_time(
    console: Console, *, days: int = 7, now: datetime | None = None
) -> pd.DataFrame:
    """Return the accounts working, retrying and failing at each step of the last days.

    Steps end on whole hours (whole 6 hours past two days), the last one at or after `now`.
    """
    return kept_fleets.fleet_over_time(console, days, now)


def parse_since(text: str) -> timedelta:
    """Return a window such as 24h, 90m, 7d or 2w; raise InvalidInput saying the forms."""
    match = re.fullmatch(r"\s*(\d{1,6})\s*([smhdw])\s*", text or "")
    if match is None:
        raise InvalidInput(
            f"{text!r} is not a window: give a number and a unit, e.g. 90m, 24h, 7d or 2w."
        )
    number, unit = int(match.group(1)), match.group(2)
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}[unit]
    return timedelta(seconds=number * seconds)
