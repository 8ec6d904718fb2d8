"""Instructor: publish challenges (a built-in lab in one click, a TOML file with its files, or the form), the
dashboard of a challenge (submissions per student, grades, CSV, hidden names, regrades) and a read-only DuckDB
query over the results. The store refuses all of it to a student, whatever the page shows."""
from __future__ import annotations

import datetime as dt

import streamlit as st

from app import lab_results, labs, widgets
from app.accounts_view import students_tab
from app.auth import current_user
from app.lab_jobs import queue_grading, resume_grading
from app.lab_view import check_table, open_submission, pick_challenge, submission_table
from app.state import get_store
from engine.data import BUILTINS
from hwmodels.mcu import load_mcus
from store.challenges import queue_again, set_hide_names

st.title("Instructor")
store = get_store()
user = current_user()
if user is not None and user.role != "instructor":
    st.error("This page is for instructors.", icon=":material/block:")
    st.stop()
resume_grading()

publish_t, dash_t, query_t, students_t = st.tabs(["Publish", "Dashboard", "Query results", "Students"])

with publish_t:
    courses = labs.course_choices(store, user)
    course = st.selectbox("Course", list(courses), format_func=courses.get, key="pub_course",
                          help="The students who see the challenge")
    st.subheader("Built-in labs")
    for name, title in labs.builtin_labs():
        c1, c2 = st.columns([4, 1])
        c1.markdown(f"**{title}** · `{name}`")
        if c2.button("Publish", key=f"pub_{name}"):
            with widgets.user_errors():
                c = labs.publish(store, name, user=user, course_id=course)
                st.success(f"Published challenge #{c.id}: {c.title}")
    st.subheader("From a challenge file")
    toml_up = st.file_uploader("Challenge file (.toml)", type=["toml"], key="pub_toml")
    extra = st.file_uploader("Files it names (data set, hidden test split, starting model)", accept_multiple_files=True,
                             key="pub_files")
    if toml_up is not None and st.button("Publish the file", type="primary"):
        with widgets.user_errors():
            c = labs.publish_upload(store, toml_up.name, toml_up.getvalue(),
                                    {f.name: f.getvalue() for f in extra or []}, user=user, course_id=course)
            st.success(f"Published challenge #{c.id}: {c.title}")
    st.subheader("With the form")
    with st.form("challenge_form"):
        title = st.text_input("Title")
        instructions = st.text_area("Instructions (Markdown)", height=150)
        c1, c2, c3 = st.columns(3)
        dataset = c1.selectbox("Data set", [*BUILTINS, "an uploaded file"])
        data_up = c1.file_uploader("Data file (.npz/.csv/.zip)", type=["npz", "csv", "zip"], key="form_data")
        test_up = c2.file_uploader("Hidden test split (optional)", type=["npz", "csv", "zip"], key="form_test")
        start = c3.text_input("Starting model", placeholder="zoo:lenet5")
        mcus = sorted(load_mcus())
        mcu = c1.selectbox("MCU", mcus, index=mcus.index("nrf52840") if "nrf52840" in mcus else 0)
        sram = c2.number_input("SRAM limit (bytes, 0: none)", min_value=0, step=1024)
        flash = c3.number_input("Flash limit (bytes, 0: none)", min_value=0, step=1024)
        latency = c1.number_input("Latency limit (ms, 0: none)", min_value=0.0)
        energy = c2.number_input("Energy limit (uJ, 0: none)", min_value=0.0)
        target = c3.number_input("Accuracy target (0: none)", min_value=0.0, max_value=1.0, step=0.01)
        has_deadline = c1.checkbox("Deadline")
        day = c2.date_input("Deadline date (UTC)", value=dt.date.today() + dt.timedelta(days=7))
        clock = c3.time_input("Deadline time (UTC)", value=dt.time(23, 59))
        method = c1.selectbox("Scoring", ["accuracy-if-fits", "pass-fail", "formula"])
        formula = c2.text_input("Formula (scoring: formula)", placeholder="fits * (accuracy * 100 - latency)")
        counts = c3.selectbox("Which submission counts", ["best", "last"])
        export = c1.checkbox("Check the exported C (bit-exact)", value=True)
        require_int8 = c2.checkbox("The submission must be int8")
        if st.form_submit_button("Publish", type="primary"):
            with widgets.user_errors():
                c = labs.publish_form(store, {
                    "title": title, "instructions": instructions, "dataset": dataset, "start": start, "mcu": mcu,
                    "accuracy_target": target or None, "counts": counts, "export": export,
                    "require_int8": require_int8,
                    "deadline": dt.datetime.combine(day, clock, dt.timezone.utc) if has_deadline else None,
                    "limits": {"sram_bytes": int(sram), "flash_bytes": int(flash), "latency_ms": latency,
                               "energy_uj": energy},
                    "scoring": {"method": method, "formula": formula if method == "formula" else None}},
                    data=(data_up.name, data_up.getvalue()) if data_up else None,
                    test=(test_up.name, test_up.getvalue()) if test_up else None, user=user, course_id=course)
                st.success(f"Published challenge #{c.id}: {c.title}")

with dash_t:
    info = pick_challenge(store, user, key="dash_challenge")
    if info is not None:
        hide = st.toggle("Hide names on the leaderboard", value=info.hide_names, key=f"hide_{info.id}")
        if hide != info.hide_names:
            with widgets.user_errors():
                set_hide_names(store, info.id, hide, user=user)
                st.rerun()
        st.subheader("Grades (per student, the submission that counts)")
        grades = lab_results.grade_rows(store, info.id, user=user)
        st.dataframe(grades, hide_index=True, width="stretch")
        st.download_button("Download grades (CSV)", lab_results.grades_csv(store, info.id, user=user),
                           file_name=f"challenge-{info.id}-grades.csv", mime="text/csv")
        st.subheader("Leaderboard")
        st.dataframe(lab_results.leaderboard(store, info.id, user=user), hide_index=True, width="stretch")
        st.subheader("All submissions")
        rows = lab_results.history(store, info.id, user=user)
        if rows:
            submission_table(rows)
            pick = st.selectbox("Submission", [r["submission"] for r in reversed(rows)], format_func=lambda i: f"#{i}",
                                key="dash_sub")
            with widgets.user_errors():
                sub = open_submission(store, pick, user)
                check_table(sub)
                if st.button(f"Grade #{sub.id} again", disabled=sub.status in ("queued", "grading")):
                    queue_grading(store, queue_again(store, sub.id, user=user))
                    st.rerun()

with query_t:
    st.caption("One SELECT over tables challenges(id, title, deadline, counts), submissions(id, challenge_id, "
               "student, status, passed, score, error, created, graded) and grades(submission_id, name, value, "
               "limit_value, passed) — the results of your challenges, in a separate read-only DuckDB.")
    sql = st.text_area("Query", key="lab_sql", value="SELECT student, count(*) AS submissions, max(score) AS best "
                                                     "FROM submissions GROUP BY student ORDER BY best DESC")
    if st.button("Run query"):
        with widgets.user_errors():
            cols, rows, truncated = lab_results.query_results(store, sql, user=user)
            st.dataframe([dict(zip(cols, r)) for r in rows], hide_index=True, width="stretch")
            if truncated:
                st.caption(f"First {lab_results.QUERY_ROWS:,} rows.")

with students_t:
    if user is None:
        st.caption("Accounts exist on a lab server only (`tinystudio users add`).")
    else:
        students_tab(user)
