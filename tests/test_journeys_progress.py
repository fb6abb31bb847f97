"""A long action shows that it runs: checking a pasted key with a slow KuCoin, in a browser."""

from __future__ import annotations

from pathlib import Path

from app_fixtures import TEST_ACCOUNTS, TRADER
from served_app import assert_no_exception, browser_fixture, expect, serve, session, settle

from lib.kucoin.sim import Simulator, SimulatorServer
from lib.ui.key_form import CHECKING

__all__ = ["browser_fixture"]

SLOW_MS = 2_500  # KuCoin answering slowly: each of the check's requests waits this long


def test_checking_a_pasted_key_shows_progress_until_kucoin_answers(browser, tmp_path: Path):
    simulator = Simulator(TEST_ACCOUNTS)
    simulator.set_latency(SLOW_MS, api_key=TRADER.api_key)
    with (
        SimulatorServer(simulator) as kucoin,
        serve(tmp_path / "data", spot_url=kucoin.spot_url, futures_url=kucoin.futures_url) as app,
        session(browser, f"{app.url}/bind") as first,
        session(browser, f"{app.url}/bind") as second,
    ):
        first.get_by_label("Label", exact=True).fill("slow-desk")
        first.get_by_label("API Key", exact=True).fill(TRADER.api_key)
        first.get_by_label("Secret", exact=True).fill(TRADER.api_secret.reveal())
        first.get_by_label("Passphrase", exact=True).fill(TRADER.passphrase.reveal())
        first.get_by_role("button", name="Verify and bind").click()
        expect(first.get_by_text(CHECKING)).to_be_visible(timeout=SLOW_MS)
        expect(second.get_by_text(CHECKING)).to_have_count(0)  # the other session is not busy
        first.get_by_text("API Status: Connected").wait_for(timeout=60_000)
        settle(first)
        expect(first.get_by_text(CHECKING)).to_have_count(0)
        assert_no_exception(first)
