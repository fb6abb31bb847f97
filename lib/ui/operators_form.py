"""The Operators page's forms: add an operator; change one's role, or remove them.

Each action ends with a message in the page's flash slot; the services refuse what the
operator's role, or the last-admin rule, does not allow.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from lib.console import Console, Role, operators
from lib.console.errors import FAILURES
from lib.secret import Secret
from lib.ui.frame import failure_text
from lib.ui.session import flash

ADD = "operator_add"  # widget prefix of the add form
CHANGE = "operator_change"  # widget prefix of the change form


def _act(action: Callable[[], str]) -> None:
    """Run an action and leave its message (or what was refused) for the page."""
    try:
        done = action()
    except FAILURES as error:
        flash("error", failure_text(error))
        return
    flash("success", done)


def _on_add(console: Console) -> None:
    """Add the operator typed in the add form (its callback; the form empties itself)."""
    state = st.session_state
    name, role = state.get(f"{ADD}_name", ""), state.get(f"{ADD}_role", Role.VIEWER.value)
    password = Secret(state.get(f"{ADD}_password", ""))
    confirm = Secret(state.get(f"{ADD}_confirm", ""))
    for typed in (f"{ADD}_password", f"{ADD}_confirm"):  # no password stays in session state
        state[typed] = ""
    if password != confirm:
        flash("error", "The two passwords differ: nobody was added. Type the same one twice.")
        return

    def add() -> str:
        added = operators.add_operator(console, name, password, role)
        return f"Added {added.name} as {added.role.value}."

    _act(add)


def render_add(console: Console) -> None:
    """Draw the form that adds an operator with a password."""
    st.subheader("Add an operator")
    with st.form(ADD):
        name_col, role_col = st.columns([3, 1])
        name_col.text_input("Name", key=f"{ADD}_name", help=operators.OPERATOR_NAME_RULE)
        role_col.selectbox("Role", [r.value for r in Role], index=1, key=f"{ADD}_role")
        first, second = st.columns(2)
        first.text_input("Password", type="password", key=f"{ADD}_password")
        second.text_input("Password again", type="password", key=f"{ADD}_confirm")
        st.caption(
            f"{operators.PASSWORD_RULE} Tell it to the operator in person; they can have it "
            "changed with `python -m lib operators passwd NAME`."
        )
        st.form_submit_button("Add operator", on_click=_on_add, args=(console,))


def _on_role(console: Console) -> None:
    """Give the chosen operator the chosen role (callback)."""
    name = st.session_state.get(f"{CHANGE}_name", "")
    role = st.session_state.get(f"{CHANGE}_role", Role.VIEWER.value)

    def change() -> str:
        changed = operators.set_role(console, name, role)
        return f"{name} is now {role}." if changed else f"{name} was {role} already."

    _act(change)


def _on_remove(console: Console) -> None:
    """Remove the chosen operator (callback, after the confirmation box was ticked)."""
    name = st.session_state.get(f"{CHANGE}_name", "")
    if not st.session_state.get(f"{CHANGE}_confirm"):
        flash("info", f"Tick the box to confirm removing {name}: nothing changed.")
        return

    def remove() -> str:
        operators.remove_operator(console, name)
        return f"Removed {name}: their sessions ended; the audit log keeps their actions."

    _act(remove)


def render_change(console: Console, names: list[str]) -> None:
    """Draw the form that changes an operator's role or removes them."""
    if not names:
        return
    st.subheader("Change or remove an operator")
    pick, role, _ = st.columns([2, 1, 1])
    pick.selectbox("Operator", names, key=f"{CHANGE}_name")
    role.selectbox("Role", [r.value for r in Role], key=f"{CHANGE}_role")
    left, right, confirm = st.columns([1, 1, 2], vertical_alignment="center")
    left.button("Change role", key=f"{CHANGE}_save", on_click=_on_role, args=(console,))
    right.button("Remove", key=f"{CHANGE}_remove", on_click=_on_remove, args=(console,))
    confirm.checkbox("Yes, remove this operator", key=f"{CHANGE}_confirm")
