"""Who may open the console, in Debian's Chromium against a served console (`make run`).

A deep link to any page while signed out shows the sign-in (or setup) form and no account
data, on a fresh server and after another session signed in; the first admin is made once,
even by two browsers at once; an admin binds, watches and unbinds with their name in the
audit; a viewer gets no action and an action drawn before they were demoted is refused; wrong
passwords are slowed down and audited; a reload keeps the session and signing out ends it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from app_fixtures import OPERATORS, TEST_ACCOUNTS, TRADER
from served_app import (
    ServedApp,
    assert_no_exception,
    browser_fixture,
    expect,
    goto,
    serve,
    session,
    settle,
    sign_in_cookie,
)

from lib.config import Config
from lib.console import Console, KucoinTarget, Role, binding
from lib.console import operators as ops
from lib.kucoin.sim import Simulator, SimulatorServer
from lib.session_cookie import COOKIE

__all__ = ["browser_fixture"]

ADDRESSES = ("/", "/account", "/account?account=1", "/bind", "/settings", "/operators")
LABEL = "spot-desk"  # the account bound before the server starts: no signed-out page shows it
ADMIN_PASSWORD = "admin password 0001"


@pytest.fixture(scope="module")
def kucoin() -> Iterator[SimulatorServer]:
    """Run one KuCoin simulator on loopback for the module."""
    with SimulatorServer(Simulator(TEST_ACCOUNTS)) as server:
        yield server


def bind_trader(data_dir: Path, kucoin: SimulatorServer) -> None:
    """Bind TRADER as LABEL in the data directory, from a script."""
    config = Config.from_env({"BINDWATCH_DATA_DIR": str(data_dir)})
    console = Console.open(config, kucoin=KucoinTarget(kucoin.spot_url, kucoin.futures_url))
    try:
        binding.bind(
            console,
            label=LABEL,
            api_key=TRADER.api_key,
            api_secret=TRADER.api_secret.reveal(),
            passphrase=TRADER.passphrase.reveal(),
        )
    finally:
        console.close()


@pytest.fixture(scope="module")
def app(tmp_path_factory, kucoin) -> Iterator[ServedApp]:
    """Serve the console once for the module, one account bound, the harness's operators."""
    data = tmp_path_factory.mktemp("operators") / "data"
    bind_trader(data, kucoin)
    with serve(data, spot_url=kucoin.spot_url, futures_url=kucoin.futures_url) as served:
        yield served


def main_text(page) -> str:
    """Return the text of the page's main area and sidebar."""
    return page.locator("body").inner_text()


def assert_signed_out_form(page, title: str = "Sign in to bindwatch") -> None:
    """Assert the page shows the sign-in (or setup) form and nothing of the fleet."""
    expect(page.get_by_role("heading", name=title)).to_be_visible()
    expect(page.get_by_label("Name", exact=True)).to_be_visible()
    text = main_text(page)
    assert LABEL not in text and "spot bot" not in text
    for page_title in ("Fleet", "Account", "Settings", "Bind a key", "Operators"):
        assert page.get_by_role("link", name=page_title, exact=True).count() == 0
    assert page.get_by_test_id("stDataFrame").count() == 0
    assert page.get_by_test_id("stSidebarNav").count() == 0
    assert_no_exception(page)


def sign_in_with_form(page, name: str, password: str) -> None:
    """Fill the sign-in form and send it, as an operator does."""
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    settle(page)


def audit_rows(data_dir: Path, action: str) -> list[tuple[str, str]]:
    """Return (actor, details) of the audit rows of one action, oldest first."""
    with sqlite3.connect(data_dir / "bindwatch.db") as db:
        return db.execute(
            "SELECT actor, details FROM audit_events WHERE action = ? ORDER BY id", (action,)
        ).fetchall()


# --- Signed out: every address shows the form, never the fleet ---------------------------------


def test_every_deep_link_on_a_fresh_server_shows_the_setup_or_sign_in_form_only(
    tmp_path, browser, kucoin
) -> None:
    # No operator yet: the first request a server gets is a deep link (legacy pages/ discovery
    # still live), and every address shows only the setup form.
    data = tmp_path / "data"
    bind_trader(data, kucoin)
    with serve(
        data, spot_url=kucoin.spot_url, futures_url=kucoin.futures_url, operators=False
    ) as served:
        for address in ADDRESSES:
            with session(browser, served.url + address, operator=None) as page:
                assert_signed_out_form(page, "Create the first admin")
    # With operators, on another fresh server: the sign-in form at every address, then again
    # after another browser signed in (which registered its own pages for the server).
    data = tmp_path / "data2"
    bind_trader(data, kucoin)
    with serve(data, spot_url=kucoin.spot_url, futures_url=kucoin.futures_url) as served:
        with session(browser, served.url + "/settings", operator=None) as page:
            assert_signed_out_form(page)
        with session(browser, served.url + "/account?account=1") as admin:
            expect(admin.get_by_role("heading", name="Account", exact=True)).to_be_visible()
            admin.get_by_text(LABEL).first.wait_for()
            for address in ADDRESSES:
                with session(browser, served.url + address, operator=None) as page:
                    assert_signed_out_form(page)
                    assert page.url.endswith(address)  # the address is kept for after sign-in


def test_setup_once_then_bind_watch_and_unbind_with_the_admins_name_in_the_audit(
    tmp_path, browser, kucoin
) -> None:
    data = tmp_path / "data"
    with (
        serve(
            data, spot_url=kucoin.spot_url, futures_url=kucoin.futures_url, operators=False
        ) as served,
        session(browser, served.url + "/", operator=None) as first,
        session(browser, served.url + "/settings", operator=None) as second,
    ):
        # Two browsers on the setup page at once: the first to send it is the admin.
        for page, name in ((first, "ana"), (second, "eve")):
            page.get_by_label("Name", exact=True).fill(name)
            page.get_by_label("Password", exact=True).fill("ana's long password")
            page.get_by_label("Password again", exact=True).fill("ana's long password")
        first.get_by_role("button", name="Create admin and sign in").click()
        first.wait_for_load_state()
        settle(first)
        second.get_by_role("button", name="Create admin and sign in").click()
        second.wait_for_load_state()
        settle(second)
        expect(second.get_by_text("The first admin was created a moment ago")).to_be_visible()
        assert_signed_out_form(second)
        assert [(o.name, o.role) for o in operators_of(data)] == [("ana", Role.ADMIN)]
        expect(first.get_by_text("Signed in as ana (admin)")).to_be_visible()

        # Bind a simulator key, see it in the fleet, open it, unbind it.
        first.get_by_test_id("stSidebar").get_by_role("link", name="Bind a key").click()
        settle(first)
        first.get_by_label("Label", exact=True).fill("desk")
        first.get_by_label("API Key", exact=True).fill(TRADER.api_key)
        first.get_by_label("Secret", exact=True).fill(TRADER.api_secret.reveal())
        first.get_by_label("Passphrase", exact=True).fill(TRADER.passphrase.reveal())
        first.get_by_role("button", name="Verify and bind").click()
        settle(first)
        first.get_by_text("API Status: Connected").wait_for(timeout=20_000)
        first.get_by_test_id("stSidebar").get_by_role("link", name="Fleet").click()
        settle(first)
        expect(first.get_by_test_id("stDataFrame")).to_be_visible()
        goto(first, served.url + "/account?account=1")
        expect(first.get_by_role("heading", name="desk")).to_be_visible()
        first.get_by_text("Audit log (").click()
        audit = first.get_by_test_id("stExpander").filter(has_text="Audit log")
        expect(audit.get_by_test_id("stDataFrame")).to_be_visible()  # actor: ana (checked below)
        first.get_by_role("tab", name="Unbind").click()
        settle(first)
        first.get_by_role("button", name="Unbind…").click()
        settle(first)
        first.get_by_role("button", name="Confirm: unbind").click()
        settle(first)
        expect(first.get_by_text("No KuCoin account is bound yet")).to_be_visible()
        assert_no_exception(first)
    assert [actor for actor, _ in audit_rows(data, "bind")] == ["ana"]
    assert [actor for actor, _ in audit_rows(data, "unbind")] == ["ana"]


def operators_of(data_dir: Path) -> list[ops.OperatorView]:
    """Return the operators stored in a data directory."""
    console = Console.open(Config.from_env({"BINDWATCH_DATA_DIR": str(data_dir)}))
    try:
        return ops.list_operators(console)
    finally:
        console.close()


# --- Roles --------------------------------------------------------------------------------------


def test_a_viewer_reads_without_actions_while_an_admin_acts_at_the_same_time(app, browser) -> None:
    with (
        session(browser, app.url + "/account?account=1", operator="viewer") as viewer,
        session(browser, app.url + "/account?account=1") as admin,
    ):
        for page in (viewer, admin):
            page.get_by_text(LABEL).first.wait_for()
        expect(viewer.get_by_text("Signed in as viewer (viewer)")).to_be_visible()
        expect(admin.get_by_text("Signed in as admin (admin)")).to_be_visible()
        # The viewer reads the account but is offered no action, and no Bind or Operators page.
        for name in ("Check now", "Pause monitoring", "Unbind…", "Verify and rotate"):
            assert viewer.get_by_role("button", name=name).count() == 0
        expect(viewer.get_by_role("heading", name="Actions")).to_have_count(0)
        sidebar = viewer.get_by_test_id("stSidebar")
        assert sidebar.get_by_role("link", name="Bind a key").count() == 0
        assert sidebar.get_by_role("link", name="Operators").count() == 0
        goto(viewer, app.url + "/bind")
        expect(viewer.get_by_label("API Key", exact=True)).to_have_count(0)
        goto(viewer, app.url + "/settings")
        expect(viewer.get_by_role("button", name="Save policy")).to_be_disabled()
        goto(viewer, app.url + "/")
        assert viewer.get_by_role("button", name="Refresh all").count() == 0
        # Meanwhile the admin acts.
        admin.get_by_role("tab", name="Monitoring").click()
        settle(admin)
        admin.get_by_role("button", name="Pause monitoring").click()
        settle(admin)
        expect(admin.get_by_text("Monitoring paused")).to_be_visible()
        admin.get_by_role("button", name="Resume monitoring").click()
        settle(admin)
        assert_no_exception(viewer)
        assert_no_exception(admin)


def test_an_action_drawn_for_an_admin_is_refused_once_they_are_a_viewer(app, browser) -> None:
    console = Console.open(Config.from_env({"BINDWATCH_DATA_DIR": str(app.data_dir)}))
    try:
        ops.add_operator(console, "dana", ADMIN_PASSWORD, Role.ADMIN)
        with session(browser, app.url + "/account?account=1", operator=None) as page:
            sign_in_with_form(page, "dana", ADMIN_PASSWORD)
            page.get_by_role("tab", name="Monitoring").click()
            settle(page)
            pause = page.get_by_role("button", name="Pause monitoring")
            expect(pause).to_be_visible()
            ops.set_role(console, "dana", Role.VIEWER)  # another admin demotes dana now
            pause.click()  # the button drawn before: its callback calls the service directly
            settle(page)
            expect(page.get_by_text("only an admin may pause monitoring")).to_be_visible()
            assert_no_exception(page)
        assert not binding.account_by_label(console, LABEL).paused
    finally:
        ops.remove_operator(console, "dana")
        console.close()


# --- Sessions -----------------------------------------------------------------------------------


def test_a_reload_keeps_the_session_and_signing_out_ends_it_for_good(app, browser) -> None:
    with session(browser, app.url + "/settings", operator=None) as page:
        sign_in_with_form(page, "admin", OPERATORS["admin"][1])
        expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible()
        assert page.url.endswith("/settings")  # back where the deep link pointed
        [cookie] = [c for c in page.context.cookies() if c["name"] == COOKIE]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["expires"] > 0
        assert OPERATORS["admin"][1] not in cookie["value"]
        page.reload()
        settle(page)
        expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible()
        page.get_by_role("button", name="Sign out").click()
        settle(page)
        assert_signed_out_form(page)
        page.reload()
        settle(page)
        assert_signed_out_form(page)
    # The old cookie, replayed in another browser, opens nothing either.
    with session(browser, operator=None) as other:
        other.context.add_cookies([{**cookie, "expires": cookie["expires"]}])
        goto(other, app.url + "/")
        assert_signed_out_form(other)


def test_ten_wrong_passwords_in_a_row_are_slowed_down_and_each_checked_one_audited(
    app, browser
) -> None:
    before = len(audit_rows(app.data_dir, "failed_login"))
    waits = 0
    with session(browser, app.url + "/", operator=None) as page:
        for _ in range(10):
            sign_in_with_form(page, "viewer", "not the password at all")
            if page.get_by_text("Too many failed sign-ins").count():
                waits += 1
            else:
                expect(page.get_by_text("Wrong name or password.")).to_be_visible()
        # The right password waits too until the wait is over: guessing gains nothing (asked
        # at once, while the last wait of a few seconds runs).
        answer = sign_in_cookie(app.url, "viewer")
        assert_signed_out_form(page)
    assert "signin=wait" in answer.headers["location"] and COOKIE not in answer.cookies
    failures = audit_rows(app.data_dir, "failed_login")[before:]
    # How many meet a wait depends on the browser's pace (the script test below bounds it).
    assert waits >= 1
    assert len(failures) == 10 - waits
    assert all('"name": "viewer"' in details for _, details in failures)
    forgive(app.data_dir, "viewer")


def forgive(data_dir: Path, name: str) -> None:
    """Reset an operator's failed sign-ins (as a new password does) for the next tests."""
    console = Console.open(Config.from_env({"BINDWATCH_DATA_DIR": str(data_dir)}))
    try:
        ops.set_password(console, name, OPERATORS[name][1])
    finally:
        console.close()


def test_a_script_guessing_gets_few_guesses_checked_and_a_foreign_form_is_refused(
    app,
) -> None:
    before = len(audit_rows(app.data_dir, "failed_login"))
    answers = [sign_in_cookie(app.url, "admin", f"guess number {n}") for n in range(40)]
    assert all(COOKIE not in a.cookies for a in answers)
    assert sum("signin=wait" in a.headers["location"] for a in answers) >= 40 - 5
    assert len(audit_rows(app.data_dir, "failed_login")) - before <= 5
    forgive(app.data_dir, "admin")
    # CSRF: the same form from another site, or with no origin at all, is refused unread.
    form = {"operator": "admin", "password": OPERATORS["admin"][1], "next": "/"}
    for headers in ({"Origin": "http://evil.example"}, {}):
        refused = httpx.post(f"{app.url}/session/sign-in", data=form, headers=headers)
        assert refused.status_code == 403 and COOKIE not in refused.cookies
    # A sign-in sends the operator back to a page of the console only, never elsewhere.
    for next_path in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        answer = httpx.post(
            f"{app.url}/session/sign-in",
            data={**form, "next": next_path},
            headers={"Origin": app.url},
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/"
