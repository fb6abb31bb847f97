"""The check engine over real HTTP and a real database: pacing, retries, deadlines, one bad key.

Every test binds keys into a SQLite file (sim_env) and runs the engine against the simulator
over loopback HTTP; the simulator counts what it answered, 429s included.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from app_fixtures import SimEnv, sim_env_fixture  # noqa: F401  (the sim_env fixture)

from lib import store
from lib.console.checks import check_account, refresh_fleet, run_owner
from lib.console.fleet import fleet_table
from lib.console.refresh import check_targets, run_checks
from lib.kucoin.auth import Credentials
from lib.kucoin.probe_result import Outcome
from lib.kucoin.sim import SimAccount

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = SimAccount(
    api_key="000000000000000000000000",
    api_secret="00000000-0000-4000-8000-000000000000",
    passphrase="pass",
    uid=1,
    permissions=("General", "Spot"),
    ip_whitelist=("127.0.0.1",),
)


def keys(count: int, uids: int, start: int = 1) -> list[SimAccount]:
    """Return `count` keys spread over `uids` UIDs."""
    return [
        dataclasses.replace(
            TEMPLATE,
            api_key=f"{n:024x}",
            api_secret=f"00000000-0000-4000-8000-{n:012x}",
            passphrase=f"pass-{n}",
            uid=500 + n % uids,
        )
        for n in range(start, start + count)
    ]


def save(env: SimEnv, accounts: list[SimAccount]) -> list[int]:
    """Serve the keys and store them unchecked, as an import would; return the account ids."""
    ids = []
    for account in accounts:
        env.simulator.add_account(account)
        with env.console.transaction() as session:
            ids.append(
                store.create_account_with_credentials(
                    session,
                    env.console.vault,
                    label=f"key {account.api_key[-4:]}",
                    credentials=Credentials(
                        account.api_key, account.api_secret.reveal(), account.passphrase.reveal()
                    ),
                    scopes=("spot",),
                    actor="test",
                )
            )
    return ids


class Refusals:
    """Counts the simulator's 429 answers by wrapping its handler."""

    def __init__(self, env: SimEnv) -> None:
        self.count = 0
        self._lock = threading.Lock()
        original = env.simulator.handle

        def handle(request):
            response = original(request)
            if response.status == 429:
                with self._lock:
                    self.count += 1
            return response

        env.simulator.handle = handle  # type: ignore[method-assign]


def test_a_round_checks_every_account_with_one_clock_measurement(sim_env: SimEnv) -> None:
    ids = save(sim_env, keys(24, uids=24))
    sim_env.simulator.set_latency(100)
    refused = Refusals(sim_env)

    results = refresh_fleet(sim_env.console)

    assert sorted(results) == sorted(ids)
    assert all(r.outcome is Outcome.OK for r in results.values())
    assert refused.count == 0
    # The per-IP public pool is spent once per round, not once per key.
    assert sim_env.requests.count("/api/v1/timestamp") == 1
    assert sim_env.requests.count("/api/v1/my-ip") == 1
    with sim_env.console.reading() as session:
        assert len(store.probe_history_frame(session)) == 24


def test_six_keys_of_one_uid_wait_for_the_reset_instead_of_being_refused(
    sim_env: SimEnv,
) -> None:
    six = keys(6, uids=1)
    ids = save(sim_env, six)
    refresh_fleet(sim_env.console)  # learns that the six share a UID
    # The UID's Management pool now holds four checks (25 each) per 1.5 s window.
    sim_env.simulator.quotas["Management"] = 100
    sim_env.simulator.window_ms = 1_500
    sim_env.simulator.reset_rate_limits()
    refused = Refusals(sim_env)

    started = time.monotonic()
    results = refresh_fleet(sim_env.console)
    elapsed = time.monotonic() - started

    assert refused.count == 0
    assert [results[i].outcome for i in ids] == [Outcome.OK] * 6
    assert elapsed >= 1.4  # the last two waited for the window to reset


def test_transient_failures_are_retried_until_they_pass(sim_env: SimEnv) -> None:
    [account_id] = save(sim_env, keys(1, uids=1))
    key = keys(1, uids=1)[0].api_key
    sim_env.simulator.fail_next(2, status=503, api_key=key)

    result = check_account(sim_env.console, account_id)

    assert result.outcome is Outcome.OK
    assert sim_env.requests.count("/api/v1/user/api-key") >= 2


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"remove": True}, "400003"),
        ({"passphrase": "changed on KuCoin"}, "400004"),
        ({"api_secret": "11111111-2222-4333-8444-555555555555"}, "400005"),
        ({"ip_whitelist": ("192.0.2.1",)}, "400006"),
        ({"permissions": ("Spot",)}, "400007"),
        ({"frozen": True}, "411100"),
    ],
)
def test_kucoins_verdict_on_a_key_is_not_retried(sim_env: SimEnv, change: dict, code: str) -> None:
    [account] = keys(1, uids=1)
    [account_id] = save(sim_env, [account])
    if change.get("remove"):
        sim_env.simulator.remove_account(account.api_key)
    else:
        sim_env.simulator.update_account(account.api_key, **change)
    before = sim_env.requests.count("/api/v1/user/api-key")

    result = check_account(sim_env.console, account_id)

    assert (result.outcome, result.code) == (Outcome.REJECTED, code)
    assert sim_env.requests.count("/api/v1/user/api-key") - before == 1


def test_an_unreadable_credential_gets_its_status_and_the_round_goes_on(sim_env: SimEnv) -> None:
    first, second, third = save(sim_env, keys(3, uids=3))
    # The second account's secret is the first's ciphertext: moved from another row.
    with sim_env.console.engine.begin() as connection:
        secret = connection.execute(
            sa.text("SELECT api_secret_enc FROM credentials WHERE account_id = :a"), {"a": first}
        ).scalar_one()
        connection.execute(
            sa.text("UPDATE credentials SET api_secret_enc = :s WHERE account_id = :a"),
            {"s": secret, "a": second},
        )

    results = refresh_fleet(sim_env.console)

    assert results[first].ok and results[third].ok
    assert results[second].code == "credentials-unreadable"
    assert "integrity check" in results[second].message
    fleet = fleet_table(sim_env.console).set_index("account_id")
    assert fleet.loc[second, "status"] == "UNREADABLE"
    assert "Rotate the account's credentials" in fleet.loc[second, "hint"]
    assert fleet.loc[first, "status"] == fleet.loc[third, "status"] == "OK"


def test_a_check_that_hits_its_deadline_is_degraded_with_that_reason(sim_env: SimEnv) -> None:
    [account] = keys(1, uids=1)
    [account_id] = save(sim_env, [account])
    assert check_account(sim_env.console, account_id).ok
    sim_env.simulator.set_latency(3_000, api_key=account.api_key)

    started = time.monotonic()
    report = run_checks(
        sim_env.console,
        check_targets(sim_env.console, [account_id]),
        owner=run_owner(sim_env.console, "check"),
        deadline_s=1.0,
    )
    elapsed = time.monotonic() - started

    result = report.results[account_id]
    assert (result.outcome, result.code) == (Outcome.UNREACHABLE, "deadline")
    assert elapsed < 2.5
    row = fleet_table(sim_env.console).set_index("account_id").loc[account_id]
    assert row["status"] == "DEGRADED"
    assert row["diagnosis"].startswith("Check timed out (deadline)")


def test_a_rate_limit_names_its_pool_and_an_overload_does_not(sim_env: SimEnv) -> None:
    [account] = keys(1, uids=1)
    [account_id] = save(sim_env, [account])
    assert check_account(sim_env.console, account_id).ok

    def check() -> object:
        """Check the account once, with a deadline shorter than a pool's reset."""
        return run_checks(
            sim_env.console,
            check_targets(sim_env.console, [account_id]),
            owner="test",
            deadline_s=2.0,  # room for an overload's retries on a loaded machine
        ).results[account_id]

    sim_env.simulator.overload_next(-1, api_key=account.api_key)
    overloaded = check()
    overloaded_row = fleet_table(sim_env.console).set_index("account_id").loc[account_id]
    sim_env.simulator.clear_faults(account.api_key)
    sim_env.simulator.reset_rate_limits()
    sim_env.simulator.quotas["Management"] = 20  # key info fits, the accounts call does not
    started = time.monotonic()
    limited = check()
    elapsed = time.monotonic() - started
    limited_row = fleet_table(sim_env.console).set_index("account_id").loc[account_id]

    assert (overloaded.code, overloaded.rate_limited_pool) == ("429000", None)
    assert overloaded_row["diagnosis"].startswith("KuCoin overloaded (429000)")
    assert (limited.code, limited.rate_limited_pool) == ("429000", "Management")
    assert 0 < limited.rate_limit_reset_ms <= 30_000
    assert elapsed < 2.5  # the 30 s reset outlasts the deadline: left for the next check
    assert limited_row["status"] == "DEGRADED"
    assert limited_row["diagnosis"].startswith(
        "Rate limited: the Management pool of this UID ran out, resets "
    )
    assert "another client on the same UID" in limited_row["hint"]


def _refresh_command(*args: str) -> subprocess.CompletedProcess:
    """Run `python -m lib refresh` with the test's BINDWATCH_* environment."""
    return subprocess.run(
        [sys.executable, "-m", "lib", "refresh", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_refresh_command_checks_what_is_due_and_exits_like_status(sim_env: SimEnv) -> None:
    accounts = keys(3, uids=3)
    save(sim_env, accounts)

    first = _refresh_command("--json")
    again = _refresh_command("--json")
    sim_env.simulator.update_account(accounts[0].api_key, frozen=True)
    everything = _refresh_command("--all")

    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["checked"] == 3 and summary["results"]["ok"] == 3
    assert summary["failing"] == 0
    assert json.loads(again.stdout)["checked"] == 0  # nothing is due a second time yet
    assert everything.returncode == 1
    assert "Checked 3 accounts" in everything.stdout
    assert "1 of 3 accounts failing" in everything.stdout
