"""The alert rules without I/O: transitions, reminders, flapping, drift, the timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from lib.health.drift import key_drift, masked_note
from lib.health.fleet import check_results
from lib.health.policy import HealthPolicy
from lib.health.status import Status
from lib.health.timeline import RESULT_WORDS, StepGrid, fleet_timeline, timeline_steps
from lib.health.transitions import (
    AccountNow,
    AlertPolicy,
    Kind,
    Remembered,
    decide,
    incident_change,
    status_change,
)

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("old", "new", "kind"),
    [
        (Status.OK, Status.WRONG_SECRET, Kind.FAILING),
        (Status.AT_RISK, Status.STALE, Kind.FAILING),
        (None, Status.FROZEN, Kind.FAILING),
        (Status.PAUSED, Status.IP_BLOCKED, Kind.FAILING),
        (Status.FROZEN, Status.OK, Kind.RECOVERED),
        (Status.KEY_UNKNOWN, Status.DEGRADED, Kind.RECOVERED),
        (Status.IP_BLOCKED, Status.FROZEN, Kind.CHANGED),
        (Status.OK, Status.AT_RISK, None),
        (Status.OK, Status.DEGRADED, None),
        (Status.FROZEN, Status.PAUSED, None),
        (Status.NEW, Status.OK, None),
        (Status.FROZEN, Status.FROZEN, None),
    ],
)
def test_which_status_changes_are_transitions(old, new, kind):
    assert status_change(old, new) is kind


def account(status: Status, **risks: tuple[str, str]) -> AccountNow:
    """Return one account as the rules read it."""
    return AccountNow(1, "a", status, "diagnosis", "hint", dict(risks))


def test_a_reminder_repeats_only_when_enabled_and_due():
    before = Remembered(Status.FROZEN, frozenset(), T0, alerted_at=T0)
    later = T0 + timedelta(hours=3)
    assert decide(before, account(Status.FROZEN), later, AlertPolicy())[0] == ()
    policy = AlertPolicy(reminder=timedelta(hours=2))
    events, remembered = decide(before, account(Status.FROZEN), later, policy)
    assert [e.kind for e in events] == [Kind.REMINDER] and remembered.alerted_at == later
    events, _ = decide(remembered, account(Status.FROZEN), later + timedelta(hours=1), policy)
    assert events == ()


def test_flapping_is_said_once_then_recorded_quietly_then_settles():
    policy, state, kinds = AlertPolicy(), None, []
    statuses = [Status.OK, Status.FROZEN, Status.OK, Status.FROZEN, Status.OK, Status.FROZEN]
    for minute, status in enumerate(statuses):
        events, state = decide(state, account(status), T0 + timedelta(minutes=minute), policy)
        kinds += [(e.kind, e.alerted) for e in events]
    assert kinds == [
        (Kind.FAILING, True),
        (Kind.RECOVERED, True),
        (Kind.FLAPPING, True),
        (Kind.RECOVERED, False),
        (Kind.FAILING, False),
    ]
    events, state = decide(state, account(Status.FROZEN), T0 + timedelta(minutes=30), policy)
    assert [e.kind for e in events] == [Kind.SETTLED] and not state.flapping


def test_a_new_risk_alerts_once_and_an_incident_member_is_quiet():
    before = Remembered(Status.OK, frozenset(), T0)
    risky = account(Status.AT_RISK, old_key=("key is 100 days old", "rotate"))
    events, state = decide(before, risky, T0, AlertPolicy())
    assert [(e.kind, e.detail) for e in events] == [
        (Kind.RISK, (("key is 100 days old", "rotate"),))
    ]
    assert decide(state, risky, T0 + timedelta(hours=1), AlertPolicy())[0] == ()
    events, _ = decide(before, account(Status.FROZEN), T0, AlertPolicy(), in_incident=True)
    assert [(e.kind, e.alerted) for e in events] == [(Kind.FAILING, False)]


@dataclass(frozen=True)
class Facts:
    """What KuCoin said about a key."""

    permissions: tuple[str, ...] = ("General", "Spot")
    ip_whitelist: str | None = "203.**.154"
    uid: str | None = "1"
    is_master: bool | None = True
    sub_name: str | None = None


def test_drift_flags_what_moves_funds_and_says_what_masks_hide():
    found = key_drift(Facts(), Facts(permissions=("General", "Spot", "InnerTransfer", "Earn")))
    assert [(d.key, d.dangerous) for d in found] == [
        ("permission_added:InnerTransfer", True),
        ("permission_added:Earn", False),
    ]
    assert key_drift(Facts(), Facts()) == ()
    assert "203.**.154" in masked_note(Facts(), Facts())
    assert masked_note(Facts(ip_whitelist="1.2.3.4"), Facts(ip_whitelist="1.2.3.4")) is None
    assert key_drift(Facts(uid=None), Facts(uid="2")) == ()  # unknown before: nothing to compare


def test_an_incident_begins_and_ends_once():
    assert incident_change(None, None) is None
    assert incident_change(None, "FROZEN:411100") is Kind.INCIDENT_OVER


def test_the_timeline_counts_each_account_by_its_newest_check_at_each_step():
    checks = pd.DataFrame(
        {
            "account_id": [1, 2, 1],
            "checked_at": pd.to_datetime(
                [
                    T0 + timedelta(minutes=10),
                    T0 + timedelta(minutes=20),
                    T0 + timedelta(hours=1, minutes=5),
                ],
                utc=True,
            ),
            "outcome": ["ok", "rejected", "rejected"],
            "code": pd.array([None, "400003", "500000"], dtype="string"),
            "clock_offset_ms": pd.array([None, None, None], dtype="Int64"),
        }
    )
    line = fleet_timeline(
        checks, HealthPolicy(), start=T0, end=T0 + timedelta(hours=2), step=timedelta(hours=1)
    )
    by_step = {(r.at.hour, str(r.result)): r.accounts for r in line.itertuples()}
    assert by_step == {
        (13, "failing"): 1,
        (13, "working"): 1,
        (14, "failing"): 1,
        (14, "retrying"): 1,
    }


def test_the_timeline_equals_counting_each_step_from_the_whole_history():
    rng = np.random.default_rng(3)
    n = 4_000
    codes = np.array([None, "400003", "500000", "400002", "429000"], dtype=object)
    checks = pd.DataFrame(
        {
            "account_id": rng.integers(1, 300, n),
            # some before the window, some on a step's end, some after the last one
            "checked_at": pd.to_datetime(T0 - timedelta(hours=30), utc=True)
            + pd.to_timedelta(rng.integers(0, 60, n) * 1800, unit="s"),
            "outcome": rng.choice(["ok", "rejected", "unreachable"], n),
            "code": pd.array(codes[rng.integers(0, len(codes), n)], dtype="string"),
            "clock_offset_ms": pd.array(rng.integers(-9000, 9000, n), dtype="Int64"),
        }
    )
    policy = HealthPolicy()
    step, start, end = timedelta(hours=3), T0 - timedelta(days=1), T0 + timedelta(hours=1)
    line = fleet_timeline(checks, policy, start=start, end=end, step=step)

    results = pd.Series(check_results(checks, policy), index=checks.index).astype(str)
    expected = []
    for at in pd.date_range(start + step, end, freq=step, tz="UTC"):
        seen = checks[checks["checked_at"] <= at].assign(result=results)
        # the newest check per account; of two at the same time, the later row
        newest = seen.sort_values("checked_at", kind="stable").groupby("account_id")
        counts = newest.tail(1)["result"].map(RESULT_WORDS).value_counts()
        expected += [
            (at, word, int(counts[word])) for word in RESULT_WORDS.values() if counts.get(word)
        ]
    assert [(r.at, str(r.result), r.accounts) for r in line.itertuples()] == expected

    # Folded in batches as they are recorded, the grid counts the same; and only accounts asked.
    grid = StepGrid(timeline_steps(start=start, end=end, step=step), policy)
    for begin in range(0, n, 1_500):
        grid.add(checks.iloc[begin : begin + 1_500])
    assert grid.counts().equals(line)
    some = grid.counts(account_ids=[1, 2, 3, 10_000])
    assert some.groupby("at")["accounts"].sum().max() <= 3


def test_a_paused_account_is_never_an_alarm_and_its_risks_come_once_resumed():
    before = Remembered(Status.OK, frozenset(), T0)
    old_key = {"old_key": ("key is 100 days old", "rotate")}
    events, state = decide(before, account(Status.PAUSED, **old_key), T0, AlertPolicy())
    assert events == () and state.risks == frozenset()
    events, _ = decide(state, account(Status.AT_RISK, **old_key), T0, AlertPolicy())
    assert [e.kind for e in events] == [Kind.RISK]
