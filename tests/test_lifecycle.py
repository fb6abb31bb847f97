"""An account's lifecycle: rotate, re-scope, pause, resume, unbind; through lib and the UI."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from app_fixtures import (  # noqa: F401
    APP,
    ROOT,
    TRADER,
    TRADER_NEW,
    SimEnv,
    app_test,
    shown_text,
    sim_env_fixture,
)
from simulator_fixtures import GENERAL_ONLY, MASTER
from streamlit.testing.v1 import AppTest

from lib import store
from lib.console import binding
from lib.console.binding import Decision
from lib.kucoin.sim import SimAccount
from lib.store.models import AuditAction


def secrets_of(account: SimAccount) -> dict[str, str]:
    """Return a simulated account's credentials as typed."""
    return {
        "api_key": account.api_key,
        "api_secret": account.api_secret.reveal(),
        "passphrase": account.passphrase.reveal(),
    }


def bound(env: SimEnv, account: SimAccount = TRADER, label: str = "desk") -> int:
    """Bind a key through lib and return the account id."""
    outcome = binding.bind(env.console, label=label, accept_warnings=True, **secrets_of(account))
    assert outcome.account_id is not None, outcome.check
    return outcome.account_id


def events(env: SimEnv, account_id: int, action: AuditAction | None = None) -> list:
    """Return an account's audit events, newest first."""
    with env.console.reading() as session:
        return store.audit_log(session, account_id=account_id, action=action)


def view(env: SimEnv, account_id: int) -> store.AccountView:
    """Return the account as pages see it."""
    with env.console.reading() as session:
        return store.get_account(session, account_id)


# --- Through lib -----------------------------------------------------------------------------


def test_rotation_verifies_first_keeps_label_and_history_and_destroys_the_old_key(sim_env):
    account_id = bound(sim_env)
    checked = binding.check_key(
        sim_env.console, label="", scopes="spot", account_id=account_id, **secrets_of(TRADER_NEW)
    )
    assert checked.decision is Decision.READY and checked.label == "desk"
    assert binding.save(sim_env.console, checked.token) == account_id

    account = view(sim_env, account_id)
    assert account.label == "desk" and account.key_last4 == TRADER_NEW.api_key[-4:]
    assert account.credential_rotated_at is not None
    with sim_env.console.reading() as session:
        credentials = store.load_credentials(session, sim_env.console.vault, account_id)
        assert credentials.api_key == TRADER_NEW.api_key
        assert store.find_account_by_api_key(session, sim_env.console.vault, TRADER.api_key) is None
        assert len(store.probe_history(session, account_id)) == 2  # the bind's check is kept
    [event] = events(sim_env, account_id, AuditAction.ROTATE_CREDENTIAL)
    assert event.actor == "local-operator"
    assert event.details["old_key_last4"] == TRADER.api_key[-4:]
    assert event.details["key_last4"] == TRADER_NEW.api_key[-4:]


def test_a_rotation_kucoin_refuses_keeps_the_old_credential(sim_env):
    account_id = bound(sim_env)
    refused = binding.check_key(
        sim_env.console,
        label="",
        scopes="spot",
        account_id=account_id,
        **{**secrets_of(TRADER_NEW), "passphrase": "not-it"},
    )
    assert refused.decision is Decision.FAILED and refused.result.code == "400004"
    assert view(sim_env, account_id).key_last4 == TRADER.api_key[-4:]
    assert events(sim_env, account_id, AuditAction.ROTATE_CREDENTIAL) == []


def test_rotating_to_a_key_another_account_holds_is_refused_naming_it(sim_env):
    first = bound(sim_env, TRADER, "first")
    bound(sim_env, TRADER_NEW, "second")
    checked = binding.check_key(
        sim_env.console, label="", scopes="spot", account_id=first, **secrets_of(TRADER_NEW)
    )
    assert checked.decision is Decision.DUPLICATE and checked.duplicate_of == "second"


def test_each_action_writes_its_audit_event_with_the_operators_name(sim_env):
    account_id = bound(sim_env)
    alice = sim_env.console.as_actor("alice")

    assert binding.set_scopes(alice, account_id, ["spot", "futures"])
    assert not binding.set_scopes(alice, account_id, "futures,spot")  # unchanged: no event
    assert binding.pause(alice, account_id) and not binding.pause(alice, account_id)
    assert view(sim_env, account_id).paused
    assert binding.resume(alice, account_id)
    binding.unbind(alice, account_id)

    actions = [(e.action, e.actor) for e in reversed(events(sim_env, account_id))]
    assert actions == [
        ("bind", "local-operator"),
        ("change_scopes", "alice"),
        ("pause", "alice"),
        ("resume", "alice"),
        ("unbind", "alice"),
    ]
    [scopes] = events(sim_env, account_id, AuditAction.CHANGE_SCOPES)
    assert scopes.details == {"from": ["spot"], "to": ["spot", "futures"]}


def test_unbinding_destroys_credentials_keeps_history_and_frees_the_key(sim_env):
    account_id = bound(sim_env)
    summary = binding.unbind_summary(sim_env.console, account_id)
    assert f"permanently deletes its API Key …{TRADER.api_key[-4:]}, Secret and Passphrase" in (
        summary
    )
    assert "check history and audit log are kept" in summary

    binding.unbind(sim_env.console, account_id)
    with sim_env.console.reading() as session:
        with pytest.raises(store.AccountUnbound):
            store.load_credentials(session, sim_env.console.vault, account_id)
        assert store.probe_history(session, account_id)  # the history stays
    assert [e.action for e in events(sim_env, account_id)] == ["unbind", "bind"]
    assert view(sim_env, account_id).key_last4 is None
    # The key is free again; the old account cannot be rotated back to life.
    again = binding.check_key(
        sim_env.console, label="", scopes="spot", account_id=account_id, **secrets_of(TRADER)
    )
    assert again.decision is Decision.INVALID and "was unbound" in again.errors["account"]
    assert bound(sim_env, TRADER, "desk-2") != account_id


def test_actions_on_an_unbound_account_are_refused_with_a_reason(sim_env):
    account_id = bound(sim_env)
    binding.unbind(sim_env.console, account_id)
    with pytest.raises(store.AccountUnbound, match="was unbound"):
        binding.pause(sim_env.console, account_id)
    with pytest.raises(store.AccountUnbound):
        binding.unbind(sim_env.console, account_id)


# --- Through the UI --------------------------------------------------------------------------

# A two-page app around render_lifecycle: the account page as the app's account page calls it.
HARNESS = {
    "app.py": """
        from pathlib import Path

        import streamlit as st

        PAGES = Path(__file__).parent / "pages"
        st.navigation(
            [
                st.Page(PAGES / "fleet.py", title="Fleet", default=True),
                st.Page(PAGES / "account.py", title="Account"),
            ]
        ).run()
        """,
    "pages/fleet.py": """
        import streamlit as st

        st.title("Fleet")
        """,
    "pages/account.py": """
        import streamlit as st

        from lib import ui
        from lib.console import binding
        from lib.ui import lifecycle, sign_in

        # The app's gate without its frame: who is signed in, for ui.console().
        sign_in.set_current(sign_in.signed_in_operator(sign_in.installation_console()))
        console = ui.console()
        account_id = int(st.query_params.get("account") or st.session_state["selected_account"])
        accounts = binding.accounts(console, include_unbound=True)
        account = next(a for a in accounts if a.id == account_id)
        st.title(account.label)
        lifecycle.render_lifecycle(console, account)
        """,
}


@pytest.fixture
def harness(tmp_path: Path) -> str:
    """Write the two-page app and return its entry script."""
    for name, source in HARNESS.items():
        path = tmp_path / "harness" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return str(tmp_path / "harness" / "app.py")


def account_page(entry: str, account_id: int) -> AppTest:
    """Return the app switched to the account page with this account selected."""
    at = app_test(entry)
    at.session_state["selected_account"] = account_id
    at.run()
    at.switch_page("pages/account.py").run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest, kind: str) -> list[str]:
    """Return the texts of every element of one kind, as the operator reads them."""
    return [shown_text(element.value) for element in getattr(at, kind)]


def rotation_field(at: AppTest, account_id: int, name: str):
    """Return an account's rotation form field (its key changes each time the form empties)."""
    prefix = f"account_{account_id}_rotate_"
    return next(w for w in at.text_input if w.key.startswith(prefix) and w.key.endswith(name))


def rotate(at: AppTest, account_id: int, account: SimAccount, **changes: str) -> AppTest:
    """Type new credentials into the rotation form and submit it."""
    for name, value in {**secrets_of(account), **changes}.items():
        rotation_field(at, account_id, name).input(value)
    next(b for b in at.form_submit_button if b.label == "Verify and rotate").click().run()
    assert not at.exception, at.exception
    return at


def test_rotating_from_the_account_page_verifies_then_replaces_the_key(sim_env, harness):
    account_id = bound(sim_env)
    at = rotate(account_page(harness, account_id), account_id, TRADER_NEW)

    assert "API Status: Connected" in texts(at, "success")
    assert "Credentials rotated for 'desk': verified and saved." in texts(at, "success")
    assert view(sim_env, account_id).key_last4 == TRADER_NEW.api_key[-4:]
    [event] = events(sim_env, account_id, AuditAction.ROTATE_CREDENTIAL)
    assert event.actor == "admin"  # the operator signed in
    for name in ("api_key", "api_secret", "passphrase"):
        assert rotation_field(at, account_id, name).value == ""


def test_a_refused_rotation_shows_the_diagnosis_and_keeps_the_old_key(sim_env, harness):
    account_id = bound(sim_env)
    at = rotate(account_page(harness, account_id), account_id, TRADER_NEW, passphrase="nope")
    assert "API Status: Failed: Wrong API passphrase (400004)" in texts(at, "error")
    assert view(sim_env, account_id).key_last4 == TRADER.api_key[-4:]
    assert events(sim_env, account_id, AuditAction.ROTATE_CREDENTIAL) == []
    # The form keeps what was typed: fixing the passphrase alone rotates.
    assert rotation_field(at, account_id, "api_secret").value == TRADER_NEW.api_secret.reveal()
    rotation_field(at, account_id, "passphrase").input(TRADER_NEW.passphrase.reveal())
    next(b for b in at.form_submit_button if b.label == "Verify and rotate").click().run()
    assert view(sim_env, account_id).key_last4 == TRADER_NEW.api_key[-4:]


def test_a_rotation_with_warnings_waits_for_confirmation(sim_env, harness):
    account_id = bound(sim_env, GENERAL_ONLY)
    prefix = f"account_{account_id}_rotate"
    at = rotate(account_page(harness, account_id), account_id, MASTER)
    assert any("Withdrawal permission (Transfer) enabled" in w for w in texts(at, "warning"))
    assert view(sim_env, account_id).key_last4 == GENERAL_ONLY.api_key[-4:]
    at.checkbox(key=f"{prefix}_accept").check().run()
    at.button(key=f"{prefix}_save").click().run()
    assert view(sim_env, account_id).key_last4 == MASTER.api_key[-4:]
    assert len(events(sim_env, account_id, AuditAction.ROTATE_CREDENTIAL)) == 1


def test_scopes_pause_and_resume_from_the_account_page_are_audited(sim_env, harness):
    account_id = bound(sim_env)
    key = f"account_{account_id}"
    at = account_page(harness, account_id)

    at.multiselect(key=f"{key}_scopes").set_value(["spot", "margin"])
    at.button(key=f"{key}_save_scopes").click().run()
    assert "Scopes changed to Spot, Margin." in texts(at, "success")
    assert view(sim_env, account_id).scopes == ("spot", "margin")

    at.button(key=f"{key}_pause").click().run()
    assert view(sim_env, account_id).paused
    assert "Monitoring is **paused**" in " ".join(texts(at, "markdown"))
    assert any(s.startswith("Monitoring paused") for s in texts(at, "success"))
    at.button(key=f"{key}_resume").click().run()
    assert not view(sim_env, account_id).paused
    assert any(s.startswith("Monitoring resumed") for s in texts(at, "success"))

    actions = [e.action for e in reversed(events(sim_env, account_id))]
    assert actions == ["bind", "change_scopes", "pause", "resume"]
    assert {e.actor for e in events(sim_env, account_id)} == {
        "local-operator",
        "admin",
    }  # bound by a script, changed by the signed-in admin


def test_an_empty_scope_choice_is_refused_with_what_to_do(sim_env, harness):
    account_id = bound(sim_env)
    at = account_page(harness, account_id)
    at.multiselect(key=f"account_{account_id}_scopes").set_value([])
    at.button(key=f"account_{account_id}_save_scopes").click().run()
    assert any("Choose at least one scope" in e for e in texts(at, "error"))
    assert view(sim_env, account_id).scopes == ("spot",)


def test_unbinding_asks_first_says_what_goes_and_stays_on_the_account(sim_env, harness):
    account_id = bound(sim_env)
    key = f"account_{account_id}"
    at = account_page(harness, account_id)

    at.button(key=f"{key}_unbind").click().run()
    [warning] = texts(at, "warning")
    assert f"API Key …{TRADER.api_key[-4:]}, Secret and Passphrase" in warning
    at.button(key=f"{key}_unbind_cancel").click().run()
    assert "Unbind cancelled: nothing changed." in texts(at, "info")
    assert view(sim_env, account_id).bound

    at.button(key=f"{key}_unbind").click().run()
    at.button(key=f"{key}_unbind_confirm").click().run()
    assert not at.exception
    assert [t.value for t in at.title] == ["desk"]
    assert any(s.startswith("Unbound 'desk'") for s in texts(at, "success"))
    assert any("was unbound on" in i for i in texts(at, "info"))
    assert not view(sim_env, account_id).bound
    assert [e.action for e in events(sim_env, account_id)] == ["unbind", "bind"]


def test_an_action_on_an_account_another_session_unbound_is_a_message(sim_env, harness):
    account_id = bound(sim_env)
    at = account_page(harness, account_id)
    binding.unbind(sim_env.console, account_id)  # from another session, meanwhile

    at.button(key=f"account_{account_id}_pause").click().run()

    assert not at.exception
    assert any("was unbound" in e for e in texts(at, "error"))


def test_an_unverified_account_says_so_and_an_unbound_one_offers_nothing(sim_env, harness):
    from simulator_fixtures import ELSEWHERE

    outcome = binding.bind(
        sim_env.console, label="office", accept_unverified=True, **secrets_of(ELSEWHERE)
    )
    at = account_page(harness, outcome.account_id)
    assert any(w.startswith("Unverified:") for w in texts(at, "warning"))

    binding.unbind(sim_env.console, outcome.account_id)
    at = account_page(harness, outcome.account_id)
    assert any("was unbound on" in i for i in texts(at, "info"))
    assert not at.button and not at.form_submit_button


def test_the_apps_account_page_offers_the_lifecycle_actions(sim_env):
    if "render_lifecycle" not in (ROOT / "pages" / "account.py").read_text():
        pytest.skip("the account page does not render the lifecycle actions yet")
    account_id = bound(sim_env)
    at = app_test().run()
    at.query_params["account"] = str(account_id)
    at.switch_page("pages/account.py").run()
    assert not at.exception, at.exception
    at.button(key=f"account_{account_id}_pause").click().run()
    assert view(sim_env, account_id).paused
    at = rotate(at, account_id, TRADER_NEW)
    assert view(sim_env, account_id).key_last4 == TRADER_NEW.api_key[-4:]
    at.button(key=f"account_{account_id}_unbind").click().run()
    at.button(key=f"account_{account_id}_unbind_confirm").click().run()
    assert not view(sim_env, account_id).bound
    actions = [e.action for e in reversed(events(sim_env, account_id))]
    assert actions == ["bind", "pause", "rotate_credential", "unbind"]


def test_a_rotation_with_an_unusable_master_key_file_is_a_message_and_keeps_the_paste(
    sim_env, harness
):
    account_id = bound(sim_env)
    at = account_page(harness, account_id)
    (sim_env.data_dir / "master.key").write_bytes(b"")

    at = rotate(at, account_id, TRADER_NEW)

    assert any("cannot use its credential store" in e for e in texts(at, "error"))
    assert rotation_field(at, account_id, "api_secret").value == TRADER_NEW.api_secret.reveal()
