"""Accounts: argon2 hashes (never the password), logins with a rate limit, resets, rosters, courses."""
from __future__ import annotations

import duckdb
import pytest
from argon2 import PasswordHasher

import store.users as users
from store import AuthError, InvalidValueError, NotFoundError, check_integrity, open_store
from store.users import (add_user, authenticate, courses_of, create_course, enroll, find_course, get_user,
                         import_roster, is_lab, list_users, reset_password, roster_rows)

PW = "correct horse battery"


@pytest.fixture
def store(tmp_path):
    s = open_store(str(tmp_path / "lab.duckdb"))
    yield s
    s.close()


@pytest.fixture
def clock(monkeypatch):
    """The rate limit's clock, stepped by hand."""
    now = [1000.0]
    monkeypatch.setattr(users, "_clock", lambda: now[0])
    monkeypatch.setattr(users, "_failures", {})
    return now


def test_a_store_without_accounts_is_not_a_lab(store):
    assert not is_lab(store)
    add_user(store, "prof", "instructor", PW)
    assert is_lab(store)


def test_the_password_is_stored_as_an_argon2id_hash_only(store, tmp_path):
    u = add_user(store, "ada", "student", PW)
    assert (u.name, u.role) == ("ada", "student") and get_user(store, u.id) == u
    with store.transaction() as con:
        (digest,) = con.execute("SELECT password_hash FROM users WHERE id = ?", [u.id]).fetchone()
    assert digest.startswith("$argon2id$") and PW not in digest
    assert PasswordHasher().verify(digest, PW)  # an independent check of the stored hash
    store.close()
    with open(tmp_path / "lab.duckdb", "rb") as f:  # nowhere in the database file either
        assert PW.encode() not in f.read()


def test_login_right_and_wrong(store, clock):
    u = add_user(store, "Ada", "student", PW)
    assert authenticate(store, "ada", PW) == u  # names ignore case
    with pytest.raises(AuthError, match=r"^wrong user name or password \(4 more tries before a 60 s wait\)$"):
        authenticate(store, "ada", PW + "x")
    # The same line for an unknown name (failures are counted per name, existing or not).
    with pytest.raises(AuthError, match=r"^wrong user name or password \(4 more tries before a 60 s wait\)$"):
        authenticate(store, "nobody", PW)
    with pytest.raises(AuthError, match="enter your password"):
        authenticate(store, "ada", "")


def test_rate_limit_refuses_then_lets_in_after_the_window(store, clock):
    add_user(store, "ada", "student", PW)
    for left in range(users.MAX_FAILURES - 1, -1, -1):
        with pytest.raises(AuthError, match="wrong user name or password") as e:
            authenticate(store, "ada", "guess-guess")
        if left:
            assert f"({left} more tr" in str(e.value)
        else:  # the failure that starts the wait says so
            assert str(e.value) == "wrong user name or password; too many failed logins for 'ada': try again in 57 s"  # 4 s after the first
        clock[0] += 1
    # Locked: even the right password is refused, with the wait in the message.
    with pytest.raises(AuthError, match=r"too many failed logins for 'ada': try again in 5\d s"):
        authenticate(store, "ada", PW)
    assert users.login_wait(store, "ADA") > 50
    add_user(store, "bob", "student", PW)
    assert authenticate(store, "bob", PW).name == "bob"  # per name: others are not locked out
    clock[0] += users.WINDOW_S
    assert authenticate(store, "ada", PW).name == "ada"
    assert users.login_wait(store, "ada") == 0


def test_reset_password_by_the_students_instructor_only(store, clock):
    prof = add_user(store, "prof", "instructor", PW)
    other = add_user(store, "other", "instructor", PW)
    ada = add_user(store, "ada", "student", PW)
    bob = add_user(store, "bob", "student", PW)
    cid = create_course(store, prof, "TinyML")
    enroll(store, prof, cid, "ada")
    with pytest.raises(AuthError, match="not a student in a course you teach"):
        reset_password(store, other, "ada", "a new secret")
    with pytest.raises(AuthError, match="only an instructor"):
        reset_password(store, bob, "ada", "a new secret")
    with pytest.raises(AuthError, match="not a student in a course you teach"):
        reset_password(store, prof, "other", "a new secret")
    for _ in range(users.MAX_FAILURES):  # locked out ...
        with pytest.raises(AuthError):
            authenticate(store, "ada", "forgotten!")
    reset_password(store, prof, "ada", "a new secret")  # ... and let in again by the reset
    assert authenticate(store, "ada", "a new secret") == ada
    with pytest.raises(AuthError):
        authenticate(store, "ada", PW)
    reset_password(store, bob, "bob", "my own new one")  # anyone for themselves
    reset_password(store, None, "other", "set by the admin")  # the CLI (holds the database file)
    assert authenticate(store, "other", "set by the admin") == other
    with pytest.raises(InvalidValueError, match="too short"):
        reset_password(store, prof, "ada", "short")


@pytest.mark.parametrize("name, role, password, match", [
    ("a b", "student", PW, "user name 'a b'"),
    ("", "student", PW, "user name ''"),
    ("-x", "student", PW, "starting with a letter or digit"),
    ("ada", "admin", PW, "role must be instructor or student"),
    ("ada", "student", "short", "at least 8 characters"),
    ("ada", "student", "two\nlines!", "line break"),
    ("ada", "student", None, "password must be text"),
])
def test_bad_accounts_are_refused_in_one_line(store, name, role, password, match):
    with pytest.raises(InvalidValueError, match=match):
        add_user(store, name, role, password)
    assert list_users(store) == []


def test_names_are_unique_ignoring_case(store):
    add_user(store, "ada", "student", PW)
    with pytest.raises(InvalidValueError, match="user 'ADA' exists already"):
        add_user(store, "ADA", "instructor", PW)


def test_roster_import_all_or_nothing_with_made_up_passwords(store, clock):
    made: dict[str, str] = {}
    got = import_roster(store, "name,role,password\nprof,Instructor,profpassword\nada,student\n\nbob,student,\n", made)
    assert [(u.name, u.role) for u in got] == [("prof", "instructor"), ("ada", "student"), ("bob", "student")]
    assert sorted(made) == ["ada", "bob"] and len(set(made.values())) == 2
    assert all(len(p) >= 16 for p in made.values())
    assert authenticate(store, "bob", made["bob"]).name == "bob"
    assert authenticate(store, "prof", "profpassword").role == "instructor"
    # A name that exists refuses the whole file: nothing of it is added.
    with pytest.raises(InvalidValueError, match="user 'ada' exists already"):
        import_roster(store, "cy,student\nada,student\n")
    assert [u.name for u in list_users(store)] == ["ada", "bob", "prof"]


@pytest.mark.parametrize("text, match", [
    ("ada\n", "roster line 1: expected name,role"),
    ("ada,student\nbo b,student\n", "roster line 2: user name 'bo b'"),
    ("ada,teacher\n", "roster line 1: role must be"),
    ("ada,student,short\n", "roster line 1: password is too short"),
    ("ada,student\nADA,student\n", "roster line 2: user 'ADA' is listed twice"),
    ("name,role\n", "roster lists no users"),
])
def test_bad_rosters_name_the_line(text, match):
    with pytest.raises(InvalidValueError, match=match):
        roster_rows(text)


def test_courses_and_enrolment(store):
    prof = add_user(store, "prof", "instructor", PW)
    ta = add_user(store, "ta", "instructor", PW)
    ada = add_user(store, "ada", "student", PW)
    cid = create_course(store, prof, "TinyML 2026")
    assert find_course(store, "tinyml 2026") == cid == find_course(store, str(cid))
    enroll(store, prof, cid, "ada")
    enroll(store, prof, cid, "ada")  # twice: no-op
    enroll(store, prof, cid, "ta")  # a co-instructor
    (c,) = courses_of(store, ada)
    assert (c.name, c.instructors, c.students) == ("TinyML 2026", ("prof", "ta"), ("ada",))
    assert courses_of(store, ta) == [c] and courses_of(store) == [c]
    with pytest.raises(AuthError, match="only an instructor can create"):
        create_course(store, ada, "mine")
    with pytest.raises(AuthError, match="only an instructor of course"):
        enroll(store, ada, cid, "prof")
    with pytest.raises(InvalidValueError, match="exists already"):
        create_course(store, prof, "tinyml 2026")
    with pytest.raises(NotFoundError, match="no user named 'zed'"):
        enroll(store, prof, cid, "zed")
    with pytest.raises(NotFoundError, match="no course named"):
        find_course(store, "nope")
    assert check_integrity(store) == []


def test_integrity_finds_a_broken_owner_and_member(store):
    prof = add_user(store, "prof", "instructor", PW)
    cid = create_course(store, prof, "c")
    with store.transaction() as con:
        con.execute("INSERT INTO sessions (id, name, model, created, updated, owner_id) VALUES "
                    "(nextval('session_ids'), 's', 'm', now(), now(), 99)")
        con.execute("INSERT INTO course_members VALUES (?, 77, 'student', now())", [cid])
    problems = check_integrity(store, deep=False)
    assert any("owner 99 is missing" in p for p in problems)
    assert any("member 77 is missing" in p for p in problems)


def test_accounts_migration_upgrades_an_older_store(tmp_path):
    from store.schema import MIGRATIONS, migrate

    path = str(tmp_path / "old.duckdb")
    before = next(i for i, (d, _) in enumerate(MIGRATIONS) if d == "accounts, courses, owners")
    con = duckdb.connect(path)
    migrate(con, path, target=before)
    con.execute("INSERT INTO sessions (id, name, model, created, updated) VALUES "
                "(nextval('session_ids'), 'old', 'm', now(), now())")
    con.close()
    with open_store(path) as s:
        from store import get_session, list_sessions

        assert get_session(s, 1).owner_id is None  # made in single-user use: no owner
        assert [x.name for x in list_sessions(s)] == ["old"] and not is_lab(s)


def test_a_class_logging_in_at_once_hashes_a_few_at_a_time(store, clock, monkeypatch):
    """Each argon2 check takes 64 MiB: 30 students at once must not take 30 x 64 MiB."""
    import threading
    import time as _time

    for n in range(6):
        add_user(store, f"s{n}", "student", PW)
    real, active, peak, lock = users._hasher, [0], [0], threading.Lock()

    class Counting:
        def verify(self, digest, password):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            try:
                _time.sleep(0.05)
                return real.verify(digest, password)
            finally:
                with lock:
                    active[0] -= 1

        def __getattr__(self, name):
            return getattr(real, name)

    monkeypatch.setattr(users, "_hasher", Counting())
    got, threads = [], []
    for n in range(30):
        t = threading.Thread(target=lambda n=n: got.append(authenticate(store, f"s{n % 6}", PW).name))
        threads.append(t)
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 30 and 1 < peak[0] <= users.HASHES_AT_ONCE


def test_an_instructor_adds_students_only(store):
    prof = add_user(store, "prof", "instructor", PW)
    ada = add_user(store, "ada", "student", PW, actor=prof)
    assert ada.role == "student"
    with pytest.raises(AuthError, match="only students"):
        add_user(store, "ta", "instructor", PW, actor=prof)
    with pytest.raises(AuthError, match="only an instructor"):
        add_user(store, "eve", "student", PW, actor=ada)
    assert [u.name for u in list_users(store)] == ["ada", "prof"]
