"""`tinystudio challenge create | list | show | export | export-grades` on a lab database."""
from __future__ import annotations

import json
import tomllib

import numpy as np
import pytest

import store as db
from app.cli import main
from store.challenges import add_submission, record_grade, start_grading


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def dbpath(tmp_path):
    return str(tmp_path / "lab.duckdb")


def test_create_list_show_export(capsys, tmp_path, dbpath):
    rc, out, err = run(capsys, "challenge", "create", "builtin:kws64k", "--db", dbpath)
    assert (rc, err) == (0, "")
    assert out == "challenge 1: Fit keyword spotting into 64 KB of SRAM on an nRF52840 (deadline none, best " \
                  "submission counts)\n"
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "train.npz", x=rng.normal(size=(30, 4)).astype(np.float32), y=np.arange(30) % 3)
    np.savez(tmp_path / "hidden.npz", x=rng.normal(size=(9, 4)).astype(np.float32), y=np.arange(9) % 3)
    (tmp_path / "own.toml").write_text('title = "Own data"\ndataset = "train.npz"\ntest_dataset = "hidden.npz"\n'
                                       'mcu = "nrf52840"\ndeadline = 2030-01-01T12:00:00Z\ncounts = "last"\n'
                                       '[limits]\nsram_bytes = 4096\n')
    rc, out, _ = run(capsys, "challenge", "create", str(tmp_path / "own.toml"), "--db", dbpath, "--json")
    doc = json.loads(out)
    assert (rc, doc["id"], doc["title"], doc["deadline"], doc["counts"], doc["source"]) == (
        0, 2, "Own data", "2030-01-01T12:00:00.000000Z", "last", "own.toml")
    rc, out, _ = run(capsys, "challenge", "list", "--db", dbpath, "--json")
    assert [c["id"] for c in json.loads(out)] == [2, 1]
    rc, out, _ = run(capsys, "challenge", "show", "2", "--db", dbpath)
    assert rc == 0 and "hidden test split kept on the server" in out and "sram_bytes 4096" in out
    rc, out, _ = run(capsys, "challenge", "show", "2", "--db", dbpath, "--json")
    shown = json.loads(out)
    assert shown["challenge"]["limits"] == {"sram_bytes": 4096} and shown["submissions_list"] == []
    outdir = tmp_path / "out"
    outdir.mkdir()
    rc, out, _ = run(capsys, "challenge", "export", "2", "--out", str(outdir / "again.toml"), "--db", dbpath)
    assert rc == 0
    again = tomllib.loads((outdir / "again.toml").read_text())
    assert (again["dataset"], again["test_dataset"], again["limits"]) == ("train.npz", "hidden.npz",
                                                                          {"sram_bytes": 4096})
    assert (outdir / "hidden.npz").read_bytes() == (tmp_path / "hidden.npz").read_bytes()
    # The exported file publishes again to the same challenge
    rc, out, _ = run(capsys, "challenge", "create", str(outdir / "again.toml"), "--db", dbpath, "--json")
    assert rc == 0 and json.loads(out)["deadline"] == "2030-01-01T12:00:00.000000Z"


def test_export_grades_csv(capsys, tmp_path, dbpath):
    run(capsys, "challenge", "create", "builtin:prune", "--db", dbpath)
    s = db.open_store(dbpath)
    try:
        for score in (50.0, 80.5):
            sub = add_submission(s, 1, b"model", "h", "lenet")
            start_grading(s, sub.id)
            record_grade(s, sub.id, {"passed": score > 60, "score": score, "checks": [
                {"name": "flash", "value": 13801, "limit": 18432, "passed": True, "detail": ""}]})
        bad = add_submission(s, 1, b"model", "h", "lenet")
        record_grade(s, bad.id, {"passed": False, "score": None, "checks": [], "error": "not graded: crash"})
    finally:
        s.close()
    rc, out, _ = run(capsys, "challenge", "export-grades", "1", "--db", dbpath)
    assert rc == 0
    assert out.splitlines() == ["student,attempts,counted_submission,score,passed,flash", "local,3,2,80.5,True,13801"]
    rc, out, err = run(capsys, "challenge", "export-grades", "1", "--db", dbpath, "--out", str(tmp_path / "g.csv"))
    assert rc == 0 and (tmp_path / "g.csv").read_text().startswith("student,attempts") and "1 students" in err


@pytest.mark.parametrize("argv,message", [
    (["create", "nofile.toml"], "error: nofile.toml: no such file"),
    (["create", "builtin:nope"], "error: builtin:nope: no such built-in challenge; built-ins: builtin:kws64k, "
                                 "builtin:patch16k, builtin:prune, builtin:quantize"),
    (["show", "7"], "error: no challenge with id 7"),
    (["export", "7", "--out", "x.toml"], "error: no challenge with id 7"),
    (["export-grades", "7"], "error: no challenge with id 7"),
])
def test_bad_input_is_one_line(capsys, dbpath, argv, message):
    rc, out, err = run(capsys, "challenge", *argv, "--db", dbpath)
    assert (rc, out, err.strip()) == (2, "", message)


def test_malformed_challenge_file_names_the_field(capsys, tmp_path, dbpath):
    (tmp_path / "lab.toml").write_text('title = "x"\ndataset = "digits"\nmcu = "nrf52840"\ndeadline = '
                                       '"2027-01-31T23:59:00"\n')
    rc, _, err = run(capsys, "challenge", "create", str(tmp_path / "lab.toml"), "--db", dbpath)
    assert (rc, err.strip()) == (2, "error: lab.toml: deadline: give a time zone, e.g. 2027-01-31T23:59:00Z or "
                                    "2027-01-31T23:59:00+01:00")
    rc, out, _ = run(capsys, "challenge", "export", "1", "--out", str(tmp_path / "x.txt"), "--db", dbpath)
    assert rc == 2


def test_create_for_a_course_and_an_owner(capsys, dbpath):
    from store.challenges import list_challenges
    from store.users import add_user, create_course, enroll

    with db.open_store(dbpath) as s:
        prof = add_user(s, "prof", "instructor", "prof-password")
        other = add_user(s, "otto", "instructor", "otto-password")
        ada = add_user(s, "ada", "student", "ada-password")
        course = create_course(s, prof, "TinyML")
        enroll(s, prof, course, "ada")
    rc, out, err = run(capsys, "challenge", "create", "builtin:prune", "--course", "tinyml", "--owner", "prof",
                       "--db", dbpath, "--json")
    doc = json.loads(out)
    assert (rc, doc["course_id"], doc["owner_id"]) == (0, course, prof.id)
    rc, _, err = run(capsys, "challenge", "create", "builtin:prune", "--owner", "ada", "--db", dbpath)
    assert (rc, err.strip()) == (2, "error: --owner ada: a student; a challenge belongs to an instructor")
    rc, _, err = run(capsys, "challenge", "create", "builtin:prune", "--course", "nope", "--db", dbpath)
    assert (rc, err.strip()) == (2, "error: no course named 'nope'")
    with db.open_store(dbpath) as s:
        assert [c.id for c in list_challenges(s, user=ada)] == [doc["id"]]
        assert [c.id for c in list_challenges(s, user=prof)] == [doc["id"]]
        assert list_challenges(s, user=other) == []


def test_the_challenge_command_acts_as_an_instructor_with_user(capsys, dbpath, monkeypatch):
    """`--user NAME`: the store checks ownership as for the Instructor page; the administrator sees everything."""
    from argon2 import PasswordHasher

    import store.users
    from store.users import add_user, create_course

    monkeypatch.setattr(store.users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))

    with db.open_store(dbpath) as s:
        add_user(s, "prof", "instructor", "prof-password")
        create_course(s, add_user(s, "otto", "instructor", "otto-password"), "ottos")
        add_user(s, "ada", "student", "ada-password")
    rc, out, _ = run(capsys, "challenge", "create", "builtin:prune", "--user", "prof", "--db", dbpath, "--json")
    mine = json.loads(out)
    assert rc == 0 and mine["owner_id"] == 1
    rc, out, _ = run(capsys, "challenge", "create", "builtin:quantize", "--user", "otto", "--course", "ottos",
                     "--db", dbpath, "--json")
    assert rc == 0 and json.loads(out)["owner_id"] == 2  # for otto's course: prof does not see it
    rc, out, _ = run(capsys, "challenge", "list", "--user", "prof", "--db", dbpath, "--json")
    assert [c["id"] for c in json.loads(out)] == [mine["id"]]
    rc, out, _ = run(capsys, "challenge", "list", "--db", dbpath, "--json")  # the administrator: both
    assert len(json.loads(out)) == 2
    for action in (["show", "2"], ["export-grades", "2"], ["export", "2", "--out", "x.toml"]):
        rc, _, err = run(capsys, "challenge", *action, "--user", "prof", "--db", dbpath)
        assert (rc, err.strip()) == (2, "error: no challenge with id 2"), action
    rc, out, _ = run(capsys, "challenge", "export-grades", "1", "--user", "prof", "--db", dbpath)
    assert rc == 0 and out.startswith("student,")
    rc, _, err = run(capsys, "challenge", "list", "--user", "ada", "--db", dbpath)
    assert (rc, err.strip()) == (2, "error: --user ada: a student; the challenge command acts as an instructor")
    rc, _, err = run(capsys, "challenge", "create", "builtin:prune", "--user", "prof", "--owner", "otto",
                     "--db", dbpath)
    assert rc == 2 and "--owner is for the administrator" in err
    rc, _, err = run(capsys, "challenge", "list", "--user", "nobody", "--db", dbpath)
    assert (rc, err.strip()) == (2, "error: no user named 'nobody'")
