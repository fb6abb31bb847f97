"""The Import page's parts: the template, the upload, the preview of every line, the summary.

The uploaded file is read once, in memory: Streamlit's copy is removed from its upload store
as soon as it is read (as st.chat_input does with its files), and the uploader is drawn anew
under another key, so no session state keeps it. What stays in session state until the
operator confirms or discards is the preview (no secret) and its token.
"""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
from streamlit.runtime.scriptrunner import get_script_run_ctx
from streamlit.runtime.uploaded_file_manager import UploadedFile

from lib.console import Console, bulk_import
from lib.console.binding import BindingError
from lib.console.bulk_import import ImportPreview, ImportSummary
from lib.console.import_file import MAX_FILE_BYTES, ImportFileError, template
from lib.ui.frame import FLEET_PAGE, guarded, page_link
from lib.ui.presentation import literal

IMPORT = "import"  # widget and state prefix of the Import page
UPLOADS = f"{IMPORT}_uploads"  # files taken so far: the uploader's key, so a new one is drawn
PREVIEW = f"{IMPORT}_preview"
SUMMARY = f"{IMPORT}_summary"
PROBLEM = f"{IMPORT}_problem"
ACCEPT_WARNINGS = f"{IMPORT}_accept_warnings"
ACCEPT_UNVERIFIED = f"{IMPORT}_accept_unverified"


def render_import(console: Console) -> None:
    """Render the Import page: template and upload, or the preview, then the summary."""
    state = st.session_state
    st.caption(
        "Bind many keys at once from a CSV or JSON file, each line checked live as a single "
        "bind; nothing is saved until you confirm the preview."
    )
    problem = state.pop(PROBLEM, None)
    if problem:
        st.error(literal(problem), icon=":material/error:")
    preview: ImportPreview | None = state.get(PREVIEW)
    if preview is None:
        _render_upload(console)
    else:
        _render_preview(console, preview)
    summary: ImportSummary | None = state.get(SUMMARY)
    if summary is not None:
        _render_summary(summary)


def _render_upload(console: Console) -> None:
    """Offer the template and the uploader; preview a file as soon as one is uploaded."""
    state = st.session_state
    left, right = st.columns(2)
    left.download_button(
        "Download the template (CSV)",
        data=template("csv"),
        file_name="bindwatch-keys.csv",
        mime="text/csv",
        key=f"{IMPORT}_template_csv",
        icon=":material/download:",
        on_click="ignore",  # a download changes nothing: no rerun
    )
    right.download_button(
        "Download the template (JSON)",
        data=template("json"),
        file_name="bindwatch-keys.json",
        mime="application/json",
        key=f"{IMPORT}_template_json",
        icon=":material/download:",
        on_click="ignore",
    )
    uploaded = st.file_uploader(
        "File of keys (CSV or JSON)",
        type=["csv", "json"],
        key=f"{IMPORT}_file_{state.get(UPLOADS, 0)}",
        max_upload_size=max(1, MAX_FILE_BYTES // 1_000_000),
        help="Columns: label, api_key, api_secret, passphrase, scopes (as spot;futures), note.",
    )
    st.caption(
        "One line per key, with an optional note. The file is read in memory only: delete it "
        "from your disk once imported."
    )
    if uploaded is not None:
        _preview_file(console, uploaded)


def _preview_file(console: Console, uploaded: UploadedFile) -> None:
    """Check every line of the uploaded file, keep the preview, and draw the page anew."""
    state = st.session_state
    name, data = uploaded.name, uploaded.getvalue()
    _forget_upload(uploaded)
    bar = st.progress(0.0, text="Reading the file…")

    def progress(done: int, total: int) -> None:
        """Move the bar as KuCoin's answers land."""
        bar.progress(done / total if total else 1.0, text=f"Verified {done} of {total} keys")

    try:
        state[PREVIEW] = bulk_import.preview_import(console, data, name=name, on_progress=progress)
    except ImportFileError as error:
        state[PROBLEM] = f"{name}: {error} Nothing was sent to KuCoin or saved."
    finally:
        del data
    state.pop(SUMMARY, None)
    st.rerun()


def _forget_upload(uploaded: UploadedFile) -> None:
    """Drop Streamlit's copy of the file and the uploader holding it (read once, in memory)."""
    state = st.session_state
    state[UPLOADS] = state.get(UPLOADS, 0) + 1  # the next run draws an empty uploader
    ctx = get_script_run_ctx()
    if ctx is not None and isinstance(ctx.uploaded_file_mgr, MemoryUploadedFileManager):
        ctx.uploaded_file_mgr.remove_file(session_id=ctx.session_id, file_id=uploaded.file_id)


def _render_preview(console: Console, preview: ImportPreview) -> None:
    """Show what each line became, and save or discard on the operator's word."""
    st.subheader("Preview")
    st.markdown(f"{preview.counts_text()} Nothing is saved until you confirm.")
    st.dataframe(
        preview.frame(),
        hide_index=True,
        key=f"{IMPORT}_preview_table",
        column_config={
            "line": st.column_config.NumberColumn("Line", width="small"),
            "label": "Label",
            "key": st.column_config.TextColumn("Key", width="small"),
            "note": "Note",
            "cleaned": "Cleaned",
            "decision": "Decision",
            "details": st.column_config.TextColumn("Details", width="large"),
        },
    )
    if preview.token is None:
        st.warning(
            "No line can be saved: fix the lines above and upload the file again.",
            icon=":material/warning:",
        )
        st.button("Upload another file", key=f"{IMPORT}_again", on_click=_discard)
        return
    if preview.with_warnings:
        st.checkbox(
            f"Also save the {preview.with_warnings} keys with warnings (I have read them)",
            key=ACCEPT_WARNINGS,
        )
    if preview.unverified:
        st.checkbox(
            f"Also save the {preview.unverified} keys KuCoin refused only for this machine's "
            "IP, marked unverified",
            key=ACCEPT_UNVERIFIED,
        )
    left, right = st.columns(2)
    left.button(
        "Save the confirmed keys",
        key=f"{IMPORT}_save",
        type="primary",
        icon=":material/save:",
        on_click=guarded(_confirm),
        args=(console,),
    )
    right.button("Discard", key=f"{IMPORT}_discard", on_click=_discard)


def _confirm(console: Console) -> None:
    """Save the preview's ready lines and the confirmed ones; keep the summary (callback)."""
    state = st.session_state
    preview: ImportPreview | None = state.pop(PREVIEW, None)
    if preview is None or preview.token is None:
        return
    try:
        state[SUMMARY] = bulk_import.confirm_import(
            console,
            preview.token,
            accept_warnings=bool(state.get(ACCEPT_WARNINGS)),
            accept_unverified=bool(state.get(ACCEPT_UNVERIFIED)),
        )
    except BindingError as error:
        state[PROBLEM] = str(error)


def _discard() -> None:
    """Forget the preview and its credentials (callback)."""
    preview: ImportPreview | None = st.session_state.pop(PREVIEW, None)
    if preview is not None:
        bulk_import.discard_import(preview.token)


def _render_summary(summary: ImportSummary) -> None:
    """Show what was bound and what was not, and why."""
    st.subheader("Summary")
    if summary.bound:
        st.success(summary.text(), icon=":material/check_circle:")
    else:
        st.warning(summary.text(), icon=":material/warning:")
    st.dataframe(
        summary.frame(),
        hide_index=True,
        key=f"{IMPORT}_summary_table",
        column_config={
            "line": st.column_config.NumberColumn("Line", width="small"),
            "label": "Label",
            "key": st.column_config.TextColumn("Key", width="small"),
            "bound": st.column_config.CheckboxColumn("Bound", width="small"),
            "account_id": st.column_config.NumberColumn("Account", width="small"),
            "outcome": st.column_config.TextColumn("Outcome", width="large"),
        },
    )
    page_link(FLEET_PAGE, label="Open the Fleet", icon=":material/monitoring:")
