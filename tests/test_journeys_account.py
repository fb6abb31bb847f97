"""Operator journeys on the Account and Bind pages, in a real browser against a served console.

What AppTest cannot see: an action's rerun moving the page to another account once the fleet
re-sorts, the action tabs snapping back, a form emptied in the browser, a second browser session
on the same account, and what the browser does with Markdown from a link or from KuCoin (does it
follow a link, fetch an image?). One served app per module, KuCoin simulated on loopback; each
`session()` is a new browser context, so a new Streamlit session.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlparse

import pytest
from app_fixtures import TEST_ACCOUNTS, RecordingSimulator
from served_app import (
    ServedApp,
    assert_no_exception,
    browser_fixture,
    expect,
    goto,
    playwright,
    serve,
    session,
    settle,
)

from lib.config import Config
from lib.console import Console, binding
from lib.kucoin.sim import SimAccount, SimulatorServer

__all__ = ["browser_fixture"]


def whitelisted(api_key: str, secret: str, passphrase: str, uid: int, **more) -> SimAccount:
    """Return a key that verifies from loopback with no warning for the scopes it has."""
    return SimAccount(
        api_key=api_key,
        api_secret=secret,
        passphrase=passphrase,
        uid=uid,
        permissions=more.pop("permissions", ("General", "Spot")),
        ip_whitelist=("127.0.0.1",),
        **more,
    )


# The fleet bound before the journeys start (label → key), and keys the journeys paste.
FLEET = {
    "alpha": whitelisted(
        "7a1b2c3d4e5f60718293a4b5", "1f0e2d3c-4b5a-4968-8776-a5b4c3d2e1f0", "alpha-pass", 730001
    ),
    "bravo": whitelisted(
        "7b1b2c3d4e5f60718293a4b5", "2f0e2d3c-4b5a-4968-8776-a5b4c3d2e1f0", "bravo-pass", 730002
    ),
    "charlie": whitelisted(
        "7c1b2c3d4e5f60718293a4b5", "3f0e2d3c-4b5a-4968-8776-a5b4c3d2e1f0", "charlie-pass", 730003
    ),
    "delta": whitelisted(
        "7d1b2c3d4e5f60718293a4b5", "4f0e2d3c-4b5a-4968-8776-a5b4c3d2e1f0", "delta-pass", 730004
    ),
    "echo": whitelisted(
        "7d2b2c3d4e5f60718293a4b5", "9f0e2d3c-4b5a-4968-8776-a5b4c3d2e1f0", "echo-pass", 730009
    ),
}
BRAVO_NEW = whitelisted(
    "7b2b2c3d4e5f60718293a4b5", "5f0e2d3c-4b5a-4968-8776-a5b4c3d2e1f0", "bravo-pass-2", 730005
)
KEEPER = whitelisted(
    "7e1b2c3d4e5f60718293a4b5",
    "6f0e2d3c-4b5a-4968-8776-a5b4c3d2e1f0",
    "keeper-canary-7c41",
    730006,
    permissions=("General", "Spot", "Margin"),
)
FLAKY = whitelisted(
    "7f1b2c3d4e5f60718293a4b5", "7f0e2d3c-4b5a-4968-8776-a5b4c3d2e1f0", "flaky-pass", 730007
)
JOURNEY_KEYS = (*FLEET.values(), BRAVO_NEW, KEEPER, FLAKY)
TABS = ("Rotate credentials", "Scopes", "Monitoring", "Unbind")


# --- A web server that counts what the browser fetches from it -------------------------------


class Beacon:
    """An HTTP server on loopback that records every path asked of it (a tracking pixel)."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        beacon = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                beacon.paths.append(self.path)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                """Keep the test output quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Beacon:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def beacon() -> Iterator[Beacon]:
    """Yield a local web server that counts requests: no page may make the browser call it."""
    with Beacon() as server:
        yield server


def markup(beacon: Beacon, word: str) -> str:
    """Return a Markdown link, image and colour directive that point at the beacon."""
    return (
        f"[Session expired: sign in again]({beacon.url}/{word}-login) "
        f"![x]({beacon.url}/{word}-track.png) :red[{word} styled]"
    )


# --- The served console and its fleet --------------------------------------------------------


@dataclass(frozen=True)
class Journeys:
    """The served app, the simulator behind it and a console on the same database."""

    app: ServedApp
    simulator: RecordingSimulator
    console: Console
    ids: dict[str, int]
    markup_key: SimAccount

    def account_url(self, account_id: int) -> str:
        """Return the Account page's link for one account."""
        return f"{self.app.url}/account?account={account_id}"

    def order(self) -> list[int]:
        """Return the fleet's account ids in the order the pages show them (worst first)."""
        return [int(i) for i in self.console.fleet()["account_id"]]


@pytest.fixture(scope="module")
def journeys(tmp_path_factory: pytest.TempPathFactory, beacon: Beacon) -> Iterator[Journeys]:
    """Bind the fleet, then serve the console over it with KuCoin simulated; yield both."""
    markup_key = SimAccount(
        api_key="7f2b2c3d4e5f60718293a4b5",
        api_secret="8f0e2d3c-4b5a-4968-8776-a5b4c3d2e1f0",
        passphrase="markup-pass",
        uid=730008,
        permissions=("General", "Spot"),
        ip_whitelist=("127.0.0.1",),
        is_master=False,
        sub_name=markup(beacon, "sub"),
        remark=markup(beacon, "remark"),
    )
    simulator = RecordingSimulator((*TEST_ACCOUNTS, *JOURNEY_KEYS, markup_key))
    data = tmp_path_factory.mktemp("journeys_account") / "data"
    with SimulatorServer(simulator) as kucoin:
        environ = {
            "BINDWATCH_DATA_DIR": str(data),
            "BINDWATCH_KUCOIN_SPOT_URL": kucoin.spot_url,
            "BINDWATCH_KUCOIN_FUTURES_URL": kucoin.futures_url,
        }
        console = Console.open(Config.from_env(environ))
        ids = {}
        for label, key in FLEET.items():
            outcome = binding.bind(
                console,
                label=label,
                api_key=key.api_key,
                api_secret=key.api_secret.reveal(),
                passphrase=key.passphrase.reveal(),
            )
            assert outcome.account_id is not None, outcome.check
            ids[label] = outcome.account_id
        try:
            with serve(data, spot_url=kucoin.spot_url, futures_url=kucoin.futures_url) as app:
                yield Journeys(app, simulator, console, ids, markup_key)
        finally:
            console.close()


# --- What the operator sees ------------------------------------------------------------------


def heading(page) -> str:
    """Return the account's heading: its label and status."""
    return page.get_by_test_id("stMain").locator("h3").first.inner_text()


def linked_account(page) -> str | None:
    """Return the account id in the page's address."""
    return parse_qs(urlparse(page.url).query).get("account", [None])[0]


def open_tab(page) -> str:
    """Return the label of the action tab shown."""
    return page.get_by_role("tab", selected=True).inner_text().strip()


def rerun(page, act: Callable[[], None]) -> None:
    """Do what reruns the app, then wait for that run (not an earlier one) to finish."""
    busy = page.locator("[data-testid='stApp']:not([data-test-script-state='notRunning'])")
    act()
    with contextlib.suppress(playwright.TimeoutError):  # the run was over before we looked
        busy.wait_for(state="attached", timeout=3_000)
    settle(page)


def choose_tab(page, label: str) -> None:
    """Open one of the account's action tabs."""
    rerun(page, page.get_by_role("tab", name=label).click)
    assert open_tab(page) == label


def press(page, name: str) -> None:
    """Click the visible button with this name and wait for the run it starts."""
    button = page.get_by_role("button", name=name, exact=True).locator("visible=true").first
    rerun(page, button.click)


def shows(page, text: str) -> None:
    """Wait until the text is visible on the page."""
    expect(page.get_by_text(text).locator("visible=true").first).to_be_visible(timeout=15_000)


def assert_on(page, journeys: Journeys, label: str, tab: str | None = None) -> None:
    """Assert the page shows this account (heading and link), on this tab, without a crash."""
    assert_no_exception(page)
    assert heading(page).startswith(f"{label} "), heading(page)
    assert linked_account(page) == str(journeys.ids[label])
    assert "is not an account id" not in page.locator("body").inner_text()
    if tab is not None:
        assert open_tab(page) == tab


def add_scope(page, name: str) -> None:
    """Add a scope in the visible scopes picker."""
    picker = page.get_by_test_id("stMultiSelect").locator("visible=true").first
    # Typed, not clicked: a click on the picker does not always leave its option list open.
    picker.locator("input").press_sequentially(name)
    page.get_by_role("option", name=name).wait_for()
    rerun(page, lambda: page.keyboard.press("Enter"))
    page.keyboard.press("Escape")
    settle(page)
    expect(picker.get_by_role("button", name=f"Remove {name}")).to_be_visible()


def fill_key(page, key: SimAccount, **typed: str) -> None:
    """Type a key into the visible credential fields (the key's own values unless given)."""
    values = {
        "API Key": key.api_key,
        "Secret": key.api_secret.reveal(),
        "Passphrase": key.passphrase.reveal(),
        **typed,
    }
    for label, value in values.items():
        page.get_by_label(label, exact=True).locator("visible=true").first.fill(value)


def field_value(page, label: str) -> str:
    """Return what the visible field with this label holds."""
    return page.get_by_label(label, exact=True).locator("visible=true").first.input_value()


def assert_masked(page) -> None:
    """Assert the Secret and Passphrase fields are password fields."""
    for label in ("Secret", "Passphrase"):
        field = page.get_by_label(label, exact=True).locator("visible=true").first
        assert field.get_attribute("type") == "password"


# Everything the page holds except the value of its password fields: text and every attribute.
PAGE_BESIDES_PASSWORDS = """() => {
    const parts = [document.body.innerText];
    for (const element of document.querySelectorAll('*')) {
        const password = element.tagName === 'INPUT' && element.type === 'password';
        if (element.tagName === 'INPUT' && !password) parts.push(element.value);
        for (const attribute of element.attributes) {
            if (!(password && attribute.name === 'value')) parts.push(attribute.value);
        }
    }
    return parts.join('\\n');
}"""


def assert_no_secret(page, app: ServedApp, *keys: SimAccount, in_fields: bool) -> None:
    """Assert no Secret or Passphrase is in the page (but its password fields) or the log."""
    text = page.evaluate(PAGE_BESIDES_PASSWORDS) if in_fields else page.content()
    log = app.log_text()
    for key in keys:
        for secret in (key.api_secret.reveal(), key.passphrase.reveal()):
            assert secret not in text
            assert secret not in log


# --- Account actions -------------------------------------------------------------------------


def test_pause_then_resume_on_the_demo_fleet_stays_on_the_account_and_tab(journeys, browser):
    with session(browser, f"{journeys.app.url}/?demo=1") as page:
        page.get_by_text("Demo fleet").first.wait_for(timeout=60_000)
        with sqlite3.connect(journeys.app.data_dir / "demo" / "bindwatch.db") as db:
            [(treasury,)] = db.execute("select id from accounts where label = 'treasury'")
        goto(page, f"{journeys.app.url}/account?demo=1&account={treasury}")
        assert heading(page).startswith("treasury ")
        choose_tab(page, "Monitoring")

        press(page, "Pause monitoring")
        shows(page, "Monitoring paused")
        assert heading(page).startswith("treasury ") and "PAUSED" in heading(page)
        assert (linked_account(page), open_tab(page)) == (str(treasury), "Monitoring")

        press(page, "Resume monitoring")
        shows(page, "Monitoring resumed")
        assert heading(page).startswith("treasury ") and "PAUSED" not in heading(page)
        assert (linked_account(page), open_tab(page)) == (str(treasury), "Monitoring")
        assert "is not an account id" not in page.locator("body").inner_text()
        assert_no_exception(page)


def test_picking_and_saving_scopes_stays_on_the_tab_while_the_fleet_reorders(journeys, browser):
    echo = journeys.ids["echo"]
    before = journeys.order()
    with session(browser, journeys.account_url(echo)) as page:
        choose_tab(page, "Scopes")
        add_scope(page, "Futures")
        assert open_tab(page) == "Scopes"  # picking a scope reruns the page

        press(page, "Save scopes")
        shows(page, "Scopes changed to Spot, Futures.")
        assert_on(page, journeys, "echo", "Scopes")
        assert "SCOPE_MISSING" in heading(page)  # the key lacks Futures: echo moved up
        assert journeys.order() != before


def test_a_refused_rotation_keeps_the_paste_and_the_fix_rotates_on_the_same_tab(journeys, browser):
    with session(browser, journeys.account_url(journeys.ids["bravo"])) as page:
        choose_tab(page, "Rotate credentials")
        fill_key(page, BRAVO_NEW, Passphrase="my-login-password")
        press(page, "Verify and rotate")
        shows(page, "API Status: Failed: Wrong API passphrase (400004)")
        assert field_value(page, "Secret") == BRAVO_NEW.api_secret.reveal()
        assert field_value(page, "API Key") == BRAVO_NEW.api_key
        assert_masked(page)
        assert_no_secret(page, journeys.app, BRAVO_NEW, in_fields=True)

        page.get_by_label("Passphrase", exact=True).locator("visible=true").first.fill(
            BRAVO_NEW.passphrase.reveal()
        )
        press(page, "Verify and rotate")
        shows(page, "Credentials rotated for 'bravo': verified and saved.")
        assert_on(page, journeys, "bravo", "Rotate credentials")
        assert f"…{BRAVO_NEW.api_key[-4:]}" in page.locator("body").inner_text()
        for label in ("API Key", "Secret", "Passphrase"):
            assert field_value(page, label) == ""
        assert_no_secret(page, journeys.app, BRAVO_NEW, in_fields=False)


def test_a_second_session_on_the_account_sees_a_pause_and_acts_on_that_account_only(
    journeys, browser
):
    url = journeys.account_url(journeys.ids["delta"])
    with session(browser, url) as first, session(browser, url) as second:
        choose_tab(first, "Monitoring")
        choose_tab(second, "Monitoring")
        before = journeys.order()

        press(first, "Pause monitoring")
        shows(first, "Monitoring paused")
        assert_on(first, journeys, "delta", "Monitoring")
        assert journeys.order() != before  # paused accounts sort above working ones

        # The second session still shows "Pause": pressing it says what is already so.
        press(second, "Pause monitoring")
        shows(second, "Monitoring was already paused")
        assert_on(second, journeys, "delta", "Monitoring")
        press(second, "Resume monitoring")
        shows(second, "Monitoring resumed")

        goto(first, url)
        choose_tab(first, "Monitoring")
        shows(first, "Monitoring is on.")
        assert_on(first, journeys, "delta", "Monitoring")


def test_unbind_asks_on_its_tab_stays_on_the_account_and_a_second_session_is_told(
    journeys, browser
):
    url = journeys.account_url(journeys.ids["charlie"])
    with session(browser, url) as other, session(browser, url) as page:
        choose_tab(other, "Monitoring")
        choose_tab(page, "Unbind")

        press(page, "Unbind…")
        assert open_tab(page) == "Unbind"  # the confirmation is on the tab, not hidden
        shows(page, "permanently deletes its API Key")
        press(page, "Confirm: unbind")
        shows(page, "Unbound 'charlie'")
        shows(page, "was unbound on")
        assert_on(page, journeys, "charlie")

        press(other, "Pause monitoring")  # drawn before the unbind
        shows(other, "was unbound")
        assert_on(other, journeys, "charlie")


# --- Binding ---------------------------------------------------------------------------------


def test_a_failed_bind_keeps_label_scopes_and_paste_masked_until_it_binds(journeys, browser):
    with session(browser, f"{journeys.app.url}/bind") as page:
        page.get_by_label("Label", exact=True).fill("keeper")
        add_scope(page, "Margin")
        fill_key(page, KEEPER, Passphrase="my-login-password")
        press(page, "Verify and bind")
        shows(page, "API Status: Failed: Wrong API passphrase (400004)")

        assert field_value(page, "Label") == "keeper"
        assert field_value(page, "API Key") == KEEPER.api_key
        assert field_value(page, "Secret") == KEEPER.api_secret.reveal()
        assert field_value(page, "Passphrase") == "my-login-password"
        assert "Margin" in page.get_by_test_id("stMultiSelect").inner_text()
        assert_masked(page)
        assert_no_secret(page, journeys.app, KEEPER, in_fields=True)

        page.get_by_label("Passphrase", exact=True).fill(KEEPER.passphrase.reveal())
        press(page, "Verify and bind")
        shows(page, "Bound 'keeper': verified and saved.")
        for label in ("Label", "API Key", "Secret", "Passphrase"):
            assert field_value(page, label) == ""
        assert_no_secret(page, journeys.app, KEEPER, in_fields=False)
        assert_no_exception(page)
    [saved] = [a for a in binding.accounts(journeys.console) if a.label == "keeper"]
    assert saved.scopes == ("spot", "margin")


@pytest.mark.parametrize(
    ("typed", "named"),
    [
        pytest.param(
            {"API Key": FLAKY.api_secret.reveal(), "Secret": FLAKY.api_key},
            ("This looks like your Secret", "This looks like your API Key"),
            id="key-secret",
        ),
        pytest.param(
            {"Secret": FLAKY.passphrase.reveal(), "Passphrase": FLAKY.api_secret.reveal()},
            ("This looks like your Passphrase, not the Secret", "looks like your Secret"),
            id="secret-passphrase",
        ),
        pytest.param(
            {"API Key": FLAKY.passphrase.reveal(), "Passphrase": FLAKY.api_key},
            ("This looks like your Passphrase, not the API Key", "looks like your API Key"),
            id="key-passphrase",
        ),
    ],
)
def test_a_swap_of_any_two_fields_is_named_and_the_paste_kept(journeys, browser, typed, named):
    sent = len(journeys.simulator.paths)
    with session(browser, f"{journeys.app.url}/bind") as page:
        page.get_by_label("Label", exact=True).fill("swapped")
        fill_key(page, FLAKY, **typed)
        press(page, "Verify and bind")
        shows(page, "Nothing was sent to KuCoin")
        for text in named:
            shows(page, text)
        for label, value in typed.items():
            assert field_value(page, label) == value
        assert_no_exception(page)
    assert len(journeys.simulator.paths) == sent


def test_retry_after_kucoin_could_not_answer_binds_without_a_new_paste(journeys, browser):
    journeys.simulator.set_faults(FLAKY.api_key, fail_next=-1, fail_status=503)
    with session(browser, f"{journeys.app.url}/bind") as page:
        page.get_by_label("Label", exact=True).fill("flaky")
        fill_key(page, FLAKY)
        press(page, "Verify and bind")
        shows(page, "API Status: Failed")
        expect(page.get_by_role("button", name="Retry")).to_be_visible()
        shows(page, "KuCoin could not answer")
        journeys.simulator.clear_faults(FLAKY.api_key)

        press(page, "Retry")
        shows(page, "API Status: Connected")
        shows(page, "Bound 'flaky': verified and saved.")
        assert page.get_by_role("button", name="Retry").count() == 0
        assert_no_secret(page, journeys.app, FLAKY, in_fields=False)
    assert "flaky" in [a.label for a in binding.accounts(journeys.console)]


# --- Markup from outside ---------------------------------------------------------------------


def assert_inert(page, beacon: Beacon) -> None:
    """Assert no link or image points at the beacon, and the browser never asked it."""
    main = page.get_by_test_id("stMain")
    assert main.locator(f"a[href^='{beacon.url}']").count() == 0
    assert main.locator(f"img[src^='{beacon.url}']").count() == 0
    page.wait_for_timeout(500)  # an image request would have been made by now
    assert beacon.paths == []


def test_markdown_in_the_account_link_is_shown_as_text(journeys, browser, beacon):
    given = markup(beacon, "link")
    with session(browser, f"{journeys.app.url}/account?account={quote(given)}") as page:
        warning = page.get_by_test_id("stAlertContentWarning").first
        expect(warning).to_contain_text("is not an account id")
        assert given in warning.inner_text().replace("\u2060", "")
        assert warning.locator("a, img").count() == 0
        assert_inert(page, beacon)
        assert_no_exception(page)


def test_a_sub_name_and_remark_from_kucoin_are_shown_as_text(journeys, browser, beacon):
    key = journeys.markup_key
    with session(browser, f"{journeys.app.url}/bind") as page:
        page.get_by_label("Label", exact=True).fill("markup")
        fill_key(page, key)
        press(page, "Verify and bind")
        shows(page, "Bound 'markup'")
        text = page.get_by_test_id("stMain").inner_text().replace("\u2060", "")
        assert f"Sub-account {key.sub_name}" in text
        assert f"Key remark: {key.remark}" in text
        assert_inert(page, beacon)

        page.get_by_role("link", name="Open 'markup'").click()
        settle(page)
        assert heading(page).startswith("markup ")
        main = page.get_by_test_id("stMain")
        # The page's help line comes first, then the account's own line under its heading.
        caption = main.get_by_test_id("stCaptionContainer").nth(1).inner_text()
        assert f"sub-account {key.sub_name}" in caption.replace("\u2060", "")
        assert_inert(page, beacon)
        assert_no_exception(page)


def test_no_secret_of_any_journey_reached_the_server_log(journeys):
    log = journeys.app.log_text()
    assert "Uvicorn" in log or "You can now view" in log  # the log is the server's
    for key in (*JOURNEY_KEYS, journeys.markup_key):
        assert key.api_secret.reveal() not in log
        assert key.passphrase.reveal() not in log
