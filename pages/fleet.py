"""fleet page."""

import streamlit as st

st.title("Fleet")
st.caption("Coming soon.")
