"""The alert parts of the pages, fast (AppTest): Settings' alert section for admins and viewers."""

from __future__ import annotations

from app_fixtures import SimEnv, app_test, sim_env_fixture  # noqa: F401  (the sim_env fixture)
from streamlit.testing.v1 import AppTest

from lib.console import alerts

SETTINGS_PAGE = "pages/settings.py"


def open_settings(name: str = "admin") -> AppTest:
    """Return the Settings page, run, for one of the harness's operators."""
    at = app_test(name=name).run()
    return at.switch_page(SETTINGS_PAGE).run()


def field(at: AppTest, label: str):
    """Return the text field with this label."""
    return next(w for w in at.text_input if w.label == label)


def test_a_bad_channel_url_is_refused_with_what_to_fix_and_nothing_is_saved(sim_env: SimEnv):
    at = open_settings()
    field(at, "Add a channel (apprise URL)").input("nonsense://token-abc")
    at.button(key="FormSubmitter:alert_channel_form-Add channel").click().run()
    assert not at.exception
    assert any("apprise cannot send to that URL" in e.value for e in at.error)
    assert alerts.channels(sim_env.console).empty
    assert field(at, "Add a channel (apprise URL)").value == ""
    state = at._session_state._state  # the whole state: widgets without a key too
    kept = [f"{key}={state[key]!r}" for key in list(state) if key in state]
    assert kept and not [v for v in kept if "token-abc" in v]  # the session forgot it


def test_a_bad_console_address_is_refused_and_a_good_one_saved(sim_env: SimEnv):
    at = open_settings()
    field(at, "Console address (for links)").input("ftp://bindwatch.example.com")
    at.button(key="FormSubmitter:alert_settings_form-Save alert settings").click().run()
    assert any("must be an http:// or https:// address" in e.value for e in at.error)
    assert sim_env.console.settings().console_url == ""
    field(at, "Console address (for links)").input("https://bindwatch.example.com/")
    at.button(key="FormSubmitter:alert_settings_form-Save alert settings").click().run()
    assert sim_env.console.settings().console_url == "https://bindwatch.example.com"


def test_a_viewer_sees_no_channel_and_no_control(sim_env: SimEnv):
    alerts.add_channel(sim_env.console, "json://127.0.0.1:9/hook")
    at = open_settings("viewer")
    assert not at.exception
    assert any("only an admin sees and changes them" in c.value for c in at.caption)
    labels = [b.label for b in at.button]
    assert "Send test" not in labels and "Remove channel" not in labels
    assert not [w for w in at.text_input if w.label == "Add a channel (apprise URL)"]
