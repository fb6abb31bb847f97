"""Alerts on both databases: a transition is decided once however many processes look at once.

Several consoles (as the app, a watcher and `refresh` would be) judge the same fleet at the
same moment, on SQLite and on PostgreSQL: the alerts lock lets one decide, so the receiver
gets each message once, and a delivery claimed by one sender is never sent by another.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from alert_receiver import Receiver
from app_fixtures import TRADER
from store_fixtures import database_url_fixture, engine_fixture  # noqa: F401  (fixtures)

from lib.console import Console, KucoinTarget, alerts, binding
from lib.console.checks import check_account
from lib.kucoin.sim import Simulator, SimulatorServer
from lib.vault import open_vault

ACCOUNT = dataclasses.replace(TRADER, api_key="7a1e0b0c0d0e0f1011121314", uid=930001)
LOOKERS = 4


@pytest.fixture(name="console")
def console_fixture(engine, tmp_path: Path) -> Iterator[Console]:
    """Yield a console over the test database with KuCoin simulated on loopback."""
    simulator = Simulator((ACCOUNT,))
    with SimulatorServer(simulator) as kucoin:
        target = KucoinTarget(spot_url=kucoin.spot_url, futures_url=kucoin.futures_url)
        console = Console(engine, open_vault(engine, tmp_path / "keys" / "master.key"), target)
        console.simulator = simulator  # type: ignore[attr-defined]
        yield console


def test_many_lookers_at_once_decide_and_send_each_transition_once(console: Console):
    outcome = binding.bind(
        console,
        label="shared",
        api_key=ACCOUNT.api_key,
        api_secret=ACCOUNT.api_secret,
        passphrase=ACCOUNT.passphrase,
    )
    assert outcome.account_id is not None, outcome.check
    with Receiver() as hook:
        alerts.add_channel(console, hook.url)
        alerts.flush(console)  # the first look
        console.simulator.update_account(ACCOUNT.api_key, frozen=True)  # type: ignore[attr-defined]
        check_account(console, outcome.account_id)
        start = threading.Barrier(LOOKERS)
        errors: list[BaseException] = []

        def look() -> None:
            """Judge the fleet and send, as one more process would."""
            try:
                start.wait()
                alerts.flush(console.as_actor("another process"))
            except BaseException as error:  # reported below
                errors.append(error)

        threads = [threading.Thread(target=look) for _ in range(LOOKERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert alerts.worker(console).wait_idle(30)
        assert errors == []
        assert [m["title"] for m in hook.messages] == [
            "bindwatch: shared is failing: Account frozen"
        ]
        assert len(alerts.transitions(console)) == 1
        sent = alerts.deliveries(console)
        assert list(sent["state"]) == ["sent"] and list(sent["attempts"]) == [1]
