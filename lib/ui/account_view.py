"""The Account page's sections: freshness, check history, coverage, balances, audit log."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lib.console.account import AccountDetail
from lib.health.wording import format_age
from lib.ui.frame import SETTINGS_PAGE, page_link
from lib.ui.presentation import heartbeat_html, literal, permission_grid


def show_freshness(row: pd.Series) -> None:
    """Show the last sync, when it goes stale, the key's age and KuCoin's deletion date."""
    sync, stale, key_age, expires = st.columns(4)
    sync.metric(
        "Last sync",
        format_age(row["sync_age"]) + " ago" if pd.notna(row["sync_age"]) else "never",
        help="The last check that KuCoin accepted.",
    )
    # No deadline once it is stale already (the last sync, or the binding, is too old) or paused.
    stale.metric(
        "Goes stale at",
        f"{row['going_stale_at']:%d %b %H:%M}"
        if pd.notna(row["going_stale_at"])
        else "paused"
        if row["paused"]
        else "already stale",
        help="UTC. Without another successful check the account turns STALE then.",
    )
    key_age.metric("Key age", f"{row['key_age_days']} d" if pd.notna(row["key_age_days"]) else "—")
    expires.metric(
        "KuCoin may delete on",
        f"{row['expires_at']:%Y-%m-%d}" if pd.notna(row["expires_at"]) else "—",
        help="Trading keys without an IP whitelist are deleted after 30 days unused.",
    )


def last_code(check: pd.Series) -> str:
    """Return the code of one check as KuCoin gave it; a check without a code passed or got none."""
    if isinstance(check["code"], str) and check["code"]:
        return check["code"]
    return "200000 (success)" if check["outcome"] == "ok" else "— (no answer from KuCoin)"


def show_history(history: pd.DataFrame) -> None:
    """Show the checks as a heartbeat, KuCoin's last answer, and every check."""
    st.subheader("Check history")
    if history.empty:
        st.info("Not checked yet: press **Check now** to ask KuCoin.", icon=":material/schedule:")
    else:
        recent = history.tail(48)
        passed = int((recent["result"] == "ok").sum())
        st.html(heartbeat_html(history))
        checks = f"Last {len(recent)} checks, oldest left" if len(recent) > 1 else "One check"
        st.caption(
            f"{checks}: {passed} passed. Green passed, amber failed in a way a retry may fix, red "
            "rejected by KuCoin. Hover a cell for the details."
        )
        latest = history.iloc[-1]
        st.markdown("**Last answer from KuCoin**")
        answer = {
            "checked at (UTC)": f"{latest['checked_at']:%Y-%m-%d %H:%M:%S}",
            "result": latest["result"],
            "code": last_code(latest),
            "HTTP": str(latest["http_status"]) if pd.notna(latest["http_status"]) else "—",
            "endpoint": latest["endpoint"] if isinstance(latest["endpoint"], str) else "—",
        }
        st.dataframe(pd.DataFrame([answer]), hide_index=True, key="last_answer")
        if isinstance(latest["message"], str) and latest["message"]:
            st.code(latest["message"], language=None, wrap_lines=True)
        with st.expander(f"All {len(history)} checks"):
            st.dataframe(
                history.iloc[::-1],
                hide_index=True,
                key="history_table",
                column_config={
                    "checked_at": st.column_config.DatetimeColumn(
                        "Checked at (UTC)", format="YYYY-MM-DD HH:mm:ss", timezone="UTC"
                    ),
                    "latency_ms": st.column_config.NumberColumn("Latency", format="%d ms"),
                },
            )


def show_coverage(detail: AccountDetail) -> None:
    """Show the key's permissions, and its whitelist against the platform's IPs."""
    row = detail.health
    left, right = st.columns(2)
    with left:
        st.subheader("Permissions")
        st.dataframe(permission_grid(detail.permissions), hide_index=True, key="permissions_table")
        if pd.isna(row["permissions"]):
            st.caption("The key has not passed a check yet: KuCoin's key info is unknown.")
    with right:
        st.subheader("IP whitelist")
        if detail.whitelist_entries:
            st.markdown(
                "KuCoin shows the whitelist masked: "
                + ", ".join(literal(e) for e in detail.whitelist_entries)
            )
        elif pd.notna(row["permissions"]):
            st.markdown("The key has **no IP whitelist**: any IP may use it.")
        if detail.whitelist.empty:
            st.info(
                "No platform egress IP is set: add them in Settings to compare them with the "
                "key's whitelist.",
                icon=":material/lan:",
            )
            page_link(SETTINGS_PAGE, label="Open Settings", icon=":material/settings:")
        else:
            st.dataframe(
                detail.whitelist.assign(
                    is_platform_ip=detail.whitelist["is_platform_ip"].map(
                        {True: "platform IP", False: "seen by KuCoin"}
                    )
                ),
                hide_index=True,
                key="whitelist_table",
                column_config={
                    "ip": "IP",
                    "is_platform_ip": "Source",
                    "coverage": "Coverage",
                    "confirmed": st.column_config.CheckboxColumn(
                        "Confirmed by KuCoin", help="KuCoin accepted or refused a call from it."
                    ),
                    "detail": st.column_config.TextColumn("Why", width="large"),
                },
            )


def show_balances(detail: AccountDetail) -> None:
    """Show the balances of the last passing check: spot by account type, futures."""
    st.subheader("Balances")
    when = (
        f" (read {detail.balances_at:%Y-%m-%d %H:%M} UTC)" if detail.balances_at is not None else ""
    )
    spot_col, futures_col = st.columns(2)
    with spot_col:
        st.markdown(f"**Spot, by account type**{when}")
        if detail.spot_balances.empty:
            st.caption("No spot balance read yet (or every balance is zero).")
        else:
            st.dataframe(detail.spot_balances, hide_index=True, key="spot_balances")
    with futures_col:
        st.markdown(f"**Futures, per currency**{when}")
        if detail.futures_balances.empty:
            st.caption(
                "No futures overview: the account does not need Futures, or the key lacks it."
            )
        else:
            st.dataframe(detail.futures_balances, hide_index=True, key="futures_balances")


def show_audit(detail: AccountDetail) -> None:
    """Show the account's audit log, newest first, in an expander."""
    with st.expander(f"Audit log ({len(detail.audit)} events)"):
        if detail.audit:
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "at (UTC)": f"{e.at:%Y-%m-%d %H:%M:%S}",
                            "actor": e.actor,
                            "action": e.action,
                            "details": ", ".join(f"{k}={v}" for k, v in e.details.items()),
                        }
                        for e in detail.audit
                    ]
                ),
                hide_index=True,
                key="audit_table",
            )
        else:
            st.caption("Nothing recorded yet.")
