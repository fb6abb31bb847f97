"""The Bind page's form: label, Key, Secret, Passphrase and scopes; then what KuCoin said."""

from __future__ import annotations

import streamlit as st

from lib.account_fields import SCOPES
from lib.console import Console
from lib.console.binding import KeyCheck
from lib.ui.frame import ACCOUNT_PAGE, page_link
from lib.ui.key_form import (
    check_typed_key,
    credential_inputs,
    field_error,
    form_fields,
    release_typed,
    render_last_check,
    show_outcome,
)
from lib.ui.presentation import scope_name
from lib.ui.session import SELECTED_ACCOUNT

BIND = "bind"  # widget and state prefix of the Bind page
DEFAULT_SCOPES = ["spot"]


def _on_bind_submit(console: Console) -> None:
    """Check the key in the Bind form for a new account (submit and Retry callback)."""
    fields = form_fields(BIND)
    check_typed_key(
        console,
        BIND,
        label=st.session_state.get(f"{fields}_label") or "",
        scopes=list(st.session_state.get(f"{fields}_scopes") or []),
    )


def render_bind(console: Console) -> None:
    """Render the Bind page: the form, then what KuCoin said and what may be saved."""
    state = st.session_state
    released = release_typed(BIND)
    fields = form_fields(BIND)
    check: KeyCheck | None = state.get(f"{BIND}_check")
    errors = check.errors if check is not None else {}

    st.caption(
        "Paste the key from KuCoin → Profile → API Management. bindwatch cleans the paste, "
        "checks the key live with KuCoin and saves it only if it works (or once you confirm "
        "its warnings). Secrets are encrypted at rest and never shown again."
    )
    with st.form(f"{BIND}_form"):
        st.text_input(
            "Label",
            key=f"{fields}_label",
            placeholder="e.g. mm-bot-01",
            help="How this account appears in the fleet.",
        )
        field_error(errors, "label")
        credential_inputs(fields, errors)
        st.multiselect(
            "Scopes this account needs",
            options=list(SCOPES),
            default=DEFAULT_SCOPES,
            format_func=scope_name,
            key=f"{fields}_scopes",
            help="The permissions the platform will use; General is always needed.",
        )
        field_error(errors, "scopes")
        st.form_submit_button(
            "Verify and bind", type="primary", on_click=_on_bind_submit, args=(console,)
        )

    show_outcome(BIND, released)
    saved = state.get(f"{BIND}_saved")
    if saved:
        state[SELECTED_ACCOUNT] = saved["account_id"]
        page_link(
            ACCOUNT_PAGE,
            label=f"Open '{saved['label']}'",
            icon=":material/manage_accounts:",
            query_params={"account": str(saved["account_id"])},
        )
    render_last_check(console, BIND, _on_bind_submit, (console,))
