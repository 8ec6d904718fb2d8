"""Logins of a lab server: the gate before every page, the logged-in account, logout.

    user = login_gate(store)     # app/main.py, first thing each run: None when the store has no accounts
                                 # (single-user use, no login); else the account, or the login form and st.stop()
    current_user()               # the account this browser tab logged in as (None: not a lab / not logged in)
    account_sidebar(user)        # who is logged in, and the logout button

The login lives in this tab's Streamlit session state (a reload or a new tab asks again). The store enforces
what the account may see (store.access): app.state.get_store() hands pages the store bound to current_user(),
so a page never filters for security. The password field is cleared on submit and never kept or logged.
"""
from __future__ import annotations

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from store.errors import AuthError, InvalidValueError
from store.users import User, authenticate, is_lab

USER_KEY = "_auth_user"  # (id, name, role) of the logged-in account
TOKEN_KEY = "_auth_token"  # the account's login token at login (store.user_admin): a password change ends it
LAB_KEY = "_auth_lab"  # whether this run's store has accounts (set by login_gate at the start of every run)
# The account a tab acts as in a lab before logging in: it owns nothing, so it sees nothing.
NOBODY = User(0, "", "student")


def in_script() -> bool:
    """False in a job thread (no Streamlit script context: no session state to read)."""
    return get_script_run_ctx(suppress_warning=True) is not None


def current_user() -> User | None:
    """The logged-in account of this browser tab; None when the store has no accounts (or before login)."""
    if not in_script():
        return None
    u = st.session_state.get(USER_KEY)
    return User(*u) if u else None


def acting_user(store) -> User | None:
    """Whom `store` acts as for this tab: the logged-in account; NOBODY in a lab before login; None when the
    store has no accounts (single-user use sees everything, as before accounts existed)."""
    if not in_script():
        return None
    user = current_user()
    if user is not None:
        return user
    if LAB_KEY not in st.session_state:  # a page run without app/main.py's gate (a page test)
        st.session_state[LAB_KEY] = is_lab(store)
    return NOBODY if st.session_state[LAB_KEY] else None


def owner_names() -> dict[int, str]:
    """Account id -> name for an instructor's session list (whose work each session is); {} for anyone else."""
    user = current_user()
    if user is None or user.role != "instructor":
        return {}
    from app.state import base_store
    from store.users import list_users

    return {u.id: u.name for u in list_users(base_store())}


def login_gate(store) -> User | None:
    """Called by app/main.py before anything else each run. On a lab store without a login, shows the login
    form and stops the run (no page runs); else returns the account (None: not a lab)."""
    lab = is_lab(store)
    st.session_state[LAB_KEY] = lab
    if not lab:
        st.session_state.pop(USER_KEY, None)
        return None
    user = current_user()
    if user is not None:
        user = _still_valid(store, user)
        if user is not None:
            return user
    _login_form(store)
    st.stop()


def _still_valid(store, user: User) -> User | None:
    """The account as it is now when this tab's login still holds; None (and the tab logged out) when its
    password was changed since, or the account was deleted (store.user_admin's login token). A renamed account
    stays logged in under its new name."""
    from store.user_admin import check_login, login_token

    if TOKEN_KEY not in st.session_state:  # logged in by a test that set the account directly
        st.session_state[TOKEN_KEY] = login_token(store, user.id)
    fresh = check_login(store, user.id, st.session_state[TOKEN_KEY])
    if fresh is None:
        logout()
        st.session_state[LAB_KEY] = True
        st.warning("Your password was changed or your account removed: log in again.", icon=":material/lock:")
        return None
    st.session_state[USER_KEY] = (fresh.id, fresh.name, fresh.role)
    return fresh


def _login_form(store) -> None:
    st.title("TinyStudio")
    st.caption("This studio is a lab server: log in with the account your instructor gave you.")
    col, _ = st.columns([2, 3])
    with col.form("login", clear_on_submit=True):  # the password leaves the page's state on submit
        name = st.text_input("User name", autocomplete="username")
        password = st.text_input("Password", type="password", autocomplete="current-password")
        submitted = st.form_submit_button("Log in", type="primary")
    if not submitted:
        return
    try:
        user = authenticate(store, name, password)
    except (AuthError, InvalidValueError) as e:
        col.error(str(e), icon=":material/lock:")
        return
    from store.user_admin import login_token

    st.session_state[USER_KEY] = (user.id, user.name, user.role)
    st.session_state[TOKEN_KEY] = login_token(store, user.id)
    st.rerun()


def logout() -> None:
    """Forget everything this tab knew (the open session, choices, the login) and the place in the URL."""
    for key in list(st.session_state.keys()):
        del st.session_state[key]
    st.query_params.clear()


def account_sidebar(user: User | None) -> None:
    """In the sidebar: who is logged in, passwords (one's own; an instructor's students'), the logout button
    (nothing when not a lab)."""
    if user is None:
        return
    st.caption(f"Logged in as **{user.name}** ({user.role})")
    with st.popover("Password", icon=":material/key:"):
        _own_password_form(user)
        if user.role == "instructor":
            student_password_form(user)
    if user.role == "instructor":
        from app.accounts_view import students_panel

        with st.popover("Students", icon=":material/group_add:"):
            students_panel(user)
    if st.button("Log out", key="_auth_logout", icon=":material/logout:"):
        logout()
        st.rerun()


def _new_password(form_key: str) -> tuple[str, str]:
    """The two fields of a new password (typed twice) in the form `form_key`."""
    first = st.text_input("New password", type="password", key=f"{form_key}_new")
    again = st.text_input("New password again", type="password", key=f"{form_key}_again")
    return first, again


def _own_password_form(user: User) -> None:
    from app.state import base_store
    from store.users import reset_password

    with st.form("_auth_own_password", clear_on_submit=True):
        st.markdown("**Change my password**")
        current = st.text_input("Current password", type="password", autocomplete="current-password")
        first, again = _new_password("_auth_own")
        submitted = st.form_submit_button("Change my password")
    if submitted:
        _apply(lambda: (authenticate(base_store(), user.name, current),
                        reset_password(base_store(), user, user.name, _same(first, again)),
                        _keep_login(user)),  # this tab stays logged in; the others must log in again
               "Your password is changed.")


def _keep_login(user: User) -> None:
    from app.state import base_store
    from store.user_admin import login_token

    st.session_state[TOKEN_KEY] = login_token(base_store(), user.id)


def student_password_form(user: User) -> None:
    from app.state import base_store
    from store.users import courses_of, reset_password

    students = sorted({n for c in courses_of(base_store(), user) for n in c.students}, key=str.lower)
    if not students:
        st.caption("No students enrolled in your courses yet (`tinystudio users enroll`).")
        return
    with st.form("_auth_student_password", clear_on_submit=True):
        st.markdown("**Reset a student's password**")
        name = st.selectbox("Student", students)
        first, again = _new_password("_auth_student")
        submitted = st.form_submit_button("Reset the password")
    if submitted:
        _apply(lambda: reset_password(base_store(), user, name, _same(first, again)),
               f"The password of {name} is reset; give it to them.")


def _same(first: str, again: str) -> str:
    if first != again:
        raise InvalidValueError("the two new passwords differ; nothing changed")
    return first


def _apply(action, done: str) -> None:
    try:
        action()
    except (AuthError, InvalidValueError) as e:
        st.error(str(e), icon=":material/error:")
        return
    st.success(done, icon=":material/check_circle:")
