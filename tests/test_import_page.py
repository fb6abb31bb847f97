"""The Import page's logic, driven by AppTest against the simulator over real HTTP.

AppTest cannot upload a file: the upload itself is the browser journey's
(tests/test_journeys_import.py); here a preview made by the service is handed to the page as
the upload would, and the page must show it, save on confirmation and summarise.
"""

from __future__ import annotations

import pytest
from app_fixtures import TRADER, app_test, sim_env_fixture  # noqa: F401 (fixture)
from import_fixtures import CANARY, bind_existing, csv_text, desk_lines
from streamlit.testing.v1 import AppTest

from lib.console import binding, bulk_import
from lib.ui.import_form import ACCEPT_UNVERIFIED, ACCEPT_WARNINGS, PREVIEW, SUMMARY

PAGE = "pages/import_keys.py"


def open_import_page() -> AppTest:
    """Return the app, run, switched to the Import page."""
    at = app_test().run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def page_text(at: AppTest) -> str:
    """Return every text, table cell and widget label the page shows."""
    parts = [e.value for e in (*at.markdown, *at.caption, *at.success, *at.warning, *at.error)]
    parts += [df.value.to_csv() for df in at.dataframe]
    parts += [w.label for w in (*at.button, *at.checkbox)]
    return "\n".join(str(p) for p in parts)


def test_an_admin_gets_the_template_and_the_uploader(sim_env):
    at = open_import_page()
    assert at.title[0].value == "Import keys"
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Download the template (CSV)", "Download the template (JSON)"]
    [uploader] = at.get("file_uploader")
    assert uploader.proto.max_upload_size_mb == 1  # a 10 MB file is refused before it is sent
    assert list(uploader.proto.type) == [".csv", ".json"]
    assert not at.dataframe


def test_the_preview_shows_every_line_and_saving_binds_the_confirmed_ones(sim_env):
    bind_existing(sim_env)
    lines = desk_lines(sim_env.simulator, TRADER)
    preview = bulk_import.preview_import(sim_env.console, csv_text(lines).encode())
    at = open_import_page()
    at.session_state[PREVIEW] = preview
    at.run()
    [table] = at.dataframe
    assert list(table.value["line"]) == [line.line for line in preview.lines]
    assert list(table.value["decision"]) == [line.verdict.value for line in preview.lines]
    assert not at.get("file_uploader")  # one file at a time: the preview first
    assert [c.key for c in at.checkbox] == [ACCEPT_WARNINGS, ACCEPT_UNVERIFIED]
    assert CANARY not in page_text(at)
    assert binding.accounts(sim_env.console)[0].label == "existing"
    assert len(binding.accounts(sim_env.console)) == 1  # nothing saved before confirming

    at.checkbox(key=ACCEPT_WARNINGS).check()
    at.button(key="import_save").click().run()
    assert not at.exception, at.exception
    bound = {a.label for a in binding.accounts(sim_env.console)} - {"existing"}
    expected = {binding.normal_label(one.values["label"]) for one in lines if one.bound}
    assert bound == expected
    assert (
        at.success[0].value == f"Bound {len(expected)} of 50 lines; {50 - len(expected)} not bound."
    )
    assert PREVIEW not in at.session_state and at.session_state[SUMMARY].bound == len(expected)
    assert at.get("file_uploader")  # ready for the next file
    assert CANARY not in page_text(at)


def test_discarding_the_preview_saves_nothing_and_forgets_its_keys(sim_env):
    lines = desk_lines(sim_env.simulator, TRADER)[:3]
    preview = bulk_import.preview_import(sim_env.console, csv_text(lines).encode())
    at = open_import_page()
    at.session_state[PREVIEW] = preview
    at.run()
    at.button(key="import_discard").click().run()
    assert binding.accounts(sim_env.console) == []
    assert PREVIEW not in at.session_state and at.get("file_uploader")
    with pytest.raises(binding.BindingError, match="expired or was already used"):
        bulk_import.confirm_import(sim_env.console, preview.token)
