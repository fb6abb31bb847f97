"""Journeys through the console's frame on a served app, in Debian's Chromium.

Every browser session, tab, reload and bookmark gets the same frame and pages; the Settings form
always shows what is stored and saves only what the operator changed; a setting out of range is
refused (or, stored before the rule, corrected) without breaking a page; a store or vault
failure is a message, never Streamlit's exception box. AppTest cannot see any of this: it runs
one fresh session per test and never serves a page without app.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from app_fixtures import TEST_ACCOUNTS, TRADER
from served_app import (
    ServedApp,
    assert_no_exception,
    browser_fixture,
    expect,
    serve,
    session,
    settle,
)

from lib import binding
from lib.config import Config
from lib.console import Console, KucoinTarget
from lib.kucoin.simulator import Simulator, SimulatorServer

__all__ = ["browser_fixture"]

# Each page of the sidebar: (link name, address, the page's title).
PAGES = (
    ("Fleet", "/", "Fleet"),
    ("Account", "/account", "Account"),
    ("Bind a key", "/bind", "Bind a key"),
    ("Settings", "/settings", "Settings"),
)
SECTIONS = ("Fleet", "Keys", "Admin")


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorServer]:
    """Run one KuCoin simulator on loopback for the module."""
    with SimulatorServer(Simulator(TEST_ACCOUNTS)) as server:
        yield server


def bind_trader(data_dir: Path, server: SimulatorServer) -> None:
    """Bind TRADER as "spot-bot" in the data directory, as the Bind page would."""
    config = Config.from_env({"BINDWATCH_DATA_DIR": str(data_dir)})
    console = Console.open(config, kucoin=KucoinTarget(server.spot_url, server.futures_url))
    try:
        binding.bind(
            console,
            label="spot-bot",
            api_key=TRADER.api_key,
            api_secret=TRADER.api_secret.reveal(),
            passphrase=TRADER.passphrase.reveal(),
        )
    finally:
        console.close()


@pytest.fixture(scope="module")
def app(tmp_path_factory, simulator) -> Iterator[ServedApp]:
    """Serve the app once for the module over a data directory with one bound account."""
    data = tmp_path_factory.mktemp("frame") / "data"
    bind_trader(data, simulator)
    with serve(data, spot_url=simulator.spot_url, futures_url=simulator.futures_url) as served:
        yield served


def assert_framed(page, title: str) -> None:
    """Assert the page shows `title` inside the app's frame, with no exception anywhere."""
    expect(page.get_by_role("heading", name=title, exact=True)).to_have_count(1)
    sidebar = page.get_by_test_id("stSidebar")
    for name, _, _ in PAGES:
        expect(sidebar.get_by_role("link", name=name, exact=True)).to_have_count(1)
    for section in SECTIONS:
        expect(sidebar.get_by_text(section, exact=True).first).to_be_visible()
    assert page.get_by_test_id("stSidebarNav").count() == 0  # never the legacy pages/ list
    assert_no_exception(page)


def open_from_sidebar(page, name: str) -> None:
    """Click a page's link in the sidebar and wait for its run."""
    page.get_by_test_id("stSidebar").get_by_role("link", name=name, exact=True).click()
    settle(page)


def open_first_fleet_row(page) -> None:
    """Select the fleet table's first row (its row marker), which opens that account."""
    grid = page.get_by_test_id("stDataFrame").first
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 12, box["y"] + 35 + 17)  # below the 35 px header, in row 1
    settle(page)


# --- Every session, tab, reload and bookmark ---------------------------------------------------


@pytest.mark.parametrize(("name", "path", "title"), PAGES, ids=[p[0] for p in PAGES])
def test_a_bookmark_on_a_fresh_server_is_served_in_the_frame(
    tmp_path, browser, simulator, name, path, title
):
    # The first request a server ever gets is the deep link: Streamlit's legacy pages/
    # discovery runs the page file on its own then, and the page must still get the frame.
    data = tmp_path / "data"
    bind_trader(data, simulator)
    with (
        serve(data, spot_url=simulator.spot_url, futures_url=simulator.futures_url) as served,
        session(browser, served.url + path) as page,
    ):
        assert_framed(page, title)
        assert urlparse(page.url).path.rstrip("/") == path.rstrip("/")
        page.reload()
        settle(page)
        assert_framed(page, title)
        # Then another operator at the root (which ends the legacy discovery for the server),
        # and the bookmark again in a third session.
        with session(browser, served.url + "/") as second:
            assert_framed(second, "Fleet")
        with session(browser, served.url + path) as third:
            assert_framed(third, title)


def test_three_sessions_one_after_another_open_every_page(app, browser):
    for _ in range(3):
        with session(browser, app.url + "/") as page:
            assert_framed(page, "Fleet")
            for name, path, title in PAGES:
                open_from_sidebar(page, name)
                assert_framed(page, title)
                assert urlparse(page.url).path.rstrip("/") == path.rstrip("/")
            # A page's own switch to another page works in every session too.
            open_from_sidebar(page, "Fleet")
            open_first_fleet_row(page)
            assert_framed(page, "Account")
            assert urlparse(page.url).query == "account=1"
            page.reload()
            settle(page)
            assert_framed(page, "Account")


def test_every_page_address_opens_in_a_fresh_tab_and_reloads(app, browser):
    with session(browser, app.url + "/") as first:
        assert_framed(first, "Fleet")
    for _, path, title in PAGES:
        with session(browser, app.url + path) as page:
            assert_framed(page, title)
            page.reload()
            settle(page)
            assert_framed(page, title)
    with session(browser, app.url + "/account?account=1") as page:
        assert_framed(page, "Account")
        page.get_by_text("spot-bot").first.wait_for(timeout=20_000)
