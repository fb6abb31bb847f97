"""The Fleet page on the demo fleet: every status with its hint, filters, search, selection."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from app_fixtures import (  # noqa: F401
    APP,
    OPEN_TRADER,
    TRADER,
    TRADER_NEW,
    SimEnv,
    app_test,
    running_demo,
    sim_env_fixture,
)
from streamlit.testing.v1 import AppTest

from lib.config import DATA_DIR_ENV, DATABASE_URL_ENV, MASTER_KEY_FILE_ENV
from lib.console import binding
from lib.console.demo import DEMO_ACCOUNTS, Demo, demo_uid
from lib.console.fleet import FAILING, is_failing
from lib.health.status import Status
from lib.ui.session import DEMO_FLAG, SELECTED_ACCOUNT

EVERY_STATUS = {s.value for s in Status} - {"REJECTED"}  # no KuCoin code left for REJECTED


@pytest.fixture(scope="module", name="demo")
def demo_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """Build one demo fleet for the module; the real data directory is an empty tmp one."""
    yield from running_demo(tmp_path_factory, "fleet_page")


def open_demo(demo: Demo) -> AppTest:
    """Return the app on the Fleet page in demo mode, run once."""
    at = app_test()
    at.session_state[DEMO_FLAG] = True
    return at.run()


def table(at: AppTest) -> pd.DataFrame:
    """Return the fleet table as shown, the status as text (the page draws a coloured label)."""
    frame = at.dataframe[0].value
    return frame.assign(status=[next(iter(v)) for v in frame["status"]])


def test_every_status_shows_with_its_hint_worst_first(demo: Demo) -> None:
    at = open_demo(demo)
    shown = table(at)

    assert not at.exception
    assert len(shown) == len(DEMO_ACCOUNTS)
    assert set(shown["status"]) == EVERY_STATUS
    ranks = [Status(s).rank for s in shown["status"]]
    assert ranks == sorted(ranks), "failures first"
    assert shown["status"].iloc[0] == "FROZEN"
    assert shown["status"].iloc[-1] == "OK"
    assert shown["hint"].notna().all() and (shown["hint"].str.len() > 10).all()
    hints = dict(zip(shown["label"], shown["hint"], strict=True))
    assert "not the login or trading password" in hints["scalper-03"]
    assert "add 203.0.113.154 (the IP KuCoin saw)" in hints["office-bot"]
    assert "30-day rule has likely deleted it" in hints["swing-trader"]
    assert "Enable Futures" in hints["futures-grid"]
    at_risk = shown[shown["status"] == "AT_RISK"]["diagnosis"]
    assert at_risk.nunique() >= 4, "several AT_RISK reasons"


def tiles(at: AppTest) -> dict[str, str]:
    """Return the status tiles as {value: label as drawn}, in the order shown."""
    pills = at.pills(key="fleet_status")
    codes = [re.search(r"`(\w+)`", label) for label in pills.options]
    return {
        code.group(1) if code else FAILING: label
        for code, label in zip(codes, pills.options, strict=True)
    }


def test_tiles_count_each_status_worst_first_in_words_with_the_code(demo: Demo) -> None:
    at = open_demo(demo)
    shown = tiles(at)
    counts = {
        status: int(re.search(r"\*\*(\d+)\*\*$", label).group(1))  # type: ignore[union-attr]
        for status, label in shown.items()
        if status != FAILING
    }

    assert list(counts) == sorted(counts, key=lambda s: Status(s).rank), "worst first"
    assert sum(counts.values()) == len(DEMO_ACCOUNTS)
    assert counts["OK"] == 7
    assert "Key unknown `KEY_UNKNOWN` **2**" in shown["KEY_UNKNOWN"]
    assert "Permission missing `SCOPE_MISSING`" in shown["SCOPE_MISSING"]
    failing = sum(n for code, n in counts.items() if is_failing(code))
    assert next(iter(shown)) == FAILING, "the failing tile comes first"
    assert shown[FAILING].endswith(f"Everything failing **{failing}**")


def test_a_tile_filters_to_its_status_and_another_adds_its_own(demo: Demo) -> None:
    at = open_demo(demo)
    at.pills(key="fleet_status").select("STALE").run()
    assert set(table(at)["status"]) == {"STALE"}

    at.pills(key="fleet_status").select("AT_RISK").run()
    assert set(table(at)["status"]) == {"AT_RISK", "STALE"}
    assert len(table(at)) == 7
    assert at.download_button(key="export_csv").label == "Export CSV (7 accounts)"


def test_a_chosen_status_no_account_has_any_more_is_dropped(demo: Demo) -> None:
    at = app_test()
    at.session_state[DEMO_FLAG] = True
    at.session_state["fleet_status"] = ["REJECTED", "STALE"]  # no demo account is REJECTED
    at.run()

    assert not at.exception
    assert at.pills(key="fleet_status").value == ["STALE"]
    assert set(table(at)["status"]) == {"STALE"}


def test_everything_failing_shows_exactly_the_failing_accounts(demo: Demo) -> None:
    at = open_demo(demo)
    everyone = table(at)
    at.pills(key="fleet_status").select(FAILING).run()

    shown = table(at)
    expected = everyone[[is_failing(s) for s in everyone["status"]]]
    assert list(shown["label"]) == list(expected["label"])
    assert len(shown) >= 10
    assert all(Status(s).level == "error" for s in shown["status"])


def test_one_account_is_exported_as_one_account(demo: Demo) -> None:
    at = open_demo(demo)
    at.pills(key="fleet_status").select("FROZEN").run()

    assert at.download_button(key="export_csv").label == "Export CSV (1 account)"
    counts = [c.value for c in at.caption if " accounts · as of" in c.value]
    assert counts and counts[0].startswith(f"{len(DEMO_ACCOUNTS)} accounts · as of"), counts


def test_the_table_shows_scopes_whitelist_sync_and_forecasts(demo: Demo) -> None:
    shown = table(open_demo(demo)).set_index("label")

    assert shown.loc["treasury", ["spot", "futures", "margin"]].tolist() == ["✓", "✓", "✓"]
    assert shown.loc["futures-grid", "futures"] == "✗"
    assert shown.loc["half-listed", "whitelist"] == "1/2 platform IPs covered"
    assert shown.loc["dca-eth", "sync_age"].startswith("3 h")
    assert pd.notna(shown.loc["open-spot", "expires_at"])  # KuCoin's 30-day rule
    assert shown.loc["veteran-bot", "key_age_days"] == 214
    assert shown.loc["mm-bot-01", "account"] == "sub-account mmbot01"


def test_scope_and_kind_filters(demo: Demo) -> None:
    at = open_demo(demo)
    at.multiselect(key="fleet_scopes").select("margin").run()
    assert list(table(at)["label"]) == ["treasury"]

    at.multiselect(key="fleet_scopes").unselect("margin").run()
    at.selectbox(key="fleet_kind").select("master").run()
    masters = table(at)
    assert "treasury" in set(masters["label"])
    assert set(masters["account"]) == {"master"}


def test_search_finds_by_label_or_uid(demo: Demo) -> None:
    at = open_demo(demo)
    at.text_input(key="fleet_search").input("MM-BOT").run()
    assert list(table(at)["label"]) == ["mm-bot-01", "mm-bot-02"]

    at.text_input(key="fleet_search").input(str(demo_uid(0))).run()
    assert list(table(at)["label"]) == ["treasury"]


def test_no_match_says_so_and_clear_filters_brings_everyone_back(demo: Demo) -> None:
    at = open_demo(demo)
    assert at.button(key="clear_filters").disabled, "nothing to clear yet"
    at.pills(key="fleet_status").select("OK").run()
    at.multiselect(key="fleet_scopes").select("spot").run()
    at.selectbox(key="fleet_kind").select("master").run()
    at.text_input(key="fleet_search").input("no-such-account").run()

    assert not at.dataframe
    assert any("No account matches" in i.value for i in at.info)
    at.button(key="clear_filters").click().run()

    assert len(table(at)) == len(DEMO_ACCOUNTS)
    assert at.pills(key="fleet_status").value == []
    assert at.multiselect(key="fleet_scopes").value == []
    assert at.selectbox(key="fleet_kind").value == "all"
    assert at.text_input(key="fleet_search").value == ""
    assert at.button(key="clear_filters").disabled


def test_selecting_a_row_opens_that_account(demo: Demo) -> None:
    at = open_demo(demo)
    shown = at.dataframe[0].value
    row = int(shown.index[shown["label"] == "scalper-03"][0])
    account_id = binding.account_by_label(demo.console, "scalper-03").id
    assert "account_id" not in shown.columns  # the page sends only what it shows

    at.session_state["fleet_table"] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    at.run()

    assert not at.exception
    assert at.session_state[SELECTED_ACCOUNT] == account_id
    assert at.query_params["account"] == str(account_id)
    assert at.subheader[0].value.startswith("scalper-03")


def test_leaving_the_demo_shows_the_empty_fleet_with_what_to_do(demo: Demo) -> None:
    at = open_demo(demo)
    at.button(key="leave_demo").click().run()

    assert not at.session_state[DEMO_FLAG]
    assert any("No KuCoin account is bound yet" in i.value for i in at.info)
    assert [link.label for link in at.main.get("page_link")] == ["Bind a KuCoin key"]
    assert at.button(key="load_demo").label == "Load demo fleet"


def test_load_demo_fleet_from_the_empty_fleet(demo: Demo) -> None:
    at = app_test().run()
    assert not at.dataframe

    at.button(key="load_demo").click().run()

    assert at.session_state[DEMO_FLAG]
    assert len(table(at)) == len(DEMO_ACCOUNTS)


def _bind(env: SimEnv, label: str, account: object) -> None:
    outcome = binding.bind(
        env.console,
        label=label,
        api_key=account.api_key,  # type: ignore[attr-defined]
        api_secret=account.api_secret.reveal(),  # type: ignore[attr-defined]
        passphrase=account.passphrase.reveal(),  # type: ignore[attr-defined]
        accept_warnings=True,
    )
    assert outcome.account_id is not None


def test_refresh_all_checks_every_account_and_one_banner_tells_the_shared_failure(
    sim_env: SimEnv,
) -> None:
    for label, account in (("one", TRADER), ("two", TRADER_NEW), ("three", OPEN_TRADER)):
        _bind(sim_env, label, account)
    at = app_test().run()
    assert not at.error, "no incident while the keys work"

    sim_env.simulator.fail_next(-1, status=503)  # KuCoin in maintenance for everyone
    at.button(key="refresh_all").click().run()

    assert not at.exception
    assert at.progress[0].value == 100
    # Retrying, not failing: transient failures turn red only after the grace period.
    assert "Checked 3 accounts: 0 failing, 3 retrying, 0 working." in [w.value for w in at.warning]
    banner = [e.value for e in at.error if "Fleet incident" in e.value]
    assert len(banner) == 1
    assert "on 3 of 3 accounts" in banner[0]
    # One banner instead of a wall of red rows; the rows are a toggle away.
    assert not at.dataframe
    at.toggle(key="fleet_incident").set_value(True).run()
    assert set(table(at)["status"]) == {"DEGRADED"}


def test_the_address_keeps_the_demo_across_a_reload(demo: Demo) -> None:
    at = open_demo(demo)
    assert at.query_params["demo"] == "1"

    reloaded = app_test()
    reloaded.query_params["demo"] = "1"  # a new browser session on the same address
    reloaded.run()

    assert reloaded.session_state[DEMO_FLAG]
    assert len(table(reloaded)) == len(DEMO_ACCOUNTS)
    reloaded.button(key="leave_demo").click().run()
    assert "demo" not in reloaded.query_params


def test_an_unreachable_database_is_an_error_message_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    monkeypatch.setenv(DATABASE_URL_ENV, "postgresql+psycopg://ops:hunter2@127.0.0.1:1/bindwatch")
    at = AppTest.from_file(APP, default_timeout=30).run()

    assert not at.exception
    message = at.error[0].value
    assert message.startswith("bindwatch cannot open its database (postgresql+psycopg://ops:***@")
    assert "hunter2" not in message


# Draws the demo's Fleet page in a fresh interpreter; prints the charts' specs and whether
# Altair was imported (45 MB of the server's memory, and a second or two of its first page).
CHART_PAGE = """
import json, sys
from pathlib import Path
from app_fixtures import app_test
from lib.console.demo import start_demo, stop_demo
from lib.ui.session import DEMO_FLAG
start_demo(Path(sys.argv[1]))
try:
    at = app_test()
    at.session_state[DEMO_FLAG] = True
    at.run()
    assert not at.exception, at.exception
    specs = [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]
    print(json.dumps({"specs": specs, "altair": "altair" in sys.modules}))
finally:
    stop_demo()
"""


def test_the_fleet_chart_is_drawn_without_importing_altair(tmp_path: Path) -> None:
    tests = Path(__file__).resolve().parent
    env = os.environ | {
        DATA_DIR_ENV: str(tmp_path / "real"),
        "PYTHONPATH": os.pathsep.join((str(tests.parent), str(tests))),
    }
    env.pop(DATABASE_URL_ENV, None)
    env.pop(MASTER_KEY_FILE_ENV, None)
    done = subprocess.run(
        [sys.executable, "-c", CHART_PAGE, str(tmp_path / "demo")],
        cwd=tests.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    drawn = json.loads(done.stdout.strip().splitlines()[-1])
    [spec] = drawn["specs"]
    assert spec["mark"]["type"] == "area"
    assert spec["encoding"]["color"]["scale"]["domain"] == ["failing", "retrying", "working"]
    assert drawn["altair"] is False
