"""TinyStudio's Streamlit entry: declares the pages and shared state; pages only lay out and call.

Started by `tinystudio studio` (which sets TINYSTUDIO_DB and Streamlit's flags), not directly.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run app/main.py` puts only app/ on the path
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app.nav import make_pages  # noqa: E402

st.set_page_config(page_title="TinyStudio", page_icon=":material/memory:", layout="wide")
st.session_state.setdefault("session_id", None)
nav = st.navigation(list(make_pages().values()))  # fresh per run: see make_pages
with st.sidebar:
    st.markdown("**TinyStudio** · neural networks for microcontrollers")
nav.run()
