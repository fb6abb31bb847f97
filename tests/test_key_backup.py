"""The master key backup notice: where the key file is, on every page until an admin confirms.

AppTest for what one session sees; a served console in Debian's Chromium for what two
sessions and a restart see.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from app_fixtures import APP, open_session, sim_env_fixture
from served_app import assert_no_exception, browser_fixture, expect, serve, session, settle
from streamlit.testing.v1 import AppTest

from lib import store
from lib.config import Config
from lib.console import Console, NotPermitted
from lib.console.key_backup import confirm_key_backup, key_backup
from lib.store.models import AuditAction
from lib.ui.key_backup import CONFIRM_BUTTON
from lib.ui.sign_in import OPERATOR_SESSION
from lib.vault import rotate_master_key

FIXTURES = (sim_env_fixture, browser_fixture)
NOTICE = "Back up the master key file now, apart from the database"


def signed_in(console: Console, name: str) -> AppTest:
    """Return an AppTest signed in as `name`, the key's backup left as the installation has it."""
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state[OPERATOR_SESSION] = open_session(console, name)
    return at


def notices(at: AppTest) -> list[str]:
    """Return the backup notices the run shows."""
    return [w.value for w in at.warning if NOTICE in w.value]


def test_every_page_names_the_key_file_until_an_admin_confirms_its_backup(sim_env):
    key_file = sim_env.console.vault.path
    at = signed_in(sim_env.console, "admin").run()
    for page in ("pages/fleet.py", "pages/settings.py", "pages/bind.py"):
        at.switch_page(page).run()
        [notice] = notices(at)
        assert str(key_file) in notice.replace("\\", "")
    at.button(key="confirm_key_backup").click().run()
    assert notices(at) == [] and not at.exception
    backup = key_backup(sim_env.console)
    assert backup.confirmed and backup.confirmed_by == "admin"
    with sim_env.console.reading() as session:
        [event] = store.audit_log(session, action=AuditAction.CONFIRM_KEY_BACKUP)
    assert event.actor == "admin"
    assert event.details == {"key_id": backup.key_id, "key_file": str(key_file)}
    assert notices(signed_in(sim_env.console, "viewer").run()) == []


def test_a_viewer_is_told_an_admin_confirms_and_cannot_confirm(sim_env):
    at = signed_in(sim_env.console, "viewer").run()
    assert notices(at)
    assert "confirm_key_backup" not in [b.key for b in at.button]
    assert any("An admin confirms the backup" in c.value for c in at.caption)
    with pytest.raises(NotPermitted, match="only an admin may confirm the master key backup"):
        confirm_key_backup(sim_env.console.as_actor("viewer", "viewer"))
    assert not key_backup(sim_env.console).confirmed


def test_a_new_master_key_asks_for_its_backup_again(sim_env):
    console = sim_env.console
    confirm_key_backup(console)
    rotate_master_key(console.engine, console.vault, actor="admin")
    assert not key_backup(console).confirmed
    confirm_key_backup(console)
    assert key_backup(console).confirmed


@pytest.mark.slow
def test_the_notice_shows_in_every_session_until_one_admin_confirms_and_stays_gone(
    browser, tmp_path: Path
):
    data_dir = tmp_path / "data"
    with serve(data_dir, key_backed_up=False) as app:
        key_file = str(data_dir / "master.key")
        with (
            session(browser, app.url) as admin,
            session(browser, app.url, operator="viewer") as viewer,
        ):
            for page in (admin, viewer):
                settle(page)
                expect(page.get_by_text(NOTICE)).to_be_visible()
                expect(page.get_by_text(key_file)).to_be_visible()
            expect(viewer.get_by_role("button", name=CONFIRM_BUTTON)).to_have_count(0)
            admin.get_by_role("button", name=CONFIRM_BUTTON).click()
            settle(admin)
            expect(admin.get_by_text(NOTICE)).to_have_count(0)
            viewer.reload()
            settle(viewer)
            expect(viewer.get_by_text(NOTICE)).to_have_count(0)
            assert_no_exception(admin)
            assert_no_exception(viewer)
    # Stored: a restarted console and a new browser session do not ask again.
    with serve(data_dir, key_backed_up=False) as app, session(browser, app.url) as again:
        settle(again)
        expect(again.get_by_role("heading", name="Fleet")).to_be_visible()
        expect(again.get_by_text(NOTICE)).to_have_count(0)
    console = Console.open(Config.from_env({"BINDWATCH_DATA_DIR": str(data_dir)}))
    try:
        assert key_backup(console).confirmed_by == "admin"
    finally:
        console.close()
