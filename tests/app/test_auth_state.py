"""The studio's side of accounts, headless (Streamlit's AppTest): the store a page gets is bound to the tab's
login; the graph and profile caches shared between tabs refuse another student's version even once cached;
a lab tab that has not logged in sees nothing; a store without accounts sees everything as before."""
from __future__ import annotations

import os

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import store as db
from store.users import add_user, create_course, enroll
from tests.store.graphs import mlp

SCRIPT = """
import streamlit as st
import store as db
from app.state import changes_of, get_store, graph_of, profile_of

vid, first = st.session_state["probe"]
out = []
for name, call in (("graph", lambda: graph_of(vid).name), ("changes", lambda: len(changes_of(first, vid))),
                   ("profile", lambda: profile_of(vid, (("nrf52840", "tflm-cmsis-nn"),)).graph_name),
                   ("sessions", lambda: len(db.list_sessions(get_store())))):
    try:
        out.append(f"{name}={call()}")
    except db.NotFoundError as e:
        out.append(f"{name}: {e}")
st.write(" | ".join(out))
"""


@pytest.fixture
def env(tmp_path):
    from app.state import DB_ENV

    old = os.environ.get(DB_ENV)
    os.environ[DB_ENV] = str(tmp_path / "lab.duckdb")
    st.cache_resource.clear()
    yield os.environ[DB_ENV]
    st.cache_resource.clear()
    if old is None:
        os.environ.pop(DB_ENV, None)
    else:
        os.environ[DB_ENV] = old


def _probe(login, vid: int, first: int) -> str:
    at = AppTest.from_string(SCRIPT, default_timeout=60)
    at.session_state["probe"] = (vid, first)
    if login is not None:
        at.session_state["_auth_user"] = (login.id, login.name, login.role)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at.markdown[0].value


def test_shared_caches_ask_the_store_for_each_account(env):
    from app.state import _open_store

    s = _open_store()
    ada = add_user(s, "ada", "student", "ada-password")
    bob = add_user(s, "bob", "student", "bob-password")
    prof = add_user(s, "prof", "instructor", "prof-password")
    enroll(s, prof, create_course(s, prof, "c"), "ada")
    sess = db.create_session(s, "ada's", mlp(name="adas_mlp"), user=ada)
    v2 = db.add_version(s, sess.id, mlp((16, 8, 4), name="adas_mlp"), "edit", user=ada)
    first = sess.current_version_id
    assert _probe(ada, v2.id, first).startswith("graph=adas_mlp | changes=")  # Ada fills the caches
    refused = _probe(bob, v2.id, first)  # then Bob asks for the same ids: refused, not served from the cache
    assert refused == (f"graph: no version with id {v2.id} | changes: no version with id {first} | "
                       f"profile: no version with id {v2.id} | sessions=0")
    assert _probe(None, v2.id, first).startswith("graph: no version")  # a lab tab before its login: nothing
    assert _probe(prof, v2.id, first).startswith("graph=adas_mlp")  # her instructor reads


def test_a_store_without_accounts_sees_everything(env):
    from app.state import _open_store

    s = _open_store()
    sess = db.create_session(s, "local", mlp(name="local_mlp"))
    v2 = db.add_version(s, sess.id, mlp((16, 8, 4), name="local_mlp"), "edit")
    assert _probe(None, v2.id, sess.current_version_id).endswith("sessions=1")


def test_an_instructors_session_list_says_whose_each_session_is(env):
    from pathlib import Path

    from app.state import _open_store

    s = _open_store()
    ada = add_user(s, "ada", "student", "ada-password")
    bob = add_user(s, "bob", "student", "bob-password")
    prof = add_user(s, "prof", "instructor", "prof-password")
    enroll(s, prof, create_course(s, prof, "c"), "ada")
    db.create_session(s, "ada's", mlp(), user=ada)
    db.create_session(s, "bob's", mlp(), user=bob)  # not in prof's course
    db.create_session(s, "prof's", mlp(), user=prof)
    page = str(Path(__file__).resolve().parents[2] / "pages" / "sessions.py")
    for login, want in ((prof, [("prof's", "prof"), ("ada's", "ada")]), (bob, [("bob's", None)])):
        at = AppTest.from_file(page, default_timeout=60)
        at.session_state["_auth_user"] = (login.id, login.name, login.role)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        rows = at.dataframe[0].value
        got = [(r["name"], r.get("owner")) for r in rows.to_dict("records")]
        assert got == want, got


GATE = """
import streamlit as st
from app.auth import login_gate
from app.state import base_store

st.write(f"in as {login_gate(base_store()).name}")
"""


def test_a_password_reset_logs_out_a_tab_logged_in_before_it(env):
    """The gate compares the tab's login token with the account's on every run: a rename keeps the tab logged
    in under the new name; a reset (by the instructor, in another tab) sends it back to the login form."""
    from app.state import _open_store
    from store.user_admin import login_token, rename_user
    from store.users import reset_password

    s = _open_store()
    prof = add_user(s, "prof", "instructor", "prof-password")
    add_user(s, "ada", "student", "ada-password")
    enroll(s, prof, create_course(s, prof, "c"), "ada")
    at = AppTest.from_string(GATE, default_timeout=60)
    at.run()
    assert not at.markdown and [t.label for t in at.text_input] == ["User name", "Password"]
    at.text_input[0].input("ada")
    at.text_input[1].input("ada-password")
    at.button[0].click().run()  # the login form's submit
    assert at.markdown[0].value == "in as ada" and at.session_state["_auth_token"] == login_token(s, 2)
    rename_user(s, prof, "ada", "ada.l")
    at.run()
    assert at.markdown[0].value == "in as ada.l"
    reset_password(s, prof, "ada.l", "a new password")
    at.run()
    assert not at.exception and not at.markdown and "_auth_user" not in at.session_state
    assert "log in again" in at.warning[0].value and [t.label for t in at.text_input] == ["User name", "Password"]


TAB = """
import streamlit as st
from app.accounts_view import students_tab
from app.auth import current_user

students_tab(current_user())
"""


def test_the_instructor_pages_students_tab_renames_and_deletes(env, monkeypatch):
    """The Instructor page's Students tab does what `tinystudio users rename|delete` does, with the same
    refusals (a student who owns a session is not deleted without an heir)."""
    from argon2 import PasswordHasher

    import store.users
    from app.state import _open_store
    from store.users import find_user, list_users

    monkeypatch.setattr(store.users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    s = _open_store()
    prof = add_user(s, "prof", "instructor", "prof-password")
    cid = create_course(s, prof, "c")
    for n in ("ada", "bob"):
        enroll(s, prof, cid, add_user(s, n, "student", f"{n}-password").name)
    db.create_session(s, "bob's", mlp(), user=find_user(s, "bob"))
    at = AppTest.from_string(TAB, default_timeout=60)
    at.session_state["_auth_user"] = (prof.id, prof.name, prof.role)
    at.run()
    at.text_input(key="_accounts_rename_new").input("ada.l")
    next(b for b in at.button if b.label == "Rename").click().run()
    assert not at.exception and at.success[0].value == "ada is now ada.l."
    at.selectbox(key="_accounts_delete_who").select("bob")
    at.checkbox(key="_accounts_delete_sure").check()
    next(b for b in at.button if b.label == "Delete").click().run()
    assert "user 'bob' owns 1 session: give them to another account" in at.error[0].value
    at.selectbox(key="_accounts_delete_who").select("bob")
    at.selectbox(key="_accounts_delete_heir").select("prof")
    at.checkbox(key="_accounts_delete_sure").check()
    next(b for b in at.button if b.label == "Delete").click().run()
    assert not at.exception and at.success[0].value == "Deleted bob."
    assert [u.name for u in list_users(s)] == ["ada.l", "prof"]
    assert [x.name for x in db.list_sessions(s, user=prof)] == ["bob's"]
