"""Deleting and renaming accounts (refused while they own work unless it is given away; an instructor only for
students of their courses, never an instructor's account), and the login token a password change ends."""
from __future__ import annotations

import pytest

from store import AuthError, InvalidValueError, NotFoundError, check_integrity, create_session, list_sessions, open_store
from store.user_admin import check_login, delete_user, login_token, rename_user
from store.users import add_user, authenticate, create_course, enroll, find_user, list_users, reset_password
from tests.store.graphs import mlp

PW = "correct horse battery"


@pytest.fixture
def lab(tmp_path, monkeypatch):
    from argon2 import PasswordHasher

    import store.users

    # Cheap hashes: argon2's own parameters are tested in test_users.py; here five accounts per test.
    monkeypatch.setattr(store.users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    s = open_store(str(tmp_path / "lab.duckdb"))
    prof, prof2 = add_user(s, "prof", "instructor", PW), add_user(s, "prof2", "instructor", PW)
    ada, bob, eve = (add_user(s, n, "student", PW) for n in ("ada", "bob", "eve"))
    cid = create_course(s, prof, "tinyml")
    for n in ("ada", "bob"):
        enroll(s, prof, cid, n)
    enroll(s, prof2, create_course(s, prof2, "other"), "eve")
    yield s, prof, prof2, ada, bob, eve
    s.close()


def test_delete_is_refused_while_the_account_owns_work_unless_given_away(lab):
    s, prof, prof2, ada, bob, eve = lab
    sess = create_session(s, "ada's", mlp(), user=ada)
    with pytest.raises(InvalidValueError, match=r"^user 'ada' owns 1 session: give them to another account "
                                                r"\(--give-to NAME\) or delete them first$"):
        delete_user(s, None, "ada")
    assert find_user(s, "ada") == ada and list_sessions(s, user=ada)[0].id == sess.id  # nothing changed
    with pytest.raises(NotFoundError, match="--give-to: no user named 'nobody'"):
        delete_user(s, None, "ada", give_to="nobody")
    with pytest.raises(InvalidValueError, match="is the account being deleted"):
        delete_user(s, None, "ada", give_to="ADA")
    assert delete_user(s, None, "ada", give_to="bob") == {"sessions": 1}
    assert [x.id for x in list_sessions(s, user=bob)] == [sess.id]
    assert [u.name for u in list_users(s)] == ["bob", "eve", "prof", "prof2"]
    with pytest.raises(AuthError):  # the account cannot log in any more
        authenticate(s, "ada", PW)
    # An instructor's courses need an instructor heir.
    with pytest.raises(InvalidValueError, match="owns 1 course, which only an instructor can own; 'bob' is a student"):
        delete_user(s, None, "prof", give_to="bob")
    assert delete_user(s, None, "prof", give_to="prof2") == {"courses": 1}
    assert [u.name for u in list_users(s)] == ["bob", "eve", "prof2"]
    assert check_integrity(s) == []


def test_an_instructor_deletes_and_renames_only_students_of_their_courses(lab):
    s, prof, prof2, ada, bob, eve = lab
    for action in (lambda: delete_user(s, prof, "prof2"), lambda: rename_user(s, prof, "prof2", "x"),
                   lambda: delete_user(s, prof, "prof")):
        with pytest.raises(AuthError, match="only the server's administrator .* the instructor account"):
            action()
    with pytest.raises(AuthError, match="'eve' is not a student in a course you teach"):
        delete_user(s, prof, "eve")
    with pytest.raises(AuthError, match="only an instructor can delete"):
        delete_user(s, bob, "ada")
    create_session(s, "bob's", mlp(), user=bob)
    with pytest.raises(AuthError, match="'eve' is neither you nor a student in a course you teach"):
        delete_user(s, prof, "bob", give_to="eve")
    assert delete_user(s, prof, "bob", give_to="prof") == {"sessions": 1}
    assert [x.name for x in list_sessions(s, user=prof)] == ["bob's"]
    assert rename_user(s, prof, "ada", "ada.l") == type(ada)(ada.id, "ada.l", "student")
    assert authenticate(s, "ada.l", PW).id == ada.id
    with pytest.raises(InvalidValueError, match="user 'Eve' exists already"):
        rename_user(s, None, "ada.l", "Eve")
    assert rename_user(s, None, "ada.l", "Ada.L").name == "Ada.L"  # a change of case is allowed
    with pytest.raises(InvalidValueError, match="user name"):
        rename_user(s, None, "eve", "no spaces")


def test_a_password_reset_ends_the_logins_made_before_it(lab):
    s, prof, prof2, ada, bob, eve = lab
    token = login_token(s, ada.id)
    assert check_login(s, ada.id, token) == ada and check_login(s, bob.id, token) is None
    rename_user(s, None, "ada", "ada2")
    assert check_login(s, ada.id, token).name == "ada2"  # a rename keeps the login, under the new name
    reset_password(s, prof, "ada2", "a new secret 1")
    assert check_login(s, ada.id, token) is None  # logged in before the reset: out
    fresh = login_token(s, ada.id)
    assert fresh != token and check_login(s, ada.id, fresh).name == "ada2"
    delete_user(s, None, "ada2")
    assert check_login(s, ada.id, fresh) is None and login_token(s, ada.id) is None
