"""Each page says in one line what it is for, under its title, for a newcomer."""

from __future__ import annotations

import pytest
from app_fixtures import TRADER, app_test, sim_env_fixture
from served_app import assert_no_exception, browser_fixture, expect, goto, serve, session

from lib.console import binding
from lib.ui.frame import PAGES

FIXTURES = (sim_env_fixture, browser_fixture)
LAYOUT = {"flex_container", "column", "container", "expandable", "tab"}  # blocks, not content


@pytest.mark.parametrize("path", [file for _, file, _, _ in PAGES])
def test_every_page_has_a_one_line_help_under_its_title(sim_env, path):
    outcome = binding.bind(
        sim_env.console,
        label="desk",
        api_key=TRADER.api_key,
        api_secret=TRADER.api_secret.reveal(),
        passphrase=TRADER.passphrase.reveal(),
    )
    assert outcome.account_id is not None
    at = app_test().run()
    at.switch_page(path).run()
    assert not at.exception
    drawn = [e for e in at.main if e.type not in LAYOUT]
    title = next(i for i, e in enumerate(drawn) if e.type == "title")
    first = drawn[title + 1]  # what the page shows right under its title
    assert first.type == "caption", (path, first.type)
    assert first.value.endswith(".") and 40 <= len(first.value) <= 240, (path, first.value)


@pytest.mark.slow
def test_the_help_lines_show_in_the_browser_for_an_admin_and_a_viewer(browser, tmp_path):
    with serve(tmp_path / "data") as app:
        for operator in ("admin", "viewer"):
            with session(browser, f"{app.url}/?demo=1", operator=operator) as page:
                page.get_by_test_id("stDataFrame").wait_for(timeout=120_000)
                for address, words in (
                    ("/account?demo=1", "One account in full: what is wrong and the fix"),
                    ("/settings?demo=1", "What every account is judged by"),
                ):
                    goto(page, app.url + address)
                    expect(page.get_by_text(words)).to_be_visible()
                    assert_no_exception(page)
