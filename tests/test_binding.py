"""Binding over real HTTP to the simulator and a real SQLite file: check, confirm, save."""

from __future__ import annotations

import dataclasses
import gc
import logging
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from app_fixtures import (  # noqa: F401 (fixture)
    OPEN_TRADER,
    TRADER,
    SimEnv,
    days_ago_ms,
    sim_env_fixture,
)
from simulator_fixtures import ELSEWHERE, GENERAL_ONLY, MASTER, NO_GENERAL, SUB

from lib import store
from lib.console import binding
from lib.console.binding import BindingError, Decision
from lib.console.checks import check_account
from lib.console.fleet import fleet_table
from lib.console.settings import save_settings
from lib.health.assessment import assess_check
from lib.health.policy import HealthPolicy
from lib.health.status import Status
from lib.health.wording import key_warnings
from lib.kucoin.auth import Credentials
from lib.kucoin.diagnosis import LATE_REQUEST, diagnose
from lib.kucoin.probe_result import Outcome, ProbeResult
from lib.kucoin.sim import SimAccount
from lib.store.models import AuditAction


def check(env: SimEnv, account: SimAccount, label: str = "desk", **changes) -> binding.KeyCheck:
    """Return check_key for a simulated account's credentials (with any field changed)."""
    values = {
        "label": label,
        "api_key": account.api_key,
        "api_secret": account.api_secret.reveal(),
        "passphrase": account.passphrase.reveal(),
        "scopes": "spot",
    }
    return binding.check_key(env.console, **{**values, **changes})


def audit(env: SimEnv, **filters) -> list[store.AuditEntry]:
    """Return the audit log, newest first."""
    with env.console.reading() as session:
        return store.audit_log(session, **filters)


def test_a_key_that_verifies_cleanly_is_ready_and_saved_verified_with_its_first_check(sim_env):
    checked = check(sim_env, TRADER, label="spot-bot")
    assert checked.decision is Decision.READY and checked.connected and checked.token
    assert checked.warnings == ()
    account_id = binding.save(sim_env.console, checked.token)

    [account] = binding.accounts(sim_env.console)
    assert (account.id, account.label, account.unverified) == (account_id, "spot-bot", False)
    with sim_env.console.reading() as session:
        assert store.latest_probe(session, account_id).ok
    [event] = audit(sim_env, action=AuditAction.BIND)
    assert event.actor == "local-operator" and event.details["verified"] is True


def test_a_check_holds_no_secret(sim_env):
    checked = check(sim_env, MASTER)
    text = repr(checked) + repr(checked.__dict__)
    assert MASTER.api_secret.reveal() not in text
    assert MASTER.passphrase.reveal() not in text


def test_warnings_must_be_accepted_before_saving_and_the_token_survives_a_refusal(sim_env):
    checked = check(sim_env, MASTER)
    assert checked.decision is Decision.NEEDS_CONFIRMATION
    assert any(w.startswith("Withdrawal permission (Transfer) enabled") for w in checked.warnings)
    with pytest.raises(BindingError, match="Confirm the warnings"):
        binding.save(sim_env.console, checked.token)
    assert binding.accounts(sim_env.console) == []
    binding.save(sim_env.console, checked.token, accept_warnings=True)
    assert [a.label for a in binding.accounts(sim_env.console)] == ["desk"]


def test_a_trading_key_without_whitelist_warns_about_kucoins_30_day_rule(sim_env):
    checked = check(sim_env, OPEN_TRADER)
    assert checked.decision is Decision.NEEDS_CONFIRMATION
    [warning] = checked.warnings
    assert warning.startswith("Trading without IP whitelist: KuCoin may delete it on")
    assert "30 days of inactivity" in warning


def test_a_scope_the_key_lacks_is_a_warning_and_the_key_connected_but_unable(sim_env):
    checked = check(sim_env, SUB, scopes="spot,futures")
    assert checked.connected and checked.status is Status.SCOPE_MISSING
    assert checked.api_status == (
        "Connected, but this key cannot do what the account needs: Permission missing: Spot"
    )
    assert checked.warnings[0].startswith("Permission missing: Spot. Enable Spot in")
    coverage = checked.permissions.set_index("permission")
    assert coverage.loc["Spot", "state"] == "missing"
    assert coverage.loc["Futures", "state"] == "granted"


def test_a_whitelist_refusal_may_be_saved_only_as_unverified_and_explicitly(sim_env):
    checked = check(sim_env, ELSEWHERE)
    assert checked.decision is Decision.WHITELIST_ONLY and not checked.connected
    assert checked.result.seen_ip == "127.0.0.1"
    assert checked.whitelist.set_index("ip").loc["127.0.0.1", "coverage"] == "not covered"
    with pytest.raises(BindingError, match="400006"):
        binding.save(sim_env.console, checked.token, accept_warnings=True)
    binding.save(sim_env.console, checked.token, accept_unverified=True)
    [account] = binding.accounts(sim_env.console)
    assert account.unverified


@pytest.mark.parametrize(
    ("account", "changes", "code"),
    [
        (TRADER, {"api_key": "0123456789abcdef01234567"}, "400003"),
        (TRADER, {"passphrase": "login-password"}, "400004"),
        (TRADER, {"api_secret": "00000000-0000-4000-8000-000000000000"}, "400005"),
        (NO_GENERAL, {}, "400007"),
    ],
)
def test_a_refused_key_gets_its_diagnosis_no_token_and_nothing_saved(
    sim_env, account, changes, code
):
    checked = check(sim_env, account, **changes)
    assert checked.decision is Decision.FAILED and checked.token is None
    assert checked.result.code == code and checked.diagnosis.code == code
    assert binding.accounts(sim_env.console) == []


def test_a_400002_while_the_clocks_agree_is_a_late_request_not_a_clock_problem(sim_env):
    # KuCoin's clock, as this key's requests see it, runs 30 s ahead while /timestamp (unsigned)
    # shows the true time: our correction measures ~0 ms, yet KuCoin finds the timestamp
    # 30 s old. The clocks agree, so the request was late, which a retry may fix.
    sim_env.simulator.set_clock_offset(30_000, api_key=TRADER.api_key)
    checked = check(sim_env, TRADER)
    assert checked.decision is Decision.FAILED and checked.token is None
    assert checked.result.code == "400002"
    assert abs(checked.result.clock_offset_ms) < 1_000
    assert checked.diagnosis is LATE_REQUEST
    assert checked.assessment.transient and checked.status is Status.DEGRADED
    assert checked.api_status == "Failed: Request reached KuCoin too late (400002)"


def test_a_400002_while_the_clocks_disagree_is_a_clock_problem(sim_env):
    # KuCoin runs 9 s ahead (measured), and this key's calls are judged 9 s further off.
    sim_env.simulator.set_clock_offset(9_000)
    sim_env.simulator.set_clock_offset(9_000, api_key=TRADER.api_key)
    checked = check(sim_env, TRADER)
    assert checked.result.code == "400002" and checked.result.clock_offset_ms > 8_000
    assert checked.diagnosis == diagnose("400002")
    assert checked.status is Status.CLOCK_SKEW and not checked.assessment.transient


def test_an_unreachable_kucoin_fails_without_saving(sim_env):
    sim_env.simulator.drop_next(20)
    checked = check(sim_env, TRADER)
    assert checked.decision is Decision.FAILED
    assert checked.result.outcome is Outcome.UNREACHABLE
    assert checked.diagnosis.code == "unreachable"


def test_a_bad_paste_is_refused_per_field_before_any_request(sim_env):
    checked = check(
        sim_env,
        TRADER,
        label="",
        api_key=TRADER.api_secret.reveal(),
        api_secret=TRADER.api_key,
        passphrase="",
        scopes="spot,options",
    )
    assert checked.decision is Decision.INVALID
    assert set(checked.errors) == {"label", "api_key", "api_secret", "passphrase", "scopes"}
    assert "looks like your Secret" in checked.errors["api_key"]
    assert "unknown scope options" in checked.errors["scopes"].lower()
    assert sim_env.requests == []


def test_the_same_key_cannot_be_bound_twice_and_the_holder_is_named(sim_env):
    binding.bind(sim_env.console, label="first", **_secrets(TRADER))
    sent = len(sim_env.requests)
    checked = check(sim_env, TRADER, label="second", api_key=f" {TRADER.api_key}\n")
    assert checked.decision is Decision.DUPLICATE and checked.duplicate_of == "first"
    assert len(sim_env.requests) == sent


def test_a_taken_label_is_refused_before_any_request(sim_env):
    binding.bind(sim_env.console, label="desk", **_secrets(TRADER))
    sent = len(sim_env.requests)
    checked = check(sim_env, GENERAL_ONLY, label="  desk ")
    assert checked.decision is Decision.INVALID
    assert "already exists" in checked.errors["label"]
    assert len(sim_env.requests) == sent


def test_a_token_is_spent_by_saving_and_gone_once_discarded_or_expired(sim_env, monkeypatch):
    first = check(sim_env, TRADER, label="one")
    binding.save(sim_env.console, first.token)
    with pytest.raises(BindingError, match="expired or was already used"):
        binding.save(sim_env.console, first.token)

    second = check(sim_env, MASTER, label="two")
    binding.discard(second.token)
    with pytest.raises(BindingError, match="expired or was already used"):
        binding.save(sim_env.console, second.token, accept_warnings=True)

    third = check(sim_env, MASTER, label="three")
    clock = binding.time.monotonic() + binding.PENDING_TTL_S + 1
    monkeypatch.setattr(binding.time, "monotonic", lambda: clock)
    with pytest.raises(BindingError, match="expired"):
        binding.save(sim_env.console, third.token, accept_warnings=True)
    assert [a.label for a in binding.accounts(sim_env.console)] == ["one"]


def _parked(passphrase: str) -> bool:
    """Return whether any Credentials holding this passphrase is still alive in the process."""
    gc.collect()
    return any(
        isinstance(held, Credentials) and held.passphrase.reveal() == passphrase
        for held in gc.get_objects()
    )


def test_a_checked_key_nobody_confirms_leaves_memory_on_time_without_another_check(
    sim_env, monkeypatch
):
    canary = SimAccount(
        api_key=secrets.token_hex(12),
        api_secret=str(uuid.uuid4()),
        passphrase=f"CANARY-pending-{uuid.uuid4().hex}",
        uid=720500999,
        permissions=("General", "Spot"),
        ip_whitelist=("127.0.0.1",),
        created_at=days_ago_ms(5),
    )
    sim_env.simulator.add_account(canary)
    monkeypatch.setattr(binding, "PENDING_TTL_S", 0.5)
    checked = check(sim_env, canary, label="canary")
    assert checked.decision is Decision.READY
    assert _parked(canary.passphrase.reveal())  # waiting for the operator to save it

    time.sleep(1.5)  # the operator walked away; nobody checks or saves anything meanwhile
    assert not _parked(canary.passphrase.reveal())
    with pytest.raises(BindingError, match="expired"):
        binding.save(sim_env.console, checked.token)


def test_at_most_max_pending_keys_wait_and_the_oldest_goes_first(sim_env, monkeypatch):
    monkeypatch.setattr(binding, "MAX_PENDING", 2)
    first, _, third = (check(sim_env, TRADER, label=f"desk-{n}") for n in range(3))
    with pytest.raises(BindingError, match="expired or was already used"):
        binding.save(sim_env.console, first.token)
    binding.save(sim_env.console, third.token)
    assert [a.label for a in binding.accounts(sim_env.console)] == ["desk-2"]


def test_a_race_for_the_same_label_becomes_a_binding_error_and_saves_nothing(sim_env):
    one = check(sim_env, TRADER, label="desk")
    other = check(sim_env, GENERAL_ONLY, label="desk", scopes="spot")
    binding.save(sim_env.console, one.token)
    with pytest.raises(BindingError, match=r"already exists.*Nothing was saved"):
        binding.save(sim_env.console, other.token, accept_warnings=True)
    assert [a.label for a in binding.accounts(sim_env.console)] == ["desk"]


def test_bind_saves_only_what_its_flags_allow(sim_env):
    refused = binding.bind(sim_env.console, label="m", **_secrets(MASTER))
    assert refused.account_id is None and refused.check.decision is Decision.NEEDS_CONFIRMATION
    accepted = binding.bind(sim_env.console, label="m", accept_warnings=True, **_secrets(MASTER))
    assert accepted.account_id is not None
    unverified = binding.bind(sim_env.console, label="e", **_secrets(ELSEWHERE))
    assert unverified.account_id is None
    saved = binding.bind(sim_env.console, label="e", accept_unverified=True, **_secrets(ELSEWHERE))
    assert saved.account_id is not None


def test_key_warnings_are_the_rules_findings_gravest_first():
    now = datetime.now(UTC)
    result = ProbeResult(
        checked_at=now,
        outcome=Outcome.OK,
        latency_ms=1,
        permissions=("General", "Futures", "Transfer"),
        ip_whitelist="127.**.1",
        clock_offset_ms=-4_200,
        futures_permission_missing=True,
        key_created_at=now - timedelta(days=753),
    )
    warnings = key_warnings(assess_check(result, ["futures"], HealthPolicy()))
    assert [w.split(". ")[0] for w in warnings] == [
        "Permission missing: Futures",
        "Withdrawal permission (Transfer) enabled",
        "Key is 753 days old",
        "Clock -4.2 s off KuCoin's",
    ]
    assert "KuCoin refused the futures balance (400007)" in warnings[0]
    # Not needed, the refused futures API is no warning: the Fleet calls such a key OK.
    ok = dataclasses.replace(result, permissions=("General", "Futures"), clock_offset_ms=0)
    ok = dataclasses.replace(ok, key_created_at=now - timedelta(days=5))
    assert key_warnings(assess_check(ok, ["spot"], HealthPolicy())) == (
        "Permission missing: Spot. Enable Spot in KuCoin → Profile → API Management → Edit → "
        "API Restrictions.",
    )
    assert key_warnings(assess_check(ok, [], HealthPolicy())) == ()


OLD_KEY = SimAccount(
    api_key="6d4e5f60718293a4b5c6d7e8",
    api_secret="b6c1d2e3-f4a5-4b6c-9d7e-8f9a0b1c2d3e",
    passphrase="old-pass",
    uid=720500867,
    permissions=("General", "Spot"),
    ip_whitelist=("127.0.0.1",),
    created_at=days_ago_ms(753),
)
AGREEMENT_CASES = [
    # (simulated key, scopes, KuCoin's clock ahead of ours in ms, what the Fleet calls it)
    pytest.param(OLD_KEY, "spot", 0, Status.AT_RISK, id="753-day-old key"),
    pytest.param(GENERAL_ONLY, "spot", 0, Status.SCOPE_MISSING, id="missing scope"),
    pytest.param(OPEN_TRADER, "spot", 0, Status.AT_RISK, id="no whitelist"),
    pytest.param(TRADER, "spot", 3_400, Status.AT_RISK, id="clock 3.4 s off"),
    pytest.param(MASTER, "spot,futures", 0, Status.AT_RISK, id="withdrawal and an old key"),
    pytest.param(TRADER, "spot", 2_000, Status.OK, id="nothing to warn about"),
]


@pytest.mark.parametrize(("account", "scopes", "clock_ms", "status"), AGREEMENT_CASES)
def test_binding_warns_of_exactly_what_the_fleet_shows_a_second_later(
    sim_env, account, scopes, clock_ms, status
):
    if account is OLD_KEY:
        sim_env.simulator.add_account(OLD_KEY)
    sim_env.simulator.set_clock_offset(clock_ms)  # measured at bind time, corrected for
    checked = check(sim_env, account, label="desk", scopes=scopes)
    binding.save(sim_env.console, checked.token, accept_warnings=True)
    [row] = fleet_table(sim_env.console).itertuples()
    assert row.status == status

    # Every risk the Fleet lists, and a failing status, was a warning to confirm at bind time,
    # in the same words and order; a key the Fleet calls OK binds without a question.
    risks = row.risks.split("; ") if isinstance(row.risks, str) else []
    expected = [f"{row.diagnosis}."] if Status(row.status).level == "error" else []
    expected += [f"{r[:1].upper()}{r[1:]}." for r in risks]
    assert [w[: len(e)] for w in checked.warnings for e in expected if w.startswith(e)] == expected
    assert len(checked.warnings) == len(expected)
    confirm = Decision.READY if status is Status.OK else Decision.NEEDS_CONFIRMATION
    assert checked.decision is confirm
    assert checked.status is status
    assert (row.diagnosis, row.hint) == (checked.assessment.diagnosis, checked.assessment.hint)


def test_binding_and_the_fleet_read_the_thresholds_from_the_stored_settings(sim_env):
    young = dataclasses.replace(OLD_KEY, created_at=days_ago_ms(45))
    sim_env.simulator.add_account(young)
    assert check(sim_env, young, label="a").decision is Decision.READY  # 90-day rotation
    save_settings(sim_env.console, rotation_age_days=30)
    checked = check(sim_env, young, label="desk")
    assert checked.warnings[0].startswith("Key is 45 days old.")
    assert "rotation every 30 days" in checked.warnings[0]
    binding.save(sim_env.console, checked.token, accept_warnings=True)
    [row] = fleet_table(sim_env.console).itertuples()
    assert (row.status, row.risks) == ("AT_RISK", "key is 45 days old")


def test_a_late_answer_reads_the_same_at_bind_time_and_in_the_fleet(sim_env):
    account_id = binding.bind(sim_env.console, label="desk", **_secrets(TRADER)).account_id
    sim_env.simulator.set_clock_offset(30_000, api_key=TRADER.api_key)  # requests arrive late
    check_account(sim_env.console, account_id)
    rotation = check(sim_env, TRADER, account_id=account_id)
    [row] = fleet_table(sim_env.console).itertuples()
    assert row.status == "DEGRADED" and rotation.status is Status.DEGRADED
    assert row.diagnosis == f"{rotation.diagnosis.title} (400002), retrying"
    assert rotation.diagnosis is LATE_REQUEST


def test_checking_logs_no_secret(sim_env, caplog):
    caplog.set_level(logging.DEBUG)
    check(sim_env, MASTER)
    check(sim_env, TRADER, passphrase="wrong-" + TRADER.passphrase.reveal())
    assert caplog.records
    for record in caplog.records:
        message = record.getMessage()
        for account in (MASTER, TRADER):
            assert account.api_secret.reveal() not in message
            assert account.passphrase.reveal() not in message


def _secrets(account: SimAccount) -> dict[str, str]:
    return {
        "api_key": account.api_key,
        "api_secret": account.api_secret.reveal(),
        "passphrase": account.passphrase.reveal(),
    }
