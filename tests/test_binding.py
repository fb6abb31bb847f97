"""lib.binding over real HTTP to the simulator and a real SQLite file: check, confirm, save."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from app_fixtures import OPEN_TRADER, TRADER, SimEnv, sim_env_fixture  # noqa: F401
from simulator_fixtures import ELSEWHERE, GENERAL_ONLY, MASTER, NO_GENERAL, SUB

from lib import binding, store
from lib.binding import BindingError, Decision
from lib.kucoin.probe_result import Outcome, ProbeResult
from lib.kucoin.simulator import SimAccount
from lib.models import AuditAction


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
    assert any("Transfer (withdrawal)" in w for w in checked.warnings)
    with pytest.raises(BindingError, match="Confirm the warnings"):
        binding.save(sim_env.console, checked.token)
    assert binding.accounts(sim_env.console) == []
    binding.save(sim_env.console, checked.token, accept_warnings=True)
    assert [a.label for a in binding.accounts(sim_env.console)] == ["desk"]


def test_a_trading_key_without_whitelist_warns_about_kucoins_30_day_rule(sim_env):
    checked = check(sim_env, OPEN_TRADER)
    assert checked.decision is Decision.NEEDS_CONFIRMATION
    [warning] = checked.warnings
    assert "no IP whitelist" in warning and "30 days of inactivity" in warning


def test_a_scope_the_key_lacks_is_a_warning(sim_env):
    checked = check(sim_env, SUB, scopes="spot,futures")
    assert any("needs Spot, but the key lacks the Spot permission" in w for w in checked.warnings)
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


def test_a_key_whose_requests_kucoin_times_differently_is_diagnosed_as_400002(sim_env):
    # KuCoin's clock, as this key's requests see it, runs 30 s ahead while /timestamp (unsigned)
    # shows the true time: our correction measures ~0 ms and KuCoin refuses the timestamp.
    sim_env.simulator.set_clock_offset(30_000, api_key=TRADER.api_key)
    checked = check(sim_env, TRADER)
    assert checked.decision is Decision.FAILED
    assert checked.result.code == "400002"
    assert checked.diagnosis.title == "Clock out of sync"
    assert abs(checked.result.clock_offset_ms) < 1_000


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


def test_key_warnings_cover_the_clock_and_a_refused_futures_api():
    result = ProbeResult(
        checked_at=datetime.now(UTC),
        outcome=Outcome.OK,
        latency_ms=1,
        permissions=("General", "Futures"),
        ip_whitelist="127.**.1",
        clock_offset_ms=-4_200,
        futures_permission_missing=True,
    )
    warnings = binding.key_warnings(result, ())
    assert any("clock is -4.2 s from KuCoin's" in w for w in warnings)
    assert any("futures API refused this key (400007)" in w for w in warnings)
    assert any(
        "needs Futures, but the key lacks" in w for w in binding.key_warnings(result, ["futures"])
    )


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
