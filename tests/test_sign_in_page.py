"""The gate in AppTest: what a session sees before signing in, as a viewer, and through SSO.

The served app's cookie and forms are in tests/test_journeys_operators.py (a real browser);
this is the page logic: which pages the navigation registers, and who the session is.
"""

from __future__ import annotations

import pytest
from app_fixtures import APP, TRADER, SimEnv, app_test, ensure_operators, sim_env_fixture
from streamlit.testing.v1 import AppTest

from lib.console import Role, binding
from lib.console import operators as ops

FIXTURES = (sim_env_fixture,)
PROTECTED = ("pages/fleet.py", "pages/account.py", "pages/bind.py", "pages/settings.py")
AUTH = {
    "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
    "cookie_secret": "a test cookie secret",
    "client_id": "bindwatch",
    "client_secret": "not a real secret",
    "server_metadata_url": "https://idp.example/.well-known/openid-configuration",
}
SSO_ROLES = {"admin": ["ana@example.com"], "viewer": ["ben@example.com"]}


def bind(env: SimEnv) -> int:
    """Bind TRADER as "desk"; return its id."""
    return binding.bind(
        env.console,
        label="desk",
        api_key=TRADER.api_key,
        api_secret=TRADER.api_secret.reveal(),
        passphrase=TRADER.passphrase.reveal(),
    ).account_id


def texts(at: AppTest) -> str:
    """Return every text element of the run, joined."""
    return " ".join(
        str(e.value)
        for kind in ("title", "markdown", "caption", "error", "info")
        for e in getattr(at, kind)
    )


def test_signed_out_only_setup_then_only_sign_in_is_registered(sim_env: SimEnv) -> None:
    bind(sim_env)
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert [t.value for t in at.title] == ["Create the first admin"]
    for page in PROTECTED:
        with pytest.raises(ValueError):
            at.switch_page(page)
    assert not at.dataframe and "desk" not in texts(at)

    ensure_operators(sim_env.console)
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert [t.value for t in at.title] == ["Sign in to bindwatch"]
    assert not at.dataframe and "desk" not in texts(at) and not at.exception


def test_a_viewer_has_no_action_on_any_page(sim_env: SimEnv) -> None:
    account_id = bind(sim_env)
    at = app_test(name="viewer").run()
    assert "desk" in [r for r in at.dataframe[0].value["label"]]
    assert "refresh_all" not in [b.key for b in at.button]
    for page in ("pages/bind.py", "pages/import_keys.py", "pages/operators.py"):
        with pytest.raises(ValueError):
            at.switch_page(page)
    at.query_params["account"] = str(account_id)
    at.switch_page("pages/account.py").run()
    keys = [b.key for b in at.button]
    assert f"check_now_{account_id}" not in keys
    assert not [k for k in keys if k and k.startswith(f"account_{account_id}_")]
    at.switch_page("pages/settings.py").run()
    assert all(b.disabled for b in at.get("form_submit_button"))
    assert not at.exception


def test_a_session_ended_elsewhere_shows_the_sign_in_form_at_the_next_run(sim_env: SimEnv) -> None:
    bind(sim_env)
    ensure_operators(sim_env.console)
    at = app_test().run()
    assert at.dataframe
    ops.remove_operator(sim_env.console, "viewer")  # a change to someone else changes nothing
    at.run()
    assert at.dataframe
    ops.sign_out(sim_env.console, at.session_state["_operator_session"])
    at.run()
    assert [t.value for t in at.title] == ["Sign in to bindwatch"]
    assert "Your session has ended: sign in again." in [i.value for i in at.info]
    assert not at.dataframe


@pytest.mark.parametrize(
    ("email", "verified", "role"),
    [("ana@example.com", True, Role.ADMIN), ("ben@example.com", True, Role.VIEWER)],
)
def test_single_sign_on_signs_an_allowed_email_in_with_its_role(
    sim_env: SimEnv, email: str, verified: bool, role: Role
) -> None:
    bind(sim_env)
    at = AppTest.from_file(APP, default_timeout=30)
    at.secrets["auth"] = AUTH
    at.secrets["sso_roles"] = SSO_ROLES
    at.user = {"is_logged_in": True, "email": email, "email_verified": verified}
    at.run()
    assert not at.exception
    assert f"Signed in as **{email}** ({role.value})" in [c.value for c in at.sidebar.caption]
    assert ("refresh_all" in [b.key for b in at.button]) is (role is Role.ADMIN)
    assert ops.operators_frame(sim_env.console).empty  # no password account was made


@pytest.mark.parametrize(
    "user",
    [
        {"is_logged_in": True, "email": "eve@example.com", "email_verified": True},
        {"is_logged_in": True, "email": "ben@example.com", "email_verified": False},
    ],
    ids=["not-on-the-list", "unverified"],
)
def test_single_sign_on_refuses_an_email_off_the_list(sim_env: SimEnv, user: dict) -> None:
    bind(sim_env)
    ensure_operators(sim_env.console)
    at = AppTest.from_file(APP, default_timeout=30)
    at.secrets["auth"] = AUTH
    at.secrets["sso_roles"] = SSO_ROLES
    at.user = user
    at.run()
    assert [t.value for t in at.title] == ["Sign in to bindwatch"]
    assert any("may not open this console" in e.value for e in at.error)
    assert not at.dataframe and not at.exception


def test_the_operators_page_adds_changes_and_removes_operators_but_never_the_last_admin(
    sim_env: SimEnv,
) -> None:
    at = app_test().run()
    at.switch_page("pages/operators.py").run()
    at.text_input(key="operator_add_name").input("Cy")
    at.text_input(key="operator_add_password").input("cy's long password")
    at.text_input(key="operator_add_confirm").input("cy's long password")
    at.get("form_submit_button")[0].click().run()
    assert "Added cy as viewer." in [s.value for s in at.success]
    assert at.session_state["operator_add_password"] == ""  # no password kept in session state
    assert ("cy", Role.VIEWER) in [(o.name, o.role) for o in ops.list_operators(sim_env.console)]

    at.selectbox(key="operator_change_name").select("admin")
    at.checkbox(key="operator_change_confirm").check()
    at.button(key="operator_change_remove").click().run()
    assert any("only admin" in e.value for e in at.error)
    at.selectbox(key="operator_change_name").select("cy")
    at.selectbox(key="operator_change_role").select("admin")
    at.button(key="operator_change_save").click().run()
    assert "cy is now admin." in [s.value for s in at.success]
    with sim_env.console.reading() as session:
        events = [e for e in ops.store.audit_log(session) if e.action == "change_role"]
    assert [(e.actor, e.details["operator"]) for e in events] == [("admin", "cy")]
    assert not at.exception
