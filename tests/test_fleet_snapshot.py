"""The fleet kept judged between snapshots: every change shows in the next one.

fleet_snapshot keeps one judgement per database and judges again only the accounts that
changed since: a new check, a binding, a pause, a setting, or time passing one of an account's
boundaries. Each test takes a snapshot, makes one kind of change, and holds the next snapshot
to the rules run over the whole history then, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from store_fixtures import database_url_fixture  # noqa: F401 (fixture)
from test_fleet import EGRESS, NOW, bind_offline, bound_uid, credentials, record, result

import lib.console.snapshot as console_snapshot
from lib import store
from lib.config import Config
from lib.console import Console, KucoinTarget, binding
from lib.console.alerts import acknowledge_drift
from lib.console.fleet import (
    fleet_drift,
    fleet_snapshot,
    fleet_table,
    forget_fleet,
    keep_present,
)
from lib.console.settings import save_settings
from lib.health.drift import with_drift
from lib.health.fleet import fleet_health
from lib.kucoin.probe_result import Outcome
from lib.store import database, seeding
from lib.store.models import ProbeRecord
from lib.ui import session as ui_session


@pytest.fixture(name="console")
def console_fixture(tmp_path: Path, database_url: str) -> Iterator[Console]:
    """Yield a console with two platform egress IPs, on SQLite and on PostgreSQL."""
    config = Config(tmp_path, database_url, tmp_path / "master.key")
    console = Console.open(config, kucoin=KucoinTarget())
    save_settings(console, egress_ips=list(EGRESS))
    yield console
    console.close()


@pytest.fixture(name="ids")
def ids_fixture(console: Console) -> dict[str, int]:
    """Return three accounts checked a few minutes before NOW: two working, one refused."""
    ids = {
        "alpha": bind_offline(console, 1, "alpha-desk", ("spot",)),
        "beta": bind_offline(console, 2, "beta-bot", ("spot",)),
        "gamma": bind_offline(console, 3, "gamma-fut", ("spot", "futures")),
    }
    # Checks that read what KuCoin said at bind: no drift since binding.
    record(console, ids["alpha"], result(NOW - timedelta(minutes=5), uid=bound_uid(1)))
    record(console, ids["beta"], result(NOW - timedelta(minutes=6), uid=bound_uid(2)))
    record(console, ids["gamma"], result(NOW - timedelta(minutes=7), "rejected", "400005"))
    return ids


@pytest.fixture(name="judged")
def judged_fixture(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """Return, per judgement since the test began, the ids of the accounts judged."""
    calls: list[list[int]] = []
    judge = console_snapshot.judge_fleet

    def spy(accounts: pd.DataFrame, *args: object) -> pd.DataFrame:
        calls.append(sorted(int(i) for i in accounts["account_id"]))
        return judge(accounts, *args)

    monkeypatch.setattr(console_snapshot, "judge_fleet", spy)
    return calls


def statuses(console: Console, now) -> dict[str, str]:
    """Return each account's status in the snapshot at `now`, held to the rules then."""
    fleet = fleet_table(console, now)
    with console.reading() as session:
        accounts = store.accounts_frame(session)
        history = store.probe_history_frame(session)
    expected = with_drift(
        fleet_health(accounts, history, console.policy(), now), fleet_drift(console)
    )
    pd.testing.assert_frame_equal(fleet.drop(columns="scopes"), expected)
    return dict(zip(fleet["label"], fleet["status"].astype(str), strict=True))


def test_a_new_check_shows_and_only_its_account_is_judged_again(
    console: Console, ids: dict[str, int], judged: list[list[int]]
) -> None:
    assert statuses(console, NOW)["alpha-desk"] == "OK"
    record(console, ids["alpha"], result(NOW + timedelta(minutes=1), "rejected", "400004"))

    assert statuses(console, NOW + timedelta(minutes=2))["alpha-desk"] == "WRONG_PASSPHRASE"
    assert judged == [sorted(ids.values()), [ids["alpha"]]]


def test_a_check_recorded_by_another_process_shows(console: Console, ids: dict[str, int]) -> None:
    statuses(console, NOW)
    # Another console on the same database: `python -m lib check`, or a second server.
    url = console.engine.url.render_as_string(hide_password=False)
    other = Console(database.open_database(url), console.vault)
    try:
        record(other, ids["gamma"], result(NOW + timedelta(minutes=1)))
    finally:
        other.close()
    assert statuses(console, NOW + timedelta(minutes=1))["gamma-fut"] != "WRONG_SECRET"


def test_a_passing_check_after_a_refusal_clears_it(console: Console, ids: dict[str, int]) -> None:
    assert statuses(console, NOW)["gamma-fut"] == "WRONG_SECRET"
    record(console, ids["gamma"], result(NOW + timedelta(seconds=30), permissions=("Spot",)))
    assert statuses(console, NOW + timedelta(minutes=1))["gamma-fut"] == "SCOPE_MISSING"


def test_drift_since_binding_shows_and_an_acknowledgement_clears_it(
    console: Console, ids: dict[str, int], judged: list[list[int]]
) -> None:
    assert statuses(console, NOW)["alpha-desk"] == "OK"
    # Someone gave alpha's key a permission it was not bound with, on KuCoin.
    widened = ("General", "Spot", "Futures")
    record(console, ids["alpha"], result(NOW, permissions=widened, uid=bound_uid(1)))

    later = NOW + timedelta(minutes=1)
    assert statuses(console, later)["alpha-desk"] == "AT_RISK"
    assert [d.key for d in fleet_snapshot(console, later).drifts[ids["alpha"]]]
    assert judged[-1] == [ids["alpha"]]  # only the account checked was judged again

    acknowledge_drift(console, ids["alpha"])
    assert statuses(console, later)["alpha-desk"] == "OK"
    assert fleet_snapshot(console, later).drifts.get(ids["alpha"], ()) == ()


def test_a_setting_change_shows(console: Console, ids: dict[str, int]) -> None:
    assert statuses(console, NOW)["beta-bot"] == "OK"
    save_settings(console, egress_ips=[*EGRESS, "192.0.2.44"])  # not on any whitelist
    assert statuses(console, NOW)["beta-bot"] == "AT_RISK"
    save_settings(console, freshness_seconds=120, freshness_grace_seconds=0)
    assert statuses(console, NOW)["beta-bot"] == "STALE"


def test_binding_pausing_resuming_rescoping_and_unbinding_show(
    console: Console, ids: dict[str, int], judged: list[list[int]]
) -> None:
    statuses(console, NOW)
    delta = bind_offline(console, 4, "delta-new", ("spot",))
    assert "delta-new" in statuses(console, NOW)
    binding.pause(console, ids["alpha"])
    assert statuses(console, NOW)["alpha-desk"] == "PAUSED"
    binding.resume(console, ids["alpha"])
    assert statuses(console, NOW)["alpha-desk"] == "OK"
    binding.set_scopes(console, ids["beta"], ["spot", "margin"])
    assert statuses(console, NOW)["beta-bot"] == "SCOPE_MISSING"
    binding.unbind(console, ids["beta"])
    assert "beta-bot" not in statuses(console, NOW)
    # Each change judged its own account again, never the whole fleet.
    assert judged[1:] == [[delta], [ids["alpha"]], [ids["alpha"]], [ids["beta"]], []]


def test_a_key_saved_unverified_turns_verified_when_a_check_passes(console: Console) -> None:
    with console.transaction() as session:
        saved = store.create_account_with_credentials(
            session,
            console.vault,
            label="eps",
            credentials=credentials(9),
            scopes=["spot"],
            actor="t",
        )
    checked_at = datetime.now(UTC)
    assert statuses(console, checked_at)["eps"] == "UNVERIFIED"
    with console.transaction() as session:
        store.mark_verified(session, saved, result(checked_at), actor="t")
    assert statuses(console, checked_at + timedelta(seconds=1))["eps"] == "OK"


@pytest.mark.parametrize(
    ("later", "label", "status"),
    [
        (timedelta(minutes=54), "alpha-desk", "OK"),  # late, not stale yet
        (timedelta(minutes=71), "alpha-desk", "STALE"),  # period + grace since its last sync
        (timedelta(days=71), "alpha-desk", "STALE"),  # and its key is too old by now
    ],
)
def test_time_passing_a_boundary_shows(
    console: Console, ids: dict[str, int], later: timedelta, label: str, status: str
) -> None:
    statuses(console, NOW)
    assert statuses(console, NOW + later)[label] == status


def test_a_stale_accounts_words_follow_the_clock(console: Console, ids: dict[str, int]) -> None:
    # "No successful sync for 2 h 5 min", then a minute later "2 h 6 min", then days.
    for later in (timedelta(hours=2), timedelta(hours=2, minutes=1), timedelta(days=3)):
        statuses(console, NOW + later)
    fleet = fleet_table(console, NOW + timedelta(days=3)).set_index("label")
    assert fleet.loc["alpha-desk", "diagnosis"] == "No successful sync for 3 d 0 h"


def test_an_earlier_time_is_judged_afresh(console: Console, ids: dict[str, int]) -> None:
    statuses(console, NOW + timedelta(days=1))
    assert statuses(console, NOW)["alpha-desk"] == "OK"


def test_a_snapshot_needs_no_new_judgement_when_nothing_changed(
    console: Console, ids: dict[str, int], judged: list[list[int]]
) -> None:
    first = fleet_snapshot(console, NOW)
    second = fleet_snapshot(console, NOW + timedelta(seconds=40))
    assert judged == [sorted(ids.values())]
    assert (second.fleet["sync_age"] - first.fleet["sync_age"] == timedelta(seconds=40)).all()


@pytest.mark.postgres
def test_a_check_committed_after_a_newer_one_still_shows(
    console: Console, ids: dict[str, int]
) -> None:
    # PostgreSQL hands out ids as rows are inserted: a slow writer may commit a smaller id
    # after a snapshot has read a larger one.
    if console.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's writers take turns: ids are committed in order")
    statuses(console, NOW)
    with console.engine.connect() as slow:
        slow_transaction = slow.begin()
        slow.execute(
            sa.insert(ProbeRecord).values(
                account_id=ids["alpha"],
                checked_at=NOW + timedelta(minutes=1),
                outcome=Outcome.REJECTED.value,
                code="400004",
                latency_ms=40,
            )
        )
        record(console, ids["beta"], result(NOW + timedelta(minutes=1)))
        assert statuses(console, NOW + timedelta(minutes=2))["alpha-desk"] == "OK"
        slow_transaction.commit()
    assert statuses(console, NOW + timedelta(minutes=2))["alpha-desk"] == "WRONG_PASSPHRASE"


def test_the_present_is_shared_until_something_changes(
    console: Console, ids: dict[str, int]
) -> None:
    # Every session's rerun within a second reads one table; a new check ends the sharing.
    first = fleet_snapshot(console)
    assert fleet_snapshot(console) is first
    record(console, ids["beta"], result(datetime.now(UTC), "rejected", "400004"))
    after = fleet_snapshot(console)
    assert after is not first
    assert after.fleet.set_index("label").loc["beta-bot", "status"] == "WRONG_PASSPHRASE"


def test_the_present_is_kept_up_to_date_only_after_someone_looked(
    console: Console, ids: dict[str, int], judged: list[list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console_snapshot, "KEEP_S", 0.01)
    assert not keep_present(console)  # nobody asked for the fleet yet: nothing is judged
    assert judged == []
    assert fleet_snapshot(console) is not None and not keep_present(console)  # not a page
    first = fleet_snapshot(console, looked=True)
    time.sleep(0.02)
    assert keep_present(console)
    kept = fleet_snapshot(console)
    assert kept is not first and kept.as_of > first.as_of  # made by keep_present, served now
    assert fleet_snapshot(console) is kept


def test_the_served_console_keeps_the_fleet_fresh_while_operators_look(
    console: Console,
    ids: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(ui_session, "installation_console", lambda: console)
    monkeypatch.setattr(ui_session, "KEEP_S", 0.05)
    monkeypatch.setattr(console_snapshot, "KEEP_S", 0.05)
    first = fleet_snapshot(console, looked=True)  # an operator looks

    async def serve_a_while() -> None:
        keeper = asyncio.create_task(ui_session.keep_fleet_fresh())
        await asyncio.sleep(0.5)
        keeper.cancel()

    asyncio.run(serve_a_while())
    assert not [r.getMessage() for r in caplog.records if r.name == ui_session.log.name]
    kept = fleet_snapshot(console)
    # Younger than SHARED_S: without the keeper, the first snapshot would still be served.
    assert kept is not first and kept.as_of > first.as_of
    assert "counts" in vars(kept) and "incident" in vars(kept)  # made beforehand as well


def test_a_check_recorded_while_the_chart_reads_its_window_counts(
    console: Console, ids: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A window's checks are read without holding the snapshot's lock: a check another writer
    # records meanwhile is in the chart returned all the same.
    read = store.checks_since_chunks

    def with_a_writer_meanwhile(*args: object, **kwargs: object) -> Iterator[pd.DataFrame]:
        yield from read(*args, **kwargs)
        record(console, ids["beta"], result(NOW + timedelta(minutes=1), "rejected", "400004"))

    monkeypatch.setattr(store, "checks_since_chunks", with_a_writer_meanwhile)
    timeline = console_snapshot.fleet_over_time(console, days=1, now=NOW + timedelta(minutes=2))
    last = timeline[timeline["at"] == timeline["at"].max()]
    counts = dict(zip(last["result"].astype(str), last["accounts"], strict=True))
    assert counts == {"failing": 2, "working": 1}


def test_a_write_around_the_audit_log_shows_once_the_fleet_is_forgotten(
    console: Console, ids: dict[str, int]
) -> None:
    # The demo's seeding moves checks back in time with no audit event and no new check.
    assert statuses(console, NOW)["alpha-desk"] == "OK"
    with console.transaction() as session:
        seeding.retime_checks(session, ids["alpha"], NOW - timedelta(hours=3))
    kept = fleet_table(console, NOW).set_index("label")
    assert kept.loc["alpha-desk", "status"] == "OK"  # the kept fleet cannot see it
    forget_fleet(console)
    assert statuses(console, NOW)["alpha-desk"] == "STALE"
