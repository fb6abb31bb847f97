"""The master key file swapped under a served console, in a real browser.

The console verified its key file when it opened. Then the file on disk is replaced: with one
naming the same key id with other bytes, or with another installation's keyring. A bind then
says why it cannot save and saves nothing, while a second browser session still reads the
fleet and checks an account with the key verified at start; with the right file back, the
same form binds.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from app_fixtures import TEST_ACCOUNTS, TRADER, TRADER_NEW
from served_app import (
    ServedApp,
    assert_no_exception,
    browser_fixture,
    expect,
    playwright,
    serve,
    session,
    settle,
)

from lib.config import Config
from lib.console import Console, binding
from lib.kucoin.sim import Simulator, SimulatorServer
from lib.vault import Keyring, KeyState, MasterKey, new_master_key, read_keyring, write_keyring

__all__ = ["browser_fixture"]


@dataclass(frozen=True)
class Installation:
    """The served console, its data directory and the id of the account bound before serving."""

    app: ServedApp
    key_file: Path
    first_id: int


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    """Bind one account, then serve the console over that data directory."""
    data = tmp_path_factory.mktemp("journeys_key_file") / "data"
    with SimulatorServer(Simulator(TEST_ACCOUNTS)) as kucoin:
        environ = {
            "BINDWATCH_DATA_DIR": str(data),
            "BINDWATCH_KUCOIN_SPOT_URL": kucoin.spot_url,
            "BINDWATCH_KUCOIN_FUTURES_URL": kucoin.futures_url,
        }
        console = Console.open(Config.from_env(environ))
        first = binding.bind(
            console,
            label="first",
            api_key=TRADER.api_key,
            api_secret=TRADER.api_secret.reveal(),
            passphrase=TRADER.passphrase.reveal(),
        )
        console.close()
        assert first.account_id is not None, first.check
        with serve(data, spot_url=kucoin.spot_url, futures_url=kucoin.futures_url) as app:
            yield Installation(app, data / "master.key", first.account_id)


def same_id_other_bytes(key_file: Path) -> None:
    """Replace the key file with one naming the same key id, holding other key bytes."""
    right = read_keyring(key_file).active
    impostor = MasterKey(right.key_id, KeyState.ACTIVE, right.created_at, os.urandom(32))
    write_keyring(key_file, Keyring((impostor,)))


def foreign_keyring(key_file: Path) -> None:
    """Replace the key file with another installation's keyring."""
    write_keyring(key_file, Keyring((new_master_key(),)))


@contextlib.contextmanager
def swapped(key_file: Path, swap) -> Iterator[None]:
    """Swap the key file for the block; then put the right one back, as the operator would."""
    right = key_file.read_bytes()
    swap(key_file)
    try:
        yield
    finally:
        key_file.write_bytes(right)


def labels(installation: Installation) -> list[str]:
    """Return the labels in the database, read without the console (and without a key)."""
    with sqlite3.connect(installation.app.data_dir / "bindwatch.db") as db:
        return [label for (label,) in db.execute("select label from accounts order by id")]


def credential_rows(installation: Installation) -> int:
    with sqlite3.connect(installation.app.data_dir / "bindwatch.db") as db:
        [(count,)] = db.execute("select count(*) from credentials")
    return count


def rerun(page, act) -> None:
    """Do what reruns the app, then wait for that run (not an earlier one) to finish."""
    busy = page.locator("[data-testid='stApp']:not([data-test-script-state='notRunning'])")
    act()
    with contextlib.suppress(playwright.TimeoutError):  # the run was over before we looked
        busy.wait_for(state="attached", timeout=3_000)
    settle(page)


def shows(page, text: str) -> None:
    """Wait until the text is visible on the page."""
    expect(page.get_by_text(text).locator("visible=true").first).to_be_visible(timeout=20_000)


def fill_bind_form(page, label: str) -> None:
    page.get_by_label("Label", exact=True).fill(label)
    page.get_by_label("API Key", exact=True).fill(TRADER_NEW.api_key)
    page.get_by_label("Secret", exact=True).fill(TRADER_NEW.api_secret.reveal())
    page.get_by_label("Passphrase", exact=True).fill(TRADER_NEW.passphrase.reveal())


@pytest.mark.parametrize(
    ("swap", "reason"),
    [
        pytest.param(same_id_other_bytes, "fails its check", id="same-id-other-bytes"),
        pytest.param(foreign_keyring, "needs master key(s)", id="foreign-keyring"),
    ],
)
def test_a_bind_under_a_swapped_key_file_saves_nothing_and_another_session_still_reads(
    installation, browser, swap, reason
):
    url = installation.app.url
    label = f"second-{swap.__name__}"
    before, stored = labels(installation), credential_rows(installation)
    with session(browser, url) as operator:
        # The console opens, and verifies its key file, before the file is swapped.
        shows(operator, "first")
        with swapped(installation.key_file, swap):
            operator.goto(f"{url}/bind")
            settle(operator)
            fill_bind_form(operator, label)
            rerun(operator, operator.get_by_role("button", name="Verify and bind").click)
            shows(operator, "changed while bindwatch was running")
            body = operator.locator("body").inner_text()
            assert reason in body and "Nothing was saved" in body
            assert "verified and saved" not in body
            assert_no_exception(operator)
            assert labels(installation) == before
            assert credential_rows(installation) == stored

            # Another browser session: the fleet reads, and a live check decrypts the key.
            with session(browser, url) as other:
                shows(other, "first")
                assert label not in other.locator("body").inner_text()
                other.goto(f"{url}/account?account={installation.first_id}")
                settle(other)
                rerun(other, other.get_by_role("button", name="Check now").click)
                shows(other, "Checked just now: the key works.")
                assert_no_exception(other)

        # The right file is back: the same form, still filled in, binds.
        rerun(operator, operator.get_by_role("button", name="Verify and bind").click)
        shows(operator, f"Bound '{label}': verified and saved.")
        assert_no_exception(operator)
    assert labels(installation) == [*before, label]
    # Unbound again, so the next swap binds the same key afresh.
    with contextlib.closing(Console.open(Config.from_env(_environ(installation)))) as console:
        account = binding.account_by_label(console, label)
        assert account is not None
        binding.unbind(console, account.id)


def _environ(installation: Installation) -> dict[str, str]:
    return {"BINDWATCH_DATA_DIR": str(installation.app.data_dir)}
