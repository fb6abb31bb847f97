"""`python -m lib bind / accounts / unbind` against the simulator over real HTTP."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from app_fixtures import (  # noqa: F401 (fixture)
    OPEN_TRADER,
    ROOT,
    TRADER,
    SimEnv,
    key_created,
    sim_env_fixture,
)
from simulator_fixtures import ELSEWHERE, GENERAL_ONLY, MASTER

from lib.__main__ import main
from lib.cli import terminal
from lib.console import binding
from lib.console.fleet import fleet_table
from lib.kucoin.sim import SimAccount
from lib.store import audit_log
from lib.store.models import AuditAction


class Terminal(io.StringIO):
    """Stdin that is a terminal: the commands may ask, and read these answers."""

    def isatty(self) -> bool:
        return True


def use_key(monkeypatch: pytest.MonkeyPatch, account: SimAccount, **changes: str) -> None:
    """Put an account's credentials (with any changed) in KUCOIN_API_* variables."""
    values = {
        "KUCOIN_API_KEY": account.api_key,
        "KUCOIN_API_SECRET": account.api_secret.reveal(),
        "KUCOIN_API_PASSPHRASE": account.passphrase.reveal(),
        **changes,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `python -m lib ARGV` in this process; return (status, stdout, stderr)."""
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def labels(env: SimEnv) -> list[str]:
    return [a.label for a in binding.accounts(env.console)]


@pytest.fixture(autouse=True)
def no_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stdin is not a terminal unless a test says so: nothing may be asked."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))


def test_bind_saves_a_good_key_and_reports_like_the_page(sim_env, monkeypatch, capsys):
    use_key(monkeypatch, TRADER)
    status, out, err = cli(capsys, "bind", "--label", "spot-bot", "--scopes", "spot")
    assert status == 0, err
    assert "API Status: Connected" in out
    assert f"Account: master account, UID {TRADER.uid}" in out
    assert f"Key created: {key_created(TRADER):%Y-%m-%d}" in out
    # Not needed is not missing: each state has its own mark.
    assert "✓ Spot (needed): granted" in out and "– Futures: not needed" in out
    assert "✗" not in out
    assert "127.0.0.1 (IP KuCoin saw): covered" in out
    assert "Saved: account 'spot-bot' (id 1), verified." in out
    assert labels(sim_env) == ["spot-bot"]


def test_a_key_lacking_a_needed_scope_is_said_connected_but_unable_and_marked_missing(
    sim_env, monkeypatch, capsys
):
    use_key(monkeypatch, GENERAL_ONLY)  # General only: no Spot
    status, out, err = cli(capsys, "bind", "--label", "reader", "--scopes", "spot", "--yes")
    assert status == 0, err
    assert (
        "API Status: Connected, but this key cannot do what the account needs: "
        "Permission missing: Spot"
    ) in out
    assert "✗ Spot (needed): missing" in out
    assert "– Futures: not needed" in out and "– Margin: not needed" in out
    assert "Warning: Permission missing: Spot. Enable Spot in" in out
    assert (
        "Saved: account 'reader' (id 1), connected; the Fleet shows it as SCOPE_MISSING: "
        "Permission missing: Spot."
    ) in out
    [row] = fleet_table(sim_env.console).itertuples()
    assert (row.status, row.diagnosis) == ("SCOPE_MISSING", "Permission missing: Spot")


def test_warnings_without_yes_save_nothing_and_say_how(sim_env, monkeypatch, capsys):
    use_key(monkeypatch, MASTER)
    status, out, err = cli(capsys, "bind", "--label", "treasury")
    assert status == 1
    assert "Warning: Withdrawal permission (Transfer) enabled. Disable Transfer" in out
    assert "Not saved: confirm the warnings with --yes" in err
    assert labels(sim_env) == []

    status, out, _ = cli(capsys, "bind", "--label", "treasury", "--yes")
    assert status == 0 and labels(sim_env) == ["treasury"]


@pytest.mark.parametrize(("answer", "saved"), [("y\n", ["risky"]), ("\n", [])])
def test_warnings_are_asked_about_in_a_terminal(sim_env, monkeypatch, capsys, answer, saved):
    use_key(monkeypatch, OPEN_TRADER)
    monkeypatch.setattr(sys, "stdin", Terminal(answer))
    status, out, _ = cli(capsys, "bind", "--label", "risky")
    assert "30 days of inactivity" in out
    assert "Save this key with these warnings? [y/N]" in out
    assert status == (0 if saved else 1)
    assert labels(sim_env) == saved


def test_a_whitelist_refusal_is_saved_only_with_save_unverified(sim_env, monkeypatch, capsys):
    use_key(monkeypatch, ELSEWHERE)
    status, out, err = cli(capsys, "bind", "--label", "office")
    assert status == 1
    assert "API Status: Failed: IP not whitelisted (400006)" in out
    assert "The IP KuCoin saw: 127.0.0.1" in out
    assert "--save-unverified" in err
    assert labels(sim_env) == []

    status, out, _ = cli(capsys, "bind", "--label", "office", "--save-unverified")
    assert status == 0 and "UNVERIFIED" in out
    [account] = binding.accounts(sim_env.console)
    assert account.unverified


def test_a_refused_key_exits_1_with_the_diagnosis_and_saves_nothing(sim_env, monkeypatch, capsys):
    use_key(monkeypatch, TRADER, KUCOIN_API_PASSPHRASE="my-trading-password")
    status, out, err = cli(capsys, "bind", "--label", "desk")
    assert status == 1
    assert "API Status: Failed: Wrong API passphrase (400004)" in out
    assert "not the login or trading password" in out
    assert "nothing saved" in err
    assert labels(sim_env) == []


def test_an_unreachable_kucoin_exits_3(sim_env, monkeypatch, capsys):
    use_key(monkeypatch, TRADER)
    status, out, _ = cli(
        capsys,
        "bind",
        "--label",
        "desk",
        "--spot-url",
        "http://127.0.0.1:9",
        "--futures-url",
        "http://127.0.0.1:9",
    )
    assert status == 3 and "KuCoin unreachable" in out
    assert sim_env.requests == []  # the URL options won over BINDWATCH_KUCOIN_*


def test_a_bad_paste_exits_2_before_any_request(sim_env, monkeypatch, capsys):
    use_key(
        monkeypatch,
        TRADER,
        KUCOIN_API_KEY=TRADER.api_secret.reveal(),
        KUCOIN_API_SECRET=TRADER.api_key,
    )
    status, out, _ = cli(capsys, "bind", "--label", "desk", "--scopes", "spot,options")
    assert status == 2
    assert "Nothing was sent to KuCoin. Fix:" in out
    assert "  API Key: This looks like your Secret" in out
    assert "  Scopes: Unknown scope options" in out
    assert sim_env.requests == []


def test_a_key_already_bound_is_refused_naming_its_account(sim_env, monkeypatch, capsys):
    use_key(monkeypatch, TRADER)
    assert cli(capsys, "bind", "--label", "first")[0] == 0
    status, out, _ = cli(capsys, "bind", "--label", "second")
    assert status == 1 and "already bound to account 'first'" in out


def test_missing_credentials_are_refused_unless_they_can_be_asked(sim_env, monkeypatch, capsys):
    status, _, err = cli(capsys, "bind", "--label", "desk")
    assert status == 2
    assert "KUCOIN_API_KEY, KUCOIN_API_SECRET, KUCOIN_API_PASSPHRASE" in err
    assert sim_env.requests == []

    monkeypatch.setenv("KUCOIN_API_KEY", TRADER.api_key)
    monkeypatch.setattr(sys, "stdin", Terminal(""))
    asked = []
    answers = {
        "Secret: ": TRADER.api_secret.reveal(),
        "Passphrase: ": TRADER.passphrase.reveal(),
    }
    monkeypatch.setattr(
        terminal.getpass, "getpass", lambda prompt: asked.append(prompt) or answers[prompt]
    )
    status, _, _ = cli(capsys, "bind", "--label", "desk")
    assert asked == ["Secret: ", "Passphrase: "]
    assert status == 0 and labels(sim_env) == ["desk"]


def test_accounts_lists_every_account_with_its_state_and_never_a_secret(
    sim_env, monkeypatch, capsys
):
    for account, label, flag in ((TRADER, "b-desk", None), (ELSEWHERE, "a-office", "x")):
        use_key(monkeypatch, account)
        argv = ["bind", "--label", label] + (["--save-unverified"] if flag else [])
        assert cli(capsys, *argv)[0] == 0
    [desk] = [a for a in binding.accounts(sim_env.console) if a.label == "b-desk"]
    binding.pause(sim_env.console, desk.id)

    status, out, _ = cli(capsys, "accounts")
    assert status == 0
    header, office, desk_line = out.splitlines()
    assert header.split() == ["LABEL", "ID", "SCOPES", "KEY", "STATE", "CREATED"]
    assert office.split()[:5] == [
        "a-office",
        "2",
        "spot",
        f"…{ELSEWHERE.api_key[-4:]}",
        "unverified",
    ]
    assert desk_line.split()[:5] == ["b-desk", "1", "spot", f"…{TRADER.api_key[-4:]}", "paused"]

    binding.unbind(sim_env.console, desk.id)
    status, out, _ = cli(capsys, "accounts", "--json")
    rows = {row["label"]: row for row in json.loads(out)}
    assert rows["b-desk"]["state"] == "unbound" and rows["b-desk"]["key_last4"] is None
    assert rows["a-office"]["unverified"] is True
    for account in (TRADER, ELSEWHERE):
        for secret in (account.api_key, account.api_secret.reveal(), account.passphrase.reveal()):
            assert secret not in out


def test_accounts_on_an_empty_install_says_how_to_bind(sim_env, capsys):
    status, out, _ = cli(capsys, "accounts")
    assert status == 0 and "python -m lib bind --label NAME" in out


def test_unbind_shows_what_goes_and_needs_confirmation(sim_env, monkeypatch, capsys):
    use_key(monkeypatch, TRADER)
    assert cli(capsys, "bind", "--label", "desk")[0] == 0
    status, out, _ = cli(capsys, "unbind", "desk")
    assert status == 1
    assert f"permanently deletes its API Key …{TRADER.api_key[-4:]}" in out
    assert "Not unbound: confirm with --yes" in out
    assert labels(sim_env) == ["desk"]

    monkeypatch.setattr(sys, "stdin", Terminal("y\n"))
    status, out, _ = cli(capsys, "unbind", "desk")
    assert status == 0 and "Unbound 'desk'" in out
    assert labels(sim_env) == []
    with sim_env.console.reading() as session:
        [event] = audit_log(session, action=AuditAction.UNBIND)
    assert event.actor == "local-operator"

    status, _, err = cli(capsys, "unbind", "desk", "--yes")
    assert status == 1 and "no bound account is labelled 'desk'" in err


def test_no_secret_is_printed_by_any_command(sim_env, monkeypatch, capsys):
    use_key(monkeypatch, MASTER, KUCOIN_API_PASSPHRASE=MASTER.passphrase.reveal() + "-x")
    printed = "".join(cli(capsys, "bind", "--label", "m")[1:])
    use_key(monkeypatch, MASTER)
    printed += "".join(cli(capsys, "bind", "--label", "m", "--yes")[1:])
    printed += "".join(cli(capsys, "accounts", "--json")[1:])
    printed += "".join(cli(capsys, "unbind", "m", "--yes")[1:])
    assert "Saved: account 'm'" in printed and "Unbound 'm'" in printed
    for secret in (MASTER.api_secret.reveal(), MASTER.passphrase.reveal()):
        assert secret not in printed


def test_the_commands_run_as_python_dash_m_lib(sim_env):
    env = {**os.environ, "KUCOIN_API_KEY": TRADER.api_key}
    env["KUCOIN_API_SECRET"] = TRADER.api_secret.reveal()
    env["KUCOIN_API_PASSPHRASE"] = TRADER.passphrase.reveal()
    done = subprocess.run(
        [sys.executable, "-m", "lib", "bind", "--label", "desk"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Saved: account 'desk'" in done.stdout
    assert labels(sim_env) == ["desk"]
