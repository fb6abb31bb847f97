"""Fleet page journeys in a real browser: filters, status tiles, the CSV download, the layout.

One served app per module (`streamlit run app.py`, as `make run` serves it), several browser
sessions against it. The real fleet at `/` holds three keys bound through a KuCoin simulator:
one measured with KuCoin's clock 2 s behind ours (a negative clock offset), and labels a
spreadsheet would take for a number or a formula. `/?demo=1` shows the demo fleet, one
account or more in every status.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from app_fixtures import OPEN_TRADER, TEST_ACCOUNTS, TRADER, TRADER_NEW
from served_app import (
    VIEWPORT,
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
from lib.console.demo import DEMO_ACCOUNTS
from lib.console.fleet import is_failing
from lib.health.status import Status
from lib.kucoin.sim import Simulator, SimulatorServer

__all__ = ["browser_fixture"]

# Labels an operator may type that a spreadsheet would run or read as a number.
FORMULA_LABEL = '=HYPERLINK("https://evil.example","open")'
NUMBER_LABEL = "-27"
PLUS_LABEL = "+1 desk"
KUCOIN_BEHIND_MS = -2_000  # KuCoin's clock minus ours while NUMBER_LABEL's key is bound
DEMO_SIZE = len(DEMO_ACCOUNTS)


@dataclass(frozen=True)
class Fleets:
    """The served app: its real fleet of three keys at `/`, the demo fleet at `/?demo=1`."""

    app: ServedApp

    @property
    def real(self) -> str:
        """Return the address of the real fleet."""
        return self.app.url + "/"

    @property
    def demo(self) -> str:
        """Return the address of the demo fleet."""
        return self.app.url + "/?demo=1"


@pytest.fixture(scope="module", name="fleets")
def fleets_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleets]:
    """Bind three keys through a simulator into a fresh data directory, then serve the app."""
    with SimulatorServer(Simulator(TEST_ACCOUNTS)) as server:
        data = tmp_path_factory.mktemp("journeys_fleet") / "data"
        console = Console.open(
            Config.from_env({DATA_DIR_ENV: str(data)}),
            kucoin=KucoinTarget(server.spot_url, server.futures_url),
        )
        try:
            _bind(console, FORMULA_LABEL, TRADER)
            server.simulator.set_clock_offset(KUCOIN_BEHIND_MS)
            _bind(console, NUMBER_LABEL, TRADER_NEW)
            server.simulator.set_clock_offset(0)
            _bind(console, PLUS_LABEL, OPEN_TRADER)
        finally:
            console.close()
        with serve(data, spot_url=server.spot_url, futures_url=server.futures_url) as app:
            yield Fleets(app)


def _bind(console: Console, label: str, account) -> None:
    """Bind one simulator account under `label`, accepting its warnings."""
    outcome = binding.bind(
        console,
        label=label,
        api_key=account.api_key,
        api_secret=account.api_secret.reveal(),
        passphrase=account.passphrase.reveal(),
        accept_warnings=True,
    )
    assert outcome.account_id is not None, outcome.check


# --- Reading the page ----------------------------------------------------------------------


def open_fleet(page, url: str) -> None:
    """Open the Fleet page at `url` and wait until its table is drawn."""
    page.goto(url)
    table = page.get_by_test_id("stDataFrame")
    # The first visit to /?demo=1 builds the demo fleet; an exception box ends the wait early.
    table.or_(page.get_by_test_id("stException")).first.wait_for(timeout=120_000)
    settle(page)
    assert_no_exception(page)
    table.wait_for()


def grid(page):
    """Return the table's accessible grid: glide-data-grid lists the cells it draws in view."""
    return page.get_by_test_id("stDataFrame").locator("table[role='grid']")


def row_count(page) -> int:
    """Return how many accounts the table holds (all of them, drawn in view or not)."""
    return int(grid(page).get_attribute("aria-rowcount")) - 1


def expect_rows(page, count: int) -> None:
    """Wait until the table holds `count` accounts (the run a click started has redrawn it)."""
    expect(grid(page)).to_have_attribute("aria-rowcount", str(count + 1), timeout=20_000)
    settle(page)


def headers_in_view(page) -> dict[str, int]:
    """Return {header: aria column index} of the columns the grid draws in its viewport."""
    cells = grid(page).locator("[role='columnheader']")
    return {
        cells.nth(i).inner_text(): int(cells.nth(i).get_attribute("aria-colindex"))
        for i in range(cells.count())
    }


def first_row(page, column: int) -> str:
    """Return the text of the first row's cell in aria column `column`."""
    return (
        grid(page).locator(f"tbody tr[aria-rowindex='2'] td[aria-colindex='{column}']").inner_text()
    )


def tiles(page):
    """Return the status tiles."""
    return page.locator(".st-key-fleet_status").get_by_role("button", name=re.compile(r"\d$"))


def tile(page, words: str):
    """Return the status tile whose label names `words` (after its coloured icon)."""
    return page.locator(".st-key-fleet_status").get_by_role("button", name=re.compile(words))


def download_csv(page, tmp_path: Path, expected_count: int) -> pd.DataFrame:
    """Click the export button, check its count, parse the file the browser saved."""
    noun = "account" if expected_count == 1 else "accounts"
    button = page.get_by_role("button", name=f"Export CSV ({expected_count} {noun})")
    button.wait_for(timeout=20_000)
    with page.expect_download() as download:
        button.click()
    saved = tmp_path / f"{len(list(tmp_path.iterdir()))}-{download.value.suggested_filename}"
    download.value.save_as(saved)
    return pd.read_csv(saved)


def search_for(page, text: str) -> None:
    """Type `text` into the search box and commit it."""
    search = page.get_by_role("textbox", name="Search")
    search.fill(text)
    search.press("Enter")


# --- Journeys ------------------------------------------------------------------------------


def test_clear_filters_clears_widgets_and_table_in_one_click(fleets: Fleets, browser) -> None:
    for _ in range(2):  # every session, not only the server's first
        with session(browser, app=fleets.app.url) as page:
            open_fleet(page, fleets.demo)
            assert row_count(page) == DEMO_SIZE
            kind = page.get_by_role("combobox", name="Account")
            search = page.get_by_role("textbox", name="Search")
            kind.click()
            page.get_by_role("option", name="Master accounts").click()
            expect(grid(page)).not_to_have_attribute("aria-rowcount", str(DEMO_SIZE + 1))
            search_for(page, "no-such-account")
            page.get_by_text("No account matches these filters").wait_for()

            page.get_by_role("button", name="Clear filters").click()

            expect_rows(page, DEMO_SIZE)
            expect(search).to_have_value("")
            expect(kind).to_have_value("All accounts")
            # The next change starts from no filter: the old ones do not come back.
            search_for(page, "mm-bot")
            expect_rows(page, 2)  # two sub-accounts: the master filter would hide both
            expect(kind).to_have_value("All accounts")
            assert_no_exception(page)


def test_a_tile_filters_to_its_status_and_everything_failing_to_the_failing(
    fleets: Fleets, browser, tmp_path: Path
) -> None:
    with session(browser, app=fleets.app.url) as page:
        open_fleet(page, fleets.demo)
        everyone = download_csv(page, tmp_path, DEMO_SIZE)
    failing = everyone[[is_failing(s) for s in everyone["status"]]]
    assert {"STALE", "SCOPE_MISSING", "UNVERIFIED"} <= set(failing["status"])
    stale = everyone[everyone["status"] == "STALE"]

    for _ in range(2):
        with session(browser, app=fleets.app.url) as page:
            open_fleet(page, fleets.demo)
            no_recent_sync = tile(page, "No recent sync")
            expect(no_recent_sync).to_have_attribute("aria-pressed", "false")
            no_recent_sync.click()
            expect_rows(page, len(stale))
            expect(no_recent_sync).to_have_attribute("aria-pressed", "true")
            shown = download_csv(page, tmp_path, len(stale))
            assert list(shown["label"]) == list(stale["label"])

            no_recent_sync.click()  # a chosen tile clicked again drops its filter
            expect_rows(page, DEMO_SIZE)

            everything_failing = tile(page, "Everything failing")
            assert everything_failing.inner_text().endswith(str(len(failing)))
            everything_failing.click()
            expect_rows(page, len(failing))
            shown = download_csv(page, tmp_path, len(failing))
            assert list(shown["label"]) == list(failing["label"])
            assert all(Status(s).level == "error" for s in shown["status"])

            page.get_by_role("button", name="Clear filters").click()
            expect_rows(page, DEMO_SIZE)
            expect(everything_failing).to_have_attribute("aria-pressed", "false")
            assert_no_exception(page)


def test_the_csv_download_keeps_numbers_and_neutralises_formulas(
    fleets: Fleets, browser, tmp_path: Path
) -> None:
    with session(browser, app=fleets.app.url) as page:
        open_fleet(page, fleets.real)
        fleet = download_csv(page, tmp_path, 3).set_index("label")

    assert pd.api.types.is_numeric_dtype(fleet["clock_offset_ms"])
    assert fleet.loc["'" + NUMBER_LABEL, "clock_offset_ms"] < KUCOIN_BEHIND_MS / 2
    assert pd.api.types.is_numeric_dtype(fleet["key_age_days"])
    assert pd.api.types.is_numeric_dtype(fleet["account_id"])
    assert set(fleet.index) == {"'" + FORMULA_LABEL, "'" + NUMBER_LABEL, "'" + PLUS_LABEL}

    # Another operator exports one account: still a number, and "1 account".
    with session(browser, app=fleets.app.url) as page:
        open_fleet(page, fleets.real)
        search_for(page, NUMBER_LABEL)
        expect_rows(page, 1)
        one = download_csv(page, tmp_path, 1)
    assert one["label"].tolist() == ["'" + NUMBER_LABEL]
    assert one["clock_offset_ms"].dtype.kind == "i" and one["clock_offset_ms"].iloc[0] < 0


def test_at_1440_the_diagnosis_and_fix_show_without_scrolling_and_tiles_read_in_full(
    fleets: Fleets, browser
) -> None:
    for _ in range(2):
        with session(browser, app=fleets.app.url) as page:
            open_fleet(page, fleets.demo)
            width = page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= VIEWPORT["width"], "the page itself does not scroll sideways"
            box = page.get_by_test_id("stDataFrame").bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= VIEWPORT["width"]

            columns = list(headers_in_view(page))
            assert columns[:4] == ["Account", "Status", "Diagnosis", "Next step"]
            # The grid draws a column only while part of it is in view: the one after
            # "Next step" starting inside the grid means "Next step" ends inside it.
            assert len(columns) > 4, f"'Next step' runs past the grid's right edge: {columns}"
            index = headers_in_view(page)
            assert first_row(page, index["Account"]) == "frozen-sub"
            assert first_row(page, index["Diagnosis"]).startswith("Account frozen")
            assert first_row(page, index["Next step"]).startswith("Contact KuCoin support")

            labels = tiles(page).all_inner_texts()
            assert len(labels) == 1 + len(set(Status) - {Status.REJECTED}), labels
            for status in set(Status) - {Status.REJECTED}:
                words = f"{status.title} {status.value}"
                assert any(words in " ".join(label.split()) for label in labels), (words, labels)
            cut = page.locator(".st-key-fleet_status").evaluate(
                """el => [...el.querySelectorAll('button, p')]
                    .filter(e => e.scrollWidth > e.clientWidth + 1
                              || e.getBoundingClientRect().right > window.innerWidth)
                    .map(e => e.textContent)"""
            )
            assert cut == [], f"tile labels cut: {cut}"


class Frames:
    """The messages the server sends one browser session over its websocket, from a mark."""

    def __init__(self, page) -> None:
        self.received: list[bytes] = []
        page.on("websocket", self._watch)

    def _watch(self, socket) -> None:
        socket.on("framereceived", self._add)

    def _add(self, payload: str | bytes) -> None:
        self.received.append(payload.encode() if isinstance(payload, str) else payload)

    def since(self, mark: int) -> bytes:
        """Return every message received after the first `mark` ones, joined."""
        return b"".join(self.received[mark:])


CHART_SPEC = b'"mark"'  # in the fleet chart's Vega-Lite spec, and in no other element here


def test_a_search_redraws_the_table_not_the_chart_and_the_chart_not_the_table(
    fleets: Fleets, browser
) -> None:
    for _ in range(2):  # every session, not only the server's first
        with session(browser, app=fleets.app.url) as page:
            frames = Frames(page)
            open_fleet(page, fleets.real)
            page.get_by_test_id("stVegaLiteChart").wait_for()
            assert CHART_SPEC in frames.since(0) and PLUS_LABEL.encode() in frames.since(0)

            mark = len(frames.received)
            search_for(page, "desk")
            expect_rows(page, 1)
            assert CHART_SPEC not in frames.since(mark)  # the chart was not sent again

            mark = len(frames.received)
            one_day = page.get_by_role("radiogroup", name="Fleet over time").get_by_role(
                "radio", name="1 d"
            )
            one_day.click()
            expect(one_day).to_have_attribute("aria-checked", "true")
            settle(page)
            sent = frames.since(mark)
            assert CHART_SPEC in sent  # the chart over one day
            assert PLUS_LABEL.encode() not in sent  # and not the table
            assert row_count(page) == 1  # which keeps its search
            assert_no_exception(page)


def test_the_demo_says_no_watcher_checks_it_while_the_real_fleet_shows_its_watcher(
    fleets: Fleets, browser
) -> None:
    """`make run` watches the real fleet only; the demo must not send its viewer to start one."""
    with session(browser, app=fleets.app.url) as real, session(browser, app=fleets.app.url) as demo:
        open_fleet(demo, fleets.demo)
        open_fleet(real, fleets.real)
        expect(real.get_by_text("next due", exact=False).first).to_be_visible(timeout=30_000)
        expect(demo.get_by_text("No watcher checks the demo fleet")).to_be_visible()
        expect(demo.get_by_text("No watcher has run", exact=False)).to_have_count(0)
        expect(demo.get_by_text("Start one:", exact=False)).to_have_count(0)

        demo.reload()  # each session keeps its own fleet and its own words
        settle(demo)
        expect(demo.get_by_text("No watcher checks the demo fleet")).to_be_visible()
        real.reload()
        settle(real)
        expect(real.get_by_text("next due", exact=False).first).to_be_visible(timeout=30_000)
        expect(real.get_by_text("No watcher checks the demo fleet")).to_have_count(0)
        assert_no_exception(real)
        assert_no_exception(demo)
