"""Settings: the platform's egress IPs and the thresholds the health rules apply."""

from typing import Any

import streamlit as st

from lib import fleet as fleet_lib
from lib import store, ui
from lib.kucoin.constants import ACCEPTED_KEY_VERSIONS

ui.require_frame()

ui.demo_banner()
st.title("Settings")
ui.show_flash()
console = ui.console()
settings = console.settings()


def sync(key: str, stored: Any) -> None:
    """Show the stored value in a widget when it changed (a save, another operator)."""
    # The widget keeps what the operator types across reruns; only a new stored value wins.
    if st.session_state.get(f"{key}__stored") != stored:
        st.session_state[key] = stored
        st.session_state[f"{key}__stored"] = stored


def save(done: str, **changes: Any) -> bool:
    """Save settings (the store validates and audits); say what went wrong, never raise."""
    try:
        fleet_lib.save_settings(console, **changes)
    except store.InvalidInput as error:
        st.error(str(error), icon=":material/error:")
        return False
    ui.flash("success", done)
    st.rerun()
    return True


# --- Egress IPs -------------------------------------------------------------------------------

st.subheader("Platform egress IPs")
st.caption(
    "The public IPs this platform calls KuCoin from. Every key should whitelist all of them: "
    "the fleet shows which keys do."
)
sync("settings_egress", "\n".join(settings.egress_ips))
with st.form("egress_form"):
    text = st.text_area(
        "Egress IPs, one per line",
        key="settings_egress",
        placeholder="203.0.113.154\n2001:db8::7",
        help="IPv4 or IPv6 addresses; commas and spaces separate them too.",
    )
    if st.form_submit_button("Save IPs", icon=":material/save:"):
        ips = fleet_lib.parse_ip_list(text)
        save(f"Saved {len(ips)} egress IP{'s' if len(ips) != 1 else ''}.", egress_ips=ips)

seen = fleet_lib.latest_seen_ip(console)
if seen is None:
    st.caption(
        "No check has reported the IP KuCoin sees yet: bind a key or run a check, then the IP "
        "can be added here in one click."
    )
elif seen[0] in settings.egress_ips:
    st.caption(f"KuCoin last saw this platform as {seen[0]}: it is in the list.")
else:
    ip, when = seen
    st.info(
        f"KuCoin last saw this platform as **{ip}** ({when:%Y-%m-%d %H:%M} UTC), which is not "
        "in the list.",
        icon=":material/lan:",
    )
    if st.button(f"Add {ip}", key="add_seen_ip", icon=":material/add:"):
        save(f"Added {ip}, the IP KuCoin saw.", egress_ips=[*settings.egress_ips, ip])

coverage = fleet_lib.coverage_summary(ui.cached_fleet(console).fleet)
if not coverage.empty:
    st.markdown("**Whitelist coverage across the fleet now**")
    st.dataframe(coverage, hide_index=True, key="coverage_table")

# --- Thresholds -------------------------------------------------------------------------------

st.subheader("Health policy")
sync("settings_period", max(1, round(settings.freshness_seconds / 60)))
sync("settings_grace", round(settings.freshness_grace_seconds / 60))
sync("settings_rotation", settings.rotation_age_days)
sync("settings_key_version", settings.key_version)
sync("settings_futures", ", ".join(settings.futures_currencies))
with st.form("policy_form"):
    period_col, grace_col, rotation_col = st.columns(3)
    period = period_col.number_input(
        "Freshness period (minutes)",
        min_value=1,
        step=5,
        key="settings_period",
        help="A key's last successful check should be younger than this.",
    )
    grace = grace_col.number_input(
        "Grace (minutes)",
        min_value=0,
        step=5,
        key="settings_grace",
        help="Slack after the period before the account turns STALE.",
    )
    rotation = rotation_col.number_input(
        "Rotate keys after (days)",
        min_value=1,
        step=15,
        key="settings_rotation",
        help="Older keys are flagged AT_RISK with a rotation hint.",
    )
    version_col, futures_col = st.columns(2)
    key_version = version_col.selectbox(
        "KC-API-KEY-VERSION for new keys",
        ACCEPTED_KEY_VERSIONS,
        key="settings_key_version",
        help="KuCoin's current keys are version 3; version 2 still works.",
    )
    futures = futures_col.text_input(
        "Futures currencies to read",
        key="settings_futures",
        help="Futures overviews each check reads, e.g. USDT, XBT.",
    )
    if st.form_submit_button("Save policy", icon=":material/save:"):
        save(
            "Saved the health policy.",
            freshness_seconds=int(period) * 60,
            freshness_grace_seconds=int(grace) * 60,
            rotation_age_days=int(rotation),
            key_version=key_version,
            futures_currencies=[c for c in futures.replace(",", " ").split() if c],
        )

changes = fleet_lib.settings_changes(console)
with st.expander(f"Recent changes ({len(changes)})"):
    if changes.empty:
        st.caption("No setting was changed yet.")
    else:
        st.dataframe(
            changes,
            hide_index=True,
            key="settings_changes",
            column_config={
                "at": st.column_config.DatetimeColumn(
                    "At (UTC)", format="YYYY-MM-DD HH:mm", timezone="UTC"
                )
            },
        )
