"""Ownership enforced in the store: student B reaches nothing of student A's through any repository function;
an instructor reads (never changes) the work of the students of their courses and nothing of other courses."""
from __future__ import annotations

import inspect

import pytest

import store
from store import (NotFoundError, ReadOnlyError, add_export, add_session_dataset, add_version, as_user,
                   branch_session, cancel_job, check_integrity, compare_versions, create_job, create_session,
                   create_study, current_graph, current_version, delete_export, delete_session,
                   delete_session_dataset, delete_study, duplicate_session, export_bundle, export_session_bytes,
                   export_session_file, fail_job, finish_job, finish_study, get_export, get_graph, get_job,
                   get_profile, get_session, get_session_dataset, get_study, get_version, import_session_bytes,
                   list_exports, list_jobs, list_profiles, list_session_datasets, list_sessions, list_studies,
                   list_trials, list_versions, open_store, profile_version, record_trial, rename_session,
                   restore_version, save_profile, session_dataset_bytes, session_upload, set_model_label,
                   set_study_job, trial_model, update_job, version_accuracy, version_layers)
from store.users import add_user, create_course, enroll
from tests.store.graphs import mlp

PW = "a good password"
TRIAL = {"number": 0, "state": "trained", "strategy": "tpe", "params": {}, "accuracy": 0.9, "model_path": None,
         "seconds": 1.0}
PROFILE = {"totals": {"macs": 1}, "layers": []}


@pytest.fixture
def lab(tmp_path):
    s = open_store(str(tmp_path / "lab.duckdb"))
    prof = add_user(s, "prof", "instructor", PW)
    other_prof = add_user(s, "other", "instructor", PW)
    a = add_user(s, "ada", "student", PW)
    b = add_user(s, "bob", "student", PW)
    cid = create_course(s, prof, "TinyML")
    enroll(s, prof, cid, "ada")
    enroll(s, prof, cid, "bob")
    create_course(s, other_prof, "Other course")
    # Ada's work: a session with two versions, an upload, a job, an export, a data set, a profile, a study.
    sess = create_session(s, "ada's kws", mlp(seed=1), action="import", params={"file": "m.onnx"},
                          upload=b"model file bytes", user=a)
    v1 = sess.current_version_id
    v2 = add_version(s, sess.id, mlp((16, 8, 4), seed=2), "edit", user=a).id
    job = create_job(s, sess.id, "train", user=a)
    exp = add_export(s, v2, "stm32f746ng", {"ok": True}, bundle=b"PK bundle", user=a)
    ds = add_session_dataset(s, sess.id, "d.csv", b"x,y\n1,0\n", user=a)
    save_profile(s, v2, "nrf52840", "tflm-cmsis-nn", PROFILE, user=a)
    study = create_study(s, sess.id, "st", {"trials": 1}, str(tmp_path / "j"), str(tmp_path / "o"), user=a)
    (tmp_path / "t0.onnx").write_bytes(b"trained model")
    record_trial(s, study.id, {**TRIAL, "model_path": str(tmp_path / "t0.onnx")}, user=a)
    ids = {"session": sess.id, "v1": v1, "v2": v2, "job": job.id, "export": exp.id, "dataset": ds.id,
           "study": study.id}
    yield s, {"prof": prof, "other": other_prof, "ada": a, "bob": b}, ids
    s.close()


def _calls(ids, tmp_path):
    """(name, call(store, user), changes) for every repository function that reaches a row of Ada's."""
    sid, v1, v2, jid, eid, did, stid = (ids[k] for k in ("session", "v1", "v2", "job", "export", "dataset", "study"))
    return [
        ("get_session", lambda s, u: get_session(s, sid, user=u), False),
        ("rename_session", lambda s, u: rename_session(s, sid, "mine now", user=u), True),
        ("set_model_label", lambda s, u: set_model_label(s, sid, "x", user=u), True),
        ("duplicate_session", lambda s, u: duplicate_session(s, sid, user=u), False),
        ("branch_session", lambda s, u: branch_session(s, v1, user=u), False),
        ("delete_session", lambda s, u: delete_session(s, sid, user=u), True),
        ("add_version", lambda s, u: add_version(s, sid, mlp(seed=9), "edit", user=u), True),
        ("get_version", lambda s, u: get_version(s, v1, user=u), False),
        ("get_version in session", lambda s, u: get_version(s, v1, sid, user=u), False),
        ("get_graph", lambda s, u: get_graph(s, v2, user=u), False),
        ("current_version", lambda s, u: current_version(s, sid, user=u), False),
        ("current_graph", lambda s, u: current_graph(s, sid, user=u), False),
        ("list_versions", lambda s, u: list_versions(s, sid, user=u), False),
        ("version_layers", lambda s, u: version_layers(s, v1, user=u), False),
        ("restore_version", lambda s, u: restore_version(s, sid, v1, user=u), True),
        ("compare_versions", lambda s, u: compare_versions(s, v1, v2, user=u), False),
        ("version_accuracy", lambda s, u: version_accuracy(s, v2, user=u), False),
        ("session_upload", lambda s, u: session_upload(s, sid, user=u), False),
        ("export_session_bytes", lambda s, u: export_session_bytes(s, sid, user=u), False),
        ("export_session_file", lambda s, u: export_session_file(s, sid, str(tmp_path / "x.tinystudio"), user=u),
         False),
        ("create_job", lambda s, u: create_job(s, sid, "train", user=u), True),
        ("get_job", lambda s, u: get_job(s, jid, user=u), False),
        ("list_jobs of session", lambda s, u: list_jobs(s, sid, user=u), False),
        ("update_job", lambda s, u: update_job(s, jid, 0.5, "x", user=u), True),
        ("cancel_job", lambda s, u: cancel_job(s, jid, user=u), True),
        ("fail_job", lambda s, u: fail_job(s, jid, "x", user=u), True),
        ("finish_job", lambda s, u: finish_job(s, jid, user=u), True),
        ("add_export", lambda s, u: add_export(s, v2, "nrf52840", {}, bundle=b"x", user=u), True),
        ("get_export", lambda s, u: get_export(s, eid, user=u), False),
        ("export_bundle", lambda s, u: export_bundle(s, eid, user=u), False),
        ("list_exports of session", lambda s, u: list_exports(s, session_id=sid, user=u), False),
        ("list_exports of version", lambda s, u: list_exports(s, version_id=v2, user=u), False),
        ("delete_export", lambda s, u: delete_export(s, eid, user=u), True),
        ("add_session_dataset", lambda s, u: add_session_dataset(s, sid, "e.csv", b"a,b\n1,2\n", user=u), True),
        ("list_session_datasets", lambda s, u: list_session_datasets(s, sid, user=u), False),
        ("get_session_dataset", lambda s, u: get_session_dataset(s, did, user=u), False),
        ("session_dataset_bytes", lambda s, u: session_dataset_bytes(s, did, user=u), False),
        ("delete_session_dataset", lambda s, u: delete_session_dataset(s, did, user=u), True),
        ("get_profile", lambda s, u: get_profile(s, v2, "nrf52840", "tflm-cmsis-nn", user=u), False),
        ("list_profiles", lambda s, u: list_profiles(s, v2, user=u), False),
        ("profile_version", lambda s, u: profile_version(s, v2, [("nrf52840", "tflm-cmsis-nn")], user=u), False),
        ("create_study", lambda s, u: create_study(s, sid, "x", {}, "/tmp/j", "/tmp/o", user=u), True),
        ("get_study", lambda s, u: get_study(s, stid, user=u), False),
        ("list_studies", lambda s, u: list_studies(s, sid, user=u), False),
        ("list_trials", lambda s, u: list_trials(s, stid, user=u), False),
        ("record_trial", lambda s, u: record_trial(s, stid, {**TRIAL, "number": 5}, user=u), True),
        ("set_study_job", lambda s, u: set_study_job(s, stid, jid, user=u), True),
        ("finish_study", lambda s, u: finish_study(s, stid, "done", user=u), True),
        ("delete_study", lambda s, u: delete_study(s, stid, user=u), True),
        ("trial_model", lambda s, u: trial_model(s, stid, "tpe", 0, user=u), False),
    ]


MISSING = {"session": 999_999, "v1": 999_999, "v2": 999_998, "job": 999_999, "export": 999_999,
           "dataset": 999_999, "study": 999_999}


def test_every_function_refuses_another_students_rows_as_if_they_did_not_exist(lab, tmp_path):
    s, users, ids = lab
    bob = users["bob"]
    before = _members(export_session_bytes(s, ids["session"]))
    for (name, call, _), (_, missing_call, _) in zip(_calls(ids, tmp_path), _calls(MISSING, tmp_path)):
        with pytest.raises(NotFoundError) as refused:
            call(s, bob)
        # The same words as for an id that names nothing: a refusal does not tell that the row exists.
        with pytest.raises(NotFoundError) as missing:
            missing_call(s, None)
        assert _shape(str(refused.value), ids) == _shape(str(missing.value), MISSING), name
        with pytest.raises(NotFoundError):  # the same through a store view bound to Bob
            call(as_user(s, bob), None)
    # Lists show nothing of Ada's; her session is untouched.
    for u in (bob, users["other"]):
        assert list_sessions(s, user=u) == [] and list_jobs(s, user=u) == [] and list_exports(s, user=u) == []
    assert _members(export_session_bytes(s, ids["session"])) == before
    assert get_session(s, ids["session"]).name == "ada's kws"
    assert check_integrity(s) == []


def _members(data: bytes) -> dict:
    """A session file's members (the zip's own timestamps left out)."""
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {n: z.read(n) for n in z.namelist()}


def _shape(message: str, ids: dict) -> str:
    for v in ids.values():
        message = message.replace(str(v), "N")
    return message


def test_an_instructor_of_another_course_reaches_nothing(lab, tmp_path):
    s, users, ids = lab
    for name, call, _ in _calls(ids, tmp_path):
        with pytest.raises(NotFoundError):
            call(s, users["other"])


def test_the_instructor_of_the_course_reads_but_never_changes(lab, tmp_path):
    s, users, ids = lab
    prof = users["prof"]
    for name, call, changes in _calls(ids, tmp_path):
        if changes:
            with pytest.raises(ReadOnlyError, match="an instructor can look at it, not change it"):
                call(s, prof)
        else:
            call(s, prof)  # reads (a duplicate or branch becomes the instructor's own session)
    assert get_session(s, ids["session"]).name == "ada's kws"
    mine = [x for x in list_sessions(s, user=prof)]
    assert {x.owner_id for x in mine} == {users["ada"].id, prof.id}
    assert [x.name for x in list_sessions(s, user=users["ada"])] == ["ada's kws"]  # copies are not hers
    assert {j.session_id for j in list_jobs(s, user=prof)} == {ids["session"]}


def test_the_owner_does_everything(lab, tmp_path):
    s, users, ids = lab
    calls = sorted(_calls(ids, tmp_path), key=lambda c: (c[0].startswith("delete_"), c[0] == "delete_session"))
    for name, call, _ in calls:  # the deletes last, the session's own at the very end
        call(s, users["ada"])
    left = list_sessions(s, user=users["ada"])  # her duplicate and her branch; the session itself is gone
    assert len(left) == 2 and ids["session"] not in {x.id for x in left}
    assert {x.owner_id for x in left} == {users["ada"].id}


def test_new_rows_belong_to_the_acting_user(lab):
    s, users, ids = lab
    bob = users["bob"]
    mine = create_session(as_user(s, bob), "bob's", mlp())
    assert mine.owner_id == bob.id
    data = export_session_bytes(s, ids["session"])
    imported = import_session_bytes(s, data, user=bob)
    assert imported.owner_id == bob.id
    assert {x.id for x in list_sessions(s, user=bob)} == {mine.id, imported.id}
    assert create_session(s, "local", mlp()).owner_id is None  # no user: single-user use, no owner
    assert len(list_sessions(s)) == 4  # no user sees everything


def test_every_repository_function_takes_a_user():
    """A new store function reaching a session, version, job, export, data set or study must take `user`."""
    reach = ("session_id", "version_id", "job_id", "export_id", "dataset_id", "study_id", "a_id")
    exempt = {"open_store", "check_integrity", "split_targets"}
    missing = []
    for name in store.__all__:
        fn = getattr(store, name)
        if not inspect.isfunction(fn) or name in exempt:
            continue
        params = inspect.signature(fn).parameters
        if any(p in params for p in reach) or name.startswith(("list_", "import_", "create_")):
            if "user" not in params or params["user"].kind is not inspect.Parameter.KEYWORD_ONLY:
                missing.append(name)
    assert missing == []


def test_only_the_administrator_gives_a_session_to_an_account(lab):
    from store import set_session_owner

    s, users, ids = lab
    old = create_session(s, "made before accounts", mlp())
    assert list_sessions(s, user=users["prof"]) != [] and old.id not in {x.id for x in list_sessions(s, user=users["prof"])}
    for u in users.values():  # nobody logged in may move a session, not even its owner
        with pytest.raises((NotFoundError, ReadOnlyError)):
            set_session_owner(s, ids["session"], users["bob"], user=u)
    assert set_session_owner(s, old.id, users["prof"]).owner_id == users["prof"].id
    assert old.id in {x.id for x in list_sessions(s, user=users["prof"])}
    assert get_session(s, ids["session"]).owner_id == users["ada"].id
    assert check_integrity(s) == []


def test_naming_another_students_version_from_ones_own_session_tells_nothing(lab):
    """A version id of Ada's given as a parent, a version to restore or a search's base, in Bob's own session:
    refused as missing, without naming the session it is in."""
    s, users, ids = lab
    bob = users["bob"]
    mine = create_session(s, "bob's", mlp(), user=bob)
    for call in (lambda: add_version(s, mine.id, mlp(seed=4), "edit", parent_id=ids["v1"], user=bob),
                 lambda: restore_version(s, mine.id, ids["v1"], user=bob),
                 lambda: create_study(s, mine.id, "x", {}, "/tmp/j", "/tmp/o", base_version_id=ids["v1"], user=bob),
                 lambda: get_version(s, ids["v1"], mine.id, user=bob),
                 lambda: get_session_dataset(s, ids["dataset"], mine.id, user=bob)):
        with pytest.raises(NotFoundError) as e:
            call()
        assert f"session {ids['session']}" not in str(e.value) and "belongs to" not in str(e.value), str(e.value)
    assert len(list_versions(s, mine.id, user=bob)) == 1
