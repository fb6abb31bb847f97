"""The master key backup notice: on every page until an admin confirms a copy was made."""

from __future__ import annotations

import streamlit as st

from lib.console import Console, Role
from lib.console.key_backup import confirm_key_backup, key_backup
from lib.console.operators import SignedIn
from lib.ui.presentation import literal
from lib.ui.sign_in import acting_console

CONFIRM_BUTTON = "I have backed up the master key file"


def key_backup_notice(installation: Console, operator: SignedIn) -> None:
    """Say where the master key file is and that it must be backed up, until an admin confirms."""
    backup = key_backup(installation)
    if backup.confirmed:
        return
    with st.container(border=True, key="key_backup_notice"):
        st.warning(
            "**Back up the master key file now, apart from the database:** "
            f"{literal(backup.key_file)}  \n"
            "It encrypts every stored credential. Without it the bound keys cannot be "
            "decrypted, and nothing in the database can bring it back; with it, anyone who "
            "also has the database can read them. Keep the copy somewhere the database backups "
            "do not go.",
            icon=":material/key:",
        )
        if operator.role is not Role.ADMIN:
            st.caption("An admin confirms the backup here; this notice stays until then.")
        elif st.button(CONFIRM_BUTTON, key="confirm_key_backup", icon=":material/task_alt:"):
            confirm_key_backup(acting_console(installation, installation, operator))
            st.rerun()
