"""What checking a key found, the way the operator has to read it: the Bind page's report.

KuCoin's answer (or why nothing was sent), the account and permissions it shows, the
whitelist against the platform's IPs, the balances, and every warning to confirm.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from lib.console.account import futures_frame, spot_frame
from lib.console.binding import Decision, KeyCheck, duplicate_text
from lib.console.binding_input import FIELD_NAMES
from lib.health.checks import IP_BLOCKED_CODE
from lib.health.coverage import PERMISSION_MARKS
from lib.kucoin.diagnosis import TIMESTAMP_CODE
from lib.ui.presentation import literal, plural


def _permissions_table(check: KeyCheck) -> pd.DataFrame:
    """Return KuCoin's permissions against the scopes chosen, marked by state (✓ ✗ – ? ⚠)."""
    frame = check.permissions
    return pd.DataFrame(
        {
            "Permission": frame["permission"].astype(str),
            "Needed": ["needed" if bool(n) else "" for n in frame["needed"]],
            "Granted": frame["state"].astype(str).map(PERMISSION_MARKS),
            "State": frame["state"].astype(str),
        }
    )


def _whitelist_table(check: KeyCheck) -> pd.DataFrame:
    """Return the platform IPs (and the IP KuCoin saw) with their whitelist coverage."""
    frame = check.whitelist
    return pd.DataFrame(
        {
            "IP": frame["ip"].astype(str),
            "Platform IP": ["yes" if bool(p) else "no" for p in frame["is_platform_ip"]],
            "Coverage": frame["coverage"].astype(str),
            "Detail": frame["detail"].astype(str),
        }
    )


_BALANCE_COLUMNS = {
    "account_type": "Account type",
    "currency": "Currency",
    "balance": "Balance",
    "available": "Available",
    "holds": "Holds",
    "accountEquity": "Equity",
    "availableBalance": "Available",
    "unrealisedPNL": "Unrealised PNL",
    "marginBalance": "Margin balance",
}


def _account_kind(check: KeyCheck) -> str:
    """Return the account KuCoin says the key belongs to, as Markdown showing its text as is."""
    result = check.result
    assert result is not None
    uid = literal(result.uid or "-")
    if result.is_master:
        kind = f"Master account, UID {uid}"
    else:
        name = f" {literal(result.sub_name)}" if result.sub_name else ""
        kind = f"Sub-account{name}, UID {uid}"
    return kind + (f"  \nKey remark: {literal(result.remark)}" if result.remark else "")


def _show_failure(check: KeyCheck) -> None:
    """Show KuCoin's refusal: the diagnosis for its code and the fix."""
    result, diagnosis = check.result, check.diagnosis
    assert result is not None and diagnosis is not None
    st.error(f"API Status: {literal(check.api_status)}", icon=":material/link_off:")
    st.markdown(f"**Why:** {diagnosis.cause}")
    st.markdown(f"**Fix:** {diagnosis.fix}")
    if result.code == IP_BLOCKED_CODE and result.seen_ip:
        st.markdown(
            f"**The IP KuCoin saw:** {literal(result.seen_ip)}: add it to the key's IP "
            "whitelist, or disable IP restriction for testing."
        )
    if result.code == TIMESTAMP_CODE and result.clock_offset_ms is not None:
        st.markdown(
            f"**Clock offset measured:** {result.clock_offset_ms:+d} ms (KuCoin minus this "
            "machine)."
        )
    kept = " The account keeps its current credential." if check.account_id else ""
    endpoint = f", {literal(result.endpoint)}" if result.endpoint else ""
    st.caption(
        f"KuCoin said: {literal(result.message or '-')} (HTTP {result.http_status or '-'}"
        f"{endpoint}). Nothing was saved.{kept}"
    )


def _show_connected(check: KeyCheck, now: datetime) -> None:
    """Show a working key: status, account, permissions, whitelist, balances, warnings."""
    result = check.result
    assert result is not None and check.status is not None
    # Connected but red in the Fleet (a needed scope missing) is said as such, in red.
    verdict = st.error if check.status.failing else st.success
    verdict(f"API Status: {check.api_status}", icon=":material/link:")
    left, middle, right = st.columns(3)
    left.markdown(f"**Account**  \n{_account_kind(check)}")
    if result.key_created_at:
        age = (now - result.key_created_at).days
        middle.markdown(f"**Key created**  \n{result.key_created_at:%Y-%m-%d} ({age} days ago)")
    else:
        middle.markdown("**Key created**  \nnot reported")
    offset = f"{result.clock_offset_ms:+d} ms" if result.clock_offset_ms is not None else "-"
    right.markdown(f"**Clock offset**  \n{offset} (KuCoin minus this machine)")
    st.caption(
        f"Checked in {result.latency_ms} ms; KuCoin sees this machine as "
        f"{literal(result.seen_ip or '-')}."
    )

    st.markdown("**Permissions** (against the scopes this account needs)")
    st.dataframe(_permissions_table(check), hide_index=True)

    if result.ip_whitelist:
        st.markdown(f"**IP whitelist:** {literal(result.ip_whitelist)} (KuCoin masks the middle)")
    else:
        st.markdown("**IP whitelist:** none: any IP may use this key")
    if check.whitelist is not None and len(check.whitelist):
        st.dataframe(_whitelist_table(check), hide_index=True)
        if not check.whitelist["is_platform_ip"].any():
            st.caption("Add the platform's egress IPs in Settings to see which ones it covers.")

    spot = spot_frame(result).rename(columns=_BALANCE_COLUMNS)
    futures = futures_frame(result).rename(columns=_BALANCE_COLUMNS)
    st.markdown(
        f"**Balances:** {plural(len(spot), 'non-zero spot row')}, "
        f"{plural(len(futures), 'futures currency', 'futures currencies')}"
    )
    if len(spot):
        st.dataframe(spot, hide_index=True)
    if len(futures):
        st.dataframe(futures, hide_index=True)
    if result.message:
        st.caption(f"Note: {literal(result.message)}")

    for warning in check.warnings:
        st.warning(warning, icon=":material/warning:")


def render_check(check: KeyCheck, now: datetime | None = None) -> None:
    """Show what checking a key found, the way the operator has to read it."""
    now = now or datetime.now(UTC)
    for notice in check.notices:
        st.info(notice, icon=":material/cleaning_services:")
    if check.decision is Decision.INVALID:
        fields = ", ".join(FIELD_NAMES.get(name, name) for name in check.errors)
        st.error(f"Nothing was sent to KuCoin. Fix: {fields} (see the messages by each field).")
        if "account" in check.errors:  # the only error without a field of its own
            st.error(check.errors["account"])
        return
    if check.decision is Decision.DUPLICATE:
        st.error(duplicate_text(check))
        return
    if check.connected:
        _show_connected(check, now)
        return
    _show_failure(check)
    if check.transient:
        st.caption(
            "KuCoin could not answer: nothing is wrong with the key yet. Retry checks the same "
            "values again."
        )
