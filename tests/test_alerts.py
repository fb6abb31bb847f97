"""Alerts over real HTTP: the simulator changes keys between checks, a local receiver gets them.

Each test binds keys from the simulator into a SQLite file, adds the receiver as an apprise
`json://` channel, checks through the engine and asserts what the receiver got: each
transition once, recoveries, one message per fleet incident, reminders only when enabled,
flapping summarised, drift of each kind, and never a secret in any delivered body.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alert_receiver import Receiver
from app_fixtures import TRADER, SimEnv, sim_env_fixture  # noqa: F401  (the sim_env fixture)

from lib.console import NotPermitted, Role, alerts, binding
from lib.console.checks import check_account, refresh_fleet
from lib.console.errors import InvalidInput
from lib.console.fleet import fleet_table
from lib.console.settings import save_settings
from lib.kucoin.sim import SimAccount
from lib.vault import rotate_master_key

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(name="hook")
def hook_fixture() -> Iterator[Receiver]:
    """A webhook receiver on loopback."""
    with Receiver() as receiver:
        yield receiver


@pytest.fixture(autouse=True)
def _quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry deliveries after milliseconds, not seconds."""
    monkeypatch.setattr(alerts, "BACKOFF_S", 0.01)


def key(n: int, **changes: object) -> SimAccount:
    """Return a working spot key, number n, whitelisted for this machine."""
    return dataclasses.replace(
        TRADER,
        api_key=f"{0xA1E000 + n:024x}",
        api_secret=f"00000000-0000-4000-8000-{n:012x}",
        passphrase=f"alert-pass-{n}",
        uid=900_000 + n,
        **changes,
    )


def bind(env: SimEnv, account: SimAccount, label: str) -> int:
    """Serve a key and bind it through the binding service (its baseline is recorded)."""
    env.simulator.add_account(account)
    outcome = binding.bind(
        env.console,
        label=label,
        api_key=account.api_key,
        api_secret=account.api_secret,
        passphrase=account.passphrase,
        scopes=("spot",),
        accept_warnings=True,
    )
    assert outcome.account_id is not None, outcome.check
    return outcome.account_id


def settle(env: SimEnv) -> None:
    """Let the alert worker finish, then judge and send once more in this thread."""
    assert alerts.worker(env.console).wait_idle(30)
    alerts.flush(env.console)
    assert alerts.worker(env.console).wait_idle(30)


def titles(hook: Receiver) -> list[str]:
    """Return the titles delivered so far."""
    return [m["title"] for m in hook.messages]


def assert_no_secret(hook: Receiver, *accounts: SimAccount) -> None:
    """The canary: no delivered body holds a key, secret or passphrase."""
    raw = b"".join(hook.raw)
    for account in accounts:
        for value in (account.api_key, account.api_secret.reveal(), account.passphrase.reveal()):
            assert value.encode() not in raw


def watched(env: SimEnv, hook: Receiver, *keys: tuple[SimAccount, str]) -> list[int]:
    """Bind keys, add the receiver as a channel, and take the fleet's first look."""
    ids = [bind(env, account, label) for account, label in keys]
    alerts.add_channel(env.console, hook.url)
    save_settings(env.console, console_url="https://bindwatch.example.com")
    settle(env)
    return ids


def test_each_transition_alerts_once_and_recovery_alerts(sim_env: SimEnv, hook: Receiver):
    account = key(1)
    (account_id,) = watched(sim_env, hook, (account, "alpha"))
    check_account(sim_env.console, account_id)
    settle(sim_env)
    assert hook.messages == []  # working → working: nothing to say

    sim_env.simulator.update_account(account.api_key, frozen=True)
    check_account(sim_env.console, account_id)
    check_account(sim_env.console, account_id)  # still frozen: no second message
    settle(sim_env)
    assert titles(hook) == ["bindwatch: alpha is failing: Account frozen"]
    body = hook.messages[0]["message"]
    assert "Account: alpha" in body
    assert "Status: Working → Account frozen" in body
    assert "Diagnosis: " in body and "Fix: " in body
    assert f"Open: https://bindwatch.example.com/account?account={account_id}" in body

    sim_env.simulator.update_account(account.api_key, frozen=False, ip_whitelist=("10.9.8.7",))
    check_account(sim_env.console, account_id)
    settle(sim_env)
    assert titles(hook)[1] == "bindwatch: alpha fails another way: IP not whitelisted"

    sim_env.simulator.update_account(account.api_key, ip_whitelist=("127.0.0.1",))
    check_account(sim_env.console, account_id)
    settle(sim_env)
    assert titles(hook)[2:] == ["bindwatch: alpha works again"]
    assert len(hook.messages) == 3
    assert_no_secret(hook, account)
    feed = alerts.transitions(sim_env.console, account_id=account_id)
    assert list(feed["kind"]) == ["recovered", "changed", "failing"]


def test_a_fleet_incident_sends_one_message_and_its_end_one_more(sim_env: SimEnv, hook: Receiver):
    keys = [key(n) for n in range(10, 14)]
    watched(sim_env, hook, *((k, f"bot {n}") for n, k in enumerate(keys)))
    for account in keys:
        sim_env.simulator.update_account(account.api_key, frozen=True)
    refresh_fleet(sim_env.console)
    settle(sim_env)
    assert titles(hook) == ["bindwatch: fleet incident, Account frozen"]
    assert "on 4 of 4 accounts" in hook.messages[0]["message"]

    refresh_fleet(sim_env.console)  # the same incident: nothing new
    settle(sim_env)
    assert len(hook.messages) == 1

    for account in keys:
        sim_env.simulator.update_account(account.api_key, frozen=False)
    refresh_fleet(sim_env.console)
    settle(sim_env)
    assert titles(hook) == [
        "bindwatch: fleet incident, Account frozen",
        "bindwatch: fleet incident over",
    ]
    feed = alerts.transitions(sim_env.console)
    quiet = feed[~feed["alerted"].astype(bool)]
    assert len(quiet) == 8  # four failures and four recoveries, recorded, said in the incident's
    assert_no_secret(hook, *keys)


def test_a_reminder_fires_only_when_enabled(sim_env: SimEnv, hook: Receiver):
    account = key(20)
    (account_id,) = watched(sim_env, hook, (account, "reminded"))
    sim_env.simulator.update_account(account.api_key, frozen=True)
    check_account(sim_env.console, account_id)
    settle(sim_env)
    assert len(hook.messages) == 1

    later = datetime.now(UTC) + timedelta(hours=3)
    alerts.observe(sim_env.console, later)  # reminders off (the default)
    alerts.deliver_pending(sim_env.console)
    assert len(hook.messages) == 1

    save_settings(sim_env.console, alert_reminder_hours=2)
    alerts.observe(sim_env.console, later)
    alerts.deliver_pending(sim_env.console)
    assert titles(hook)[1] == "bindwatch: reminded is still failing: Account frozen"
    alerts.observe(sim_env.console, later + timedelta(minutes=30))  # not two hours since
    alerts.deliver_pending(sim_env.console)
    assert len(hook.messages) == 2
    assert_no_secret(hook, account)


def test_a_flapping_account_is_summarised(sim_env: SimEnv, hook: Receiver):
    account = key(30)
    (account_id,) = watched(sim_env, hook, (account, "flappy"))
    for frozen in (True, False, True, False, True):
        sim_env.simulator.update_account(account.api_key, frozen=frozen)
        check_account(sim_env.console, account_id)
        settle(sim_env)
    assert titles(hook) == [
        "bindwatch: flappy is failing: Account frozen",
        "bindwatch: flappy works again",
        "bindwatch: flappy is flapping",
    ]
    alerts.observe(sim_env.console, datetime.now(UTC) + timedelta(minutes=20))
    alerts.deliver_pending(sim_env.console)
    assert titles(hook)[3:] == ["bindwatch: flappy stopped flapping: Account frozen"]
    feed = alerts.transitions(sim_env.console, account_id=account_id)
    assert (feed["note"] == "flapping: summarised, not sent").sum() == 2


DRIFTS = [
    (
        {"permissions": ("General", "Spot", "Transfer")},
        "permission added since binding: Transfer (moves funds)",
        "General, Spot → General, Spot, Transfer",
    ),
    ({"permissions": ("General",)}, "permission removed since binding: Spot", "General, Spot"),
    ({"ip_whitelist": ()}, "IP whitelist removed since binding", "127.**.1 → (none)"),
    (
        {"ip_whitelist": ("127.0.0.1", "10.1.2.3")},
        "IP whitelist changed since binding",
        "127.**.1 → 10.**.3, 127.**.1",
    ),
    ({"uid": 123456789}, "the key now belongs to another KuCoin UID", "→ 123456789"),
    (
        {"is_master": False, "sub_name": "desk-2"},
        "the key now belongs to another account",
        "master account → sub-account desk-2",
    ),
]


@pytest.mark.parametrize(("change", "what", "before_after"), DRIFTS)
def test_drift_of_each_kind_is_detected_shown_alerted_and_acknowledged(
    sim_env: SimEnv, hook: Receiver, change: dict, what: str, before_after: str
):
    account = key(40)
    (account_id,) = watched(sim_env, hook, (account, "drifty"))
    sim_env.simulator.update_account(account.api_key, **change)
    check_account(sim_env.console, account_id)
    settle(sim_env)

    row = fleet_table(sim_env.console).set_index("account_id").loc[account_id]
    assert what in row["risks"] and before_after in row["risks"]
    if row["status"] not in ("SCOPE_MISSING",):  # a removed Spot is failing, not just at risk
        assert row["status"] == "AT_RISK"
    drift = alerts.account_drift(sim_env.console, account_id)
    assert any(what in w for w in drift.changes["what"])
    messages = [m for m in hook.messages if m["title"] == "bindwatch: drifty has a new risk"]
    assert len(messages) == 1 and what in messages[0]["message"]

    viewer = sim_env.console.as_actor("ana", Role.VIEWER)
    with pytest.raises(NotPermitted):
        alerts.acknowledge_drift(viewer, account_id)
    assert alerts.acknowledge_drift(sim_env.console, account_id) >= 1
    assert alerts.account_drift(sim_env.console, account_id).changes.empty
    row = fleet_table(sim_env.console).set_index("account_id").loc[account_id]
    assert not isinstance(row["risks"], str) or what not in row["risks"]
    check_account(sim_env.console, account_id)
    settle(sim_env)
    assert len([m for m in hook.messages if "new risk" in m["title"]]) == 1  # no second alert
    assert_no_secret(hook, account)


def test_masked_whitelists_say_what_cannot_be_compared(sim_env: SimEnv, hook: Receiver):
    account = key(45, ip_whitelist=("127.0.0.1", "203.0.113.154"))
    (account_id,) = watched(sim_env, hook, (account, "masked"))
    sim_env.simulator.update_account(account.api_key, ip_whitelist=("127.0.0.1", "203.9.9.154"))
    check_account(sim_env.console, account_id)
    drift = alerts.account_drift(sim_env.console, account_id)
    assert drift.changes.empty  # 203.**.154 either way: the masks hide the change
    assert drift.note is not None and "203.**.154" in drift.note


def test_delivery_is_retried_with_backoff_and_a_failure_is_recorded_and_logged(
    sim_env: SimEnv, hook: Receiver, caplog: pytest.LogCaptureFixture
):
    account = key(50)
    (account_id,) = watched(sim_env, hook, (account, "retried"))
    hook.fail_next(2)
    sim_env.simulator.update_account(account.api_key, frozen=True)
    check_account(sim_env.console, account_id)
    settle(sim_env)
    assert titles(hook) == ["bindwatch: retried is failing: Account frozen"]
    sent = alerts.deliveries(sim_env.console)
    assert sent.iloc[0]["state"] == "sent" and sent.iloc[0]["attempts"] == 3

    hook.fail_next(100)
    sim_env.simulator.update_account(account.api_key, frozen=False)
    with caplog.at_level(logging.WARNING, logger="lib.console.alerts"):
        check_account(sim_env.console, account_id)
        settle(sim_env)
    failed = alerts.deliveries(sim_env.console, failed_only=True)
    assert len(failed) == 1 and failed.iloc[0]["attempts"] == alerts.ATTEMPTS
    assert "500" in failed.iloc[0]["error"]
    assert failed.iloc[0]["channel"] == alerts.mask_url(hook.url)
    assert "failed after 4 attempts" in caplog.text
    port = hook.url.rsplit(":", 1)[1].split("/")[0]
    assert port not in failed.iloc[0]["error"] and port not in caplog.text  # never the URL


def test_a_check_never_waits_for_a_slow_or_failing_channel(
    sim_env: SimEnv, hook: Receiver, caplog: pytest.LogCaptureFixture
):
    account = key(55)
    (account_id,) = watched(sim_env, hook, (account, "quick"))
    token = "T0KEN-canary-77e1"
    alerts.add_channel(sim_env.console, f"json://127.0.0.1:9/{token}")  # nothing listens
    sim_env.simulator.update_account(account.api_key, frozen=True)
    with caplog.at_level(logging.DEBUG):
        started = datetime.now(UTC)
        check_account(sim_env.console, account_id)
        assert datetime.now(UTC) - started < timedelta(seconds=5)
        settle(sim_env)
    assert titles(hook) == ["bindwatch: quick is failing: Account frozen"]
    assert "failed after 4 attempts" in caplog.text  # the failure is logged...
    assert token not in caplog.text  # ...never the channel's URL, whatever the log level
    assert token not in alerts.deliveries(sim_env.console).to_string()


def test_channels_are_sealed_listed_masked_and_removed(sim_env: SimEnv, hook: Receiver):
    token = "T0KEN-canary-5f3a9c"
    url = f"json://127.0.0.1:9/{token}"
    number = alerts.add_channel(sim_env.console, url)
    shown = alerts.channels(sim_env.console)
    assert list(shown["channel"]) == [alerts.mask_url(url)] and token not in shown.to_string()
    database = sim_env.data_dir / "bindwatch.db"
    for path in database.parent.glob("bindwatch.db*"):
        assert token.encode() not in path.read_bytes()
    with pytest.raises(InvalidInput, match="apprise cannot send to that URL"):
        alerts.add_channel(sim_env.console, "nonsense://x")
    viewer = sim_env.console.as_actor("ana", Role.VIEWER)
    for refused in (
        lambda: alerts.add_channel(viewer, hook.url),
        lambda: alerts.remove_channel(viewer, number),
        lambda: alerts.send_test(viewer),
    ):
        with pytest.raises(NotPermitted):
            refused()
    alerts.remove_channel(sim_env.console, number)
    assert alerts.channels(sim_env.console).empty
    with pytest.raises(InvalidInput, match="No alert channel has number"):
        alerts.remove_channel(sim_env.console, number)


def test_a_master_key_rotation_reseals_the_channels(sim_env: SimEnv, hook: Receiver):
    alerts.add_channel(sim_env.console, hook.url)
    before = sim_env.console.vault.active_key_id
    rotate_master_key(sim_env.console.engine, sim_env.console.vault, actor="test")
    assert sim_env.console.vault.active_key_id != before
    answers = alerts.send_test(sim_env.console)
    assert [a.sent for a in answers] == [True]
    assert hook.messages[0]["title"] == alerts.TEST_TITLE


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run `python -m lib ...` with the test's environment."""
    return subprocess.run(
        [sys.executable, "-m", "lib", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=os.environ.copy(),
        timeout=120,
    )


def test_the_alerts_command_adds_from_stdin_or_argv_lists_masked_tests_and_removes(
    sim_env: SimEnv, hook: Receiver
):
    added = run_cli("alerts", "add", "-", stdin=f"{hook.url}\n")
    assert added.returncode == 0, added.stderr
    assert "Added channel 1" in added.stdout and hook.url not in added.stdout
    assert run_cli("alerts", "add", hook.url).returncode == 0  # the form, argv
    assert run_cli("alerts", "add").returncode == 2  # no URL and no terminal: says how
    listed = run_cli("alerts", "list")
    assert listed.stdout.count(alerts.mask_url(hook.url)) == 2
    assert "127.0.0.1" not in listed.stdout
    tested = run_cli("alerts", "test")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert [m["title"] for m in hook.wait_for(2)] == [alerts.TEST_TITLE] * 2
    assert run_cli("alerts", "remove", "2").returncode == 0
    missing = run_cli("alerts", "remove", "7")
    assert missing.returncode == 2 and "No alert channel has number 7" in missing.stderr
    bad = run_cli("alerts", "add", "-", stdin="nonsense://x\n")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_status_since_lists_the_transitions_of_the_window(sim_env: SimEnv, hook: Receiver):
    account = key(60)
    (account_id,) = watched(sim_env, hook, (account, "listed"))
    sim_env.simulator.update_account(account.api_key, frozen=True)
    check_account(sim_env.console, account_id)
    settle(sim_env)
    shown = run_cli("status", "--since", "24h")
    assert shown.returncode == 0, shown.stderr
    assert "1 transition since" in shown.stdout
    assert "listed is failing: Account frozen" in shown.stdout
    assert "No transition since" in run_cli("status", "--since", "1s").stdout
    bad = run_cli("status", "--since", "yesterday")
    assert bad.returncode == 2 and "e.g. 90m, 24h, 7d" in bad.stderr


def test_the_30_day_deletion_forecast_and_an_old_key_alert_once_each(
    sim_env: SimEnv, hook: Receiver
):
    open_key = key(70, ip_whitelist=())  # trading without a whitelist: KuCoin's 30-day rule
    (account_id,) = watched(sim_env, hook, (open_key, "exposed"))
    check_account(sim_env.console, account_id)
    settle(sim_env)
    assert hook.messages == []  # deletion 30 days away: beyond the 7-day warning
    save_settings(sim_env.console, deletion_warning_days=30)
    check_account(sim_env.console, account_id)
    settle(sim_env)
    assert titles(hook) == ["bindwatch: exposed has a new risk"]
    assert "KuCoin may delete the key on" in hook.messages[0]["message"]

    save_settings(sim_env.console, rotation_age_days=10)  # the key is 30 days old
    check_account(sim_env.console, account_id)
    check_account(sim_env.console, account_id)
    settle(sim_env)
    assert len(hook.messages) == 2
    assert "Risk: key is 30 days old" in hook.messages[1]["message"]
    assert_no_secret(hook, open_key)


def test_the_refresh_command_sends_the_alerts_of_the_checks_it_stored(
    sim_env: SimEnv, hook: Receiver
):
    account = key(80)
    watched(sim_env, hook, (account, "by-refresh"))
    sim_env.simulator.update_account(account.api_key, frozen=True)
    done = run_cli("refresh", "--all")
    assert done.returncode == 1, done.stdout + done.stderr  # an account is failing now
    assert titles(hook) == ["bindwatch: by-refresh is failing: Account frozen"]  # already sent
    assert_no_secret(hook, account)


def test_the_fleet_chart_follows_the_checks_recorded_and_the_accounts_bound(sim_env: SimEnv):
    working = key(1)
    account_id = bind(sim_env, working, "chart")
    other = bind(sim_env, key(2), "chart-2")
    both = alerts.fleet_over_time(sim_env.console, days=1)
    assert set(both["accounts"]) == {2}
    binding.unbind(sim_env.console, other)  # its checks stay in the history, not in the chart
    now = datetime.now(UTC)
    first = alerts.fleet_over_time(sim_env.console, days=1, now=now)
    assert set(first["result"].astype(str)) == {"working"} and set(first["accounts"]) == {1}
    assert (first["at"].dt.minute == 0).all() and first["at"].iloc[-1] >= now
    assert alerts.fleet_over_time(sim_env.console, days=1, now=now).equals(first)

    # The key is deleted at KuCoin: the next check fails, and the chart drawn next shows it.
    sim_env.simulator.remove_account(working.api_key)
    assert not check_account(sim_env.console, account_id).ok
    after = alerts.fleet_over_time(sim_env.console, days=1, now=datetime.now(UTC))
    last = after[after["at"] == after["at"].max()]
    assert list(last["result"].astype(str)) == ["failing"]
