"""The console as `make run` serves it keeps its fleet fresh by itself, and the Fleet page says so.

A served app (served_app.serve: `streamlit run server.py`, the watcher on as `make run` has it),
a simulator on loopback, Debian's Chromium with more than one browser session.
"""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta

import pytest
from app_fixtures import OPEN_TRADER, TEST_ACCOUNTS, TRADER
from served_app import assert_no_exception, browser_fixture, expect, serve, session, settle

from lib import store
from lib.config import Config
from lib.console import Console, KucoinTarget, binding
from lib.console.settings import save_settings
from lib.console.watch import watcher_status
from lib.kucoin.sim import Simulator, SimulatorServer

__all__ = ["browser_fixture"]

PERIOD = timedelta(minutes=1)  # the shortest freshness period the settings allow
GRACE = timedelta(minutes=1)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Bind two simulator keys with a one-minute freshness period, then serve the console.

    Yield (the app's URL, a console on its database, the simulator, the two account ids).
    """
    simulator = Simulator(TEST_ACCOUNTS)
    with SimulatorServer(simulator) as server:
        data = tmp_path_factory.mktemp("journeys_watch") / "data"
        config = Config(data, f"sqlite:///{data / 'bindwatch.db'}", data / "master.key")
        console = Console.open(config, kucoin=KucoinTarget(server.spot_url, server.futures_url))
        ids = {}
        for label, key in (("trader", TRADER), ("open trader", OPEN_TRADER)):
            outcome = binding.bind(
                console,
                label=label,
                api_key=key.api_key,
                api_secret=key.api_secret.reveal(),
                passphrase=key.passphrase.reveal(),
                scopes=("spot",),
                accept_warnings=True,
            )
            ids[label] = outcome.account_id
        save_settings(
            console,
            freshness_seconds=int(PERIOD.total_seconds()),
            freshness_grace_seconds=int(GRACE.total_seconds()),
        )
        try:
            with serve(data, spot_url=server.spot_url, futures_url=server.futures_url) as app:
                yield app.url, console, simulator, ids
        finally:
            console.close()


def test_the_fleet_page_shows_the_heartbeat_and_auto_refreshes_as_checks_land(fleet, browser):
    url, _, simulator, ids = fleet
    with session(browser, url + "/") as watching:
        panel = watching.get_by_text("Watcher ", exact=False).first
        expect(panel).to_contain_text("next due", timeout=30_000)
        watching.get_by_text("Auto-refresh").click()
        settle(watching)
        expect(watching.get_by_text("WRONG_PASSPHRASE")).to_have_count(0)

        # KuCoin now refuses the trader's passphrase; a second operator checks it by hand.
        simulator.update_account(TRADER.api_key, passphrase="changed on KuCoin")
        with session(browser, f"{url}/account?account={ids['trader']}") as checking:
            checking.get_by_role("button", name="Check now").click()
            settle(checking)
            checking.get_by_text("Checked just now").wait_for(timeout=30_000)
            assert_no_exception(checking)

        # The first session, untouched, shows the new status within a few seconds.
        expect(watching.get_by_text("WRONG_PASSPHRASE").first).to_be_visible(timeout=10_000)
        assert_no_exception(watching)
    simulator.update_account(TRADER.api_key, passphrase=TRADER.passphrase.reveal())


def test_make_run_keeps_a_bound_account_fresh_for_three_periods_without_a_click(fleet):
    _, console, _, ids = fleet
    account_id = ids["open trader"]
    with console.reading() as session:
        before = len(store.probe_history_frame(session, account_id=account_id))
    started = datetime.now(UTC)
    seen: set[str] = set()
    while datetime.now(UTC) - started < 3 * PERIOD + timedelta(seconds=5):
        row = console.fleet().set_index("account_id").loc[account_id]
        seen.add(str(row["status"]))
        time.sleep(2)
    with console.reading() as session:
        history = store.probe_history_frame(session, account_id=account_id)
        actors = {e.actor for e in store.audit_log(session, account_id=account_id)}
    status = watcher_status(console)

    assert "STALE" not in seen, seen
    assert len(history) - before >= 3  # one check per period at least, by the watcher
    gaps = history["checked_at"].diff().dropna()
    assert (gaps <= PERIOD + timedelta(seconds=2)).all(), gaps.tolist()
    assert "watcher" in actors
    assert status.running and status.heartbeat is not None
    assert status.heartbeat.round_checked >= 1


def test_the_watcher_stops_with_the_served_console(tmp_path):
    data = tmp_path / "data"
    with serve(data) as app:
        config = Config(data, f"sqlite:///{data / 'bindwatch.db'}", data / "master.key")
        deadline = time.monotonic() + 30
        while not (data / "bindwatch.db").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        console = Console.open(config)
        while watcher_status(console).heartbeat is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert watcher_status(console).running
        app.process.terminate()
        code = app.process.wait(timeout=30)
    status = watcher_status(console)
    console.close()

    assert code in (0, -signal.SIGTERM)  # Streamlit ends its clean shutdown with the signal
    assert status.heartbeat is not None and status.heartbeat.stopped_at is not None
    assert not status.running


def test_make_run_with_watch_0_serves_the_console_without_a_watcher(tmp_path):
    data = tmp_path / "data"
    with serve(data, env={"BINDWATCH_WATCH": "0"}):
        config = Config(data, f"sqlite:///{data / 'bindwatch.db'}", data / "master.key")
        console = Console.open(config)
        time.sleep(2)
        status = watcher_status(console)
        console.close()
    assert status.heartbeat is None
