"""Search: architectures (a family, or the current version's marked knobs) under MCU limits, in the background,
with live progress and a Pareto plot; click a point, accept it as a new version."""
from __future__ import annotations

import streamlit as st

from app.search_view import live_study, note_running, pick_study, start, study_form, study_results
from app.state import require_current, session_caption

st.title("Search")
s, v, graph = require_current()
session_caption(s, v)

with st.expander("New study", expanded=True):
    values = study_form(s, v, graph)
if values is not None:
    start(s, v, graph, values)
    st.rerun()

note_running(s.id)
live_study(s.id)
study = pick_study(s.id)
if study is None:
    st.caption("No study in this session yet: set one up above and start it.")
elif study.status != "running":
    study_results(s, v, study)
