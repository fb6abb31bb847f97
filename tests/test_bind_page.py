"""The Bind page, driven by AppTest against the simulator over real HTTP and a real SQLite file."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import pytest
from app_fixtures import (  # noqa: F401
    APP,
    OPEN_TRADER,
    TRADER,
    SimEnv,
    app_test,
    key_created,
    shown_text,
    sim_env_fixture,
)
from simulator_fixtures import ELSEWHERE, MASTER, NO_GENERAL
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Widget

from lib import store
from lib.console import binding
from lib.kucoin.sim import SimAccount
from lib.store.models import AuditAction
from lib.ui.key_form import CREDENTIAL_FIELDS, KEEP_TYPED_S

UNKNOWN_KEY = "0123456789abcdef01234567"
WRONG_SECRET = "00000000-0000-4000-8000-000000000000"


def open_bind_page() -> AppTest:
    """Return the app, run, switched to the Bind page."""
    at = app_test().run()
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
    """Return the texts of every element of one kind (success, error, warning, info), as read."""
    return [shown_text(element.value) for element in getattr(at, kind)]


def page_text(at: AppTest) -> str:
    """Return the text of every element on the page, for `in` assertions."""
    return "\n".join(everything_shown(at))


def shown(at: AppTest) -> str:
    """Return the text of every message and Markdown element as the operator reads it."""
    kinds = ("markdown", "caption", "error", "warning", "info", "success")
    return "\n".join(shown_text(e.value) for kind in kinds for e in getattr(at, kind))


def accounts(env: SimEnv) -> list[store.AccountView]:
    """Return every account in the database, unbound ones too."""
    return binding.accounts(env.console, include_unbound=True)


def typed_field(name: str) -> bool:
    """Return whether a widget key or id names one of the Bind form's credential fields."""
    return name.startswith(("bind_", "$$ID-")) and name.endswith(CREDENTIAL_FIELDS)


def everything_shown(at: AppTest, *, besides_typed_fields: bool = False) -> Iterator[str]:
    """Yield every element's protobuf text, every widget's value and all session state.

    With `besides_typed_fields`, leave out the Key, Secret and Passphrase fields themselves: what
    the operator typed may stay there (and only there) while the form is on screen.
    """

    def walk(node) -> Iterator[str]:
        if besides_typed_fields and typed_field(getattr(node, "key", None) or ""):
            return
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
        if besides_typed_fields and typed_field(key):
            continue
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
    text = shown(at)
    assert f"Master account, UID {TRADER.uid}" in text
    assert "Key remark: spot bot" in text
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
        assert "The IP KuCoin saw:** 127.0.0.1" in shown(at)
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
    assert event.details["verified"] is False and event.actor == "admin"  # who signed in


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
    # The form keeps what was typed: the two values only need swapping.
    assert field(at, "Label").value == "swapped"
    assert field(at, "API Key").value == TRADER.api_secret.reveal()
    assert field(at, "Secret").value == TRADER.api_key


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
    assert "Discarded: nothing was saved, and the form is empty." in messages(at, "info")
    assert field(at, "Secret").value == ""
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

    def assert_clean(at: AppTest, *, besides_typed_fields: bool) -> None:
        shown = "\n".join(everything_shown(at, besides_typed_fields=besides_typed_fields))
        for canary in canaries:
            assert canary not in shown
        for record in caplog.records:
            for canary in canaries:
                assert canary not in record.getMessage()

    at = open_bind_page()
    # A refused key (wrong passphrase carrying the canary), an invalid paste, then a key that
    # verifies with a warning and is saved after confirmation. Until it is saved, the secrets
    # stay in the form's masked fields, and nowhere else.
    at = submit(at, marked, label="canary", passphrase=canary_phrase + "-wrong")
    assert "API Status: Failed: Wrong API passphrase (400004)" in messages(at, "error")
    assert field(at, "Secret").value == canary_secret
    assert_clean(at, besides_typed_fields=True)
    at = submit(at, marked, label="canary", api_key="nothex", passphrase=canary_phrase)
    assert_clean(at, besides_typed_fields=True)
    at = submit(at, marked, label="canary")
    assert "API Status: Connected" in messages(at, "success")
    assert_clean(at, besides_typed_fields=True)
    at.checkbox(key="bind_accept").check().run()
    at.button(key="bind_save").click().run()
    assert [a.label for a in accounts(sim_env)] == ["canary"]
    assert_clean(at, besides_typed_fields=False)
    assert caplog.records  # the logs were captured, so their check above meant something
    database = (sim_env.data_dir / "bindwatch.db").read_bytes()
    for canary in canaries:
        assert canary.encode() not in database


def test_a_failed_bind_keeps_what_was_typed_and_a_fix_of_one_field_binds(sim_env):
    at = submit(
        open_bind_page(), TRADER, label="keeper", passphrase="wrong-pass", scopes=["spot", "margin"]
    )
    assert "API Status: Failed: Wrong API passphrase (400004)" in messages(at, "error")
    assert field(at, "Label").value == "keeper"
    assert field(at, "API Key").value == TRADER.api_key
    assert field(at, "Secret").value == TRADER.api_secret.reveal()
    assert field(at, "Passphrase").value == "wrong-pass"
    assert at.multiselect[0].value == ["spot", "margin"]

    field(at, "Passphrase").input(TRADER.passphrase.reveal())
    at.form_submit_button[0].click().run()
    assert any("Permission missing: Margin" in w for w in messages(at, "warning"))  # scopes kept
    assert field(at, "Secret").value == TRADER.api_secret.reveal()  # kept until saved
    at.checkbox(key="bind_accept").check().run()
    at.button(key="bind_save").click().run()

    assert any(m.startswith("Bound 'keeper'") for m in messages(at, "success"))
    assert [(a.label, a.scopes) for a in accounts(sim_env)] == [("keeper", ("spot", "margin"))]
    for name in ("Label", "API Key", "Secret", "Passphrase"):
        assert field(at, name).value == ""
    assert not [v for v in everything_shown(at) if TRADER.api_secret.reveal() in v]


@pytest.mark.parametrize(
    ("typed", "named", "fix"),
    [
        pytest.param(
            {"api_secret": TRADER.passphrase.reveal(), "passphrase": TRADER.api_secret.reveal()},
            {"Secret": "This looks like your Passphrase", "Passphrase": "looks like your Secret"},
            "Fix: Secret, Passphrase",
            id="secret-passphrase",
        ),
        pytest.param(
            {"api_key": TRADER.passphrase.reveal(), "passphrase": TRADER.api_key},
            {"API Key": "This looks like your Passphrase", "Passphrase": "looks like your API Key"},
            "Fix: API Key, Passphrase",
            id="key-passphrase",
        ),
    ],
)
def test_a_passphrase_swapped_with_the_key_or_secret_is_named(sim_env, typed, named, fix):
    at = submit(open_bind_page(), TRADER, label="swapped", **typed)
    errors = messages(at, "error")
    for field_name, text in named.items():
        assert any(text in e for e in errors), (field_name, errors)
    assert any(fix in e for e in errors)
    assert sim_env.requests == []
    assert not [e for e in errors if "characters;" in e]  # never a length report instead


def test_retry_after_kucoin_could_not_answer_checks_the_same_values_again(sim_env):
    sim_env.simulator.set_faults(TRADER.api_key, fail_next=-1, fail_status=503)
    at = submit(open_bind_page(), TRADER, label="flaky")
    assert any(e.startswith("API Status: Failed") for e in messages(at, "error"))
    assert accounts(sim_env) == []
    sent = len(sim_env.requests)

    sim_env.simulator.clear_faults(TRADER.api_key)
    at.button(key="bind_retry").click().run()

    assert not at.exception
    assert len(sim_env.requests) > sent  # asked KuCoin again, with the values in the form
    assert "API Status: Connected" in messages(at, "success")
    assert [a.label for a in accounts(sim_env)] == ["flaky"]
    assert "bind_retry" not in [b.key for b in at.button]
    assert field(at, "Secret").value == ""


def test_a_refusal_offers_no_retry(sim_env):
    at = submit(open_bind_page(), TRADER, passphrase="wrong-pass")
    assert "bind_retry" not in [b.key for b in at.button]


def test_typed_credentials_are_cleared_after_the_timeout(sim_env):
    at = submit(open_bind_page(), TRADER, label="idle", passphrase="wrong-pass")
    assert field(at, "Secret").value == TRADER.api_secret.reveal()

    at.session_state["bind_kept_until"] = 0.0  # the deadline has passed
    at.run()

    assert f"cleared after {KEEP_TYPED_S // 60} minutes" in " ".join(messages(at, "info"))
    for name in ("Label", "API Key", "Secret", "Passphrase"):
        assert field(at, name).value == ""
    assert not [v for v in everything_shown(at) if TRADER.api_secret.reveal() in v]


def test_leaving_the_page_clears_typed_credentials_and_the_check(sim_env):
    at = submit(open_bind_page(), TRADER, label="away", passphrase="wrong-pass")
    at.switch_page("pages/settings.py").run()
    assert not [v for v in everything_shown(at) if TRADER.api_secret.reveal() in v]
    at.switch_page("pages/bind.py").run()

    assert not at.exception
    assert field(at, "Secret").value == "" and field(at, "Label").value == ""
    assert not any("API Status" in e for e in messages(at, "error"))
    assert not [v for v in everything_shown(at) if TRADER.api_secret.reveal() in v]


def test_text_from_kucoin_is_shown_as_text_not_markdown(sim_env):
    markup = SimAccount(
        api_key="6e5f60718293a4b5c6d7e8f9",
        api_secret="d1e2f3a4-b5c6-4d7e-8f9a-0b1c2d3e4f5a",
        passphrase="markup-pass",
        uid=720500777,
        permissions=("General", "Spot"),
        ip_whitelist=("127.0.0.1",),
        is_master=False,
        sub_name="[open](http://evil.example/x) :red[sub]",
        remark="![t](http://evil.example/t.png) https://evil.example",
    )
    sim_env.simulator.add_account(markup)
    at = submit(open_bind_page(), markup, label="markup")

    [account] = [m.value for m in at.markdown if m.value.startswith("**Account**")]
    assert "](" not in account.replace("\\]\\(", "")  # every bracket escaped
    assert "http://" not in account and "https://" not in account  # no bare URL to link
    assert shown_text(account) == (
        "**Account**  \nSub-account [open](http://evil.example/x) :red[sub], UID 720500777  "
        "\nKey remark: ![t](http://evil.example/t.png) https://evil.example"
    )


def test_an_unusable_master_key_file_is_a_message_and_the_form_keeps_the_key(sim_env):
    at = open_bind_page()
    (sim_env.data_dir / "master.key").write_bytes(b"")
    at = submit(at, TRADER, label="vault")

    assert not at.exception
    assert any("cannot use its credential store" in e for e in messages(at, "error"))
    assert field(at, "Secret").value == TRADER.api_secret.reveal()
    assert accounts(sim_env) == []
