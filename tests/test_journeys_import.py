"""Importing a desk's keys in Debian's Chromium against a served console (`make run`).

An admin downloads the template, uploads a 50-line file and reads the verified preview while
a viewer, in another browser, sees none of it and no way to import; nothing is saved until
the admin confirms; then the summary says what was bound and the viewer's Fleet shows it.
No secret of the file reaches the page, the server's log or the database.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_fixtures import TEST_ACCOUNTS, TRADER
from import_fixtures import CANARY, csv_text, desk_lines
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
from lib.console import Console, KucoinTarget, binding
from lib.kucoin.sim import Simulator, SimulatorServer

__all__ = ["browser_fixture"]


@pytest.fixture(scope="module")
def desk() -> Iterator[tuple[SimulatorServer, str]]:
    """Run a simulator holding the desk's keys; yield it and the desk's CSV file."""
    simulator = Simulator(TEST_ACCOUNTS)
    lines = desk_lines(simulator, TRADER)
    with SimulatorServer(simulator) as server:
        yield server, csv_text(lines)


@pytest.fixture(scope="module")
def app(tmp_path_factory, desk) -> Iterator[ServedApp]:
    """Serve the console over a data directory where TRADER is bound as 'existing'."""
    server, _ = desk
    data = tmp_path_factory.mktemp("import") / "data"
    config = Config.from_env({"BINDWATCH_DATA_DIR": str(data)})
    console = Console.open(config, kucoin=KucoinTarget(server.spot_url, server.futures_url))
    try:
        binding.bind(
            console,
            label="existing",
            api_key=TRADER.api_key,
            api_secret=TRADER.api_secret,
            passphrase=TRADER.passphrase,
        )
    finally:
        console.close()
    with serve(data, spot_url=server.spot_url, futures_url=server.futures_url) as served:
        yield served


def grid(page):
    """Return the page's first table's accessible grid (it counts rows drawn or not)."""
    return page.get_by_test_id("stDataFrame").first.locator("table[role='grid']")


def labels_in(data_dir: Path) -> set[str]:
    """Return the labels of the accounts bound in a data directory."""
    console = Console.open(Config.from_env({"BINDWATCH_DATA_DIR": str(data_dir)}))
    try:
        return {account.label for account in binding.accounts(console)}
    finally:
        console.close()


def database_text(data_dir: Path) -> str:
    """Return every row of every table of the data directory's database, as text."""
    with sqlite3.connect(data_dir / "bindwatch.db") as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return "\n".join(repr(row) for t in tables for row in db.execute(f"SELECT * FROM {t}"))


def test_an_admin_imports_a_desk_after_reading_the_preview_while_a_viewer_watches(
    app, browser, desk, tmp_path
) -> None:
    _, text = desk
    with (
        session(browser, app.url + "/import_keys") as admin,
        session(browser, app.url + "/", operator="viewer") as viewer,
    ):
        expect(admin.get_by_role("heading", name="Import keys")).to_be_visible()
        with admin.expect_download() as download:
            admin.get_by_role("button", name="Download the template (CSV)").click()
        template = Path(download.value.path()).read_text()
        assert template.startswith("label,api_key,api_secret,passphrase,scopes,note\n")
        settle(admin)  # the click's rerun ends before a file is given to the uploader it redraws

        admin.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(
            {"name": "desk.csv", "mimeType": "text/csv", "buffer": text.encode()}
        )
        expect(
            admin.get_by_text("50 lines: 28 ready, 5 needs confirmation, 13 refused, 4 duplicate.")
        ).to_be_visible(timeout=60_000)
        settle(admin)
        expect(grid(admin)).to_have_attribute("aria-rowcount", "51")  # a row per line
        assert admin.get_by_test_id("stFileUploaderDropzoneInput").count() == 0
        assert labels_in(app.data_dir) == {"existing"}  # nothing saved before confirming

        # The viewer, meanwhile: no import page, no preview, nothing new in the fleet.
        sidebar = viewer.get_by_test_id("stSidebar")
        assert sidebar.get_by_role("link", name="Import keys").count() == 0
        expect(grid(viewer)).to_have_attribute("aria-rowcount", "2")  # 'existing' only
        goto(viewer, app.url + "/import_keys")
        expect(viewer.get_by_text("Download the template (CSV)")).to_have_count(0)
        expect(viewer.get_by_text("50 lines:")).to_have_count(0)

        admin.get_by_text("Also save the 2 keys with warnings").click()
        admin.get_by_role("button", name="Save the confirmed keys").click()
        settle(admin)
        expect(admin.get_by_text("Bound 30 of 50 lines; 20 not bound.")).to_be_visible()
        bound = labels_in(app.data_dir)
        assert len(bound) == 31 and {"desk-01", "desk-30", "desk-37"} <= bound
        assert not {"desk-21", "desk-41", "desk-again-01"} & bound

        goto(viewer, app.url + "/")
        expect(grid(viewer)).to_have_attribute("aria-rowcount", "32")
        expect(grid(viewer).get_by_text("desk-01", exact=True)).not_to_have_count(0)
        for page in (admin, viewer):
            assert_no_exception(page)
            assert CANARY not in page.content()
    assert CANARY not in app.log_text()
    assert CANARY not in database_text(app.data_dir)


def test_an_unreadable_or_oversized_file_gets_a_message_and_the_uploader_back(app, browser) -> None:
    with session(browser, app.url + "/import_keys") as admin:
        admin.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(
            {"name": "keys.csv", "mimeType": "text/csv", "buffer": b"label,api_key\n"}
        )
        expect(admin.get_by_text("missing columns 'api_secret', 'passphrase'")).to_be_visible(
            timeout=30_000
        )
        settle(admin)
        uploader = admin.get_by_test_id("stFileUploaderDropzoneInput")
        expect(uploader).to_have_count(1)
        uploader.set_input_files(
            {"name": "huge.csv", "mimeType": "text/csv", "buffer": b"x" * 10_000_000}
        )
        expect(admin.get_by_text("File must be 1.0MB or smaller.")).to_be_visible()
        settle(admin)
        expect(admin.get_by_text("50 lines:")).to_have_count(0)
        assert_no_exception(admin)
