"""`tinystudio users` and `tinystudio sessions --user`: accounts, rosters, resets and courses from the console;
passwords only from stdin or a prompt; another student's session refused through the CLI as if missing."""
from __future__ import annotations

import io
import json

import pytest

from app.cli import main
from store import create_session, open_store
from store.users import authenticate, find_user
from tests.store.graphs import mlp


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "lab.duckdb")


def run(capsys, monkeypatch, *argv, stdin: str = ""):
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_add_list_and_login_with_a_password_from_stdin(capsys, monkeypatch, db):
    code, out, _ = run(capsys, monkeypatch, "users", "add", "prof", "--role", "instructor", "--password-stdin",
                       "--db", db, stdin="prof password 1\n")
    assert code == 0 and out.strip() == "added instructor prof (id 1)" and "prof password" not in out
    code, out, _ = run(capsys, monkeypatch, "users", "list", "--json", "--db", db)
    assert json.loads(out) == [{"id": 1, "name": "prof", "role": "instructor", "courses": []}]
    with open_store(db) as s:
        assert authenticate(s, "prof", "prof password 1").role == "instructor"


def test_the_password_never_comes_from_the_command_line(capsys, monkeypatch, db):
    with pytest.raises(SystemExit) as e:  # no option takes a password
        main(["users", "add", "ada", "--role", "student", "--password", "secret123", "--db", db])
    assert e.value.code == 2 and "unrecognized arguments: secret123" in capsys.readouterr().err
    # Without a terminal to prompt on, and without --password-stdin: refused, nothing added.
    code, _, err = run(capsys, monkeypatch, "users", "add", "ada", "--role", "student", "--db", db)
    assert code == 2 and "pipe it in with --password-stdin" in one_line_error(err)
    code, _, err = run(capsys, monkeypatch, "users", "add", "ada", "--role", "student", "--password-stdin",
                       "--db", db, stdin="short\n")
    assert code == 2 and one_line_error(err) == "error: password is too short: use at least 8 characters"
    code, out, _ = run(capsys, monkeypatch, "users", "list", "--db", db)
    assert "no accounts" in out


def test_roster_import_prints_made_up_passwords_once(capsys, monkeypatch, db, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("name,role,password\nprof,instructor,prof-password\nada,student\nbob,student\n")
    code, out, _ = run(capsys, monkeypatch, "users", "import", str(roster), "--db", db)
    assert code == 0 and "added 3 accounts" in out
    made = dict(line.split() for line in out.splitlines() if line.startswith("  "))
    assert sorted(made) == ["ada", "bob"] and "prof-password" not in out
    with open_store(db) as s:
        assert authenticate(s, "ada", made["ada"]).name == "ada"
        assert authenticate(s, "prof", "prof-password").role == "instructor"
    code, out, _ = run(capsys, monkeypatch, "users", "list", "--db", db)
    assert made["ada"] not in out and made["bob"] not in out  # shown once, at the import only


def test_bad_roster_names_the_file_and_line_and_adds_nothing(capsys, monkeypatch, db, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("ada,student\nbob,wizard\n")
    code, _, err = run(capsys, monkeypatch, "users", "import", str(roster), "--db", db)
    assert code == 2 and one_line_error(err) == f"error: {roster}: roster line 2: role must be instructor or student, " \
                                                "not 'wizard'"
    code, _, err = run(capsys, monkeypatch, "users", "import", str(tmp_path / "none.csv"), "--db", db)
    assert code == 2 and "cannot read the roster" in one_line_error(err)
    code, out, _ = run(capsys, monkeypatch, "users", "list", "--json", "--db", db)
    assert json.loads(out) == []


def test_courses_enrol_and_reset_password(capsys, monkeypatch, db):
    for name, role in (("prof", "instructor"), ("ada", "student"), ("bob", "student")):
        assert run(capsys, monkeypatch, "users", "add", name, "--role", role, "--password-stdin", "--db", db,
                   stdin=f"{name}-password\n")[0] == 0
    code, out, _ = run(capsys, monkeypatch, "users", "course", "create", "TinyML", "--instructor", "prof", "--db", db)
    assert code == 0 and "id 1" in out
    code, _, err = run(capsys, monkeypatch, "users", "course", "create", "Mine", "--instructor", "ada", "--db", db)
    assert code == 2 and one_line_error(err) == "error: only an instructor can create a course"
    assert run(capsys, monkeypatch, "users", "enroll", "TinyML", "ada", "bob", "--db", db)[0] == 0
    code, _, err = run(capsys, monkeypatch, "users", "enroll", "TinyML", "cy", "--db", db)
    assert code == 2 and one_line_error(err) == "error: no user named 'cy'"
    code, out, _ = run(capsys, monkeypatch, "users", "course", "list", "--json", "--db", db)
    (c,) = json.loads(out)
    assert (c["name"], c["instructors"], c["students"]) == ("TinyML", ["prof"], ["ada", "bob"])
    code, out, _ = run(capsys, monkeypatch, "users", "reset-password", "ada", "--password-stdin", "--db", db,
                       stdin="a fresh password\n")
    assert code == 0 and "fresh" not in out
    with open_store(db) as s:
        assert authenticate(s, "ada", "a fresh password").name == "ada"
    code, _, err = run(capsys, monkeypatch, "users", "reset-password", "zed", "--password-stdin", "--db", db,
                       stdin="whatever123\n")
    assert code == 2 and one_line_error(err) == "error: no user named 'zed'"


def test_sessions_cli_as_another_student_is_refused(capsys, monkeypatch, db, tmp_path):
    for name in ("ada", "bob"):
        run(capsys, monkeypatch, "users", "add", name, "--role", "student", "--password-stdin", "--db", db,
            stdin=f"{name}-password\n")
    with open_store(db) as s:
        sid = create_session(s, "ada's kws", mlp(), user=find_user(s, "ada")).id
    out_file = tmp_path / "stolen.tinystudio"
    for argv in (["show", str(sid)], ["export", str(sid), "--out", str(out_file)], ["delete", str(sid)]):
        code, _, err = run(capsys, monkeypatch, "sessions", *argv, "--user", "bob", "--db", db)
        assert code == 2 and one_line_error(err) == f"error: no session with id {sid}", argv
    assert not out_file.exists()
    code, out, _ = run(capsys, monkeypatch, "sessions", "list", "--json", "--user", "bob", "--db", db)
    assert json.loads(out) == []
    # Ada herself, and the administrator (no --user), see it.
    code, out, _ = run(capsys, monkeypatch, "sessions", "show", str(sid), "--json", "--user", "ada", "--db", db)
    assert code == 0 and json.loads(out)["session"]["name"] == "ada's kws"
    code, out, _ = run(capsys, monkeypatch, "sessions", "list", "--json", "--db", db)
    assert [x["id"] for x in json.loads(out)] == [sid]
    code, out, _ = run(capsys, monkeypatch, "sessions", "export", str(sid), "--out", str(out_file), "--user", "ada",
                       "--db", db)
    assert code == 0 and out_file.stat().st_size > 0
    assert run(capsys, monkeypatch, "sessions", "delete", str(sid), "--user", "ada", "--db", db)[0] == 0
    code, out, _ = run(capsys, monkeypatch, "sessions", "list", "--json", "--db", db)
    assert json.loads(out) == []


def test_give_a_session_made_before_accounts(capsys, monkeypatch, db):
    with open_store(db) as s:
        sid = create_session(s, "old local work", mlp()).id
    run(capsys, monkeypatch, "users", "add", "prof", "--role", "instructor", "--password-stdin", "--db", db,
        stdin="prof-password\n")
    code, out, _ = run(capsys, monkeypatch, "sessions", "list", "--json", "--user", "prof", "--db", db)
    assert json.loads(out) == []  # no owner: only the administrator sees it
    code, out, _ = run(capsys, monkeypatch, "sessions", "give", str(sid), "prof", "--db", db)
    assert code == 0 and out.strip() == f"session {sid} (old local work) now belongs to prof"
    code, out, _ = run(capsys, monkeypatch, "sessions", "list", "--json", "--user", "prof", "--db", db)
    assert [x["id"] for x in json.loads(out)] == [sid]
    code, _, err = run(capsys, monkeypatch, "sessions", "give", "999", "prof", "--db", db)
    assert code == 2 and one_line_error(err) == "error: no session with id 999"


def test_serving_a_network_without_accounts_is_warned():
    from app.commands.studio import network_warning

    assert "without accounts" in network_warning("0.0.0.0", lab=False)
    assert network_warning("0.0.0.0", lab=True) is None
    assert network_warning("127.0.0.1", lab=False) is None


def test_delete_and_rename_from_the_console(capsys, monkeypatch, db):
    from argon2 import PasswordHasher

    import store.users  # cheap hashes: argon2's parameters are tested in tests/store/test_users.py

    monkeypatch.setattr(store.users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    for name, role in (("prof", "instructor"), ("prof2", "instructor"), ("ada", "student")):
        run(capsys, monkeypatch, "users", "add", name, "--role", role, "--password-stdin", "--db", db,
            stdin="a password 123\n")
    run(capsys, monkeypatch, "users", "course", "create", "c", "--instructor", "prof", "--db", db)
    run(capsys, monkeypatch, "users", "enroll", "c", "ada", "--db", db)
    with open_store(db) as s:
        create_session(s, "ada's", mlp(), user=find_user(s, "ada"))
    code, _, err = run(capsys, monkeypatch, "users", "delete", "prof2", "--user", "prof", "--db", db)
    assert code == 2 and "only the server's administrator (tinystudio users) can delete the instructor account " \
                         "'prof2'" in one_line_error(err)
    code, out, _ = run(capsys, monkeypatch, "users", "rename", "ada", "ada.l", "--user", "prof", "--db", db)
    assert code == 0 and out.strip() == "renamed ada to ada.l"
    code, _, err = run(capsys, monkeypatch, "users", "delete", "ada.l", "--db", db)
    assert code == 2 and "user 'ada.l' owns 1 session: give them to another account (--give-to NAME)" in \
        one_line_error(err)
    code, out, _ = run(capsys, monkeypatch, "users", "delete", "ada.l", "--give-to", "prof", "--user", "prof",
                       "--db", db)
    assert code == 0 and out.strip() == "deleted ada.l; 1 sessions given to prof"
    code, out, _ = run(capsys, monkeypatch, "users", "list", "--json", "--db", db)
    assert [u["name"] for u in json.loads(out)] == ["prof", "prof2"]
