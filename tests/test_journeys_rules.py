"""Journeys where binding, the Fleet and Refresh all must say the same thing about a key.

A served app, Debian's Chromium, several browser sessions (see served_app.py): what one
operator is told at bind time is what a second operator sees in the Fleet, and "Refresh all"
counts as failing exactly the accounts the red tiles count.
"""

from __future__ import annotations

import re

import pytest
from app_fixtures import TEST_ACCOUNTS
from served_app import assert_no_exception, browser_fixture, serve, session, settle
from simulator_fixtures import GENERAL_ONLY

from lib.health.status import Status
from lib.kucoin.sim import Simulator, SimulatorServer

__all__ = ["browser_fixture"]

STATUS_CODE = re.compile(
    r"\b(" + "|".join(sorted((s.value for s in Status), key=len, reverse=True)) + r")\b"
)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """Serve the app over a fresh data directory, KuCoin pointed at a simulator; yield its URL."""
    with SimulatorServer(Simulator(TEST_ACCOUNTS)) as server:
        data = tmp_path_factory.mktemp("journeys_rules") / "data"
        with serve(data, spot_url=server.spot_url, futures_url=server.futures_url) as served:
            yield served.url


def tiles(page) -> dict[str, int]:
    """Return the Fleet's status tiles as {status code: accounts} (not the Everything tile)."""
    buttons = page.locator(".st-key-fleet_status").get_by_role("button", name=re.compile(r"\d$"))
    buttons.first.wait_for(timeout=30_000)
    shown: dict[str, int] = {}
    for tile in buttons.all():
        label = tile.inner_text().strip()
        found = STATUS_CODE.search(label)
        if found is None:
            assert "Everything failing" in label, label
            continue
        shown[found.group(1)] = int(re.search(r"(\d[\d,]*)$", label).group(1).replace(",", ""))
    return shown


def test_a_key_lacking_a_needed_scope_is_connected_but_unable_here_and_in_the_fleet(app, browser):
    with session(browser, app + "/bind") as binder:
        binder.get_by_label("Label", exact=True).fill("reader")
        binder.get_by_label("API Key", exact=True).fill(GENERAL_ONLY.api_key)
        binder.get_by_label("Secret", exact=True).fill(GENERAL_ONLY.api_secret.reveal())
        binder.get_by_label("Passphrase", exact=True).fill(GENERAL_ONLY.passphrase.reveal())
        binder.get_by_role("button", name="Verify and bind").click()  # scopes: Spot (default)
        settle(binder)
        verdict = binder.get_by_text("API Status: Connected, but this key cannot do what")
        verdict.wait_for(timeout=30_000)
        assert "Permission missing: Spot" in verdict.inner_text()
        binder.get_by_text("I have read the warnings above").click()
        binder.get_by_role("button", name="Save with these warnings").click()
        settle(binder)
        binder.get_by_text("Bound 'reader'").wait_for(timeout=30_000)
        assert_no_exception(binder)

        # A second operator, in a session of their own, sees the status binding announced.
        with session(browser, app + "/") as watcher:
            assert tiles(watcher) == {"SCOPE_MISSING": 1}
            assert_no_exception(watcher)


@pytest.fixture
def demo_app(tmp_path):
    """Serve the app for the demo fleet alone (its own data directory); yield its URL."""
    with serve(tmp_path / "data") as served:
        yield served.url


def test_refresh_all_counts_as_failing_exactly_the_accounts_of_the_red_tiles(demo_app, browser):
    with session(browser, app=demo_app) as operator:
        operator.goto(demo_app + "/?demo=1")
        settle(operator, timeout_ms=180_000)  # the first visit builds the demo fleet
        before = tiles(operator)
        operator.get_by_role("button", name="Refresh all").click()
        settle(operator, timeout_ms=120_000)
        summary = operator.get_by_text(re.compile(r"^Checked \d+ accounts:"))
        summary.wait_for(timeout=60_000)
        text = summary.inner_text()
        after = tiles(operator)
        red = sum(n for status, n in after.items() if Status(status).level == "error")
        failing = int(re.search(r"(\d+) fail", text).group(1))
        assert failing == red, (text, after)
        # Every account but the paused one was checked; the demo keeps accounts failing.
        checked = int(re.search(r"Checked (\d+) accounts", text).group(1))
        assert checked == sum(before.values()) - before.get("PAUSED", 0)
        assert red > 0
        assert_no_exception(operator)
