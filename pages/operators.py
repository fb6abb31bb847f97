"""Operators: who may open the console, with which role; add, change, remove; recent sign-ins."""

import streamlit as st

from lib import ui
from lib.console import errors, operators
from lib.ui import operators_form


def main() -> None:
    """Draw the Operators page (an admin's only: a viewer's navigation does not have it)."""
    st.title("Operators")
    ui.show_flash()
    console = ui.console()
    st.caption(
        "An admin binds, rotates, re-scopes, pauses and unbinds keys, changes settings and "
        "manages operators; a viewer reads everything but secrets and changes nothing."
    )
    table = operators.operators_frame(console)
    st.dataframe(
        table,
        hide_index=True,
        key="operators_table",
        column_config={
            "since": st.column_config.DatetimeColumn("Since (UTC)", format="YYYY-MM-DD HH:mm"),
            "sessions": st.column_config.NumberColumn("Open sessions"),
        },
    )
    operators_form.render_change(console, list(table["name"]))
    operators_form.render_add(console)
    with st.expander("Recent sign-ins and operator changes"):
        try:
            events = operators.sign_in_events(console)
        except errors.FAILURES as error:
            st.error(ui.failure_text(error))
        else:
            st.dataframe(
                events,
                hide_index=True,
                key="sign_in_events",
                column_config={
                    "at": st.column_config.DatetimeColumn(
                        "At (UTC)", format="YYYY-MM-DD HH:mm:ss", timezone="UTC"
                    )
                },
            )


ui.page(main)
