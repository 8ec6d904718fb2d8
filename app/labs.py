"""Teaching labs as the studio's pages and the CLI both use them: publish a challenge (a file, a built-in lab,
an upload, the form), start a session from it, submit a version, grade it. No streamlit here.

    c = publish(store, "lab.toml", user=instructor)           # or "builtin:kws64k"
    s = submit_version(store, c.id, version_id, user=student)  # queued; then, in a job or a worker:
    grade_submission(store, s.id, progress)                    # graded, or "not graded: why" (never lost)

Leaderboards, grades and queries over the results are in app.lab_results.

Every store call passes `user` (None: single-user local use), so who sees what is decided by the store.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import store as db
from engine.errors import TinyStudioError, one_line
from engine.labs import list_builtin
from engine.labs.package import FILE_NAME, grade_packed, pack, parse_text, to_toml, unpack
from engine.serialize import save
from store.challenges import (ChallengeInfo, SubmissionInfo, add_challenge, add_submission, challenge_package,
                              get_challenge, get_submission, mark_not_graded, record_grade, start_grading,
                              submission_model)

UNITS = {"sram": "B", "flash": "B", "latency": "ms", "energy": "uJ"}


class LabError(TinyStudioError):
    """A lab action that cannot be done as asked: one line."""


def fmt_value(name: str, v) -> str:
    """A check's value or limit in its unit, as `tinystudio grade` and the pages show it."""
    if v is None:
        return "-"
    if name == "accuracy":
        return f"{100 * v:.2f} %"
    if name in ("sram", "flash"):
        return f"{int(v):,} B"
    if name in UNITS:
        return f"{v:,.3f} {UNITS[name]}"
    return str(v)


def builtin_labs() -> list[tuple[str, str]]:
    """(builtin:NAME, title) of the labs that ship with TinyStudio."""
    from engine.labs import load_challenge

    return [(f"builtin:{n}", load_challenge(f"builtin:{n}").title) for n in list_builtin()]


def publish(store, path_or_builtin: str, user=None, course_id: int | None = None,
            owner: str | None = None) -> ChallengeInfo:
    """Publish a challenge file (with the files beside it) or a built-in lab. `owner`: the instructor it is
    published for (the CLI, which acts as the server's administrator)."""
    owner_id = None
    if owner is not None:
        from store.users import find_user

        u = find_user(store, owner)
        if u.role != "instructor":
            raise LabError(f"--owner {owner}: a {u.role}; a challenge belongs to an instructor")
        owner_id = u.id
    ch, toml_text, files = pack(path_or_builtin)
    source = path_or_builtin if path_or_builtin.startswith("builtin:") else Path(path_or_builtin).name
    return add_challenge(store, toml_text, files, title=ch.title, deadline=ch.deadline, counts=ch.counts,
                         source=source, course_id=course_id, user=user, owner_id=owner_id)


def publish_text(store, toml_text: str, files: dict[str, tuple[bytes, bool]], user=None,
                 course_id: int | None = None, source: str = "form") -> ChallengeInfo:
    """Publish TOML text with its files (an upload or the instructor page's form); ChallengeError names the
    field of a malformed one."""
    ch = parse_text(toml_text, files, fname=source if source.endswith(".toml") else FILE_NAME)
    return add_challenge(store, toml_text, files, title=ch.title, deadline=ch.deadline, counts=ch.counts,
                         source=source, course_id=course_id, user=user)


def publish_upload(store, toml_name: str, toml_bytes: bytes, uploads: dict[str, bytes], user=None,
                   course_id: int | None = None) -> ChallengeInfo:
    """Publish an uploaded challenge file with the files it names (uploaded beside it, by file name); the one
    its `test_dataset` names is kept hidden from students."""
    import tomllib

    try:
        text = toml_bytes.decode("utf-8")
        doc = tomllib.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise LabError(f"{toml_name}: not a TOML challenge file ({first_line(e)})") from None
    named = {k: doc.get(k) for k in ("dataset", "test_dataset", "start") if isinstance(doc.get(k), str)}
    files = {}
    for key, name in named.items():
        base = Path(name).name
        if base in uploads:
            files[name] = (uploads[base], key == "test_dataset")
    return publish_text(store, text, files, user=user, course_id=course_id, source=Path(toml_name).name)


def publish_form(store, fields: dict, data: tuple[str, bytes] | None = None,
                 test: tuple[str, bytes] | None = None, user=None, course_id: int | None = None) -> ChallengeInfo:
    """Publish the instructor page's form: `fields` as form_toml takes them; `data` / `test`: (file name,
    bytes) of an uploaded data set and of its hidden test split."""
    fields = dict(fields)
    files = {}
    if fields.get("dataset") == "an uploaded file":
        if data is None:
            raise LabError("dataset: upload the data file (.npz, .csv or .zip), or choose a built-in data set")
        fields["dataset"] = Path(data[0]).name
        files[fields["dataset"]] = (data[1], False)
    if test is not None:
        name = Path(test[0]).name
        name = f"test-{name}" if name in files else name
        fields["test_dataset"] = name
        files[name] = (test[1], True)
    return publish_text(store, form_toml(fields), files, user=user, course_id=course_id, source="form")


def course_choices(store, user) -> dict:
    """{course id or None: label} for the publish forms: None is every account."""
    out: dict = {None: "every account"}
    if user is not None:
        from store.users import courses_of

        for c in courses_of(store, user):
            out[c.id] = c.name
    return out


def form_toml(fields: dict) -> str:
    """A challenge file from the instructor page's form fields (empty ones left out)."""
    top = {k: v for k, v in fields.items() if k not in ("limits", "scoring", "grading") and v not in (None, "")}
    doc = dict(top)
    for table in ("limits", "scoring", "grading"):
        t = {k: v for k, v in (fields.get(table) or {}).items() if v not in (None, "", 0)}
        if t:
            doc[table] = t
    return to_toml(doc)


def load(store, challenge_id: int, user=None, folder: str | None = None):
    """The engine's Challenge of a stored one (files written to `folder`, a temporary one by default: only
    the text fields are then usable)."""
    toml_text, files = challenge_package(store, challenge_id, user=user)
    info = get_challenge(store, challenge_id, user=user)
    with tempfile.TemporaryDirectory(prefix="tinystudio-challenge-") as td:
        # A student's copy lacks the hidden test file: keep the key readable by writing an empty stand-in.
        return unpack(toml_text, _stand_ins(toml_text, files), folder or td, source=f"challenge {info.id}")


def _stand_ins(toml_text: str, files: dict) -> dict:
    import tomllib

    name = tomllib.loads(toml_text).get("test_dataset")
    return files if not name or name in files else {**files, name: (b"", True)}


def export_toml(store, challenge_id: int, out: str, user=None) -> list[str]:
    """Write the challenge file and the files it names beside it (hidden ones only for an instructor);
    returns the paths written."""
    out_path = Path(out)
    if not out_path.name.lower().endswith(".toml"):
        raise LabError(f"--out {out}: write a .toml file")
    if not out_path.parent.is_dir():
        raise LabError(f"--out {out}: folder {out_path.parent} does not exist")
    toml_text, files = challenge_package(store, challenge_id, user=user, hidden=user is None or
                                         user.role == "instructor")
    written = []
    for name, (data, _hidden) in files.items():
        p = (out_path.parent / name).resolve()
        if not p.is_relative_to(out_path.parent.resolve()):
            raise LabError(f"{name!r}: a challenge's file must lie beside the challenge file")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        written.append(str(p))
    out_path.write_text(toml_text, encoding="utf-8")
    return [str(out_path), *written]


def start_session(store, challenge_id: int, user=None) -> db.SessionInfo:
    """A new session of the user's holding the challenge's starting model (a zoo model sized for its data
    set, or its model file); an uploaded data set goes with it, so the Data panel offers it."""
    from engine.data import load_dataset
    from engine.importers import load_model_bytes
    from engine.train import adapt_zoo

    info = get_challenge(store, challenge_id, user=user)
    with tempfile.TemporaryDirectory(prefix="tinystudio-start-") as td:
        ch = load(store, challenge_id, user=user, folder=td)
        if not ch.start:
            raise LabError(f"challenge {info.id} names no starting model")
        data = load_dataset(ch.dataset)
        if ch.start.lower().startswith("zoo:"):
            graph, model, action = adapt_zoo(ch.start, data), ch.start, "zoo"
        else:
            raw = Path(ch.start).read_bytes()
            graph, model, action = load_model_bytes(raw, Path(ch.start).name), Path(ch.start).name, "import"
        s = db.create_session(store, info.title[:150], graph, model=model, action=action,
                              params={"spec": graph.name, "challenge": info.id}, **user_kw(user))
        if Path(ch.dataset).is_file():
            db.add_session_dataset(store, s.id, Path(ch.dataset).name, Path(ch.dataset).read_bytes(),
                                   **user_kw(user))
    return s


def submit_version(store, challenge_id: int, version_id: int, user=None, now=None) -> SubmissionInfo:
    """Submit a saved version (the student's own: the store refuses others'); status queued. The graph is
    copied into the submission, so deleting the session later loses nothing."""
    v = db.get_version(store, version_id, **user_kw(user))
    graph = db.get_graph(store, version_id, **user_kw(user))
    with tempfile.TemporaryDirectory(prefix="tinystudio-submit-") as td:
        path = Path(td) / "model.tsgraph"
        save(graph, str(path))
        model = path.read_bytes()
    return add_submission(store, challenge_id, model, v.graph_hash, graph.name or f"v{v.number}", user=user,
                          session_id=v.session_id, version_id=v.id, now=now)


def user_kw(user) -> dict:
    """The keyword that makes a store function check ownership (accounts' interface); nothing for local use."""
    return {} if user is None else {"user": user}


def grade_submission(store, submission_id: int, progress=None, job_id: int | None = None,
                     runner=None) -> SubmissionInfo:
    """Grade one submission (the server's work; runs in a job thread): the grader runs in a worker process
    (`runner`, default app.job_executor.run_remote; `runner=False` runs it here). Any failure of the grader
    marks the submission "not graded: why"; a cancel marks it too and goes on (app.jobs.Cancelled)."""
    report = progress or (lambda *_: None)
    store = getattr(store, "base", store)  # the server's own work: it reads the hidden test split
    start_grading(store, submission_id, job_id)
    try:
        sub = get_submission(store, submission_id)
        toml_text, files = challenge_package(store, sub.challenge_id, hidden=True)
        model = submission_model(store, submission_id)
        if runner is False:
            result = grade_packed(toml_text, files, model, progress=report)
        else:
            if runner is None:
                from app.job_executor import run_remote as runner
            result = runner(grade_packed, toml_text, files, model, progress=report)
    except Exception as e:  # noqa: BLE001 - the submission must say why, whatever failed
        why = "cancelled" if type(e).__name__ in ("Cancelled", "Stopped") else \
            f"the grader failed ({type(e).__name__}: {one_line(str(e)) or 'no message'})"
        mark_not_graded(store, submission_id, why)
        if type(e).__name__ == "Cancelled":
            raise
        return get_submission(store, submission_id)
    return record_grade(store, submission_id, result)


def first_line(e: Exception) -> str:
    # DuckDB's messages add the query and a caret on further lines; the first says what is wrong.
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__
