"""The least a Streamlit search can cost: a search box and a 10,000-row table, nothing else.

bench_page times the same search here as on the Fleet page, so that its figure shows how much
of a rerun is the console's and how much Streamlit's and the browser's own.
"""

import pandas as pd
import streamlit as st

ROWS = 10_000

labels = pd.Series([f"acct-{i:05d}" for i in range(1, ROWS + 1)])
search = st.text_input("Search")
shown = labels[labels.str.contains(search, regex=False)] if search else labels
st.dataframe(pd.DataFrame({"label": shown, "n": range(len(shown))}), hide_index=True)
