"""What the served console does as it starts (server.py's lifespan), before any browser asks.

It judges the fleet, leaves what it then holds out of the garbage collector's passes (Streamlit
collects after every script run), and reads the fleet chart's default window in the background,
so that the first Fleet page finds the chart's checks read.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_fleet import EGRESS, NOW, bind_offline, record, result

import server
from lib import store
from lib.config import DATA_DIR_ENV, DATABASE_URL_ENV, MASTER_KEY_FILE_ENV, WATCH_ENV
from lib.console import alerts
from lib.console.settings import save_settings
from lib.ui.alerts_view import CHART_DEFAULT_DAYS
from lib.ui.sign_in import installation_console


@pytest.fixture(name="installation")
def installation_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Configure an installation with one account checked, and no watcher beside the server."""
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    monkeypatch.delenv(MASTER_KEY_FILE_ENV, raising=False)
    monkeypatch.setenv(WATCH_ENV, "0")
    console = installation_console()
    save_settings(console, egress_ips=list(EGRESS))
    record(console, bind_offline(console, 1, "alpha-desk", ("spot",)), result(NOW))
    yield tmp_path
    gc.unfreeze()


def test_the_start_freezes_what_it_holds_and_reads_the_chart_in_the_background(
    installation: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    read = store.checks_since_chunks

    def counted(*args: object, **kwargs: object) -> Iterator[object]:
        reads.append(1)
        yield from read(*args, **kwargs)

    monkeypatch.setattr(store, "checks_since_chunks", counted)

    async def start_and_ask_for_the_chart() -> None:
        async with server.lifespan(server.app):
            assert gc.get_freeze_count() > 0
            for _ in range(200):  # the chart's window is read once the server answers
                if reads:
                    break
                await asyncio.sleep(0.05)
            # The first page's chart waits for that read, if still going, and reads nothing.
            await asyncio.to_thread(
                alerts.fleet_over_time, installation_console(), days=CHART_DEFAULT_DAYS
            )

    asyncio.run(start_and_ask_for_the_chart())
    assert reads == [1]
