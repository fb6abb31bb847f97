"""The frame's failure handling, driven by AppTest: a store or vault failure is a message."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def frame_app() -> None:
    """Pages that fail in their body or in a callback, run inside ui.run like app.py does."""
    import streamlit as st

    from lib import store, ui
    from lib.vault import KeyFileInvalid

    def damaged_key(*_: object) -> None:
        raise KeyFileInvalid("master.key is not a keyring. Restore it from your backup.")

    def programming_error() -> None:
        raise ValueError("a bug, not an operator's problem")

    def actions() -> None:
        st.title("Actions")
        st.button("Bind", key="bind", on_click=ui.guarded(damaged_key), args=("console",))
        st.button("Bug", key="bug", on_click=ui.guarded(programming_error))
        if st.button("Again", key="again"):
            st.session_state["reruns"] = st.session_state.get("reruns", 0) + 1
            st.rerun()
        st.write(f"reruns: {st.session_state.get('reruns', 0)}")
        if st.button("Stop", key="stop"):
            st.stop()
        st.write("after the stop button")
        if st.button("Open 7", key="open"):
            raise store.AccountNotFound("No account has id 7.")

    ui.run(st.navigation([st.Page(actions)], position="hidden"))


def open_app() -> AppTest:
    """Return the test app, run once."""
    return AppTest.from_function(frame_app, default_timeout=20).run()


def test_a_store_failure_in_a_page_body_is_a_message_below_what_was_drawn() -> None:
    at = open_app()
    at.button(key="open").click().run()

    assert not at.exception
    assert [t.value for t in at.title] == ["Actions"]
    assert [e.value for e in at.error] == ["No account has id 7."]


def test_a_vault_failure_in_a_guarded_callback_is_a_message_on_the_page() -> None:
    at = open_app()
    at.button(key="bind").click().run()

    assert not at.exception
    assert [e.value for e in at.error] == [
        "bindwatch cannot use its credential store: master.key is not a keyring. "
        "Restore it from your backup."
    ]
    assert [t.value for t in at.title] == ["Actions"]  # the page is drawn below the message
    at.run()
    assert not at.error  # shown once


def test_other_errors_and_reruns_and_stops_pass_through_the_frame() -> None:
    at = open_app()
    at.button(key="bug").click().run()
    assert len(at.exception) == 1 and not at.error  # a bug stays a crash, to be fixed

    at = open_app()
    at.button(key="again").click().run()
    assert "reruns: 1" in [m.value for m in at.markdown]
    at.button(key="stop").click().run()
    assert not at.exception and not at.error
    assert "after the stop button" not in [m.value for m in at.markdown]
