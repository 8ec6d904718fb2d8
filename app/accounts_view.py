"""An instructor's Students panel (sidebar, on a lab server): add a student to one of their courses while the
studio runs (the `tinystudio users` commands need the database file, which the running studio holds).

    students_panel(user)      # inside st.popover("Students") for an instructor

The store decides what is allowed (store.users: an instructor adds students only, and enrolls them only in a
course they teach); the new account's password is made up and shown once, never stored in clear.
"""
from __future__ import annotations

import streamlit as st

from store.errors import AuthError, InvalidValueError, NotFoundError
from store.users import User, add_user, courses_of, enroll, new_password


def students_panel(user: User) -> None:
    from app.state import base_store

    store = base_store()
    courses = {c.id: c for c in courses_of(store, user) if user.name in c.instructors}
    if not courses:
        st.caption("You teach no course yet: `tinystudio users course create NAME --instructor "
                   f"{user.name}` (with the studio stopped).")
        return
    for c in courses.values():
        st.caption(f"**{c.name}**: {', '.join(c.students) or 'no students yet'}")
    with st.form("_accounts_add_student", clear_on_submit=True):
        st.markdown("**Add a student**")
        name = st.text_input("User name", key="_accounts_name")
        course = st.selectbox("Course", list(courses), format_func=lambda cid: courses[cid].name)
        submitted = st.form_submit_button("Add the student")
    if not submitted:
        return
    password = new_password()
    try:
        added = add_user(store, name, "student", password, actor=user)
        enroll(store, user, course, added.name)
    except (AuthError, InvalidValueError, NotFoundError) as e:
        st.error(str(e), icon=":material/error:")
        return
    st.success(f"Added **{added.name}** to {courses[course].name}. Their password (shown only now):",
               icon=":material/check_circle:")
    st.code(password, language=None)
