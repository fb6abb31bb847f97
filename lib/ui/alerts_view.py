"""Alerts in the browser: the Settings section, an account's alert history and drift, the feed.

A channel URL holds tokens: it is typed into a password field of a form that clears on
submit, handed to the service once, and only ever shown masked afterwards.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import streamlit as st

from lib.console import Console, alerts, settings
from lib.console.errors import FAILURES, InvalidInput
from lib.ui.frame import failure_text
from lib.ui.presentation import literal
from lib.ui.session import flash, show_flash
from lib.ui.sign_in import installation_console

log = logging.getLogger(__name__)

AT = st.column_config.DatetimeColumn("At (UTC)", format="YYYY-MM-DD HH:mm", timezone="UTC")
URL_GENERATION = "alert_channel_generation"  # bumped after each submit: the URL is forgotten
ALERTS_FLASH = "alerts"  # the section's message slot, shown above its form
FEED_LENGTH = 20  # transitions on the Fleet page
HISTORY_LENGTH = 50  # transitions on the Account page
# The chart's colours, worst first: as the status colours read elsewhere.
RESULT_COLOURS = {"failing": "#d32f2f", "retrying": "#f9a825", "working": "#2e7d32"}


# --- Settings -------------------------------------------------------------------------------------


def settings_section(console: Console) -> None:
    """The Settings page's Alerts section: channels, test, failures, reminders (admins only)."""
    st.subheader("Alerts")
    if not console.may_act:
        st.caption(
            "Alert channels hold tokens: only an admin sees and changes them, sends a test, or "
            "reads the failed deliveries."
        )
        return
    st.caption(
        "Where a message goes when an account starts or stops failing, fails another way, or "
        "shows a new risk. Each channel is an apprise URL (json://host:port/path, "
        "slack://…, tgram://…, discord://…, msteams://…, mailto://…); it is stored encrypted "
        "and shown masked."
    )
    table = alerts.channels(console)
    if table.empty:
        st.caption(":material/notifications_off: No alert channel yet: add one below.")
    else:
        st.dataframe(table, hide_index=True, key="alert_channels", column_config={"added": AT})
    _add_channel_form(console)
    if not table.empty:
        remove_col, test_col = st.columns(2, vertical_alignment="bottom")
        number = remove_col.selectbox(
            "Channel", list(table["number"]), key="alert_channel_pick", format_func=str
        )
        if remove_col.button("Remove channel", key="alert_remove", icon=":material/delete:"):
            try:
                masked = alerts.remove_channel(console, int(number))
            except FAILURES as error:
                st.error(failure_text(error))
            else:
                flash("success", f"Removed channel {number} ({masked}).")
                st.rerun()
        if test_col.button("Send test", key="alert_test", icon=":material/send:"):
            _send_test(console)
    _failed_deliveries(console)
    _alert_settings_form(console)


def _add_channel_form(console: Console) -> None:
    """A form that takes one channel URL, hands it to the service once, and forgets it."""
    generation = st.session_state.get(URL_GENERATION, 0)
    show_flash(ALERTS_FLASH)
    with st.form("alert_channel_form", clear_on_submit=True):
        url = st.text_input(
            "Add a channel (apprise URL)",
            type="password",
            key=f"alert_channel_url_{generation}",
            placeholder="json://alerts.example.com:8080/bindwatch",
            help="The URL is encrypted before it is stored, and never shown again in full.",
        )
        if st.form_submit_button("Add channel", icon=":material/add_alert:"):
            # The next run draws the field under a new key: Streamlit drops the typed URL
            # from the session with the old one.
            st.session_state[URL_GENERATION] = generation + 1
            try:
                number = alerts.add_channel(console, url)
            except InvalidInput as error:
                flash("error", str(error), ALERTS_FLASH)
            except FAILURES as error:
                flash("error", failure_text(error), ALERTS_FLASH)
            else:
                flash("success", f"Added channel {number}. Send a test to try it.", ALERTS_FLASH)
            del url
            st.rerun()


def _send_test(console: Console) -> None:
    """Send a test message to every channel now and say what each answered."""
    with st.spinner("Sending a test message to every channel…"):
        try:
            answers = alerts.send_test(console)
        except FAILURES as error:
            st.error(failure_text(error))
            return
    for answer in answers:
        if answer.sent:
            st.success(f"{answer.channel}: test message sent.", icon=":material/check:")
        else:
            st.error(
                f"{answer.channel}: the test message was not delivered: {answer.error}",
                icon=":material/error:",
            )


def _failed_deliveries(console: Console) -> None:
    """List the deliveries that failed after their retries."""
    failed = alerts.deliveries(console, failed_only=True)
    label = f"Failed deliveries ({len(failed)})"
    with st.expander(label, expanded=not failed.empty):
        if failed.empty:
            st.caption("Every message so far reached its channel.")
            return
        st.dataframe(
            failed[["created_at", "channel", "title", "attempts", "error"]],
            hide_index=True,
            key="failed_deliveries",
            column_config={
                "created_at": AT,
                "error": st.column_config.TextColumn("What the channel said", width="large"),
            },
        )


def _alert_settings_form(console: Console) -> None:
    """Reminders, KuCoin's deletion warning and the console's address (for links)."""
    stored = console.settings()
    with st.form("alert_settings_form"):
        typed: dict[str, Any] = {}
        ranges = settings.ALERT_SETTING_RANGES
        columns = st.columns(len(ranges) + 1)
        for column, (name, rule) in zip(columns, ranges.items(), strict=False):
            typed[name] = column.number_input(
                f"{rule.label} ({rule.unit})",
                value=int(getattr(stored, name)),
                min_value=rule.low,
                max_value=rule.high,
                step=1,
                help=f"From {rule.describe()}.",
            )
        typed["console_url"] = columns[-1].text_input(
            "Console address (for links)",
            value=stored.console_url,
            placeholder="https://bindwatch.example.com",
            help="Each alert links to the account's page at this address.",
        )
        if st.form_submit_button("Save alert settings", icon=":material/save:"):
            changes = {n: v for n, v in typed.items() if v != getattr(stored, n)}
            if not changes:
                st.info("Nothing to save: every field holds what is stored.")
                return
            try:
                settings.save_settings(console, **changes)
            except InvalidInput as error:
                st.error(str(error), icon=":material/error:")
            else:
                flash("success", "Saved the alert settings.")
                st.rerun()


# --- Account page -------------------------------------------------------------------------------


def account_drift(console: Console, account_id: int) -> None:
    """Drift since binding: each change before → after, and Acknowledge for an admin."""
    drift = alerts.account_drift(console, account_id)
    st.subheader("Since binding")
    if drift.baseline_at is None:
        st.caption("No baseline yet: it is recorded from the key's first passing check.")
        return
    base = f"Compared with what KuCoin said on {drift.baseline_at:%Y-%m-%d %H:%M} UTC"
    st.caption(f"{base} ({drift.baseline_by}).")
    if drift.changes.empty:
        st.success("Nothing changed on KuCoin's side.", icon=":material/verified:")
    else:
        for change in drift.changes.itertuples():
            icon = ":material/gpp_bad:" if change.dangerous else ":material/change_circle:"
            (st.error if change.dangerous else st.warning)(
                f"**{change.what}**: {change.before} → {change.after}. {change.fix}", icon=icon
            )
        if console.may_act and st.button(
            "Acknowledge",
            key=f"acknowledge_{account_id}",
            icon=":material/done_all:",
            help="Make what KuCoin says now this account's baseline (audited).",
        ):
            try:
                taken = alerts.acknowledge_drift(console, account_id)
            except FAILURES as error:
                flash("error", failure_text(error))
            else:
                flash("success", f"Acknowledged {taken} change(s): this is the new baseline.")
            st.rerun()
    if drift.note:
        st.caption(drift.note)


def account_history(console: Console, account_id: int) -> None:
    """The account's alert history, newest first: each transition, and whether it was sent."""
    st.subheader("Alert history")
    history = alerts.transitions(console, account_id=account_id, limit=HISTORY_LENGTH)
    if history.empty:
        st.caption("No transition recorded yet: each change of status or new risk appears here.")
        return
    st.markdown(_transition_lines(history))


# --- Fleet page ---------------------------------------------------------------------------------


CHART_WINDOWS = [1, 7, 30]  # days the Fleet page's chart offers
CHART_DEFAULT_DAYS = 7


def warm_up_chart() -> None:
    """Read the chart's default window for the configured console, as the first Fleet page
    would (in the background once the server has started)."""
    try:
        alerts.fleet_over_time(installation_console(), days=CHART_DEFAULT_DAYS)
    except Exception as error:  # the first page says what is wrong
        log.warning("the fleet chart could not be read at start: %s", type(error).__name__)


# The stacked area chart of results over time (Vega-Lite 6, the grammar st.vega_lite_chart draws).
_FLEET_CHART = {
    "mark": {"type": "area"},
    "height": 180,
    "encoding": {
        "x": {"field": "at", "type": "temporal", "title": None},
        "y": {"field": "accounts", "type": "quantitative", "stack": "zero", "title": "accounts"},
        "color": {
            "field": "result",
            "type": "nominal",
            "title": None,
            "scale": {"domain": list(RESULT_COLOURS), "range": list(RESULT_COLOURS.values())},
        },
        "order": {"field": "result", "type": "nominal"},
        "tooltip": [
            {"field": "at", "type": "temporal", "title": "until (UTC)"},
            {"field": "result", "type": "nominal"},
            {"field": "accounts", "type": "quantitative"},
        ],
    },
}


def fleet_over_time(console: Console) -> None:
    """A stacked area chart of the accounts working, retrying and failing over the last days."""
    days = st.segmented_control(
        "Fleet over time",
        CHART_WINDOWS,
        default=CHART_DEFAULT_DAYS,
        key="fleet_days",
        format_func=lambda d: f"{d} d",
    )
    timeline = alerts.fleet_over_time(console, days=int(days or CHART_DEFAULT_DAYS))
    if timeline.empty:
        st.caption("No checks in that window yet.")
        return
    # A Vega-Lite spec given as a dict: Altair would build the same one, but importing it holds
    # 45 MB and a second or two in the server for nothing else.
    st.vega_lite_chart(
        timeline.assign(result=timeline["result"].astype(str)),
        _FLEET_CHART,
        key="fleet_chart",
    )


def transitions_feed(console: Console) -> None:
    """The most recent transitions across the fleet, newest first, one line each."""
    feed = alerts.transitions(console, limit=FEED_LENGTH)
    with st.expander(f"Recent transitions ({len(feed)})", expanded=not feed.empty):
        if feed.empty:
            st.caption("No transition recorded yet.")
            return
        st.markdown(_transition_lines(feed))


def _transition_lines(feed: pd.DataFrame) -> str:
    """Return transitions as a Markdown list: when, what, and why it was not sent if so."""
    return "\n".join(
        f"- `{row.at:%Y-%m-%d %H:%M}` {literal(row.title.removeprefix('bindwatch: '))}"
        + ("" if row.alerted else f" · *not sent: {literal(row.note or '')}*")
        for row in feed.itertuples()
    )
