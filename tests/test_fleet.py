"""The fleet table, its filters, view and CSV, live checks and one account's detail."""

from __future__ import annotations

import csv
import io
import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from app_fixtures import (  # noqa: F401 (fixture)
    APP,
    OPEN_TRADER,
    TRADER,
    SimEnv,
    app_test,
    sim_env_fixture,
)
from simulator_fixtures import GENERAL_ONLY, MASTER
from streamlit.testing.v1 import AppTest

from lib import store
from lib.config import Config
from lib.console import Console, KucoinTarget, binding
from lib.console.account import account_detail
from lib.console.checks import check_account, refresh_fleet
from lib.console.export import CSV_COLUMNS, _csv_column, fleet_csv
from lib.console.fleet import (
    FAILING,
    data_version,
    filter_fleet,
    fleet_drift,
    fleet_snapshot,
    fleet_table,
    is_failing,
    refresh_summary,
)
from lib.console.settings import (
    coverage_summary,
    latest_seen_ip,
    parse_list,
    save_settings,
    settings_changes,
)
from lib.health.coverage import SCOPE_PERMISSIONS
from lib.health.drift import with_drift
from lib.health.fleet import fleet_health
from lib.health.status import Status
from lib.kucoin.auth import Credentials
from lib.kucoin.probe_result import Outcome, ProbeResult
from lib.ui.presentation import fleet_rows_view, fleet_view, plural, status_label, tile_label

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EGRESS = ("203.0.113.154", "198.51.100.7")


def result(
    at: datetime, outcome: str = "ok", code: str | None = None, **fields: object
) -> ProbeResult:
    """Return a check as the probe records it: key info on success only."""
    ok = outcome == "ok"
    values: dict[str, object] = {
        "checked_at": at,
        "outcome": Outcome(outcome),
        "latency_ms": 40,
        "code": code,
        "message": None if ok else f"KuCoin said {code}",
        "http_status": 200 if ok else 400,
        "endpoint": None if ok else "/api/v1/user/api-key",
        "seen_ip": "203.0.113.154",
        "clock_offset_ms": 12,
    }
    if ok:
        values.update(
            permissions=("General", "Spot"),
            ip_whitelist="203.**.154,198.**.7",
            is_master=True,
            uid="111000111",
            key_created_at=at - timedelta(days=20),
        )
    values.update(fields)
    return ProbeResult(**values)  # type: ignore[arg-type]


def credentials(n: int) -> Credentials:
    """Return distinct fake credentials whose values are easy to look for."""
    return Credentials(
        api_key=f"{n:04d}feedfacecafe{n:08d}",
        api_secret=f"secret-{n}-do-not-leak",
        passphrase=f"passphrase-{n}-do-not-leak",
    )


def bound_uid(n: int) -> str:
    """Return the UID account n's key had when it was bound (its drift baseline)."""
    return f"{n}{n}{n}000{n}{n}{n}"


def bind_offline(console: Console, n: int, label: str, scopes: tuple[str, ...]) -> int:
    """Store an account without a live check (the fleet table never calls KuCoin)."""
    with console.transaction() as session:
        return store.create_account_with_credentials(
            session,
            console.vault,
            label=label,
            credentials=credentials(n),
            scopes=scopes,
            actor="test",
            # What KuCoin said at bind (the drift baseline): the permissions the scopes need.
            probe=result(
                NOW - timedelta(days=3),
                permissions=("General", *(SCOPE_PERMISSIONS[scope] for scope in scopes)),
                uid=bound_uid(n),  # the UID the fixtures' later checks read
            ),
        )


def record(console: Console, account_id: int, *results: ProbeResult) -> None:
    """Record checks of one account."""
    with console.transaction() as session:
        store.record_probes(session, [(account_id, r) for r in results])


@pytest.fixture(name="console")
def console_fixture(tmp_path: Path) -> Iterator[Console]:
    """Yield a console on a fresh SQLite file, with two platform egress IPs."""
    config = Config(tmp_path, f"sqlite:///{tmp_path / 'bindwatch.db'}", tmp_path / "master.key")
    console = Console.open(config, kucoin=KucoinTarget())
    save_settings(console, egress_ips=list(EGRESS))
    yield console
    console.close()


@pytest.fixture(name="small_fleet")
def small_fleet_fixture(console: Console) -> dict[str, int]:
    """Return the ids of four accounts: working, wrong passphrase, never checked, formula label."""
    ids = {
        "alpha": bind_offline(console, 1, "alpha-desk", ("spot", "futures")),
        "beta": bind_offline(console, 2, "beta-bot", ("spot",)),
        "formula": bind_offline(console, 4, '=HYPERLINK("x")', ("spot",)),
    }
    with console.transaction() as session:
        ids["gamma"] = store.create_account_with_credentials(
            session,
            console.vault,
            label="gamma-margin",
            credentials=credentials(3),
            scopes=("margin",),
            actor="test",
        )
    record(
        console,
        ids["alpha"],
        result(
            NOW - timedelta(minutes=5),
            permissions=("General", "Spot", "Futures"),
            uid="111000111",
        ),
    )
    record(
        console,
        ids["beta"],
        result(NOW - timedelta(minutes=50), is_master=False, sub_name="beta", uid="222000222"),
        result(NOW - timedelta(minutes=4), "rejected", "400004"),
    )
    record(console, ids["formula"], result(NOW - timedelta(minutes=7), uid="444000444"))
    return ids


# --- The fleet table ---------------------------------------------------------------------


OK_VARIANTS = [
    {},
    {"permissions": ("General", "Spot", "Futures")},
    {"permissions": ("General", "Spot", "Transfer"), "ip_whitelist": None},
    {"ip_whitelist": "203.**.154"},
    {"is_master": False, "sub_name": "sub", "clock_offset_ms": 3_600},
    {"key_created_at": NOW - timedelta(days=200), "futures_permission_missing": True},
]
FAILURES = [
    ("rejected", code, {})
    for code in (
        "400001",
        "400002",
        "400003",
        "400004",
        "400005",
        "400006",
        "400007",
        "400008",
        "411100",
        "429000",
        "500000",
        "503",
        None,
    )
] + [
    ("unreachable", None, {}),
    ("unreachable", "1015", {}),
    # 400002 is transient (late in transit) only while the clocks agree.
    ("rejected", "400002", {"clock_offset_ms": 9_000}),
    ("rejected", "400002", {"clock_offset_ms": -2_999}),
    ("rejected", "400002", {"clock_offset_ms": 3_000}),
    ("rejected", "400002", {"clock_offset_ms": None}),
]


def test_fleet_table_decides_on_the_same_checks_as_the_rules_over_the_whole_history(
    console: Console,
) -> None:
    # fleet_table reads at most four checks per account through SQL; the health rules read
    # the whole history. Any drift between the SQL and health.is_transient shows here.
    rng = random.Random(7)
    for n in range(60):
        account_id = bind_offline(console, 100 + n, f"acct-{n:02d}", ("spot", "futures"))
        checks = []
        for step in range(rng.randint(0, 10)):
            at = NOW - timedelta(minutes=rng.choice([2, 30, 90, 600, 6_000]) + step)
            if rng.random() < 0.5:
                checks.append(result(at, **rng.choice(OK_VARIANTS)))
            else:
                outcome, code, fields = rng.choice(FAILURES)
                seen = {"seen_ip": "198.51.100.9"} if code == "400006" else {}
                checks.append(result(at, outcome, code, **seen, **fields))
        if checks and rng.random() < 0.2:  # two checks at the same instant
            checks.append(result(checks[-1].checked_at, "rejected", "400004"))
        record(console, account_id, *checks)
        if n % 11 == 0:
            binding.pause(console, account_id)
        if n % 13 == 5:
            binding.unbind(console, account_id)

    with console.reading() as session:
        accounts = store.accounts_frame(session)
        history = store.probe_history_frame(session)
    # The rules over the whole history, with each key's drift since binding among the risks.
    judged = fleet_health(accounts, history, console.policy(), NOW)
    expected = with_drift(judged, fleet_drift(console))
    fleet = fleet_table(console, NOW)

    pd.testing.assert_frame_equal(fleet.drop(columns="scopes"), expected)
    assert len(fleet) == 60 - 5  # unbound accounts leave the fleet
    assert fleet["status"].nunique() >= 8


def test_fleet_table_adds_what_each_account_needs_and_puts_failures_first(
    console: Console, small_fleet: dict[str, int]
) -> None:
    fleet = fleet_table(console, NOW)

    assert list(fleet["label"])[:2] == ["beta-bot", "gamma-margin"]
    assert list(fleet["status"])[:2] == ["WRONG_PASSPHRASE", "UNVERIFIED"]
    scopes = dict(zip(fleet["label"], fleet["scopes"], strict=True))
    assert scopes["alpha-desk"] == "spot, futures"
    assert scopes["gamma-margin"] == "margin"
    assert list(fleet.columns[:4]) == ["account_id", "label", "status", "scopes"]


def test_console_fleet_is_the_frame_the_page_and_a_notebook_read(
    console: Console, small_fleet: dict[str, int]
) -> None:
    pd.testing.assert_frame_equal(console.fleet(NOW), fleet_table(console, NOW))


def test_data_version_moves_when_a_check_or_a_setting_is_recorded(
    console: Console, small_fleet: dict[str, int]
) -> None:
    before = data_version(console)
    record(console, small_fleet["alpha"], result(NOW))
    after_check = data_version(console)
    save_settings(console, rotation_age_days=30)
    after_setting = data_version(console)

    assert before != after_check != after_setting
    assert data_version(console) == after_setting


# --- Filters, view, CSV ------------------------------------------------------------------


def test_filter_fleet_by_status_scope_kind_and_search(
    console: Console, small_fleet: dict[str, int]
) -> None:
    fleet = fleet_table(console, NOW)

    def labels(**filters: object) -> list[str]:
        return list(filter_fleet(fleet, **filters)["label"])  # type: ignore[arg-type]

    assert labels(statuses=["WRONG_PASSPHRASE"]) == ["beta-bot"]
    assert labels(scopes=["futures"]) == ["alpha-desk"]
    assert labels(scopes=["margin", "futures"]) == ["gamma-margin", "alpha-desk"]
    assert labels(kinds=["sub-account"]) == ["beta-bot"]
    assert labels(kinds=["unknown"]) == ["gamma-margin"]
    assert labels(search="ALPHA") == ["alpha-desk"]
    assert labels(search="222000") == ["beta-bot"]  # by UID
    assert labels(search="[a-z]") == []  # typed text is not a pattern
    assert labels(search="(") == ['=HYPERLINK("x")']
    assert labels(statuses=["OK"], search="beta") == []
    assert len(labels()) == 4


def test_fleet_view_shows_scopes_as_marks_and_ages_as_words(
    console: Console, small_fleet: dict[str, int]
) -> None:
    view = fleet_view(fleet_table(console, NOW)).set_index("label")

    assert view.loc["alpha-desk", "futures"] == "✓"
    assert view.loc["alpha-desk", "margin"] == "–"
    assert view.loc["gamma-margin", "margin"] == "?"  # key info never read
    assert view.loc["beta-bot", "status"] == ["WRONG_PASSPHRASE"]
    assert view.loc["alpha-desk", "sync_age"] == "5 min"
    assert view.loc["beta-bot", "account"] == "sub-account beta"
    assert view.loc["alpha-desk", "account"] == "master"
    assert view.loc["gamma-margin", "whitelist"] == "key info not read yet"
    assert "Passphrase" in view.loc["beta-bot", "hint"]


def test_the_rows_of_a_kept_view_equal_the_view_of_those_rows(
    console: Console, small_fleet: dict[str, int]
) -> None:
    fleet = fleet_table(console, NOW)
    whole = fleet_rows_view(fleet, fleet)
    pd.testing.assert_frame_equal(whole, fleet_view(fleet))
    for shown in (
        filter_fleet(fleet, search="beta"),
        filter_fleet(fleet, statuses=["OK"]),
        fleet.iloc[[3, 0]],  # any rows, in any order
        fleet.iloc[:0],
    ):
        pd.testing.assert_frame_equal(fleet_rows_view(fleet, shown), fleet_view(shown))
    assert fleet_rows_view(fleet, fleet) is whole  # made once while the table lasts
    again = fleet_table(console, NOW)
    assert fleet_rows_view(again, again) is not whole  # another table: its own view


def test_fleet_csv_lists_every_account_worst_first_and_never_a_secret(
    console: Console, small_fleet: dict[str, int]
) -> None:
    fleet = fleet_table(console, NOW)
    data = fleet_csv(fleet)
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))

    assert tuple(rows[0].keys()) == CSV_COLUMNS
    assert [r["label"] for r in rows] == list(fleet["label"].str.replace("=", "'=", n=1))
    beta = rows[0]
    assert (beta["status"], beta["last_code"]) == ("WRONG_PASSPHRASE", "400004")
    assert beta["last_checked_at"] == "2026-03-01T11:56:00Z"
    assert beta["sync_age_s"] == str(50 * 60)
    # A label starting with "=" would run as a formula in a spreadsheet.
    assert '\'=HYPERLINK("x")' in [r["label"] for r in rows]
    for n in (1, 2, 3, 4):
        secret = credentials(n)
        for value in (
            secret.api_key,
            secret.api_secret.reveal(),
            secret.passphrase.reveal(),
        ):
            assert value.encode() not in data


def test_fleet_csv_keeps_numbers_as_numbers_and_quotes_only_formula_text(
    console: Console, small_fleet: dict[str, int]
) -> None:
    # A negative clock offset, and text that only looks like a number or a formula.
    record(console, small_fleet["alpha"], result(NOW - timedelta(minutes=1), clock_offset_ms=-27))
    fleet = fleet_table(console, NOW)
    fleet.loc[fleet["label"] == "beta-bot", "last_message"] = "-27 is not a number here"
    fleet.loc[fleet["label"] == "gamma-margin", "label"] = "+1 desk"
    fleet.loc[fleet["label"] == "alpha-desk", "sub_name"] = "@ops"

    parsed = pd.read_csv(io.BytesIO(fleet_csv(fleet))).set_index("account_id")

    alpha, beta = parsed.loc[small_fleet["alpha"]], parsed.loc[small_fleet["beta"]]
    for name in ("clock_offset_ms", "sync_age_s", "key_age_days"):
        assert pd.api.types.is_numeric_dtype(parsed[name]), name
    assert alpha["clock_offset_ms"] == -27
    assert pd.isna(parsed.loc[small_fleet["gamma"], "clock_offset_ms"]), "never checked: empty"
    assert beta["last_message"] == "'-27 is not a number here"
    assert parsed.loc[small_fleet["gamma"], "label"] == "'+1 desk"
    assert alpha["sub_name"] == "'@ops"
    assert parsed.loc[small_fleet["formula"], "label"] == '\'=HYPERLINK("x")'
    assert alpha["label"] == "alpha-desk"


@pytest.mark.parametrize(
    "numbers",
    [
        pd.Series([-27, 5, None], dtype="Int64"),
        pd.Series([-1.5, float("nan")]),
        pd.Series([True, False], dtype="boolean"),
    ],
)
def test_csv_numeric_columns_stay_numbers(numbers: pd.Series) -> None:
    assert _csv_column(numbers) is numbers


def test_csv_text_starting_like_a_formula_is_quoted_whatever_the_column_type() -> None:
    mixed = pd.Series([-3, "-3", "=1+1", "+x", "@x", "\tx", "\rx", "ok", None], dtype=object)
    assert list(_csv_column(mixed)) == [
        "-3",
        "'-3",
        "'=1+1",
        "'+x",
        "'@x",
        "'\tx",
        "'\rx",
        "ok",
        "",
    ]
    assert list(_csv_column(pd.Series(["-", "a"], dtype="category"))) == ["'-", "a"]


def test_fleet_csv_keeps_a_line_break_inside_its_cell(
    console: Console, small_fleet: dict[str, int]
) -> None:
    fleet = fleet_table(console, NOW)
    fleet.loc[fleet["label"] == "beta-bot", "last_message"] = "one\rtwo"

    parsed = pd.read_csv(io.BytesIO(fleet_csv(fleet))).set_index("account_id")

    assert len(parsed) == len(fleet)
    assert parsed.loc[small_fleet["beta"], "last_message"] == "one\rtwo"


def test_filter_fleet_failing_keeps_every_error_level_status(
    console: Console, small_fleet: dict[str, int]
) -> None:
    fleet = fleet_table(console, NOW)
    failing = filter_fleet(fleet, statuses=[FAILING])

    assert list(zip(failing["label"], failing["status"].astype(str), strict=True)) == [
        ("beta-bot", "WRONG_PASSPHRASE"),
        ("gamma-margin", "UNVERIFIED"),
    ]
    assert len(filter_fleet(fleet, statuses=[FAILING, "OK"])) == 4, "tiles add up"


def test_is_failing_follows_the_status_level() -> None:
    assert [s for s in Status if is_failing(s)] == [s for s in Status if s.level == "error"]
    assert is_failing("STALE") and not is_failing("AT_RISK") and not is_failing("PAUSED")


def test_status_label_names_the_status_in_words_with_its_code() -> None:
    assert status_label("KEY_UNKNOWN") == ":red[:material/error:] Key unknown `KEY_UNKNOWN`"
    assert status_label("OK").startswith(":green[:material/check_circle:] ")
    assert len({s.title for s in Status}) == len(Status), "every status has its own words"


def test_tile_labels_give_words_code_and_count_and_one_tile_for_every_failing() -> None:
    assert tile_label("STALE", 2) == ":red[:material/error:] No recent sync `STALE` **2**"
    assert tile_label(FAILING, 12) == ":red[:material/error:] Everything failing **12**"


def test_plural_counts_one_account_as_one() -> None:
    assert plural(1, "account") == "1 account"
    assert plural(0, "account") == "0 accounts"
    assert plural(27, "account") == "27 accounts"


def test_coverage_summary_counts_each_whitelist_state(
    console: Console, small_fleet: dict[str, int]
) -> None:
    summary = coverage_summary(fleet_table(console, NOW))
    counts = dict(zip(summary["whitelist"], summary["accounts"], strict=True))

    assert counts == {"2/2 platform IPs covered": 3, "key info not read yet": 1}


# --- Settings helpers --------------------------------------------------------------------


def test_parse_list_accepts_lines_commas_semicolons_and_spaces() -> None:
    assert parse_list(" 203.0.113.154\n2001:db8::7, 198.51.100.7 ;\n\n") == [
        "203.0.113.154",
        "2001:db8::7",
        "198.51.100.7",
    ]
    assert parse_list("") == []


def test_save_settings_refuses_a_bad_ip_and_audits_a_good_change(console: Console) -> None:
    with pytest.raises(store.InvalidInput, match=r"'203\.0\.113\.999' is not an IP address"):
        save_settings(console, egress_ips=["203.0.113.999"])
    assert console.settings().egress_ips == EGRESS

    save_settings(console, egress_ips=["2001:db8::7"])

    changes = settings_changes(console)
    assert changes.iloc[0][["setting", "from", "to"]].tolist() == [
        "egress_ips",
        "203.0.113.154, 198.51.100.7",
        "2001:db8::7",
    ]


def test_latest_seen_ip_is_the_newest_check_reporting_one(
    console: Console, small_fleet: dict[str, int]
) -> None:
    record(console, small_fleet["gamma"], result(NOW - timedelta(minutes=1), seen_ip="192.0.2.5"))

    assert latest_seen_ip(console) == ("192.0.2.5", NOW - timedelta(minutes=1))


def test_latest_seen_ip_is_none_before_any_check(console: Console) -> None:
    assert latest_seen_ip(console) is None


# --- Live checks against the simulator ----------------------------------------------------


def _bind(env: SimEnv, label: str, account: object, scopes: tuple[str, ...] = ("spot",)) -> int:
    outcome = binding.bind(
        env.console,
        label=label,
        api_key=account.api_key,  # type: ignore[attr-defined]
        api_secret=account.api_secret.reveal(),  # type: ignore[attr-defined]
        passphrase=account.passphrase.reveal(),  # type: ignore[attr-defined]
        scopes=scopes,
        accept_warnings=True,
    )
    assert outcome.account_id is not None, outcome.check.decision
    return outcome.account_id


def test_refresh_fleet_records_what_kucoin_answers_now(sim_env: SimEnv) -> None:
    trader = _bind(sim_env, "trader", TRADER)
    open_trader = _bind(sim_env, "open trader", OPEN_TRADER)
    sim_env.simulator.update_account(TRADER.api_key, passphrase="changed on KuCoin")
    seen: list[int] = []

    results = refresh_fleet(sim_env.console, on_result=lambda i, r: seen.append(i))

    assert sorted(seen) == sorted([trader, open_trader])
    assert results[trader].code == "400004"
    assert results[open_trader].ok
    fleet = fleet_table(sim_env.console)
    statuses = dict(zip(fleet["label"], fleet["status"], strict=True))
    assert statuses == {"trader": "WRONG_PASSPHRASE", "open trader": "AT_RISK"}


def test_refresh_fleet_skips_paused_accounts(sim_env: SimEnv) -> None:
    trader = _bind(sim_env, "trader", TRADER)
    binding.pause(sim_env.console, trader)

    assert refresh_fleet(sim_env.console) == {}


def test_check_account_and_account_detail_read_the_key_over_http(sim_env: SimEnv) -> None:
    account_id = _bind(sim_env, "treasury", MASTER, ("spot", "futures"))
    # Every request fails until cleared: the check's retries cannot get through either.
    sim_env.simulator.fail_next(-1, status=503, api_key=MASTER.api_key)

    result = check_account(sim_env.console, account_id)
    sim_env.simulator.clear_faults(MASTER.api_key)
    detail = account_detail(sim_env.console, account_id)

    assert result.outcome is Outcome.UNREACHABLE
    assert detail.health["status"] == "DEGRADED"
    assert list(detail.history["result"]) == ["ok", "retrying"]
    # Balances come from the last check that passed, as KuCoin reported them.
    spot = detail.spot_balances.set_index(["account_type", "currency"])["balance"]
    assert spot.to_dict() == {
        ("main", "USDT"): 10.0,
        ("trade", "USDT"): 5.5,
        ("trade_hf", "BTC"): 0.1,
    }
    assert detail.futures_balances.set_index("currency")["accountEquity"].round(2).to_dict() == {
        "USDT": 394.44
    }
    assert detail.whitelist_entries == ("127.**.1", "203.**.154")
    granted = detail.permissions.set_index("permission")["state"].astype(str).to_dict()
    assert granted["Transfer"] == "dangerous"
    assert granted["Futures"] == "granted"
    assert detail.balances_at is not None
    assert [e.action for e in detail.audit][:2] == ["verify", "bind"]


def test_incident_accounts_are_those_failing_the_shared_way_lately(console: Console) -> None:
    ids = {f"desk-{n}": bind_offline(console, 200 + n, f"desk-{n}", ("spot",)) for n in range(6)}
    for n in range(4):  # most checked just now say 400004: one incident
        record(console, ids[f"desk-{n}"], result(NOW - timedelta(minutes=2), "rejected", "400004"))
    record(console, ids["desk-4"], result(NOW - timedelta(minutes=1)))
    record(console, ids["desk-5"], result(NOW - timedelta(hours=2), "rejected", "400004"))

    snapshot = fleet_snapshot(console, NOW)
    members = snapshot.fleet.loc[snapshot.incident_accounts(), "label"]

    assert snapshot.incident is not None
    assert snapshot.incident.summary.startswith("Wrong API passphrase (400004) on 4 of 5 accounts")
    assert sorted(members) == ["desk-0", "desk-1", "desk-2", "desk-3"]


def test_no_incident_means_no_incident_accounts(
    console: Console, small_fleet: dict[str, int]
) -> None:
    snapshot = fleet_snapshot(console, NOW)

    assert snapshot.incident is None
    assert not snapshot.incident_accounts().any()


def test_account_detail_before_any_passing_check_says_permissions_are_unknown(
    console: Console, small_fleet: dict[str, int]
) -> None:
    never = account_detail(console, small_fleet["gamma"], NOW).permissions.set_index("permission")
    assert set(never["state"].astype(str)) == {"unknown"}  # not "missing": never read
    refused = account_detail(console, small_fleet["beta"], NOW).permissions.set_index("permission")
    assert refused.loc["Spot", "state"] == "granted"  # from the last check that passed


def test_going_stale_at_of_a_never_synced_account_is_never_in_the_past(
    console: Console, small_fleet: dict[str, int]
) -> None:
    # gamma-margin was bound just now and never checked: two hours on, it is stale already.
    later = datetime.now(UTC) + timedelta(hours=2)
    record(console, small_fleet["alpha"], result(later - timedelta(minutes=20)))
    fleet = fleet_table(console, later).set_index("label")
    assert fleet.loc["gamma-margin", "freshness"] == "stale"
    assert pd.isna(fleet.loc["gamma-margin", "going_stale_at"])
    assert fleet.loc["alpha-desk", "going_stale_at"] == later + timedelta(minutes=55)
    assert (fleet["going_stale_at"].dropna() > later).all()


def test_refresh_summary_counts_failing_as_the_rules_do(
    console: Console, small_fleet: dict[str, int]
) -> None:
    snapshot = fleet_snapshot(console, NOW)
    ids = list(small_fleet.values())
    attention, text = refresh_summary(snapshot, ids)
    failing = int(snapshot.failing.sum())
    assert failing == 2  # WRONG_PASSPHRASE and UNVERIFIED: both red
    assert attention and text == f"Checked 4 accounts: {failing} failing, 0 retrying, 2 working."
    assert refresh_summary(snapshot, [small_fleet["alpha"]]) == (
        False,
        "Checked 1 account: 0 failing, 0 retrying, 1 working.",
    )


def failing_tiles(at: AppTest) -> int:
    """Return how many accounts the red status tiles count (the "Everything failing" tile too)."""
    total = everything = 0
    for label in at.pills(key="fleet_status").options:
        count = int(re.search(r"\*\*(\d+)\*\*$", label).group(1))
        code = re.search(r"`(\w+)`", label)
        if code is None:
            everything = count  # the Everything failing tile
        elif Status(code.group(1)).failing:
            total += count
    assert everything == total, "the Everything failing tile counts the red tiles"
    return total


def test_refresh_all_says_as_many_failing_as_the_red_tiles_count(sim_env: SimEnv) -> None:
    _bind(sim_env, "trader", TRADER)
    _bind(sim_env, "reader", GENERAL_ONLY)  # connects, but lacks the Spot it needs
    _bind(sim_env, "open", OPEN_TRADER)
    _bind(sim_env, "treasury", MASTER)
    sim_env.simulator.remove_account(MASTER.api_key)  # deleted on KuCoin's side

    at = app_test().run()
    at.button(key="refresh_all").click().run()
    assert not at.exception

    [summary] = [m.value for m in (*at.warning, *at.success) if m.value.startswith("Checked ")]
    failing = int(re.search(r"(\d+) fail", summary).group(1))
    assert failing == failing_tiles(at) == 2  # KEY_UNKNOWN and SCOPE_MISSING
    assert summary == "Checked 4 accounts: 2 failing, 0 retrying, 2 working."
