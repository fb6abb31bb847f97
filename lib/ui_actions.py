"""Streamlit controls for binding a key and for an account's lifecycle after that.

`render_bind` is the Bind page; `render_lifecycle` is the account page's actions: rotate the
credential, change scopes, pause or resume monitoring, unbind. Both call lib.binding only.

Secrets are typed into form widgets and read once, in the submit button's callback, which
clears them from widget state before the script runs again; what stays in session state is
the KeyCheck (no secret) and its token, which names the credentials parked in lib.binding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from lib import binding, fleet, store
from lib.binding import Decision, KeyCheck
from lib.binding_input import FIELD_NAMES, SCOPES
from lib.console import Console
from lib.health import PERMISSION_MARKS

CREDENTIAL_FIELDS = ("api_key", "api_secret", "passphrase")
DEFAULT_SCOPES = ["spot"]
FLEET_PAGE = "pages/fleet.py"
ACCOUNT_PAGE = "pages/account.py"
CONFIRM_UNBIND = "confirm_unbind"  # session state: the id of the account awaiting confirmation
SELECTED_ACCOUNT = "selected_account"  # session state the account page falls back to

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
        {"success": st.success, "error": st.error, "info": st.info}[kind](text)


# --- Credentials form ------------------------------------------------------------------------


def _field_error(errors: dict[str, str], name: str) -> None:
    """Show what to fix in one field, right under it."""
    if name in errors:
        st.error(errors[name], icon=":material/error:")


def credential_inputs(prefix: str, errors: dict[str, str]) -> None:
    """Render the API Key, Secret and Passphrase inputs, with each field's error under it."""
    st.text_input(
        "API Key",
        key=f"{prefix}_api_key",
        placeholder="24 hexadecimal characters",
        help="From KuCoin → Profile → API Management. Remove any spaces when pasting.",
    )
    _field_error(errors, "api_key")
    st.text_input(
        "Secret",
        key=f"{prefix}_api_secret",
        type="password",
        placeholder="xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
        help="Shown once, when the key was created. Remove any spaces when pasting.",
    )
    _field_error(errors, "api_secret")
    st.text_input(
        "Passphrase",
        key=f"{prefix}_passphrase",
        type="password",
        help="The API Passphrase typed when creating this key on KuCoin, not the login or "
        "trading password.",
    )
    _field_error(errors, "passphrase")


def take_credentials(prefix: str) -> dict[str, str]:
    """Return the typed credentials and clear them from widget state (call in a callback)."""
    state = st.session_state
    values = {name: state.get(f"{prefix}_{name}") or "" for name in CREDENTIAL_FIELDS}
    for name in CREDENTIAL_FIELDS:
        state[f"{prefix}_{name}"] = ""
    return values


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
    result = check.result
    assert result is not None
    if result.is_master:
        return f"Master account, UID {result.uid}"
    name = f" {result.sub_name}" if result.sub_name else ""
    return f"Sub-account{name}, UID {result.uid}"


def _show_failure(check: KeyCheck) -> None:
    """Show KuCoin's refusal: the diagnosis for its code and the fix."""
    result, diagnosis = check.result, check.diagnosis
    assert result is not None and diagnosis is not None
    st.error(f"API Status: {check.api_status}", icon=":material/link_off:")
    st.markdown(f"**Why:** {diagnosis.cause}")
    st.markdown(f"**Fix:** {diagnosis.fix}")
    if result.code == "400006" and result.seen_ip:
        st.markdown(
            f"**The IP KuCoin saw:** `{result.seen_ip}`: add it to the key's IP whitelist, "
            "or disable IP restriction for testing."
        )
    if result.code == "400002" and result.clock_offset_ms is not None:
        st.markdown(
            f"**Clock offset measured:** {result.clock_offset_ms:+d} ms (KuCoin minus this "
            "machine)."
        )
    kept = " The account keeps its current credential." if check.account_id else ""
    st.caption(
        f"KuCoin said: {result.message or '-'} (HTTP {result.http_status or '-'}"
        f"{', ' + result.endpoint if result.endpoint else ''}). Nothing was saved.{kept}"
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
        f"Checked in {result.latency_ms} ms; KuCoin sees this machine as {result.seen_ip or '-'}."
    )

    st.markdown("**Permissions** (against the scopes this account needs)")
    st.dataframe(_permissions_table(check), hide_index=True)

    if result.ip_whitelist:
        st.markdown(f"**IP whitelist:** `{result.ip_whitelist}` (KuCoin masks the middle)")
    else:
        st.markdown("**IP whitelist:** none: any IP may use this key")
    if check.whitelist is not None and len(check.whitelist):
        st.dataframe(_whitelist_table(check), hide_index=True)
        if not check.whitelist["is_platform_ip"].any():
            st.caption("Add the platform's egress IPs in Settings to see which ones it covers.")

    spot = fleet.spot_frame(result).rename(columns=_BALANCE_COLUMNS)
    futures = fleet.futures_frame(result).rename(columns=_BALANCE_COLUMNS)
    st.markdown(
        f"**Balances:** {_count(len(spot), 'non-zero spot row')}, "
        f"{_count(len(futures), 'futures currency', 'futures currencies')}"
    )
    if len(spot):
        st.dataframe(spot, hide_index=True)
    if len(futures):
        st.dataframe(futures, hide_index=True)
    if result.message:
        st.caption(f"Note: {result.message}")

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
    elif check.assessment is not None and check.assessment.transient:
        _show_failure(check)
        st.caption("A retry may pass: nothing is known to be wrong with the key yet. Retry.")
    else:
        _show_failure(check)


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
    _saved(prefix, check, account_id, unverified=bool(options.get("accept_unverified")))


def _discard_pending(prefix: str) -> None:
    """Forget the checked key (callback)."""
    _forget(prefix)
    _flash(prefix, "info", "Discarded: nothing was saved.")


def _forget(prefix: str) -> None:
    """Forget the last check (dropping its parked credentials) and what was saved."""
    state = st.session_state
    check: KeyCheck | None = state.pop(f"{prefix}_check", None)
    if check is not None:
        binding.discard(check.token)
    state.pop(f"{prefix}_saved", None)
    state.pop(f"{prefix}_accept", None)


def _saved(prefix: str, check: KeyCheck, account_id: int, *, unverified: bool) -> None:
    """Remember what was saved; the check stays on screen, its token is spent."""
    state = st.session_state
    state.pop(f"{prefix}_accept", None)
    state[f"{prefix}_saved"] = {
        "account_id": account_id,
        "label": check.label,
        "unverified": unverified,
        "rotated": check.account_id is not None,
    }
    if prefix == BIND:
        _renew_bind_form(label="", scopes=list(DEFAULT_SCOPES))


def _check_typed_key(
    console: Console,
    prefix: str,
    credentials: dict[str, str],
    *,
    label: str,
    scopes: Iterable[str],
    account_id: int | None = None,
) -> KeyCheck:
    """Check the typed key and save it when nothing needs confirming (submit callback)."""
    _forget(prefix)
    check = binding.check_key(
        console, label=label, scopes=list(scopes), account_id=account_id, **credentials
    )
    del credentials
    st.session_state[f"{prefix}_check"] = check
    if check.decision is Decision.READY and check.token:
        try:
            saved_id = binding.save(console, check.token)
        except binding.BindingError as error:
            _flash(prefix, "error", str(error))
        else:
            _saved(prefix, check, saved_id, unverified=False)
    return check


def _show_saved(prefix: str) -> None:
    """Show the key just saved, with the way to its account."""
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


# --- The Bind page ---------------------------------------------------------------------------


def _bind_fields() -> str:
    """Return the widget-key prefix of the Bind form's current generation."""
    return f"{BIND}_{st.session_state.get(f'{BIND}_generation', 0)}"


def _on_bind_submit(console: Console) -> None:
    """Check the pasted key for a new account (submit callback)."""
    state = st.session_state
    fields = _bind_fields()
    credentials = take_credentials(fields)
    label = state.get(f"{fields}_label") or ""
    scopes = list(state.get(f"{fields}_scopes") or [])
    check = _check_typed_key(console, BIND, credentials, label=label, scopes=scopes)
    del credentials
    if f"{BIND}_saved" not in state:
        # Keep what is not secret, so that only the flagged fields need typing again.
        _renew_bind_form(label=check.label or label, scopes=scopes)


def _renew_bind_form(*, label: str, scopes: list[str]) -> None:
    """Render the Bind form's widgets afresh next run, starting from these values."""
    # New keys make new widgets, so their defaults show in the browser too, where
    # clear_on_submit has emptied every field of the form just submitted.
    state = st.session_state
    state[f"{BIND}_generation"] = state.get(f"{BIND}_generation", 0) + 1
    state[f"{BIND}_keep"] = {"label": label, "scopes": scopes}


def render_bind(console: Console) -> None:
    """Render the Bind page: the form, then what KuCoin said and what may be saved."""
    state = st.session_state
    keep = state.get(f"{BIND}_keep") or {"label": "", "scopes": list(DEFAULT_SCOPES)}
    fields = _bind_fields()
    check: KeyCheck | None = state.get(f"{BIND}_check")
    errors = check.errors if check is not None else {}

    st.caption(
        "Paste the key from KuCoin → Profile → API Management. bindwatch cleans the paste, "
        "checks the key live with KuCoin and saves it only if it works (or once you confirm "
        "its warnings). Secrets are encrypted at rest and never shown again."
    )
    with st.form(f"{BIND}_form", clear_on_submit=True):
        st.text_input(
            "Label",
            value=keep["label"],
            key=f"{fields}_label",
            placeholder="e.g. mm-bot-01",
            help="How this account appears in the fleet.",
        )
        _field_error(errors, "label")
        credential_inputs(fields, errors)
        st.multiselect(
            "Scopes this account needs",
            options=list(SCOPES),
            default=keep["scopes"],
            format_func=scope_name,
            key=f"{fields}_scopes",
            help="The permissions the platform will use; General is always needed.",
        )
        _field_error(errors, "scopes")
        st.form_submit_button(
            "Verify and bind", type="primary", on_click=_on_bind_submit, args=(console,)
        )

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
    if check is not None:
        render_check(check)
        if saved is None:
            render_confirmation(console, BIND, check)


# --- An account's lifecycle ------------------------------------------------------------------


def _prefix(account_id: int) -> str:
    return f"account_{account_id}"


def _on_rotate_submit(console: Console, account: store.AccountView) -> None:
    """Check the new credential for an account; rotate when nothing needs confirming."""
    prefix = f"{_prefix(account.id)}_rotate"
    _check_typed_key(
        console,
        prefix,
        take_credentials(prefix),
        label=account.label,
        scopes=account.scopes,
        account_id=account.id,
    )


def _run_action(key: str, action: Callable[[], bool], done: str, unchanged: str) -> None:
    """Run one lifecycle action and leave its message (callback)."""
    try:
        changed = action()
    except (store.StoreError, ValueError) as error:
        _flash(key, "error", f"{str(error)[:1].upper()}{str(error)[1:]}")
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
        "Scopes unchanged.",
    )


def _on_pause(console: Console, account_id: int) -> None:
    _run_action(
        _prefix(account_id),
        lambda: binding.pause(console, account_id),
        "Monitoring paused: the fleet refresh skips this account until it is resumed.",
        "Monitoring was already paused.",
    )


def _on_resume(console: Console, account_id: int) -> None:
    _run_action(
        _prefix(account_id),
        lambda: binding.resume(console, account_id),
        "Monitoring resumed.",
        "Monitoring was already running.",
    )


def _on_unbind_request(account_id: int) -> None:
    st.session_state[CONFIRM_UNBIND] = account_id


def _on_unbind_cancel() -> None:
    st.session_state.pop(CONFIRM_UNBIND, None)


def _render_rotation(console: Console, account: store.AccountView) -> None:
    """Rotate the credential in place: new Key, Secret and Passphrase, verified first."""
    prefix = f"{_prefix(account.id)}_rotate"
    check: KeyCheck | None = st.session_state.get(f"{prefix}_check")
    st.caption(
        "Paste the new key. It is checked with KuCoin first; the label, scopes and history "
        "stay, and the old credential is destroyed once the new one is saved."
    )
    with st.form(f"{prefix}_form", clear_on_submit=True):
        credential_inputs(prefix, check.errors if check is not None else {})
        st.form_submit_button(
            "Verify and rotate", type="primary", on_click=_on_rotate_submit, args=(console, account)
        )
    _show_flash(prefix)
    _show_saved(prefix)
    if check is not None:
        render_check(check)
        if f"{prefix}_saved" not in st.session_state:
            render_confirmation(console, prefix, check)


def _render_scopes(console: Console, account: store.AccountView) -> None:
    key = _prefix(account.id)
    st.session_state.setdefault(f"{key}_scopes", list(account.scopes))
    st.multiselect(
        "Scopes this account needs",
        options=list(SCOPES),
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
    state = st.session_state
    if state.get(CONFIRM_UNBIND) != account.id:
        st.caption("Destroys this account's credentials; its check history and audit log stay.")
        st.button(
            "Unbind…",
            key=f"{_prefix(account.id)}_unbind",
            on_click=_on_unbind_request,
            args=(account.id,),
        )
        return
    with st.container(border=True):
        st.warning(binding.unbind_summary(console, account.id), icon=":material/delete_forever:")
        left, right = st.columns(2)
        confirmed = left.button("Confirm: unbind", key="unbind_confirm", type="primary")
        right.button("Cancel", key="unbind_cancel", on_click=_on_unbind_cancel)
    if confirmed:
        try:
            binding.unbind(console, account.id)
        except store.StoreError as error:
            state.pop(CONFIRM_UNBIND, None)
            st.error(str(error))
            return
        state.pop(CONFIRM_UNBIND, None)
        st.switch_page(FLEET_PAGE)


def render_lifecycle(console: Console, account: store.AccountView) -> None:
    """Render the actions on one account: rotate, scopes, pause/resume, unbind."""
    key = _prefix(account.id)
    _show_flash(key)
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
    rotate, scopes, monitoring, unbind = st.tabs(
        ["Rotate credentials", "Scopes", "Monitoring", "Unbind"]
    )
    with rotate:
        _render_rotation(console, account)
    with scopes:
        _render_scopes(console, account)
    with monitoring:
        _render_monitoring(console, account)
    with unbind:
        _render_unbind(console, account)
