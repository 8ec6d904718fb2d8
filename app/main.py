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

from app.auth import account_sidebar, login_gate  # noqa: E402
from app.nav import make_pages  # noqa: E402
from app.state import base_store, sync_url, url_params  # noqa: E402
from store.errors import NotFoundError, ReadOnlyError  # noqa: E402

# A local file: a ":material/...:" icon makes the browser fetch the favicon from fonts.gstatic.com, and nothing
# may leave the machine (labs run offline). Streamlit serves the file from its own media route.
ICON = ROOT / "app" / "assets" / "favicon.png"

st.set_page_config(page_title="TinyStudio", page_icon=str(ICON), layout="wide")
st.session_state.setdefault("session_id", None)
pages = make_pages()  # fresh per run: see make_pages
# The sidebar's links are drawn here rather than by st.navigation: its own links drop the query string, so
# every page change would make two history entries (the bare path, then the place written back) and the
# browser's back button would seem to do nothing.
nav = st.navigation(list(pages.values()), position="hidden")
# A lab server (a store with accounts) shows only the login form until this tab logs in: no page runs before,
# and the place in the URL is read only after the login (as the account that logged in).
user = login_gate(base_store())
note = sync_url(nav.url_path)  # after st.navigation (the page is known), before the page reads the open session
with st.sidebar:
    st.markdown("**TinyStudio** · neural networks for microcontrollers")
    for key, page in pages.items():
        if key == "instructor" and user is not None and user.role != "instructor":
            continue  # a student has no use for it (and the page and the store refuse them anyway)
        st.page_link(page, query_params=url_params())
    account_sidebar(user)
if note:
    st.warning(note, icon=":material/link_off:")
try:
    nav.run()
except (NotFoundError, ReadOnlyError) as e:  # the store refused this account a row (or it was deleted meanwhile)
    st.error(str(e), icon=":material/block:")
