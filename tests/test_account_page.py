"""The Account page on the demo fleet: diagnosis, history, balances, grids, actions, Check now."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from app_fixtures import (  # noqa: F401
    APP,
    OPEN_TRADER,
    TRADER,
    SimEnv,
    app_test,
    running_demo,
    shown_text,
    sim_env_fixture,
)
from sqlalchemy import update
from streamlit.testing.v1 import AppTest

from lib.console import binding
from lib.console.demo import DEMO_ACCOUNTS, Demo, demo_credentials
from lib.kucoin.sim import SimAccount
from lib.store.models import Credential
from lib.ui.session import DEMO_FLAG, SELECTED_ACCOUNT

ACCOUNT_PAGE = "pages/account.py"


@pytest.fixture(scope="module", name="demo")
def demo_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """Build one demo fleet for the module; the real data directory is an empty tmp one."""
    yield from running_demo(tmp_path_factory, "account_page")


@pytest.fixture(name="ids", scope="module")
def ids_fixture(demo: Demo) -> dict[str, int]:
    """Return the demo's account ids by label."""
    fleet = demo.console.fleet()
    return dict(zip(fleet["label"], fleet["account_id"].astype(int), strict=True))


def open_account(account: str | None = None, selected: int | None = None) -> AppTest:
    """Return the app on the Account page in demo mode, linked to an account (or not)."""
    at = app_test()
    at.session_state[DEMO_FLAG] = True
    if selected is not None:
        at.session_state[SELECTED_ACCOUNT] = selected
    at.run()
    at.switch_page(ACCOUNT_PAGE)
    if account is not None:
        at.query_params["account"] = account
    return at.run()


def bind(env: SimEnv, key: SimAccount, label: str) -> int:
    """Bind a simulated key (accepting its warnings); return the account id."""
    outcome = binding.bind(
        env.console,
        label=label,
        api_key=key.api_key,
        api_secret=key.api_secret.reveal(),
        passphrase=key.passphrase.reveal(),
        accept_warnings=True,
    )
    assert outcome.account_id is not None, outcome.check
    return outcome.account_id


def heading(at: AppTest) -> str:
    """Return the account heading (label and status badge)."""
    return at.subheader[0].value


def frame_with(at: AppTest, column: str):
    """Return the first table on the page that has this column."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_the_link_names_the_account_and_its_diagnosis_and_hint_show(
    demo: Demo, ids: dict[str, int]
) -> None:
    at = open_account(str(ids["scalper-03"]))

    assert not at.exception
    assert heading(at) == "scalper-03 :red-badge[WRONG_PASSPHRASE]"
    diagnosis = shown_text(at.error[0].value)
    assert "Wrong API passphrase (400004)" in diagnosis
    assert "not the login or trading password" in diagnosis
    # The page's help line comes first, then the account's own line under its heading.
    assert "sub-account scalper03" in shown_text(at.caption[1].value)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Last sync"] == "12 min ago"
    assert metrics["Key age"] == "45 d"


def test_without_a_link_the_selected_account_shows(demo: Demo, ids: dict[str, int]) -> None:
    at = open_account(selected=ids["treasury"])

    assert heading(at).startswith("treasury ")
    assert at.query_params["account"] == str(ids["treasury"])


def test_without_link_or_selection_the_worst_account_shows(demo: Demo) -> None:
    at = open_account()

    assert heading(at) == "frozen-sub :red-badge[FROZEN]"


def test_the_picker_opens_another_account_and_updates_the_link(
    demo: Demo, ids: dict[str, int]
) -> None:
    at = open_account(str(ids["treasury"]))
    at.selectbox(key="account_picker").select(ids["grid-eth"]).run()

    assert heading(at).startswith("grid-eth ")
    assert at.query_params["account"] == str(ids["grid-eth"])
    assert at.session_state[SELECTED_ACCOUNT] == ids["grid-eth"]


@pytest.mark.parametrize(
    ("link", "message"),
    [("abc", "“abc” is not an account id"), ("99999", "No account has id 99999")],
)
def test_a_bad_link_says_so_and_offers_the_picker(demo: Demo, link: str, message: str) -> None:
    at = open_account(link)

    assert not at.exception
    assert message in at.warning[0].value
    assert at.selectbox(key="account_picker").value is not None


def test_history_is_a_heartbeat_bar_of_every_check_and_the_last_raw_answer(
    demo: Demo, ids: dict[str, int]
) -> None:
    at = open_account(str(ids["mm-bot-02"]))
    bar = at.get("html")[0].proto.body

    assert bar.count('class="beat ') == 25
    assert bar.count("beat-retrying") == 2  # KuCoin's bad hour earlier today
    assert bar.count("beat-ok") == 23
    assert "failed (transient) 503" in bar

    at = open_account(str(ids["scalper-03"]))
    bar = at.get("html")[0].proto.body
    assert bar.rsplit('class="beat ', 1)[1].startswith("beat-rejected")
    answer = frame_with(at, "endpoint").iloc[0]
    assert (answer["result"], answer["code"]) == ("rejected", "400004")
    assert at.code[0].value == "Invalid KC-API-PASSPHRASE."

    # A check KuCoin never answered has no code: it is not a success either.
    at = open_account(str(ids["import-staging"]))
    answer = frame_with(at, "endpoint").iloc[0]
    assert answer["result"] == "retrying"
    assert answer["code"] == "— (no answer from KuCoin)"


def test_an_account_never_checked_says_to_check_it(demo: Demo, ids: dict[str, int]) -> None:
    at = open_account(str(ids["new-import"]))

    assert not at.get("html")
    assert any("Not checked yet: press **Check now**" in i.value for i in at.info)
    assert any("No spot balance read yet" in c.value for c in at.caption)


def test_balances_spot_by_account_type_and_futures_per_currency(
    demo: Demo, ids: dict[str, int]
) -> None:
    at = open_account(str(ids["treasury"]))
    spot = frame_with(at, "account_type")
    futures = frame_with(at, "accountEquity")

    assert list(zip(spot["account_type"], spot["currency"], strict=True)) == [
        ("main", "USDT"),
        ("margin", "USDT"),
        ("trade", "BTC"),
        ("trade_hf", "ETH"),
    ]
    assert spot.set_index("currency").loc["BTC", "balance"] == 1.85
    assert futures.set_index("currency")["accountEquity"].to_dict() == {
        "USDT": 48210.5,
        "XBT": 0.42,
    }


def test_permission_grid_shows_the_missing_scope(demo: Demo, ids: dict[str, int]) -> None:
    at = open_account(str(ids["futures-grid"]))
    grid = frame_with(at, "permission").set_index("permission")

    assert grid.loc["Futures", "state"] == "✗ missing"
    assert grid.loc["Futures", "needed"] == "needed"
    assert grid.loc["Spot", "state"] == "✓ granted"


def test_whitelist_detail_compares_masked_entries_with_platform_ips(
    demo: Demo, ids: dict[str, int]
) -> None:
    at = open_account(str(ids["half-listed"]))
    coverage = frame_with(at, "coverage").set_index("ip")

    assert "KuCoin shows the whitelist masked: 203.**.154" in [
        shown_text(m.value) for m in at.markdown
    ]
    assert coverage.loc["198.51.100.20", "coverage"] == "not covered"
    assert coverage.loc["203.0.113.154", "coverage"] == "covered"


def test_lifecycle_actions_render_for_the_account(demo: Demo, ids: dict[str, int]) -> None:
    at = open_account(str(ids["grid-eth"]))

    assert "Actions" in [s.value for s in at.subheader]
    assert {"Rotate credentials", "Unbind"} <= {t.label for t in at.tabs}


def test_check_now_asks_kucoin_and_records_the_answer(demo: Demo, ids: dict[str, int]) -> None:
    at = open_account(str(ids["hedge-02"]))
    assert heading(at) == "hedge-02 :orange-badge[DEGRADED]"
    checks = at.get("html")[0].proto.body.count('class="beat ')

    at.button(key=f"check_now_{ids['hedge-02']}").click().run()

    assert not at.exception
    assert "Checked just now: the key works." in [s.value for s in at.success]
    assert heading(at) == "hedge-02 :green-badge[OK]"
    assert at.get("html")[0].proto.body.count('class="beat ') == checks + 1


def test_no_secret_reaches_the_page_or_session_state(demo: Demo, ids: dict[str, int]) -> None:
    secrets = []
    for account in DEMO_ACCOUNTS:
        creds = demo_credentials(account)
        secrets += [creds.api_key, creds.api_secret.reveal(), creds.passphrase.reveal()]
    for label in ("treasury", "scalper-03", "copy-trade", "office-bot"):
        at = open_account(str(ids[label]))
        shown = [
            *(
                e.value
                for kind in ("markdown", "caption", "subheader", "code")
                for e in at.get(kind)
            ),
            *(a.value for a in (*at.error, *at.warning, *at.info, *at.success)),
            *(d.value.to_csv() for d in at.dataframe),
            *(h.proto.body for h in at.get("html")),
            *(str(v) for v in at.session_state.values()),
        ]
        page = "\n".join(str(v) for v in shown)
        assert page, label
        assert not [s for s in secrets if s in page], label


def test_with_no_account_bound_the_page_says_what_to_do(demo: Demo) -> None:
    # Outside demo mode the page reads the (empty) data directory the fixture set up.
    at = app_test().run()
    at.switch_page(ACCOUNT_PAGE).run()

    assert not at.exception
    assert any("No KuCoin account is bound yet" in i.value for i in at.info)


def test_a_picker_value_gone_stale_after_an_action_keeps_the_account(
    demo: Demo, ids: dict[str, int]
) -> None:
    at = open_account(str(ids["grid-eth"]))
    binding.pause(demo.console, ids["grid-eth"])  # its status, so its picker text, changes
    try:
        at.run()  # the page redraws the picker: "grid-eth · PAUSED"
        # The browser still holds the option's text as first drawn and sends it with its next
        # action; AppTest only sends texts among the options, so the old one is added back.
        picker = at.selectbox(key="account_picker")
        picker.options.append("grid-eth · OK")
        picker.set_value("grid-eth · OK").run()

        assert not at.exception
        assert heading(at).startswith("grid-eth ")
        assert at.query_params["account"] == str(ids["grid-eth"])
        assert not at.warning
    finally:
        binding.resume(demo.console, ids["grid-eth"])


def test_markdown_in_the_link_is_escaped_and_reads_as_typed(demo: Demo) -> None:
    link = "[Sign in](https://evil.example/login) ![x](http://evil.example/t.png) :red[alert]"
    at = open_account(link)

    [warning] = [w.value for w in at.warning if "is not an account id" in w.value]
    assert "](" not in warning and "![" not in warning and ":red[" not in warning
    assert "http://" not in warning and "https://" not in warning  # no bare URL to link
    assert shown_text(warning) == f"“{link}” is not an account id: pick an account below."


def test_an_unbound_account_in_the_link_shows_that_account(sim_env: SimEnv) -> None:
    bind(sim_env, TRADER, "kept")
    gone = bind(sim_env, OPEN_TRADER, "gone")
    binding.unbind(sim_env.console, gone)
    at = app_test().run()
    at.switch_page(ACCOUNT_PAGE)
    at.query_params["account"] = str(gone)
    at.run()

    assert not at.exception
    assert heading(at).startswith("gone ")
    assert any("was unbound on" in i.value for i in at.info)
    picker = at.selectbox(key="account_picker")
    assert picker.value == gone
    assert picker.options[-1] == "gone · unbound"
    assert [option.split(" · ")[0] for option in picker.options] == ["kept", "gone"]


def test_check_now_with_an_unreadable_stored_key_is_a_message(sim_env: SimEnv) -> None:
    account_id = bind(sim_env, TRADER, "vaulted")
    at = app_test().run()
    at.switch_page(ACCOUNT_PAGE)
    at.query_params["account"] = str(account_id)
    at.run()
    with sim_env.console.transaction() as session:  # the stored secret altered behind our back
        session.execute(
            update(Credential)
            .where(Credential.account_id == account_id)
            .values(api_secret_enc="v1:000000000000:AAAA")
        )

    at.button(key=f"check_now_{account_id}").click().run()

    assert not at.exception
    # Its own status and the fix (the rest of a fleet goes on being checked), on the same account.
    assert any("Credentials cannot be read" in e.value and "Rotate" in e.value for e in at.error)
    assert heading(at).startswith("vaulted ")


def test_check_now_after_the_key_file_is_broken_still_uses_the_key_verified_at_start(
    sim_env: SimEnv,
) -> None:
    account_id = bind(sim_env, TRADER, "vaulted")
    at = app_test().run()
    at.switch_page(ACCOUNT_PAGE)
    at.query_params["account"] = str(account_id)
    at.run()
    (sim_env.data_dir / "master.key").write_bytes(b"")

    at.button(key=f"check_now_{account_id}").click().run()

    assert not at.exception
    assert "Checked just now: the key works." in [s.value for s in at.success]
