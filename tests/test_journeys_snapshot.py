"""One fleet judgement shared by every browser session: a change made in one shows in another.

The served console keeps the fleet judged once per database for all its sessions and judges
again only what changed (lib.console.snapshot). Two operators look at the Fleet page; one
checks the fleet after a key was deleted on KuCoin's side; the other's very next rerun shows
the deleted key, seconds later, not after any refresh interval.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from app_fixtures import OPEN_TRADER, TEST_ACCOUNTS, TRADER
from served_app import (
    ServedApp,
    assert_no_exception,
    browser_fixture,
    expect,
    serve,
    session,
    settle,
)

from lib.config import DATA_DIR_ENV, Config
from lib.console import Console, KucoinTarget, binding
from lib.kucoin.sim import Simulator, SimulatorServer

__all__ = ["browser_fixture"]


@dataclass(frozen=True)
class Served:
    """The served console over two bound keys, and the simulator standing in for KuCoin."""

    app: ServedApp
    kucoin: SimulatorServer


@pytest.fixture(scope="module", name="served")
def served_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Bind two keys through a simulator, then serve the console over them."""
    with SimulatorServer(Simulator(TEST_ACCOUNTS)) as kucoin:
        data = tmp_path_factory.mktemp("journeys_snapshot") / "data"
        console = Console.open(
            Config.from_env({DATA_DIR_ENV: str(data)}),
            kucoin=KucoinTarget(kucoin.spot_url, kucoin.futures_url),
        )
        try:
            for label, account in (("desk-a", TRADER), ("desk-b", OPEN_TRADER)):
                outcome = binding.bind(
                    console,
                    label=label,
                    api_key=account.api_key,
                    api_secret=account.api_secret.reveal(),
                    passphrase=account.passphrase.reveal(),
                    accept_warnings=True,
                )
                assert outcome.account_id is not None, outcome.check
        finally:
            console.close()
        with serve(data, spot_url=kucoin.spot_url, futures_url=kucoin.futures_url) as app:
            yield Served(app, kucoin)


def key_unknown_tile(page):
    """Return the KEY_UNKNOWN status tile (there is none while no key is unknown)."""
    return page.locator(".st-key-fleet_status").get_by_role(
        "button", name=re.compile(r"KEY_UNKNOWN.*1$")
    )


def open_fleet(page, url: str) -> None:
    """Open the Fleet page and wait until it shows both accounts."""
    page.goto(url)
    grid = page.get_by_test_id("stDataFrame").locator("table[role='grid']")
    expect(grid).to_have_attribute("aria-rowcount", "3", timeout=60_000)
    settle(page)
    assert_no_exception(page)


def test_a_check_made_in_one_session_shows_in_another_at_its_next_rerun(
    served: Served, browser
) -> None:
    with (
        session(browser, app=served.app.url) as checker,
        session(browser, app=served.app.url) as watcher,
    ):
        open_fleet(checker, served.app.url)
        open_fleet(watcher, served.app.url)
        expect(key_unknown_tile(watcher)).to_have_count(0)

        served.kucoin.simulator.remove_account(TRADER.api_key)  # deleted on KuCoin's side
        checker.get_by_role("button", name="Refresh all").click()
        expect(checker.get_by_text("Checked 2 accounts: 1 failing")).to_be_visible(timeout=30_000)
        expect(key_unknown_tile(checker)).to_have_count(1)

        # The watcher's next rerun (any interaction) reads the same kept judgement, brought up
        # to date by the checker's checks: no refresh interval to wait for.
        search = watcher.get_by_role("textbox", name="Search")
        search.fill("desk")
        search.press("Enter")
        settle(watcher)
        expect(key_unknown_tile(watcher)).to_have_count(1, timeout=2_000)
        assert_no_exception(watcher)
