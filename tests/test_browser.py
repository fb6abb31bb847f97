"""What only a real browser shows: the served app, password fields, a real CSV download.

Runs `streamlit run app.py` against a simulator on loopback and drives Debian's Chromium with
Playwright (never a downloaded browser). Skipped where Chromium is not installed; CI installs it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from app_fixtures import OPEN_TRADER, TEST_ACCOUNTS, TRADER

from lib.kucoin.simulator import Simulator, SimulatorServer

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
if not shutil.which(CHROMIUM):
    if os.environ.get("CI"):
        raise RuntimeError(f"CI must install Debian's chromium ({CHROMIUM} not found)")
    pytest.skip("Debian chromium not installed", allow_module_level=True)

playwright = pytest.importorskip("playwright.sync_api")
# Without the background-networking flags Chromium keeps calling Google hosts on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """Serve the app over a fresh data directory, KuCoin pointed at a simulator; yield its URL."""
    sim = Simulator(TEST_ACCOUNTS)
    with SimulatorServer(sim) as server:
        data = tmp_path_factory.mktemp("browser") / "data"
        log = data.parent / "streamlit.log"
        port = _free_port()
        env = {
            **os.environ,
            "BINDWATCH_DATA_DIR": str(data),
            "BINDWATCH_KUCOIN_SPOT_URL": server.spot_url,
            "BINDWATCH_KUCOIN_FUTURES_URL": server.futures_url,
        }
        for name in ("BINDWATCH_DATABASE_URL", "BINDWATCH_MASTER_KEY_FILE"):
            env.pop(name, None)
        with open(log, "w") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "app.py", f"--server.port={port}"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(150):
                try:
                    if httpx.get(f"{url}/_stcore/health", timeout=1).text == "ok":
                        break
                except httpx.HTTPError:
                    pass
                if process.poll() is not None:
                    raise RuntimeError(log.read_text())
                time.sleep(0.2)
            yield url, data, log
        finally:
            process.terminate()
            process.wait(timeout=15)


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_page(browser, url: str):
    page = browser.new_page(accept_downloads=True, viewport={"width": 1400, "height": 1000})
    page.goto(url)
    settle(page)
    return page


def settle(page) -> None:
    """Wait until the app is connected and its script has finished running."""
    app = "[data-testid='stApp']"
    page.locator(f"{app}[data-test-connection-state='CONNECTED']").wait_for(
        state="attached", timeout=30_000
    )
    page.wait_for_timeout(300)
    page.locator(f"{app}[data-test-script-state='notRunning']").wait_for(
        state="attached", timeout=30_000
    )


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
