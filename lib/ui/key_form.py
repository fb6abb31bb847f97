"""The credentials form the Bind page and an account's rotation share: type, check, confirm.

Typed credentials: after a check that saved nothing, the Key, Secret and Passphrase fields keep
what was typed (Secret and Passphrase masked), so that only the wrong field needs typing again
and Retry re-checks without a new paste. The values then live only in the browser's fields and
in Streamlit's own state of those widgets, which Streamlit drops as soon as the form is not
drawn (another page, another account); no check, message or log holds them. The fields are
emptied when the key is saved or discarded, and KEEP_TYPED_S after the last check. A checked
key that may be saved waits in lib.console.binding's pending slot, named by a token, until
confirmed.

Each form has a prefix (its widgets' keys and session state), which is also its flash slot.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import streamlit as st

from lib.console import Console, binding
from lib.console.binding import BindingError, Decision, KeyCheck
from lib.console.binding_input import FIELD_NAMES
from lib.console.errors import FAILURES
from lib.secret import Secret
from lib.ui.check_report import render_check
from lib.ui.frame import failure_text
from lib.ui.session import flash, show_flash

# Per credential field: masked, placeholder, help.
_CREDENTIAL_INPUTS = (
    (
        "api_key",
        False,
        "24 hexadecimal characters",
        "From KuCoin → Profile → API Management. Remove any spaces when pasting.",
    ),
    (
        "api_secret",
        True,
        "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
        "Shown once, when the key was created. Remove any spaces when pasting.",
    ),
    (
        "passphrase",
        True,
        None,
        "The API Passphrase typed when creating this key on KuCoin, not the login or "
        "trading password.",
    ),
)
CREDENTIAL_FIELDS = tuple(name for name, *_ in _CREDENTIAL_INPUTS)
# Typed credentials stay in a form as long as a checked key waits for confirmation.
KEEP_TYPED_S = binding.PENDING_TTL_S
CHECKING = "Checking the key with KuCoin…"  # shown while the key's check runs (seconds)
TIMER_S = 30  # how often an idle page looks whether its typed credentials are due to go


# --- Typed credentials -----------------------------------------------------------------------


def form_fields(prefix: str) -> str:
    """Return the widget-key prefix of a credentials form's current (possibly emptied) fields."""
    return f"{prefix}_{st.session_state.get(f'{prefix}_generation', 0)}"


def _keep_typed(prefix: str) -> None:
    """Let the form keep what was typed until KEEP_TYPED_S from now."""
    st.session_state[f"{prefix}_kept_until"] = time.time() + KEEP_TYPED_S


def _empty_form(prefix: str) -> None:
    """Draw the form with new, empty fields from the next widget run on."""
    # New keys make new widgets: the browser empties them too, and Streamlit drops the old ones.
    state = st.session_state
    state[f"{prefix}_generation"] = state.get(f"{prefix}_generation", 0) + 1
    state.pop(f"{prefix}_kept_until", None)


def release_typed(prefix: str) -> str | None:
    """Empty a form whose typed credentials are due to go; return the message, if any, to show."""
    state = st.session_state
    until = state.get(f"{prefix}_kept_until")
    if until is None:
        return None
    if f"{form_fields(prefix)}_api_secret" not in state:
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


def field_error(errors: dict[str, str], name: str) -> None:
    """Show what to fix in one field, right under it."""
    if name in errors:
        st.error(errors[name], icon=":material/error:")


def credential_inputs(fields: str, errors: dict[str, str]) -> None:
    """Render the API Key, Secret and Passphrase inputs, with each field's error under it."""
    for name, masked, placeholder, help_text in _CREDENTIAL_INPUTS:
        st.text_input(
            FIELD_NAMES[name],
            key=f"{fields}_{name}",
            type="password" if masked else "default",
            placeholder=placeholder,
            help=help_text,
        )
        field_error(errors, name)


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
    except BindingError as error:
        st.session_state.pop(f"{prefix}_check", None)
        flash("error", str(error), prefix)
        return
    except FAILURES as error:
        flash("error", failure_text(error), prefix)
        return
    _saved(prefix, check, account_id, unverified=bool(options.get("accept_unverified")))


def _discard_pending(prefix: str) -> None:
    """Forget the checked key and empty the form (callback)."""
    _forget(prefix)
    _empty_form(prefix)
    flash("info", "Discarded: nothing was saved, and the form is empty.", prefix)


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


def check_typed_key(
    console: Console,
    prefix: str,
    *,
    label: str,
    scopes: list[str],
    account_id: int | None = None,
) -> None:
    """Check the key in the form; save it when nothing needs confirming (callback)."""
    _forget(prefix)
    typed, fields = st.session_state, form_fields(prefix)
    try:
        # Read from the widgets into this one call; Secret and Passphrase travel wrapped.
        with st.spinner(CHECKING):  # a callback draws at the top of the page: seen at once
            check = binding.check_key(
                console,
                label=label,
                scopes=scopes,
                account_id=account_id,
                api_key=typed.get(f"{fields}_api_key") or "",
                api_secret=Secret(typed.get(f"{fields}_api_secret") or ""),
                passphrase=Secret(typed.get(f"{fields}_passphrase") or ""),
            )
    except FAILURES as error:
        flash("error", failure_text(error), prefix)
        _keep_typed(prefix)
        return
    st.session_state[f"{prefix}_check"] = check
    if check.decision is Decision.READY and check.token:
        try:
            saved_id = binding.save(console, check.token)
        except BindingError as error:
            flash("error", str(error), prefix)
        except FAILURES as error:
            flash("error", failure_text(error), prefix)
        else:
            _saved(prefix, check, saved_id, unverified=False)
            return
    _keep_typed(prefix)


def show_saved(prefix: str) -> None:
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


def show_outcome(prefix: str, released: str | None) -> None:
    """Show, under a form, why its fields were emptied, its action's message and what was saved."""
    if released:
        st.info(released, icon=":material/timer_off:")
    show_flash(prefix)
    show_saved(prefix)


def render_last_check(
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
