"""Journeys through the console's frame on a served app, in Debian's Chromium.

Every browser session, tab, reload and bookmark gets the same frame and pages; the Settings form
always shows what is stored and saves only what the operator changed; a setting out of range is
refused (or, stored before the rule, corrected) without breaking a page; a store or vault
failure is a message, never Streamlit's exception box. AppTest cannot see any of this: it runs
one fresh session per test and never serves a page without app.py.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import pytest
from app_fixtures import TEST_ACCOUNTS, TRADER, TRADER_NEW
from served_app import (
    ServedApp,
    assert_no_exception,
    browser_fixture,
    expect,
    serve,
    session,
    settle,
)

from lib import store
from lib.config import Config
from lib.console import Console, KucoinTarget, binding
from lib.console.settings import save_settings
from lib.kucoin.sim import Simulator, SimulatorServer
from lib.store.models import AuditAction, Settings

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


@pytest.mark.parametrize(
    ("address", "title"),
    [("/", "Fleet"), ("/account?account=1", "Account"), ("/settings", "Settings")],
    ids=["root", "account-bookmark", "settings-bookmark"],
)
def test_a_bookmark_on_a_fresh_server_is_served_in_the_frame(
    tmp_path, browser, simulator, address, title
):
    # The first request a server ever gets is the bookmark: Streamlit's legacy pages/
    # discovery runs the page file on its own then, and the page must still get the frame.
    data = tmp_path / "data"
    bind_trader(data, simulator)
    with (
        serve(data, spot_url=simulator.spot_url, futures_url=simulator.futures_url) as served,
        session(browser, served.url + address) as page,
    ):
        assert_framed(page, title)
        assert page.url.rstrip("/") == (served.url + address).rstrip("/")
        page.reload()
        settle(page)
        assert_framed(page, title)
        # Then another operator at the root (which ends the legacy discovery for the server),
        # and the bookmark again in a third session.
        with session(browser, served.url + "/") as second:
            assert_framed(second, "Fleet")
        with session(browser, served.url + address) as third:
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


# --- Settings: the form shows what is stored, and saves only what the operator changed ---------

STORED = {
    "egress_ips": ["127.0.0.1", "203.0.113.154"],
    "freshness_seconds": 45 * 60,
    "freshness_grace_seconds": 10 * 60,
    "rotation_age_days": 120,
    "key_version": "2",
    "futures_currencies": ["USDT", "XBT"],
}
# What the form shows for STORED, by field label.
FORM = {
    "Egress IPs, one per line": "127.0.0.1\n203.0.113.154",
    "Freshness period (minutes)": "45",
    "Grace (minutes)": "10",
    "Rotate keys after (days)": "120",
    "Futures currencies to read": "USDT, XBT",
    "KC-API-KEY-VERSION for new keys": "2",
}


def open_console(data_dir: Path) -> Console:
    """Open the served app's database and vault from the test, as another process would."""
    return Console.open(
        Config.from_env({"BINDWATCH_DATA_DIR": str(data_dir)}), kucoin=KucoinTarget()
    )


def store_settings(data_dir: Path, **settings: object) -> None:
    """Save settings as an operator would (validated and audited)."""
    console = open_console(data_dir).as_actor("seed")
    try:
        save_settings(console, **settings)
    finally:
        console.close()


def stored_settings(data_dir: Path) -> tuple[Settings, list[store.AuditEntry]]:
    """Return the stored settings and the settings changes, newest first."""
    console = open_console(data_dir)
    try:
        with console.reading() as session:
            changes = store.audit_log(session, action=AuditAction.CHANGE_SETTINGS)
        return console.settings(), changes
    finally:
        console.close()


def put_setting_directly(data_dir: Path, name: str, value: object) -> None:
    """Write a setting into the table with SQL, as a database from before the ranges holds it."""
    with sqlite3.connect(data_dir / "bindwatch.db") as db:
        db.execute(
            "INSERT OR REPLACE INTO settings (name, value, updated_at, updated_by) "
            "VALUES (?, ?, ?, 'old')",
            (name, json.dumps(value), datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")),
        )


def assert_form_shows(page, fields: dict[str, str]) -> None:
    """Assert each Settings field shows the value given, by label."""
    for label, value in fields.items():
        expect(page.get_by_label(label, exact=True)).to_have_value(value)


def save_policy(page) -> None:
    """Submit the health policy form and wait for the run."""
    page.get_by_role("button", name="Save policy").click()
    settle(page)


def type_into(page, label: str, value: str) -> None:
    """Replace what a field holds, as an operator typing would."""
    field = page.get_by_label(label, exact=True)
    field.fill(value)
    field.press("Tab")


def test_settings_show_what_is_stored_after_another_page_in_every_session(app, browser):
    store_settings(app.data_dir, **STORED)
    for _ in range(2):
        with session(browser, app.url + "/settings") as page:
            assert_form_shows(page, FORM)
            # Streamlit forgets a widget's state on a page it does not draw: coming back must
            # show the store again, never the widgets' defaults.
            open_from_sidebar(page, "Fleet")
            open_from_sidebar(page, "Settings")
            assert_form_shows(page, FORM)


def test_saving_untouched_fields_changes_nothing_and_one_edit_changes_one_setting(app, browser):
    store_settings(app.data_dir, **STORED)
    before, log_before = stored_settings(app.data_dir)
    with session(browser, app.url + "/settings") as page:
        open_from_sidebar(page, "Fleet")
        open_from_sidebar(page, "Settings")
        save_policy(page)
        assert stored_settings(app.data_dir) == (before, log_before)
        nothing = page.get_by_text("Nothing to save: every field holds what is stored.")
        expect(nothing).to_be_visible()
        page.get_by_role("button", name="Save IPs").click()
        settle(page)
        assert stored_settings(app.data_dir) == (before, log_before)
        expect(nothing).to_be_visible()

        type_into(page, "Freshness period (minutes)", "30")
        save_policy(page)
        expect(page.get_by_text("Saved the health policy.")).to_be_visible()
        assert_form_shows(page, {**FORM, "Freshness period (minutes)": "30"})
        page.get_by_text("Recent changes").click()
        changes = page.get_by_test_id("stExpander").filter(has_text="Recent changes")
        expect(changes.get_by_test_id("stDataFrame")).to_be_visible()

    after, log_after = stored_settings(app.data_dir)
    assert after == replace(before, freshness_seconds=30 * 60)
    assert len(log_after) == len(log_before) + 1
    assert log_after[0].details == {"freshness_seconds": {"from": 45 * 60, "to": 30 * 60}}


def test_a_setting_out_of_range_is_refused_with_a_message_and_the_pages_keep_working(app, browser):
    store_settings(app.data_dir, **STORED)
    before = stored_settings(app.data_dir)
    with session(browser, app.url + "/settings") as page:
        type_into(page, "Rotate keys after (days)", "10000000000")
        save_policy(page)
        expect(
            page.get_by_text(
                "Rotate keys after must be 1 to 3,650 days; 10,000,000,000 is out of range."
            )
        ).to_be_visible()

        type_into(page, "Rotate keys after (days)", "120")
        type_into(page, "Freshness period (minutes)", "-5")
        save_policy(page)
        expect(
            page.get_by_text("Freshness period must be 1 to 10,080 minutes; -5 is out of range.")
        ).to_be_visible()

        # Space-separated: the text area redraws slowly for thousands of lines.
        ips = " ".join(f"10.{n // 65536}.{n // 256 % 256}.{n % 256}" for n in range(5_001))
        page.get_by_label("Egress IPs, one per line", exact=True).fill(ips)
        page.get_by_role("button", name="Save IPs").click()
        settle(page)
        expect(page.get_by_text("Egress IPs: at most 20")).to_be_visible()
        assert stored_settings(app.data_dir) == before

        for name, _, title in PAGES:
            open_from_sidebar(page, name)
            assert_framed(page, title)


def test_a_value_stored_out_of_range_breaks_no_page_and_is_corrected_in_settings(
    tmp_path, browser, simulator
):
    data = tmp_path / "data"
    bind_trader(data, simulator)
    put_setting_directly(data, "rotation_age_days", 10_000_000_000)
    with (
        serve(data, spot_url=simulator.spot_url, futures_url=simulator.futures_url) as served,
        session(browser, served.url + "/") as page,
    ):
        for name, _, title in PAGES:
            open_from_sidebar(page, name)
            assert_framed(page, title)
        warning = page.get_by_text("A stored setting is out of range: Rotate keys after must be")
        expect(warning).to_be_visible()
        expect(page.get_by_label("Rotate keys after (days)", exact=True)).to_have_value("3650")
        save_policy(page)
        expect(page.get_by_text("Saved the health policy.")).to_be_visible()
        expect(warning).to_have_count(0)
        settings, changes = stored_settings(data)
    assert settings.rotation_age_days == 3_650
    assert changes[0].details == {"rotation_age_days": {"from": 10_000_000_000, "to": 3_650}}
    assert subprocess_status(data) == 0


def subprocess_status(data_dir: Path) -> int:
    """Run `python -m lib status` over the data directory; fail on a traceback; return its exit."""
    env = {**os.environ, "BINDWATCH_DATA_DIR": str(data_dir)}
    env.pop("BINDWATCH_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "lib", "status"],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert "spot-bot" in done.stdout, done.stdout
    return done.returncode


# --- Failures of the store or the vault are messages ------------------------------------------


def test_a_database_failure_on_a_page_is_a_message_not_the_exception_box(app, browser):
    database = app.data_dir / "bindwatch.db"
    with sqlite3.connect(database) as db:
        db.execute("ALTER TABLE settings RENAME TO settings_away")
    try:
        with session(browser, app.url + "/settings") as page:
            expect(
                page.get_by_text("bindwatch could not read or write its database")
            ).to_be_visible()
            assert_framed(page, "Settings")
            open_from_sidebar(page, "Account")  # the Fleet table may come from its cache
            expect(
                page.get_by_text("bindwatch could not read or write its database")
            ).to_be_visible()
            assert_no_exception(page)
    finally:
        with sqlite3.connect(database) as db:
            db.execute("ALTER TABLE settings_away RENAME TO settings")
    with session(browser, app.url + "/settings") as page:
        assert_framed(page, "Settings")
        assert page.get_by_text("could not read or write").count() == 0


def test_a_master_key_file_damaged_while_the_app_runs_fails_a_bind_with_a_message(app, browser):
    key_file = app.data_dir / "master.key"
    intact = key_file.read_bytes()
    with session(browser, app.url + "/bind") as page:
        key_file.write_bytes(intact[:20])  # truncated while the app runs
        try:
            page.get_by_label("Label", exact=True).fill("second-bot")
            page.get_by_label("API Key", exact=True).fill(TRADER_NEW.api_key)
            page.get_by_label("Secret", exact=True).fill(TRADER_NEW.api_secret.reveal())
            page.get_by_label("Passphrase", exact=True).fill(TRADER_NEW.passphrase.reveal())
            page.get_by_role("button", name="Verify and bind").click()
            settle(page)
            # The check itself runs with the key verified at start; saving is what is refused.
            refused = page.get_by_text("bindwatch cannot use its credential store")
            confirm = page.get_by_text("I have read the warnings above")
            expect(refused.or_(confirm).first).to_be_visible(timeout=30_000)
            if confirm.count():  # the platform IP a settings test stored makes it warn
                confirm.click()
                page.get_by_role("button", name="Save with these warnings").click()
                settle(page)
            expect(refused).to_be_visible(timeout=30_000)
            expect(page.get_by_text("Nothing was saved").first).to_be_visible()
            assert page.get_by_text("verified and saved").count() == 0
            assert_no_exception(page)
        finally:
            key_file.write_bytes(intact)
