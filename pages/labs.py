"""Labs: the challenges of the student's courses, their instructions, submitting a version, the student's own
submissions with every check, and the leaderboard. What is shown is what the store lets this user see."""
from __future__ import annotations

import streamlit as st

import store as db
from app import lab_results, labs, widgets
from app.auth import current_user
from app.lab_jobs import queue_grading, resume_grading
from app.lab_view import challenge_facts, check_table, open_submission, pick_challenge, submission_table
from app.state import get_store, select_session, switch_to

st.title("Labs")
store = get_store()
user = current_user()
resume_grading()

info = pick_challenge(store, user)
if info is None:
    st.stop()
ch = labs.load(store, info.id, user=user)
about_t, submit_t, mine_t, board_t = st.tabs(["Challenge", "Submit", "My submissions", "Leaderboard"])

with about_t:
    linked = st.query_params.get("submission")
    if linked is not None:  # a link to a submission: shown only when this user may see it
        with widgets.user_errors():
            check_table(open_submission(store, linked, user))
    challenge_facts(ch, info)
    st.markdown(ch.instructions or "_No instructions._")
    if ch.start:
        if st.button("Start a session from the starting model", help=f"{ch.start}, sized for {ch.dataset}"):
            with widgets.user_errors():
                s = labs.start_session(store, info.id, user=user)
                select_session(s.id)
                switch_to("design")

with submit_t:
    sessions = db.list_sessions(store, **labs.user_kw(user))
    if not sessions:
        st.info("You have no session yet: start one from the starting model (Challenge tab) or on Sessions.")
    else:
        by_id = {s.id: s for s in sessions}
        sid = st.selectbox("Session", list(by_id), format_func=lambda i: f"{by_id[i].name} (#{i})", key="lab_session")
        versions = db.list_versions(store, sid, **labs.user_kw(user))
        cur = by_id[sid].current_version_id
        vids = [v.id for v in reversed(versions)]
        labels = {v.id: f"{v.label} · {v.action}" + (" (current)" if v.id == cur else "") for v in versions}
        vid = st.selectbox("Version", vids, format_func=labels.get, key=f"lab_version_{sid}")
        if not ch.accepts():
            st.warning(f"The deadline ({info.deadline}) has passed.", icon=":material/timer_off:")
        if st.button(f"Submit {labels[vid].split(' ')[0]} for grading", type="primary"):
            with widgets.user_errors():
                sub = labs.submit_version(store, info.id, vid, user=user)
                queue_grading(store, sub, owner=None if user is None else user.id)
                st.success(f"Submission #{sub.id} is queued for grading; see My submissions.",
                           icon=":material/hourglass_top:")


@st.fragment(run_every=2.0)
def mine() -> None:
    rows = lab_results.history(store, info.id, user=user)
    if not rows:
        st.info("No submissions yet.")
        return
    submission_table(rows)
    pick = st.selectbox("Details of submission", [r["submission"] for r in reversed(rows)],
                        format_func=lambda i: f"#{i}", key="lab_detail")
    with widgets.user_errors():
        check_table(open_submission(store, pick, user))


with mine_t:
    mine()

with board_t:
    rows = lab_results.leaderboard(store, info.id, user=user)
    if not rows:
        st.info("No graded submission yet.")
    else:
        st.dataframe(rows, hide_index=True, width="stretch")
