"""The Settings page on the demo fleet: egress IPs, the IP KuCoin saw, the health policy."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pandas as pd
import pytest
from app_fixtures import app_test, running_demo
from streamlit.testing.v1 import AppTest

from lib.console.demo import CALLER_IP, EGRESS_IPS, FUTURES_CURRENCIES, Demo
from lib.console.settings import save_settings, settings_changes
from lib.store.models import SettingRow
from lib.ui.session import DEMO_FLAG

SETTINGS_PAGE = "pages/settings.py"
SAVE_IPS = "FormSubmitter:egress_form-Save IPs"
SAVE_POLICY = "FormSubmitter:policy_form-Save policy"
SECOND = "198.51.100.20"  # the demo's other egress IP


@pytest.fixture(scope="module", name="demo")
def demo_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """Build one demo fleet for the module; the real data directory is an empty tmp one."""
    yield from running_demo(tmp_path_factory, "settings_page")


@pytest.fixture(autouse=True)
def _demo_settings(demo: Demo) -> None:
    """Start every test from the demo's own settings."""
    save_settings(
        demo.console,
        egress_ips=list(EGRESS_IPS),
        freshness_seconds=3600,
        freshness_grace_seconds=900,
        rotation_age_days=90,
        key_version="3",
        futures_currencies=list(FUTURES_CURRENCIES),
    )


def open_settings() -> AppTest:
    """Return the app on the Settings page in demo mode."""
    at = app_test()
    at.session_state[DEMO_FLAG] = True
    at.run()
    return at.switch_page(SETTINGS_PAGE).run()


def egress_field(at: AppTest):
    """Return the egress IPs text area (unkeyed: it always shows the stored list)."""
    return next(w for w in at.text_area if w.label == "Egress IPs, one per line")


def number_field(at: AppTest, label: str):
    """Return the policy's number input with this label."""
    return next(w for w in at.number_input if w.label == label)


def coverage(at: AppTest) -> dict[str, int]:
    """Return the page's fleet coverage table as {summary: accounts}."""
    frame = next(d.value for d in at.dataframe if "whitelist" in d.value.columns)
    return dict(zip(frame["whitelist"], frame["accounts"], strict=True))


def fleet_whitelist(at: AppTest) -> dict[str, str]:
    """Return the Fleet page's whitelist column by account."""
    at.switch_page("pages/fleet.py").run()
    frame = at.dataframe[0].value
    return dict(zip(frame["label"], frame["whitelist"], strict=True))


def test_the_page_shows_the_stored_ips_and_their_coverage(demo: Demo) -> None:
    at = open_settings()

    assert not at.exception
    assert egress_field(at).value == "\n".join(EGRESS_IPS)
    assert coverage(at)["2/2 platform IPs covered"] == 22
    assert coverage(at)["1/2 platform IPs covered"] == 1
    assert any(f"KuCoin last saw this platform as {CALLER_IP}" in c.value for c in at.caption)


def test_saving_egress_ips_changes_what_coverage_shows(demo: Demo) -> None:
    at = open_settings()
    egress_field(at).input(f"{CALLER_IP}, 192.0.2.10\n198.51.100.20")
    at.button(key=SAVE_IPS).click().run()

    assert "Saved 3 egress IPs." in [s.value for s in at.success]
    assert demo.console.settings().egress_ips == (CALLER_IP, "192.0.2.10", "198.51.100.20")
    assert coverage(at)["2/3 platform IPs covered"] == 22
    assert fleet_whitelist(at)["treasury"] == "2/3 platform IPs covered"


def test_a_bad_ip_is_refused_with_the_reason_and_nothing_is_saved(demo: Demo) -> None:
    at = open_settings()
    egress_field(at).input(f"{CALLER_IP}\n203.0.113.300")
    at.button(key=SAVE_IPS).click().run()

    assert not at.exception
    assert "'203.0.113.300' is not an IP address." in [e.value for e in at.error]
    assert demo.console.settings().egress_ips == EGRESS_IPS
    # What the operator typed stays, to be corrected.
    assert egress_field(at).value == f"{CALLER_IP}\n203.0.113.300"


def test_the_ip_kucoin_saw_is_added_in_one_click(demo: Demo) -> None:
    save_settings(demo.console, egress_ips=[SECOND])
    at = open_settings()
    assert f"KuCoin last saw this platform as **{CALLER_IP}**" in at.info[-1].value
    assert coverage(at)["0/1 platform IPs covered"] == 1  # half-listed whitelists CALLER_IP only

    at.button(key="add_seen_ip").click().run()

    assert f"Added {CALLER_IP}, the IP KuCoin saw." in [s.value for s in at.success]
    assert demo.console.settings().egress_ips == (SECOND, CALLER_IP)
    assert egress_field(at).value == f"{SECOND}\n{CALLER_IP}"
    assert "add_seen_ip" not in [b.key for b in at.button]
    assert coverage(at)["1/2 platform IPs covered"] == 1


def test_the_policy_moves_statuses_rotation_age_and_freshness_period(demo: Demo) -> None:
    at = open_settings()
    number_field(at, "Rotate keys after (days)").set_value(30)
    number_field(at, "Freshness period (minutes)").set_value(240)
    at.button(key=SAVE_POLICY).click().run()

    assert "Saved the health policy." in [s.value for s in at.success]
    settings = demo.console.settings()
    assert (settings.rotation_age_days, settings.freshness_seconds) == (30, 14_400)
    at.switch_page("pages/fleet.py").run()
    fleet = at.dataframe[0].value.set_index("label")
    fleet["status"] = [next(iter(v)) for v in fleet["status"]]
    assert fleet.loc["grid-eth", "status"] == "AT_RISK"
    assert fleet.loc["grid-eth", "diagnosis"] == "Works, but: key is 45 days old"
    # 3 h 10 min without a sync is no longer STALE with a 4 h period; its key is old now.
    assert fleet.loc["dca-eth", "status"] == "AT_RISK"
    assert pd.notna(fleet.loc["dca-eth", "going_stale_at"])


def test_recent_changes_list_who_changed_what(demo: Demo) -> None:
    at = open_settings()
    egress_field(at).input(CALLER_IP)
    at.button(key=SAVE_IPS).click().run()

    changes = next(d.value for d in at.dataframe if "setting" in d.value.columns)
    newest = changes.iloc[0]
    assert (newest["actor"], newest["setting"], newest["to"]) == ("admin", "egress_ips", CALLER_IP)
    assert newest["from"] == ", ".join(EGRESS_IPS)


def test_saving_untouched_policy_writes_nothing_and_says_so(demo: Demo) -> None:
    at = open_settings()
    changes_before = len(settings_changes(demo.console))
    at.button(key=SAVE_POLICY).click().run()

    assert "Nothing to save: every field holds what is stored." in [i.value for i in at.info]
    assert len(settings_changes(demo.console)) == changes_before


def test_one_edited_field_is_the_only_setting_saved(demo: Demo) -> None:
    at = open_settings()
    number_field(at, "Grace (minutes)").set_value(5)
    at.button(key=SAVE_POLICY).click().run()

    newest = settings_changes(demo.console).iloc[0]
    assert (newest["setting"], newest["from"], newest["to"]) == (
        "freshness_grace_seconds",
        "900",
        "300",
    )
    assert len(settings_changes(demo.console)[lambda c: c["at"] == newest["at"]]) == 1


def test_a_value_out_of_range_is_refused_naming_the_field_and_the_range(demo: Demo) -> None:
    at = open_settings()
    number_field(at, "Grace (minutes)").set_value(-15)
    at.button(key=SAVE_POLICY).click().run()

    assert not at.exception
    assert "Grace must be 0 to 1,440 minutes; -15 is out of range." in [e.value for e in at.error]
    assert demo.console.settings().freshness_grace_seconds == 900
    assert number_field(at, "Grace (minutes)").value == -15  # kept, to be corrected


def test_a_value_stored_out_of_range_is_shown_held_to_its_range_and_corrected(
    demo: Demo,
) -> None:
    with demo.console.transaction() as session:  # as a database from before the ranges holds it
        session.merge(
            SettingRow(
                name="rotation_age_days",
                value=10_000_000_000,
                updated_at=datetime.now(UTC),
                updated_by="old",
            )
        )
    at = open_settings()

    assert not at.exception
    assert any("Rotate keys after must be 1 to 3,650 days" in w.value for w in at.warning)
    assert number_field(at, "Rotate keys after (days)").value == 3_650
    at.button(key=SAVE_POLICY).click().run()

    assert "Saved the health policy." in [s.value for s in at.success]
    assert demo.console.settings().rotation_age_days == 3_650
    assert not any("out of range" in w.value for w in at.warning)
