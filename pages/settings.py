"""Settings: the platform's egress IPs, the thresholds the health rules apply, and alerts."""

from typing import Any

import streamlit as st

from lib import ui
from lib.console import errors, settings
from lib.ui import alerts_view

HELP = {
    "freshness_seconds": "A key's last successful check should be younger than this.",
    "freshness_grace_seconds": "Slack after the period before the account turns STALE.",
    "rotation_age_days": "Older keys are flagged AT_RISK with a rotation hint.",
}
STEPS = {"freshness_seconds": 5, "freshness_grace_seconds": 5, "rotation_age_days": 15}


def main() -> None:
    """Draw the Settings page."""
    ui.demo_banner()
    st.title("Settings")
    st.caption(
        "What every account is judged by: the platform's egress IPs, how fresh a check must be, "
        "when a key is too old. Each change is audited with your name."
    )
    ui.show_flash()
    console = ui.console()
    stored = console.settings()
    problems = settings.invalid_settings(stored)
    read_only = not console.may_act  # a viewer sees the settings; the services refuse a change
    if read_only:
        st.caption("You are signed in as a viewer: an admin changes the settings.")

    # Every widget shows the stored value on every run (no copy kept in session state): a visit to
    # another page, a save or another operator's change can never bring back a stale value.

    def save(done: str, **changes: Any) -> None:
        """Save settings (the store validates and audits); say what went wrong, never raise."""
        try:
            saved = settings.save_settings(console, **changes)
        except errors.InvalidInput as error:
            st.error(str(error), icon=":material/error:")
            return
        if saved == stored:
            st.info("Nothing to save: every field holds what is stored.", icon=":material/info:")
            return
        ui.flash("success", done)
        st.rerun()

    # --- Egress IPs -------------------------------------------------------------------------------

    st.subheader("Platform egress IPs")
    st.caption(
        "The public IPs this platform calls KuCoin from. Every key should whitelist all of them: "
        "the fleet shows which keys do."
    )
    if "egress_ips" in problems:
        st.warning(
            f"The stored list is out of range: {problems['egress_ips']} The health rules still use "
            "it; shorten it below and save.",
            icon=":material/warning:",
        )
    stored_ips = "\n".join(stored.egress_ips)
    with st.form("egress_form"):
        text = st.text_area(
            "Egress IPs, one per line",
            value=stored_ips,
            placeholder="203.0.113.154\n2001:db8::7",
            help=f"IPv4 or IPv6 addresses, at most {settings.MAX_EGRESS_IPS}; commas and spaces "
            "separate them too.",
            disabled=read_only,
        )
        if st.form_submit_button("Save IPs", icon=":material/save:", disabled=read_only):
            ips = settings.parse_list(text)
            changed = text != stored_ips or "egress_ips" in problems
            done = f"Saved {len(ips)} egress IP{'s' if len(ips) != 1 else ''}."
            save(done, **({"egress_ips": ips} if changed else {}))

    seen = settings.latest_seen_ip(console)
    if seen is None:
        st.caption(
            "No check has reported the IP KuCoin sees yet: bind a key or run a check, then the IP "
            "can be added here in one click."
        )
    elif seen[0] in stored.egress_ips:
        st.caption(f"KuCoin last saw this platform as {seen[0]}: it is in the list.")
    else:
        ip, when = seen
        st.info(
            f"KuCoin last saw this platform as **{ip}** ({when:%Y-%m-%d %H:%M} UTC), which is not "
            "in the list.",
            icon=":material/lan:",
        )
        if not read_only and st.button(f"Add {ip}", key="add_seen_ip", icon=":material/add:"):
            save(f"Added {ip}, the IP KuCoin saw.", egress_ips=[*stored.egress_ips, ip])

    coverage = settings.coverage_summary(ui.cached_fleet(console).fleet)
    if not coverage.empty:
        st.markdown("**Whitelist coverage across the fleet now**")
        st.dataframe(coverage, hide_index=True, key="coverage_table")

    # --- Thresholds -------------------------------------------------------------------------------

    st.subheader("Health policy")
    for problem in (text for name, text in problems.items() if name != "egress_ips"):
        st.warning(
            f"A stored setting is out of range: {problem} Until it is corrected the health rules "
            "hold it to the range, as the form shows; save the policy to store what it shows.",
            icon=":material/warning:",
        )
    # What the form shows, in the operator's units: numbers as the rules apply them (in range).
    shown = settings.policy_form(stored)

    with st.form("policy_form"):
        typed: dict[str, Any] = {}
        ranges = settings.SETTING_RANGES.items()
        for column, (name, rule) in zip(st.columns(3), ranges, strict=True):
            typed[name] = column.number_input(
                f"{rule.label} ({rule.unit})",
                value=shown[name],
                step=STEPS[name],
                help=f"{HELP[name]} From {rule.describe()}.",
                disabled=read_only,
            )
        version_col, futures_col = st.columns(2)
        typed["key_version"] = version_col.selectbox(
            "KC-API-KEY-VERSION for new keys",
            settings.ACCEPTED_KEY_VERSIONS,
            index=settings.ACCEPTED_KEY_VERSIONS.index(shown["key_version"]),
            help="KuCoin's current keys are version 3; version 2 still works.",
            disabled=read_only,
        )
        typed["futures_currencies"] = futures_col.text_input(
            "Futures currencies to read",
            value=shown["futures_currencies"],
            help="Futures overviews each check reads, e.g. USDT, XBT; at most "
            f"{settings.MAX_FUTURES_CURRENCIES}.",
            disabled=read_only,
        )
        if st.form_submit_button("Save policy", icon=":material/save:", disabled=read_only):
            save("Saved the health policy.", **settings.policy_changes(stored, typed))

    alerts_view.settings_section(console)

    history = settings.settings_changes(console)
    with st.expander(f"Recent changes ({len(history)})"):
        if history.empty:
            st.caption("No setting was changed yet.")
        else:
            st.dataframe(
                history,
                hide_index=True,
                key="settings_changes",
                column_config={
                    "at": st.column_config.DatetimeColumn(
                        "At (UTC)", format="YYYY-MM-DD HH:mm", timezone="UTC"
                    )
                },
            )


ui.page(main)
