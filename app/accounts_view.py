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


def students_tab(user: User) -> None:
    """The Instructor page's Students tab: the students of one's courses and, for each, what the CLI's
    `tinystudio users` offers an instructor: rename, reset the password, delete (giving their work to oneself
    or another student). store.user_admin / store.users decide what is allowed."""
    from app.auth import student_password_form
    from app.state import base_store
    from store.user_admin import rename_user

    store = base_store()
    students = sorted({n for c in courses_of(store, user) for n in c.students}, key=str.lower)
    students_panel(user)
    if not students:
        return
    left, right = st.columns(2)
    with left.form("_accounts_rename", clear_on_submit=True):
        st.markdown("**Rename a student**")
        old = st.selectbox("Student", students, key="_accounts_rename_who")
        new = st.text_input("New user name", key="_accounts_rename_new")
        if st.form_submit_button("Rename"):
            _do(lambda: rename_user(store, user, old, new), f"{old} is now {new.strip()}.")
    with right.form("_accounts_delete", clear_on_submit=True):
        st.markdown("**Delete a student's account**")
        who = st.selectbox("Student", students, key="_accounts_delete_who")
        heirs = ["(nobody: refused if they own work)", user.name] + students
        heir = st.selectbox("Give their sessions and submissions to", heirs, key="_accounts_delete_heir")
        sure = st.checkbox("Delete this account", key="_accounts_delete_sure")
        if st.form_submit_button("Delete", type="primary"):
            give = None if heir == heirs[0] else heir
            _do(lambda: _delete(store, user, who, give, sure), f"Deleted {who}.")
    with left:
        student_password_form(user)


def _delete(store, user: User, who: str, give: str | None, sure: bool):
    from store.user_admin import delete_user

    if not sure:
        raise InvalidValueError("tick \"Delete this account\" to confirm; nothing deleted")
    return delete_user(store, user, who, give_to=give)


def _do(action, done: str) -> None:
    try:
        action()
    except (AuthError, InvalidValueError, NotFoundError) as e:
        st.error(str(e), icon=":material/error:")
        return
    st.success(done, icon=":material/check_circle:")
