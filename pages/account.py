"""Account: one account's diagnosis, permissions, whitelist, balances, history and actions."""

import re

import pandas as pd
import streamlit as st

from lib import ui
from lib.console import errors
from lib.console.account import account_detail
from lib.console.checks import check_account
from lib.ui import lifecycle

PICKER = "account_picker"
ACCOUNT_ID = re.compile(r"\d{1,18}")  # what ?account= may hold: an id, within the database's range


def main() -> None:
    """Draw the Account page."""
    ui.demo_banner()
    st.title("Account")
    ui.show_flash()
    console = ui.console()
    snapshot = ui.cached_fleet(console)
    fleet = snapshot.fleet

    if fleet.empty:
        ui.empty_fleet()
        st.stop()

    # Which account: the link (?account=7), else the last one opened, else the worst one. The id in
    # the link is the page's subject: an action or a re-sorted fleet never moves it elsewhere.
    names = {
        int(i): f"{label} · {status}"
        for i, label, status in zip(
            fleet["account_id"], fleet["label"], fleet["status"].astype(str), strict=True
        )
    }
    raw = st.query_params.get("account")
    detail = None
    if raw is not None and not ACCOUNT_ID.fullmatch(raw.strip()):
        # Shown as text: a link could carry Markdown (a link, an image) into the page.
        shown = raw if len(raw) <= 200 else raw[:200] + "…"
        st.warning(f"“{ui.literal(shown)}” is not an account id: pick an account below.")
    elif raw is not None:
        try:
            detail = account_detail(console, int(raw))
        except errors.AccountNotFound:
            st.warning(f"No account has id {int(raw)}: pick one below.")
    if detail is None:
        remembered = st.session_state.get(ui.SELECTED_ACCOUNT)
        detail = account_detail(console, remembered if remembered in names else next(iter(names)))
    account = detail.account
    account_id = account.id
    if account_id not in names:
        names[account_id] = f"{account.label} · unbound"
    st.query_params["account"] = str(account_id)
    st.session_state[ui.SELECTED_ACCOUNT] = account_id
    st.session_state[PICKER] = account_id  # the picker always shows the page's subject

    def picked() -> None:
        """Open the account chosen in the picker: put its id in the link."""
        choice = st.session_state[PICKER]
        # After a status change the browser may send the option's old text: that names nothing.
        if choice in names:
            st.query_params["account"] = str(choice)
            st.session_state[ui.SELECTED_ACCOUNT] = choice

    st.selectbox(
        "Account",
        list(names),
        key=PICKER,
        format_func=lambda i: names.get(i, str(i)),
        on_change=picked,
    )
    row = detail.health

    # --- Diagnosis and "Check now" ---------------------------------------------------------------

    head, action = st.columns([4, 1], vertical_alignment="bottom")
    master = row["is_master"]
    kind = "" if pd.isna(master) else "master account" if bool(master) else "sub-account"
    facts = [
        kind + (f" {ui.literal(row['sub_name'])}" if isinstance(row["sub_name"], str) else ""),
        f"UID {ui.literal(row['uid'])}" if isinstance(row["uid"], str) else "",
        f"key …{account.key_last4}" if account.key_last4 else "no key stored",
        f"needs {', '.join(s.capitalize() for s in account.scopes)}",
    ]
    head.subheader(f"{account.label} {ui.status_badge(row['status'])}")
    head.caption(" · ".join(f for f in facts if f))
    if action.button(
        "Check now",
        key=f"check_now_{account_id}",
        type="primary",
        icon=":material/sync:",
        disabled=not account.bound,
        help="Ask KuCoin now with this account's key and record the answer.",
        width="stretch",
    ):
        with st.spinner("Checking with KuCoin…"):
            try:
                result = check_account(console, account_id)
            except errors.FAILURES as error:
                ui.flash("error", ui.failure_text(error))
            else:
                verdict = "the key works" if result.ok else ui.literal(result.code or "no answer")
                ui.flash("success" if result.ok else "warning", f"Checked just now: {verdict}.")
        st.rerun()

    ui.show_diagnosis(row)

    sync, stale, key_age, expires = st.columns(4)
    sync.metric(
        "Last sync",
        ui.format_age(row["sync_age"]) + " ago" if pd.notna(row["sync_age"]) else "never",
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

    # --- History --------------------------------------------------------------------------------

    st.subheader("Check history")
    history = detail.history
    if history.empty:
        st.info("Not checked yet: press **Check now** to ask KuCoin.", icon=":material/schedule:")
    else:
        recent = history.tail(48)
        passed = int((recent["result"] == "ok").sum())
        st.html(ui.heartbeat_html(history))
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
            "code": latest["code"] if isinstance(latest["code"], str) else "200000 (success)",
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

    # --- Permissions and whitelist ---------------------------------------------------------------

    left, right = st.columns(2)
    with left:
        st.subheader("Permissions")
        st.dataframe(
            ui.permission_grid(detail.permissions), hide_index=True, key="permissions_table"
        )
        if pd.isna(row["permissions"]):
            st.caption("The key has not passed a check yet: KuCoin's key info is unknown.")
    with right:
        st.subheader("IP whitelist")
        if detail.whitelist_entries:
            st.markdown(
                "KuCoin shows the whitelist masked: "
                + ", ".join(ui.literal(e) for e in detail.whitelist_entries)
            )
        elif pd.notna(row["permissions"]):
            st.markdown("The key has **no IP whitelist**: any IP may use it.")
        if detail.whitelist.empty:
            st.info(
                "No platform egress IP is set: add them in Settings to compare them with the "
                "key's whitelist.",
                icon=":material/lan:",
            )
            ui.page_link(ui.SETTINGS_PAGE, label="Open Settings", icon=":material/settings:")
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

    # --- Balances --------------------------------------------------------------------------------

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

    # --- Lifecycle and audit ---------------------------------------------------------------------

    st.subheader("Actions")
    lifecycle.render_lifecycle(console, account)

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


ui.page(main)
