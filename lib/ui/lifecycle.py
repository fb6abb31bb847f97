"""An account's lifecycle tabs: rotate its credential, change scopes, pause/resume, unbind.

Each action ends with a message saying what changed (or why nothing did), in the account's
own flash slot.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from lib.account_fields import SCOPES
from lib.console import Console, binding
from lib.console.binding import KeyCheck
from lib.console.errors import FAILURES
from lib.store import AccountView
from lib.ui.frame import failure_text
from lib.ui.key_form import (
    check_typed_key,
    credential_inputs,
    form_fields,
    release_typed,
    render_last_check,
    show_outcome,
)
from lib.ui.presentation import scope_name
from lib.ui.session import flash, show_flash

CONFIRM_UNBIND = "confirm_unbind"  # session state: the id of the account awaiting confirmation
ACTION_TAB = "account_action_tab"  # the lifecycle tab shown, kept across reruns
ACTION_TABS = ("Rotate credentials", "Scopes", "Monitoring", "Unbind")


def _prefix(account_id: int) -> str:
    """Return the widget and flash prefix of one account's actions."""
    return f"account_{account_id}"


def _on_rotate_submit(console: Console, account_id: int, scopes: tuple[str, ...]) -> None:
    """Check the new credential in an account's rotation form (submit and Retry callback)."""
    check_typed_key(
        console,
        f"{_prefix(account_id)}_rotate",
        label="",
        scopes=list(scopes),
        account_id=account_id,
    )


def _run_action(key: str, action: Callable[[], bool], done: str, unchanged: str) -> None:
    """Run one lifecycle action and leave its message (callback)."""
    try:
        changed = action()
    except FAILURES as error:
        flash("error", failure_text(error), key)
        return
    except ValueError as error:  # a choice lib.console.binding refuses, e.g. no scope at all
        flash("error", f"{str(error)[:1].upper()}{str(error)[1:]}.", key)
        return
    flash("success" if changed else "info", done if changed else unchanged, key)


def _on_scopes(console: Console, account_id: int) -> None:
    """Save the scopes chosen in the Scopes tab (callback)."""
    key = _prefix(account_id)
    scopes = list(st.session_state.get(f"{key}_scopes") or [])
    names = ", ".join(scope_name(s) for s in scopes)
    _run_action(
        key,
        lambda: binding.set_scopes(console, account_id, scopes),
        f"Scopes changed to {names}.",
        f"Scopes unchanged: still {names}.",
    )


def _on_pause(console: Console, account_id: int) -> None:
    """Pause monitoring the account (callback)."""
    _run_action(
        _prefix(account_id),
        lambda: binding.pause(console, account_id),
        "Monitoring paused: the fleet refresh skips this account until it is resumed.",
        "Monitoring was already paused (changed from another session): nothing to do.",
    )


def _on_resume(console: Console, account_id: int) -> None:
    """Resume monitoring the account (callback)."""
    _run_action(
        _prefix(account_id),
        lambda: binding.resume(console, account_id),
        "Monitoring resumed: the next refresh checks this account again.",
        "Monitoring was already running (changed from another session): nothing to do.",
    )


def _on_unbind_request(account_id: int) -> None:
    """Ask to confirm unbinding the account (callback)."""
    st.session_state[CONFIRM_UNBIND] = account_id


def _on_unbind_cancel(account_id: int) -> None:
    """Drop the unbind request (callback)."""
    st.session_state.pop(CONFIRM_UNBIND, None)
    flash("info", "Unbind cancelled: nothing changed.", _prefix(account_id))


def _on_unbind_confirm(console: Console, account_id: int, label: str) -> None:
    """Unbind the account the operator confirmed (callback)."""
    st.session_state.pop(CONFIRM_UNBIND, None)

    def unbind() -> bool:
        """Unbind, which always changes something."""
        binding.unbind(console, account_id)
        return True

    _run_action(
        _prefix(account_id),
        unbind,
        f"Unbound '{label}': its API Key, Secret and Passphrase are deleted from bindwatch; its "
        "check history and audit log stay. Delete the key on KuCoin too if nothing uses it.",
        "",
    )


def _render_rotation(console: Console, account: AccountView) -> None:
    """Rotate the credential in place: new Key, Secret and Passphrase, verified first."""
    prefix = f"{_prefix(account.id)}_rotate"
    released = release_typed(prefix)
    fields = form_fields(prefix)
    check: KeyCheck | None = st.session_state.get(f"{prefix}_check")
    submit_args = (console, account.id, account.scopes)
    st.caption(
        "Paste the new key. It is checked with KuCoin first; the label, scopes and history "
        "stay, and the old credential is destroyed once the new one is saved."
    )
    with st.form(f"{prefix}_form"):
        credential_inputs(fields, check.errors if check is not None else {})
        st.form_submit_button(
            "Verify and rotate", type="primary", on_click=_on_rotate_submit, args=submit_args
        )
    show_outcome(prefix, released)
    render_last_check(console, prefix, _on_rotate_submit, submit_args)


def _render_scopes(console: Console, account: AccountView) -> None:
    """Render the Scopes tab: the scopes the account needs, and Save."""
    key = _prefix(account.id)
    # The stored scopes as the default, not pushed through session state: a tab not shown when
    # a value is pushed may mount later without it, and Save would then drop a scope.
    st.multiselect(
        "Scopes this account needs",
        options=list(SCOPES),
        default=list(account.scopes),
        format_func=scope_name,
        key=f"{key}_scopes",
    )
    st.button(
        "Save scopes", key=f"{key}_save_scopes", on_click=_on_scopes, args=(console, account.id)
    )


def _render_monitoring(console: Console, account: AccountView) -> None:
    """Render the Monitoring tab: pause or resume."""
    key = _prefix(account.id)
    if account.paused:
        st.markdown("Monitoring is **paused**: checks and alerts skip this account.")
        st.button(
            "Resume monitoring",
            key=f"{key}_resume",
            on_click=_on_resume,
            args=(console, account.id),
        )
    else:
        st.markdown("Monitoring is **on**.")
        st.button(
            "Pause monitoring", key=f"{key}_pause", on_click=_on_pause, args=(console, account.id)
        )


def _render_unbind(console: Console, account: AccountView) -> None:
    """Render the Unbind tab: what goes, then a confirmation."""
    key = _prefix(account.id)
    if st.session_state.get(CONFIRM_UNBIND) != account.id:
        st.caption("Destroys this account's credentials; its check history and audit log stay.")
        st.button("Unbind…", key=f"{key}_unbind", on_click=_on_unbind_request, args=(account.id,))
        return
    with st.container(border=True):
        st.warning(binding.unbind_summary(console, account.id), icon=":material/delete_forever:")
        left, right = st.columns(2)
        left.button(
            "Confirm: unbind",
            key=f"{key}_unbind_confirm",
            type="primary",
            on_click=_on_unbind_confirm,
            args=(console, account.id, account.label),
        )
        right.button(
            "Cancel", key=f"{key}_unbind_cancel", on_click=_on_unbind_cancel, args=(account.id,)
        )


def show_messages(account_id: int) -> None:
    """Show what the last action on the account said (its own flash slot)."""
    show_flash(_prefix(account_id))


def render_lifecycle(console: Console, account: AccountView) -> None:
    """Render the actions on one account: rotate, scopes, pause/resume, unbind."""
    show_flash(_prefix(account.id))
    if not account.bound:
        st.info(
            f"'{account.label}' was unbound on {account.unbound_at:%Y-%m-%d %H:%M} UTC: its "
            "credentials are gone; its history and audit log are kept."
        )
        return
    if account.unverified:
        st.warning(
            "Unverified: no check of this key has passed since it was saved (KuCoin refused "
            "this machine's IP). It stays unverified until a check passes.",
            icon=":material/gpp_maybe:",
        )
    # Keyed, so that the tab the operator chose stays open across the reruns actions cause.
    rotate, scopes, monitoring, unbind = st.tabs(ACTION_TABS, key=ACTION_TAB, on_change="rerun")
    with rotate:
        _render_rotation(console, account)
    with scopes:
        _render_scopes(console, account)
    with monitoring:
        _render_monitoring(console, account)
    with unbind:
        _render_unbind(console, account)
