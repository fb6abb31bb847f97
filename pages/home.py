"""Home: what bindwatch is and what is coming."""

import streamlit as st

st.title("bindwatch")
st.write(
    "Bind KuCoin API keys, verify them live before saving, and keep a whole fleet of them "
    "healthy: permissions, IP whitelist, sync freshness and KuCoin's 30-day rule."
)
st.info(
    "To try a key from a terminal today: set KUCOIN_API_KEY, KUCOIN_API_SECRET and "
    "KUCOIN_API_PASSPHRASE, then run `python -m lib check`."
)
