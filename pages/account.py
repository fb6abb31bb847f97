"""account page."""

import streamlit as st

st.title("Account")
st.caption("Coming soon.")
