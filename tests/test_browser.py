"""What only a real browser shows: the served app, password fields, a real CSV download.

Runs `streamlit run app.py` against a simulator on loopback and drives Debian's Chromium with
Playwright (never a downloaded browser). Skipped where Chromium is not installed; CI installs it.
"""

from __future__ import annotations

import pytest
from app_fixtures import OPEN_TRADER, TEST_ACCOUNTS, TRADER
from served_app import VIEWPORT, browser_fixture, goto, serve, settle, sign_in

from lib.kucoin.sim import Simulator, SimulatorServer

__all__ = ["browser_fixture"]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """Serve the app over a fresh data directory, KuCoin pointed at a simulator; yield its URL."""
    with SimulatorServer(Simulator(TEST_ACCOUNTS)) as server:
        data = tmp_path_factory.mktemp("browser") / "data"
        with serve(data, spot_url=server.spot_url, futures_url=server.futures_url) as served:
            yield served.url, served.data_dir, served.log


def open_page(browser, url: str):
    """Open `url` in a page of its own, signed in as the admin (closed by the test)."""
    page = browser.new_page(accept_downloads=True, viewport=VIEWPORT)
    sign_in(page.context, url)
    goto(page, url)
    return page


def test_empty_fleet_says_what_to_do_next_and_lists_only_the_app_pages(app, browser):
    url, _, _ = app
    # The first session of a fresh server follows a deep link, as a bookmark would: Streamlit's
    # legacy pages/ discovery must not serve the page without the app's frame.
    page = open_page(browser, url + "/settings")
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_role("link", name="Settings").wait_for(timeout=20_000)
    assert page.get_by_test_id("stSidebarNav").count() == 0  # no legacy pages/ list
    links = [text.strip() for text in sidebar.get_by_role("link").all_inner_texts()]
    names = {text.split("\n")[-1].strip() for text in links}
    assert {"Fleet", "Account", "Bind a key", "Settings"} <= names, links
    assert not names & {"app", "bind", "fleet", "settings"}  # no raw pages/ file names
    page.get_by_role("link", name="Fleet").first.click()
    settle(page)
    assert page.get_by_text("No KuCoin account is bound yet").is_visible()
    assert page.get_by_role("button", name="Load demo fleet").is_visible()
    page.close()


def test_bind_in_a_real_browser_leaves_no_secret_in_fields_or_page(app, browser):
    url, _, log = app
    page = open_page(browser, url + "/bind")
    assert page.get_by_label("Secret", exact=True).get_attribute("type") == "password"
    assert page.get_by_label("Passphrase", exact=True).get_attribute("type") == "password"
    page.get_by_label("Label", exact=True).fill("browser-bot")
    page.get_by_label("API Key", exact=True).fill(f"  {TRADER.api_key}\n")
    page.get_by_label("Secret", exact=True).fill(TRADER.api_secret.reveal())
    page.get_by_label("Passphrase", exact=True).fill(TRADER.passphrase.reveal())
    page.get_by_role("button", name="Verify and bind").click()
    settle(page)
    page.get_by_text("API Status: Connected").wait_for(timeout=20_000)
    html = page.content()
    for secret in (TRADER.api_secret.reveal(), TRADER.passphrase.reveal()):
        assert secret not in html
    for label in ("API Key", "Secret", "Passphrase"):
        fields = page.get_by_label(label, exact=True)
        if fields.count():
            assert fields.input_value() == ""
    assert TRADER.api_secret.reveal() not in log.read_text()
    page.close()


def test_fleet_csv_downloads_for_real_without_secrets(app, browser, tmp_path):
    url, _, _ = app
    page = open_page(browser, url + "/bind")
    # A second account with warnings, confirmed, so the fleet has more than one status.
    page.get_by_label("Label", exact=True).fill("open-bot")
    page.get_by_label("API Key", exact=True).fill(OPEN_TRADER.api_key)
    page.get_by_label("Secret", exact=True).fill(OPEN_TRADER.api_secret.reveal())
    page.get_by_label("Passphrase", exact=True).fill(OPEN_TRADER.passphrase.reveal())
    page.get_by_role("button", name="Verify and bind").click()
    settle(page)
    page.get_by_text("30 days of inactivity").first.wait_for(timeout=20_000)
    page.goto(url + "/")
    settle(page)
    export = page.get_by_role("button", name="Export CSV")
    export.wait_for(timeout=20_000)
    with page.expect_download() as download:
        export.click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    text = saved.read_text()
    assert saved.name.startswith("bindwatch-fleet-") and saved.suffix == ".csv"
    assert "browser-bot" in text
    for account in (TRADER, OPEN_TRADER):
        assert account.api_secret.reveal() not in text
        assert account.passphrase.reveal() not in text
        assert account.api_key not in text
    page.close()
