"""bind page."""

import streamlit as st

st.title("Bind")
st.caption("Coming soon.")
