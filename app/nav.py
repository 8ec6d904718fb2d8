"""The studio's pages, declared once so that pages can link to each other."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

_DIR = Path(__file__).resolve().parents[1] / "pages"

_SPECS = {  # key: (file, title, icon, default)
    "sessions": ("sessions.py", "Sessions", ":material/folder_open:", True),
    "design": ("design.py", "Design", ":material/account_tree:", False),
    "train": ("train.py", "Train", ":material/model_training:", False),
    "profile": ("profile.py", "Profile", ":material/speed:", False),
    "ondevice": ("ondevice.py", "Train on device", ":material/school:", False),
    "model": ("model_view.py", "Model view", ":material/schema:", False),
    "compress": ("compress.py", "Compress", ":material/compress:", False),
    "search": ("search.py", "Search", ":material/travel_explore:", False),
    "history": ("history.py", "History", ":material/history:", False),
    "export": ("export.py", "Export", ":material/memory:", False),
}


def make_pages() -> dict[str, st.Page]:
    """Fresh page objects for one script run's st.navigation. st.navigation marks the page it returns as
    runnable on the object itself, so objects shared between browser sessions (threads) race: two sessions
    running at once then fail with "This page cannot be called directly"."""
    return {k: st.Page(_DIR / f, title=t, icon=i, default=d) for k, (f, t, i, d) in _SPECS.items()}


# For st.switch_page and st.page_link, which find the page by its path; never hand these to st.navigation.
PAGES = make_pages()
