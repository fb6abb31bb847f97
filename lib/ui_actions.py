"""Streamlit controls for binding a key and for an account's lifecycle after that.

`render_bind` is the Bind page; `render_lifecycle` is the account page's actions: rotate the
credential, change scopes, pause or resume monitoring, unbind. Both call lib.console.binding
only, and every action ends with a message saying what changed (or why nothing did).

Typed credentials: after a check that saved nothing, the Key, Secret and Passphrase fields keep
what was typed (Secret and Passphrase masked), so that only the wrong field needs typing again
and Retry re-checks without a new paste. The values then live only in the browser's fields and
in Streamlit's own state of those widgets, which Streamlit drops as soon as the form is not
drawn (another page, another account); no check, message or log holds them. The fields are
emptied when the key is saved or discarded, and KEEP_TYPED_S after the last check. A checked
key that may be saved waits in lib.console.binding's pending slot, named by a token, until
confirmed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import streamlit as st

from lib import store
from lib.binding_input import FIELD_NAMES, SCOPES
from lib.console import Console, binding
from lib.console.account import futures_frame, spot_frame
from lib.console.binding import Decision, KeyCheck
from lib.health.coverage import PERMISSION_MARKS
from lib.ui import ACCOUNT_PAGE, FAILURES, SELECTED_ACCOUNT, alert, failure_text, literal

CREDENTIAL_FIELDS = ("api_key", "api_secret", "passphrase")
DEFAULT_SCOPES = ["spot"]
CONFIRM_UNBIND = "confirm_unbind"  # session state: the id of the account awaiting confirmation
ACTION_TAB = "account_action_tab"  # the lifecycle tab shown, kept across reruns
ACTION_TABS = ("Rotate credentials", "Scopes", "Monitoring", "Unbind")
# Typed credentials stay in a form as long as a checked key waits for confirmation.
KEEP_TYPED_S = binding.PENDING_TTL_S
TIMER_S = 30  # how often an idle page looks whether its typed credentials are due to go

BIND = "bind"  # widget and state prefix of the Bind page


def scope_name(scope: str) -> str:
    """Return a scope as the operator reads it ("spot" → "Spot")."""
    return scope.capitalize()


def _flash(key: str, kind: str, text: str) -> None:
    """Keep a message to show on the next run (an action's callback runs before the page)."""
    st.session_state[f"{key}_flash"] = (kind, text)


def _show_flash(key: str) -> None:
    """Show and forget the message an action left."""
    flash = st.session_state.pop(f"{key}_flash", None)
    if flash:
        kind, text = flash
        alert(kind)(text)


# --- Typed credentials -----------------------------------------------------------------------


def _fields(prefix: str) -> str:
    """Return the widget-key prefix of a credentials form's current (possibly emptied) fields."""
    return f"{prefix}_{st.session_state.get(f'{prefix}_generation', 0)}"


def _typed(prefix: str) -> dict[str, str]:
    """Return the credentials in a form's fields as last submitted (Streamlit's widget state)."""
    fields = _fields(prefix)
    return {name: st.session_state.get(f"{fields}_{name}") or "" for name in CREDENTIAL_FIELDS}


def _keep_typed(prefix: str) -> None:
    """Let the form keep what was typed until KEEP_TYPED_S from now."""
    st.session_state[f"{prefix}_kept_until"] = time.time() + KEEP_TYPED_S


def _empty_form(prefix: str) -> None:
    """Draw the form with new, empty fields from the next widget run on."""
    # New keys make new widgets: the browser empties them too, and Streamlit drops the old ones.
    state = st.session_state
    state[f"{prefix}_generation"] = state.get(f"{prefix}_generation", 0) + 1
    state.pop(f"{prefix}_kept_until", None)


def _release_typed(prefix: str) -> str | None:
    """Empty a form whose typed credentials are due to go; return the message, if any, to show."""
    state = st.session_state
    until = state.get(f"{prefix}_kept_until")
    if until is None:
        return None
    if f"{_fields(prefix)}_api_secret" not in state:
        # Streamlit dropped the fields: the form was not drawn (the operator left): start afresh.
        _forget(prefix)
        _empty_form(prefix)
        return None
    if time.time() < until:
        return None
    _forget(prefix)
    _empty_form(prefix)
    return (
        f"The typed credentials were cleared after {KEEP_TYPED_S // 60} minutes: paste them "
        "again to check the key."
    )


@st.fragment(run_every=TIMER_S)
def _release_timer(prefix: str) -> None:
    """Rerun the page once the form's typed credentials are due to go, even when idle."""
    if time.time() >= st.session_state.get(f"{prefix}_kept_until", math.inf):
        st.rerun(scope="app")


# --- Credentials form ------------------------------------------------------------------------


def _field_error(errors: dict[str, str], name: str) -> None:
    """Show what to fix in one field, right under it."""
    if name in errors:
        st.error(errors[name], icon=":material/error:")


def credential_inputs(fields: str, errors: dict[str, str]) -> None:
    """Render the API Key, Secret and Passphrase inputs, with each field's error under it."""
    st.text_input(
        "API Key",
        key=f"{fields}_api_key",
        placeholder="24 hexadecimal characters",
        help="From KuCoin → Profile → API Management. Remove any spaces when pasting.",
    )
    _field_error(errors, "api_key")
    st.text_input(
        "Secret",
        key=f"{fields}_api_secret",
        type="password",
        placeholder="xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
        help="Shown once, when the key was created. Remove any spaces when pasting.",
    )
    _field_error(errors, "api_secret")
    st.text_input(
        "Passphrase",
        key=f"{fields}_passphrase",
        type="password",
        help="The API Passphrase typed when creating this key on KuCoin, not the login or "
        "trading password.",
    )
    _field_error(errors, "passphrase")


# --- What a check found ----------------------------------------------------------------------


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


def _count(n: int, one: str, many: str | None = None) -> str:
    """Return "1 row" / "3 rows"."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


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
    if result.code == "400006" and result.seen_ip:
        st.markdown(
            f"**The IP KuCoin saw:** {literal(result.seen_ip)}: add it to the key's IP "
            "whitelist, or disable IP restriction for testing."
        )
    if result.code == "400002" and result.clock_offset_ms is not None:
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
        f"**Balances:** {_count(len(spot), 'non-zero spot row')}, "
        f"{_count(len(futures), 'futures currency', 'futures currencies')}"
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
        st.error(
            f"This API key is already bound to account '{check.duplicate_of}'. The same key "
            "cannot be bound twice: unbind it there first, or rotate that account's "
            "credentials. Nothing was sent to KuCoin."
        )
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


def _offer_retry(prefix: str, check: KeyCheck, submit: Callable[..., None], args: tuple) -> None:
    """Offer to check the key in the form again after a failure a retry may fix."""
    if check.transient:
        st.button(
            "Retry",
            key=f"{prefix}_retry",
            icon=":material/refresh:",
            on_click=submit,
            args=args,
            help="Check the key still in the form again, without pasting it.",
        )


def render_confirmation(console: Console, prefix: str, check: KeyCheck) -> None:
    """Offer to save a key that needs the operator's confirmation; offer to discard it."""
    if check.decision is Decision.NEEDS_CONFIRMATION:
        accepted = st.checkbox(
            "I have read the warnings above and want to save this key anyway",
            key=f"{prefix}_accept",
        )
        label = "Save with these warnings"
        options = {"accept_warnings": True}
    elif check.decision is Decision.WHITELIST_ONLY:
        st.info(
            "This key can be saved as **unverified**: it shows as unverified everywhere until "
            "a check passes from a whitelisted IP."
        )
        accepted = st.checkbox(
            "Save it as unverified; I will add this IP to the key's whitelist",
            key=f"{prefix}_accept",
        )
        label = "Save as unverified"
        options = {"accept_unverified": True}
    else:
        return
    left, right = st.columns(2)
    left.button(
        label,
        key=f"{prefix}_save",
        type="primary",
        disabled=not accepted,
        on_click=_save_pending,
        args=(console, prefix, options),
    )
    right.button("Discard", key=f"{prefix}_discard", on_click=_discard_pending, args=(prefix,))


def _save_pending(console: Console, prefix: str, options: dict[str, bool]) -> None:
    """Save the checked key the operator confirmed (callback)."""
    check: KeyCheck | None = st.session_state.get(f"{prefix}_check")
    if check is None or check.token is None or not st.session_state.get(f"{prefix}_accept"):
        return
    try:
        account_id = binding.save(console, check.token, **options)
    except binding.BindingError as error:
        st.session_state.pop(f"{prefix}_check", None)
        _flash(prefix, "error", str(error))
        return
    except FAILURES as error:
        _flash(prefix, "error", failure_text(error))
        return
    _saved(prefix, check, account_id, unverified=bool(options.get("accept_unverified")))


def _discard_pending(prefix: str) -> None:
    """Forget the checked key and empty the form (callback)."""
    _forget(prefix)
    _empty_form(prefix)
    _flash(prefix, "info", "Discarded: nothing was saved, and the form is empty.")


def _forget(prefix: str) -> None:
    """Forget the last check (dropping its parked credentials) and what was saved."""
    state = st.session_state
    check: KeyCheck | None = state.pop(f"{prefix}_check", None)
    if check is not None:
        binding.discard(check.token)
    state.pop(f"{prefix}_saved", None)
    state.pop(f"{prefix}_accept", None)


def _saved(prefix: str, check: KeyCheck, account_id: int, *, unverified: bool) -> None:
    """Remember what was saved and empty the form; the check stays on screen, its token spent."""
    state = st.session_state
    state.pop(f"{prefix}_accept", None)
    state[f"{prefix}_saved"] = {
        "account_id": account_id,
        "label": check.label,
        "unverified": unverified,
        "rotated": check.account_id is not None,
    }
    _empty_form(prefix)


def _check_typed_key(
    console: Console,
    prefix: str,
    *,
    label: str,
    scopes: list[str],
    account_id: int | None = None,
) -> None:
    """Check the key in the form; save it when nothing needs confirming (callback)."""
    _forget(prefix)
    try:
        check = binding.check_key(
            console, label=label, scopes=scopes, account_id=account_id, **_typed(prefix)
        )
    except FAILURES as error:
        _flash(prefix, "error", failure_text(error))
        _keep_typed(prefix)
        return
    st.session_state[f"{prefix}_check"] = check
    if check.decision is Decision.READY and check.token:
        try:
            saved_id = binding.save(console, check.token)
        except binding.BindingError as error:
            _flash(prefix, "error", str(error))
        except FAILURES as error:
            _flash(prefix, "error", failure_text(error))
        else:
            _saved(prefix, check, saved_id, unverified=False)
            return
    _keep_typed(prefix)


def _show_saved(prefix: str) -> None:
    """Show the key just saved."""
    saved = st.session_state.get(f"{prefix}_saved")
    if not saved:
        return
    what = "Credentials rotated for" if saved["rotated"] else "Bound"
    if saved["unverified"]:
        st.warning(
            f"{what} '{saved['label']}' as **unverified**: it stays unverified until a check "
            "passes from a whitelisted IP.",
            icon=":material/gpp_maybe:",
        )
    else:
        st.success(f"{what} '{saved['label']}': verified and saved.", icon=":material/check:")


def _render_last_check(
    console: Console, prefix: str, submit: Callable[..., None], args: tuple[Any, ...]
) -> None:
    """Show what the last check of a form found and what may be done with it."""
    check: KeyCheck | None = st.session_state.get(f"{prefix}_check")
    if check is not None:
        render_check(check)
        if f"{prefix}_saved" not in st.session_state:
            _offer_retry(prefix, check, submit, args)
            render_confirmation(console, prefix, check)
    if f"{prefix}_kept_until" in st.session_state:
        _release_timer(prefix)


# --- The Bind page ---------------------------------------------------------------------------


def _on_bind_submit(console: Console) -> None:
    """Check the key in the Bind form for a new account (submit and Retry callback)."""
    fields = _fields(BIND)
    _check_typed_key(
        console,
        BIND,
        label=st.session_state.get(f"{fields}_label") or "",
        scopes=list(st.session_state.get(f"{fields}_scopes") or []),
    )


def render_bind(console: Console) -> None:
    """Render the Bind page: the form, then what KuCoin said and what may be saved."""
    state = st.session_state
    released = _release_typed(BIND)
    fields = _fields(BIND)
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
        _field_error(errors, "label")
        credential_inputs(fields, errors)
        st.multiselect(
            "Scopes this account needs",
            options=list(SCOPES),
            default=DEFAULT_SCOPES,
            format_func=scope_name,
            key=f"{fields}_scopes",
            help="The permissions the platform will use; General is always needed.",
        )
        _field_error(errors, "scopes")
        st.form_submit_button(
            "Verify and bind", type="primary", on_click=_on_bind_submit, args=(console,)
        )

    if released:
        st.info(released, icon=":material/timer_off:")
    _show_flash(BIND)
    _show_saved(BIND)
    saved = state.get(f"{BIND}_saved")
    if saved:
        state[SELECTED_ACCOUNT] = saved["account_id"]
        st.page_link(
            ACCOUNT_PAGE,
            label=f"Open '{saved['label']}'",
            icon=":material/manage_accounts:",
            query_params={"account": str(saved["account_id"])},
        )
    _render_last_check(console, BIND, _on_bind_submit, (console,))


# --- An account's lifecycle ------------------------------------------------------------------


def _prefix(account_id: int) -> str:
    return f"account_{account_id}"


def _on_rotate_submit(console: Console, account_id: int, scopes: tuple[str, ...]) -> None:
    """Check the new credential in an account's rotation form (submit and Retry callback)."""
    _check_typed_key(
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
        _flash(key, "error", failure_text(error))
        return
    except ValueError as error:  # a choice lib.console.binding refuses, e.g. no scope at all
        _flash(key, "error", f"{str(error)[:1].upper()}{str(error)[1:]}.")
        return
    _flash(key, "success" if changed else "info", done if changed else unchanged)


def _on_scopes(console: Console, account_id: int) -> None:
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
    _run_action(
        _prefix(account_id),
        lambda: binding.pause(console, account_id),
        "Monitoring paused: the fleet refresh skips this account until it is resumed.",
        "Monitoring was already paused (changed from another session): nothing to do.",
    )


def _on_resume(console: Console, account_id: int) -> None:
    _run_action(
        _prefix(account_id),
        lambda: binding.resume(console, account_id),
        "Monitoring resumed: the next refresh checks this account again.",
        "Monitoring was already running (changed from another session): nothing to do.",
    )


def _on_unbind_request(account_id: int) -> None:
    st.session_state[CONFIRM_UNBIND] = account_id


def _on_unbind_cancel(account_id: int) -> None:
    st.session_state.pop(CONFIRM_UNBIND, None)
    _flash(_prefix(account_id), "info", "Unbind cancelled: nothing changed.")


def _on_unbind_confirm(console: Console, account_id: int, label: str) -> None:
    st.session_state.pop(CONFIRM_UNBIND, None)

    def unbind() -> bool:
        binding.unbind(console, account_id)
        return True

    _run_action(
        _prefix(account_id),
        unbind,
        f"Unbound '{label}': its API Key, Secret and Passphrase are deleted from bindwatch; its "
        "check history and audit log stay. Delete the key on KuCoin too if nothing uses it.",
        "",
    )


def _render_rotation(console: Console, account: store.AccountView) -> None:
    """Rotate the credential in place: new Key, Secret and Passphrase, verified first."""
    prefix = f"{_prefix(account.id)}_rotate"
    released = _release_typed(prefix)
    fields = _fields(prefix)
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
    if released:
        st.info(released, icon=":material/timer_off:")
    _show_flash(prefix)
    _show_saved(prefix)
    _render_last_check(console, prefix, _on_rotate_submit, submit_args)


def _render_scopes(console: Console, account: store.AccountView) -> None:
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


def _render_monitoring(console: Console, account: store.AccountView) -> None:
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


def _render_unbind(console: Console, account: store.AccountView) -> None:
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


def render_lifecycle(console: Console, account: store.AccountView) -> None:
    """Render the actions on one account: rotate, scopes, pause/resume, unbind."""
    _show_flash(_prefix(account.id))
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
