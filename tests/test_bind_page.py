"""The Bind page, driven by AppTest against the simulator over real HTTP and a real SQLite file."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import pytest
from app_fixtures import APP, OPEN_TRADER, TRADER, SimEnv, key_created, sim_env_fixture  # noqa: F401
from simulator_fixtures import ELSEWHERE, MASTER, NO_GENERAL
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Widget

from lib import binding, store
from lib.kucoin.simulator import SimAccount
from lib.models import AuditAction

UNKNOWN_KEY = "0123456789abcdef01234567"
WRONG_SECRET = "00000000-0000-4000-8000-000000000000"


def open_bind_page() -> AppTest:
    """Return the app, run, switched to the Bind page."""
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.switch_page("pages/bind.py").run()
    assert not at.exception, at.exception
    return at


def submit(
    at: AppTest,
    account: SimAccount | None = None,
    *,
    label: str = "desk-1",
    api_key: str | None = None,
    api_secret: str | None = None,
    passphrase: str | None = None,
    scopes: list[str] | None = None,
) -> AppTest:
    """Type a key into the form (the account's values unless given) and submit it."""
    values = {
        "Label": label,
        "API Key": api_key if api_key is not None else account.api_key,
        "Secret": api_secret if api_secret is not None else account.api_secret.reveal(),
        "Passphrase": passphrase if passphrase is not None else account.passphrase.reveal(),
    }
    for name, value in values.items():
        field(at, name).input(value)
    if scopes is not None:
        at.multiselect[0].set_value(scopes)
    at.form_submit_button[0].click().run()
    assert not at.exception, at.exception
    return at


def field(at: AppTest, label: str):
    """Return the form's text input with this label (its key changes with every submit)."""
    return next(widget for widget in at.text_input if widget.label == label)


def messages(at: AppTest, kind: str) -> list[str]:
    """Return the texts of every element of one kind (success, error, warning, info)."""
    return [element.value for element in getattr(at, kind)]


def page_text(at: AppTest) -> str:
    """Return the text of every element on the page, for `in` assertions."""
    return "\n".join(everything_shown(at))


def accounts(env: SimEnv) -> list[store.AccountView]:
    """Return every account in the database, unbound ones too."""
    return binding.accounts(env.console, include_unbound=True)


def everything_shown(at: AppTest) -> Iterator[str]:
    """Yield every element's protobuf text, every widget's value and all session state."""

    def walk(node) -> Iterator[str]:
        proto = getattr(node, "proto", None)
        if proto is not None:
            yield str(proto)
        if isinstance(node, Widget):
            with contextlib.suppress(Exception):  # a widget kind without a value
                yield repr(node.value)
        for child in getattr(node, "children", {}).values():
            yield from walk(child)

    yield from walk(at.main)
    yield from walk(at.sidebar)
    # The whole session state, including widgets without a key (their ids), old and new.
    state = at._session_state._state
    for key in list(state):
        yield key
        with contextlib.suppress(KeyError):
            yield repr(state[key])


def test_good_key_binds_and_shows_connected_with_its_permissions(sim_env):
    at = submit(open_bind_page(), TRADER, label="spot-bot", scopes=["spot"])

    assert "API Status: Connected" in messages(at, "success")
    assert "Bound 'spot-bot': verified and saved." in messages(at, "success")
    permissions = at.dataframe[0].value.set_index("Permission")
    assert permissions.loc["General", "Granted"] == "✓"
    assert permissions.loc["Spot", "Granted"] == "✓"
    assert permissions.loc["Spot", "Needed"] == "needed"
    assert permissions.loc["Futures", "Granted"] == "–"  # not needed is not missing
    text = page_text(at)
    assert f"Master account, UID {TRADER.uid}" in text
    assert f"{key_created(TRADER):%Y-%m-%d}" in text  # the key's createdAt
    assert "Clock offset" in text
    assert "127.**.1" in text  # the masked whitelist KuCoin returned
    assert not messages(at, "warning")
    [account] = accounts(sim_env)
    assert (account.label, account.scopes, account.unverified) == ("spot-bot", ("spot",), False)
    assert account.key_last4 == TRADER.api_key[-4:]
    # The form is ready for the next key; the secrets are gone from widget state.
    assert field(at, "Secret").value == ""
    assert field(at, "Passphrase").value == ""
    assert field(at, "API Key").value == ""
    assert field(at, "Label").value == ""


def test_whitelist_coverage_shows_which_platform_ips_the_masked_whitelist_covers(sim_env):
    with sim_env.console.transaction() as session:
        store.update_settings(
            session, actor="test", egress_ips=("127.0.0.1", "127.0.5.1", "198.51.100.9")
        )
    at = submit(open_bind_page(), TRADER, label="covered")
    coverage = at.dataframe[1].value.set_index("IP")
    assert coverage.loc["127.0.0.1", "Coverage"] == "covered"  # KuCoin accepted it just now
    # 127.0.5.1 shares the first and last octet with the masked entry 127.**.1: can't tell.
    assert coverage.loc["127.0.5.1", "Coverage"] == "unknown"
    assert coverage.loc["198.51.100.9", "Coverage"] == "not covered"


FAILURES = [
    pytest.param(
        TRADER,
        {},
        "400002",
        "Request reached KuCoin too late",  # our clock agrees with KuCoin's: not a clock issue
        "Check for a slow proxy",
        id="400002-late",
    ),
    pytest.param(
        TRADER,
        {"api_key": UNKNOWN_KEY},
        "400003",
        "API key not found",
        "Copy the API Key again",
        id="400003-unknown-key",
    ),
    pytest.param(
        TRADER,
        {"passphrase": "my-login-password"},
        "400004",
        "Wrong API passphrase",
        "The API Passphrase is the one typed when creating this key on KuCoin, not the login "
        "or trading password",
        id="400004-passphrase",
    ),
    pytest.param(
        TRADER,
        {"api_secret": WRONG_SECRET},
        "400005",
        "Wrong API secret",
        "Re-paste the API Secret",
        id="400005-secret",
    ),
    pytest.param(
        ELSEWHERE,
        {},
        "400006",
        "IP not whitelisted",
        "add the IP KuCoin saw, or disable IP restriction for testing",
        id="400006-whitelist",
    ),
    pytest.param(
        NO_GENERAL,
        {},
        "400007",
        "Permission missing",
        "enable the missing permission",
        id="400007-permission",
    ),
]


@pytest.mark.parametrize(("account", "typed", "code", "title", "fix"), FAILURES)
def test_each_refusal_shows_its_diagnosis_and_saves_nothing(
    sim_env, account, typed, code, title, fix
):
    if code == "400002":
        # Only this key's requests see KuCoin's clock 30 s ahead: /timestamp is unsigned, so
        # the clocks agree and KuCoin still finds the timestamp 30 s old: a late request.
        sim_env.simulator.set_clock_offset(30_000, api_key=account.api_key)
    at = submit(open_bind_page(), account, **typed)

    assert f"API Status: Failed: {title} ({code})" in messages(at, "error")
    assert fix in page_text(at)
    assert "Nothing was saved" in page_text(at)
    assert "API Status: Connected" not in messages(at, "success")
    assert accounts(sim_env) == []
    if code == "400006":
        assert "The IP KuCoin saw:** `127.0.0.1`" in page_text(at)
        assert at.button(key="bind_save").label == "Save as unverified"
    else:
        assert "bind_save" not in [b.key for b in at.button]


def test_whitelist_only_key_is_saved_as_unverified_after_explicit_confirmation(sim_env):
    at = submit(open_bind_page(), ELSEWHERE, label="office")
    assert at.button(key="bind_save").disabled  # nothing can be saved without the confirmation
    assert accounts(sim_env) == []

    at.checkbox(key="bind_accept").check().run()
    at.button(key="bind_save").click().run()
    assert not at.exception
    [account] = accounts(sim_env)
    assert account.label == "office" and account.unverified
    assert any("as **unverified**" in w for w in messages(at, "warning"))
    with sim_env.console.reading() as session:
        [event] = store.audit_log(session, account_id=account.id, action=AuditAction.BIND)
    assert event.details["verified"] is False and event.actor == "local-operator"


def test_pasted_spaces_line_breaks_and_zero_width_characters_are_cleaned_with_a_notice(sim_env):
    at = submit(
        open_bind_page(),
        TRADER,
        api_key=f"  {TRADER.api_key[:10]} {TRADER.api_key[10:]}\n",
        api_secret=f"\t{TRADER.api_secret.reveal()}\u200b",
        passphrase=f"{TRADER.passphrase.reveal()} \n",
    )
    [notice] = messages(at, "info")
    assert notice == (
        "Removed spaces, line breaks or invisible characters pasted with: API Key, Secret, "
        "Passphrase."
    )
    assert "API Status: Connected" in messages(at, "success")
    assert [a.key_last4 for a in accounts(sim_env)] == [TRADER.api_key[-4:]]


def test_swapped_key_and_secret_are_caught_before_any_request(sim_env):
    at = open_bind_page()
    at = submit(
        at, TRADER, label="swapped", api_key=TRADER.api_secret.reveal(), api_secret=TRADER.api_key
    )
    errors = messages(at, "error")
    assert any(e.startswith("This looks like your Secret") for e in errors)
    assert any(e.startswith("This looks like your API Key") for e in errors)
    assert any("Nothing was sent to KuCoin. Fix: API Key, Secret" in e for e in errors)
    assert sim_env.requests == []
    assert accounts(sim_env) == []
    # Only what is not secret is kept for the retry.
    assert field(at, "Label").value == "swapped"
    assert field(at, "Secret").value == ""
    assert field(at, "API Key").value == ""


def test_empty_passphrase_and_control_characters_are_refused_per_field(sim_env):
    at = submit(open_bind_page(), TRADER, api_key=TRADER.api_key[:-1] + "\x07", passphrase="")
    errors = messages(at, "error")
    assert any("Passphrase is empty" in e and "not the login" in e for e in errors)
    assert any("API Key has a control character at position 24" in e for e in errors)
    assert sim_env.requests == []


def test_a_key_already_bound_is_refused_naming_the_account_that_holds_it(sim_env):
    binding.bind(
        sim_env.console,
        label="first",
        api_key=TRADER.api_key,
        api_secret=TRADER.api_secret.reveal(),
        passphrase=TRADER.passphrase.reveal(),
    )
    sent = len(sim_env.requests)
    at = submit(open_bind_page(), TRADER, label="second")
    assert any("already bound to account 'first'" in e for e in messages(at, "error"))
    assert len(sim_env.requests) == sent  # refused before asking KuCoin
    assert [a.label for a in accounts(sim_env)] == ["first"]


@pytest.mark.parametrize(
    ("account", "warning"),
    [
        pytest.param(MASTER, "Withdrawal permission (Transfer) enabled", id="withdrawal"),
        pytest.param(
            OPEN_TRADER,
            "KuCoin deletes or disables trade-enabled keys without a whitelist after 30 days of "
            "inactivity",
            id="no-whitelist",
        ),
    ],
)
def test_warnings_are_shown_and_the_key_is_saved_only_once_confirmed(sim_env, account, warning):
    at = submit(open_bind_page(), account, label="risky")
    assert "API Status: Connected" in messages(at, "success")
    assert any(warning in w for w in messages(at, "warning"))
    assert accounts(sim_env) == []
    assert at.button(key="bind_save").disabled

    at.checkbox(key="bind_accept").check().run()
    at.button(key="bind_save").click().run()
    assert not at.exception
    [saved] = accounts(sim_env)
    assert saved.label == "risky" and not saved.unverified
    assert "Bound 'risky': verified and saved." in messages(at, "success")
    assert field(at, "Label").value == ""  # ready for the next key


def test_a_chosen_scope_the_key_lacks_is_a_warning_with_a_cross(sim_env):
    at = submit(open_bind_page(), TRADER, scopes=["spot", "futures"])
    permissions = at.dataframe[0].value.set_index("Permission")
    assert permissions.loc["Futures", "Granted"] == "✗"
    assert permissions.loc["Futures", "Needed"] == "needed"
    assert any(w.startswith("Permission missing: Futures.") for w in messages(at, "warning"))
    assert (
        "API Status: Connected, but this key cannot do what the account needs: "
        "Permission missing: Futures"
    ) in messages(at, "error")
    assert accounts(sim_env) == []


def test_discarding_a_checked_key_saves_nothing(sim_env):
    at = submit(open_bind_page(), MASTER)
    at.button(key="bind_discard").click().run()
    assert "Discarded: nothing was saved." in messages(at, "info")
    assert accounts(sim_env) == []
    assert "bind_save" not in [b.key for b in at.button]


def test_canary_secret_never_reaches_the_page_session_state_logs_or_database(sim_env, caplog):
    canary_secret = "c0ffee00-dead-4bee-8f00-5ca1ab1e0001"
    canary_phrase = "canary-d4a9e1f07b"
    marked = SimAccount(
        api_key="6d4e5f60718293a4b5c6d7e8",
        api_secret=canary_secret,
        passphrase=canary_phrase,
        uid=720500999,
        permissions=("General", "Spot", "Transfer"),
        ip_whitelist=("127.0.0.1",),
    )
    sim_env.simulator.add_account(marked)
    caplog.set_level(logging.DEBUG)
    canaries = (canary_secret, canary_secret.replace("-", ""), canary_phrase)

    def assert_clean(at: AppTest) -> None:
        shown = "\n".join(everything_shown(at))
        for canary in canaries:
            assert canary not in shown
        for record in caplog.records:
            for canary in canaries:
                assert canary not in record.getMessage()

    at = open_bind_page()
    # A refused key (wrong passphrase carrying the canary), an invalid paste, then a key that
    # verifies with a warning and is saved after confirmation.
    at = submit(at, marked, label="canary", passphrase=canary_phrase + "-wrong")
    assert "API Status: Failed: Wrong API passphrase (400004)" in messages(at, "error")
    assert_clean(at)
    at = submit(at, marked, label="canary", api_key="nothex", passphrase=canary_phrase)
    assert_clean(at)
    at = submit(at, marked, label="canary")
    assert "API Status: Connected" in messages(at, "success")
    assert_clean(at)
    at.checkbox(key="bind_accept").check().run()
    at.button(key="bind_save").click().run()
    assert [a.label for a in accounts(sim_env)] == ["canary"]
    assert_clean(at)
    assert caplog.records  # the logs were captured, so their check above meant something
    database = (sim_env.data_dir / "bindwatch.db").read_bytes()
    for canary in canaries:
        assert canary.encode() not in database
