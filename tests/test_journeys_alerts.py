"""Alert journeys in a real browser against a served console, two sessions at a time.

An admin adds a channel in Settings, sends a test the local receiver gets, and sees a failed
delivery; a viewer in another session sees none of it. The Account page shows an account's
alert history and its drift since binding (an admin acknowledges it, a viewer cannot), and
the Fleet page draws the recent transitions and the fleet-over-time chart. "Check now" in the
browser sends its alert from the served process.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from alert_receiver import Receiver
from app_fixtures import TRADER, RecordingSimulator
from served_app import (
    ServedApp,
    assert_no_exception,
    browser_fixture,
    expect,
    goto,
    serve,
    session,
    settle,
)

from lib.config import Config
from lib.console import Console, alerts, binding
from lib.console.checks import check_account
from lib.kucoin.sim import SimAccount, SimulatorServer

__all__ = ["browser_fixture"]


def key(n: int) -> SimAccount:
    """Return a working spot key, number n, whitelisted for loopback."""
    return dataclasses.replace(
        TRADER,
        api_key=f"{0xB1E000 + n:024x}",
        api_secret=f"10000000-0000-4000-8000-{n:012x}",
        passphrase=f"journey-pass-{n}",
        uid=910_000 + n,
    )


FLEET = {"alpha": key(1), "bravo": key(2), "charlie": key(3)}


@dataclass(frozen=True)
class Served:
    """The served app, the simulator behind it, a console on the same database, the ids."""

    app: ServedApp
    simulator: RecordingSimulator
    console: Console
    ids: dict[str, int]

    def page(self, name: str, account: str | None = None) -> str:
        """Return a page's address, for one account on the Account page."""
        query = f"?account={self.ids[account]}" if account else ""
        return f"{self.app.url}/{name}{query}"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Bind the fleet, then serve the console over it with KuCoin simulated."""
    simulator = RecordingSimulator(tuple(FLEET.values()))
    data = tmp_path_factory.mktemp("journeys_alerts") / "data"
    with SimulatorServer(simulator) as kucoin:
        environ = {
            "BINDWATCH_DATA_DIR": str(data),
            "BINDWATCH_KUCOIN_SPOT_URL": kucoin.spot_url,
            "BINDWATCH_KUCOIN_FUTURES_URL": kucoin.futures_url,
        }
        console = Console.open(Config.from_env(environ))
        ids = {}
        for label, account in FLEET.items():
            outcome = binding.bind(
                console,
                label=label,
                api_key=account.api_key,
                api_secret=account.api_secret,
                passphrase=account.passphrase,
            )
            assert outcome.account_id is not None, outcome.check
            ids[label] = outcome.account_id
        alerts.flush(console)  # the fleet's first look: what later changes are measured from
        try:
            with serve(data, spot_url=kucoin.spot_url, futures_url=kucoin.futures_url) as app:
                yield Served(app, simulator, console, ids)
        finally:
            console.close()


def test_an_admin_adds_a_channel_tests_it_and_sees_a_failure_a_viewer_cannot(browser, served):
    with Receiver() as good, Receiver() as broken:
        broken.fail_next(1000)
        with session(browser, served.page("settings")) as admin:
            for url in (good.url, broken.url):
                field = admin.get_by_role("textbox", name="Add a channel (apprise URL)")
                field.fill(url)
                admin.get_by_role("button", name="Add channel").click()
                settle(admin)
                expect(admin.get_by_text("Send a test to try it")).to_be_visible()
                expect(field).to_have_value("")  # the form forgot the URL
            channels = admin.get_by_test_id("stDataFrame").filter(has=admin.locator("canvas"))
            expect(channels.first).to_be_visible()
            body = admin.locator("body").inner_text()
            assert "/hook" not in body and str(good.url.split(":")[2]) not in body

            admin.get_by_role("button", name="Send test").click()
            expect(admin.get_by_text("test message sent")).to_be_visible(timeout=60_000)
            assert_no_exception(admin)
            expect(admin.get_by_text("the test message was not delivered")).to_be_visible()
            assert [m["title"] for m in good.wait_for(1)] == [alerts.TEST_TITLE]
            expect(admin.get_by_text("Failed deliveries (1)")).to_be_visible()

            with session(browser, served.page("settings"), operator="viewer") as viewer:
                assert_no_exception(viewer)
                expect(viewer.get_by_text("only an admin sees and changes them")).to_be_visible()
                assert viewer.get_by_role("button", name="Send test").count() == 0
                assert viewer.get_by_role("button", name="Add channel").count() == 0
                assert viewer.get_by_text(re.compile(r"Failed deliveries \(")).count() == 0
        for number in alerts.channels(served.console)["number"]:
            alerts.remove_channel(served.console, int(number))


def test_alert_history_drift_feed_and_chart_render_across_two_sessions(browser, served):
    with Receiver() as hook:
        alerts.add_channel(served.console, hook.url)
        served.simulator.update_account(FLEET["bravo"].api_key, frozen=True)
        served.simulator.update_account(
            FLEET["charlie"].api_key, permissions=("General", "Spot", "Transfer")
        )
        for label in ("bravo", "charlie"):
            check_account(served.console, served.ids[label])
        alerts.flush(served.console)
        assert "bindwatch: bravo is failing: Account frozen" in [
            m["title"] for m in hook.wait_for(2)
        ]

        with (
            session(browser, served.page("account", "bravo")) as admin,
            session(browser, served.page("", None), operator="viewer") as viewer,
        ):
            expect(admin.get_by_text("Alert history")).to_be_visible()
            expect(admin.get_by_text("bravo is failing: Account frozen")).to_be_visible()
            assert_no_exception(admin)

            expect(viewer.get_by_text("Recent transitions")).to_be_visible()
            expect(viewer.get_by_text("bravo is failing: Account frozen")).to_be_visible()
            expect(viewer.get_by_text("charlie has a new risk")).to_be_visible()
            expect(viewer.get_by_test_id("stVegaLiteChart")).to_be_visible()
            assert_no_exception(viewer)

            # "Check now" in the browser: the served process decides and sends the recovery.
            served.simulator.update_account(FLEET["bravo"].api_key, frozen=False)
            admin.get_by_role("button", name="Check now").click()
            settle(admin)
            assert "bindwatch: bravo works again" in [m["title"] for m in hook.wait_for(3)]
            goto(admin, served.page("account", "bravo"))
            expect(admin.get_by_text("bravo works again")).to_be_visible()

            # Drift: the viewer reads it, the admin acknowledges it.
            goto(viewer, served.page("account", "charlie"))
            goto(admin, served.page("account", "charlie"))
            for page in (viewer, admin):
                expect(
                    page.get_by_text("permission added since binding: Transfer (moves funds)")
                ).to_be_visible()
            assert viewer.get_by_role("button", name="Acknowledge").count() == 0
            admin.get_by_role("button", name="Acknowledge").click()
            settle(admin)
            expect(admin.get_by_text("this is the new baseline")).to_be_visible()
            expect(admin.get_by_text("Nothing changed on KuCoin's side.")).to_be_visible()
            goto(viewer, served.page("account", "charlie"))
            expect(viewer.get_by_text("Nothing changed on KuCoin's side.")).to_be_visible()
        assert_secret_free(hook)


def assert_secret_free(hook: Receiver) -> None:
    """The canary over every delivered body: no key, secret or passphrase."""
    raw = b"".join(hook.raw)
    for account in FLEET.values():
        for value in (account.api_key, account.api_secret.reveal(), account.passphrase.reveal()):
            assert value.encode() not in raw
