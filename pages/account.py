"""Account: one account's diagnosis, permissions, whitelist, balances, history and actions."""

import re

import pandas as pd
import streamlit as st

from lib import ui
from lib.console import errors
from lib.console.account import account_detail
from lib.console.checks import check_account
from lib.ui import account_view, alerts_view, lifecycle

PICKER = "account_picker"
ACCOUNT_ID = re.compile(r"\d{1,18}")  # what ?account= may hold: an id, within the database's range


def main() -> None:
    """Draw the Account page."""
    ui.demo_banner()
    st.title("Account")
    st.caption(
        "One account in full: what is wrong and the fix, its permissions and whitelist against "
        "what it needs, its checks and KuCoin's last answer; act on it at the bottom."
    )
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
        f"needs {', '.join(ui.scope_name(s) for s in account.scopes)}",
    ]
    head.subheader(f"{account.label} {ui.status_badge(row['status'])}")
    head.caption(" · ".join(f for f in facts if f))
    if console.may_act and action.button(
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
    account_view.show_freshness(row)
    account_view.show_history(detail.history)
    account_view.show_coverage(detail)
    alerts_view.account_drift(console, account_id)
    account_view.show_balances(detail)

    if console.may_act:  # a viewer reads; the services refuse a viewer's action anyway
        st.subheader("Actions")
        lifecycle.render_lifecycle(console, account)
    else:  # e.g. an action from a page drawn before the operator became a viewer, refused
        lifecycle.show_messages(account_id)

    alerts_view.account_history(console, account_id)
    account_view.show_audit(detail)


ui.page(main)
