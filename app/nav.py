"""The studio's pages, declared once so that pages can link to each other."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

_DIR = Path(__file__).resolve().parents[1] / "pages"

PAGES = {
    "sessions": st.Page(_DIR / "sessions.py", title="Sessions", icon=":material/folder_open:", default=True),
    "design": st.Page(_DIR / "design.py", title="Design", icon=":material/account_tree:"),
    "profile": st.Page(_DIR / "profile.py", title="Profile", icon=":material/speed:"),
    "model": st.Page(_DIR / "model_view.py", title="Model view", icon=":material/schema:"),
    "history": st.Page(_DIR / "history.py", title="History", icon=":material/history:"),
    "export": st.Page(_DIR / "export.py", title="Export", icon=":material/memory:"),
}
