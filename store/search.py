"""Search studies and their trials, kept with the design session that ran them.

    st = create_study(store, session_id, "kws-tpe-1", spec, storage="/data/kws.journal", out_dir="/data/kws")
    record_trial(store, st.id, trial)        # an engine.search.TrialRecord (or its dict); the model file is copied in
    finish_study(store, st.id, "done", "20 trials", result=study_result.to_json())
    list_studies(store, session_id)          # newest first, with trial counts
    list_trials(store, st.id)                # every trial, by strategy and number
    trial_model(store, st.id, "tpe", 7)      # (file name, bytes) of a trained candidate's model

Every trial is stored as it finishes (params, state, objectives, the constraint it broke, its error, its
model), so a study interrupted by a restart keeps what it had and can be resumed from its Optuna storage.
The model file's bytes are stored too (up to MAX_MODEL_BYTES): the output folder may be a temporary one.
A study belongs to its session's owner: every function takes `user` (store.access); recording into a study
needs the right to change its session.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any

from store.access import actor, check_owner, session_owner
from store.clock import iso, utcnow
from store.db import Store
from store.errors import InvalidValueError, NotFoundError, StoreError
from store.records import dump_json, load_json
from store.rows import check_id, check_name, check_session, fetch_row, opt_id, session_row, version_row

STATES = ("trained", "rejected", "pruned", "failed")
STUDY_STATUSES = ("running", "done", "failed", "cancelled", "interrupted")
OBJECTIVES = ("accuracy", "latency_ms", "ram_bytes", "flash_bytes", "energy_uj", "macs")
MAX_MODEL_BYTES = 64 * 2**20
MAX_TEXT = 2000


@dataclass(frozen=True)
class StudyInfo:
    id: int
    session_id: int
    name: str
    spec: dict
    storage: str
    out_dir: str
    base_version_id: int | None
    job_id: int | None
    status: str
    message: str
    result: Any
    created: str
    updated: str
    counts: dict  # trials per state, and "total"

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed", "cancelled")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrialInfo:
    study_id: int
    strategy: str
    number: int
    state: str
    params: dict
    accuracy: float | None
    latency_ms: float | None
    ram_bytes: int | None
    flash_bytes: int | None
    energy_uj: float | None
    macs: int | None
    broke: str | None
    error: str | None
    model_path: str | None
    has_model: bool
    seconds: float
    created: str

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


_STUDY_COLUMNS = ("id, session_id, name, spec, storage, out_dir, base_version_id, job_id, status, message, result, "
                  "created, updated, "
                  "(SELECT list(t.state) FROM trials t WHERE t.study_id = studies.id)")
_TRIAL_COLUMNS = ("study_id, strategy, number, state, params, objectives, broke, error, model_path, "
                  "model IS NOT NULL, seconds, created")


def _counts(states) -> dict:
    states = list(states or [])
    out = {s: states.count(s) for s in STATES}
    out["total"] = len(states)
    return out


def _study(r) -> StudyInfo:
    return StudyInfo(r[0], r[1], r[2], load_json(r[3]), r[4], r[5], r[6], r[7], r[8], r[9], load_json(r[10]),
                     iso(r[11]), iso(r[12]), _counts(r[13]))


def _trial(r) -> TrialInfo:
    o = load_json(r[5]) or {}
    return TrialInfo(r[0], r[1], int(r[2]), r[3], load_json(r[4]) or {}, *(o.get(k) for k in OBJECTIVES),
                     r[6], r[7], r[8], bool(r[9]), float(r[10]), iso(r[11]))


def _text(value, what: str, empty_ok: bool = True) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidValueError(f"{what} must be text, not {type(value).__name__}")
    if not value and not empty_ok:
        raise InvalidValueError(f"{what} is empty")
    return value if len(value) <= MAX_TEXT else value[:MAX_TEXT - 1] + "…"


def _study_row(con, study_id, session_id: int | None = None, user=None, write: bool = False) -> StudyInfo:
    study_id = check_id(study_id, "study id")
    st = _study(fetch_row(con, _STUDY_COLUMNS, "studies", study_id, "study"))
    if user is not None:  # before the session check, whose message names the study's session
        check_owner(con, user, session_owner(con, st.session_id), f"no study with id {study_id}", write,
                    f"study {study_id}")
    check_session("study", study_id, st.session_id, session_id)
    return st


def create_study(store: Store, session_id: int, name: str, spec: dict, storage: str, out_dir: str,
                 base_version_id: int | None = None, job_id: int | None = None, *, user=None) -> StudyInfo:
    """A new study of the session, status running. `spec` is the StudySpec's fields (JSON)."""
    session_id = check_id(session_id, "session id")
    base_version_id = opt_id(base_version_id, "base version id")
    job_id = opt_id(job_id, "job id")
    name = check_name(name, "study name")
    storage, out_dir = _text(storage, "study storage", False), _text(out_dir, "study output folder", False)
    if not isinstance(spec, dict):
        raise InvalidValueError(f"study spec must be a dict, not {type(spec).__name__}")
    spec_json = dump_json(spec, "study spec")
    now = utcnow()
    user = actor(store, user)
    with store.transaction() as con:
        session_row(con, session_id, user, write=True)
        if base_version_id is not None:
            version_row(con, base_version_id, session_id, user)
        sid = con.execute("INSERT INTO studies VALUES (nextval('study_ids'), ?, ?, ?, ?, ?, ?, ?, 'running', '', "
                          "NULL, ?, ?) RETURNING id", [session_id, name, spec_json, storage, out_dir,
                                                        base_version_id, job_id, now, now]).fetchone()[0]
        return _study_row(con, sid)


def set_study_job(store: Store, study_id: int, job_id: int, *, user=None) -> StudyInfo:
    """Link the study to the job that runs it (again, for a resumed study) and mark it running."""
    job_id = check_id(job_id, "job id")
    user = actor(store, user)
    with store.transaction() as con:
        st = _study_row(con, study_id, None, user, write=True)
        con.execute("UPDATE studies SET job_id = ?, status = 'running', message = '', updated = ? WHERE id = ?",
                    [job_id, utcnow(), st.id])
        return _study_row(con, st.id)


def _number(value, what: str, integer: bool = False):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise InvalidValueError(f"trial {what} must be a finite number or None, not {value!r:.40}")
    return int(value) if integer else float(value)


def _model_bytes(path: str | None) -> bytes | None:
    """The model file's bytes (bounded), or None when there is no readable file."""
    if not path or not os.path.isfile(path):
        return None
    size = os.path.getsize(path)
    if size > MAX_MODEL_BYTES:
        return None  # kept by path only: the store would grow by more than a model is worth
    try:
        with open(path, "rb") as f:
            return f.read(MAX_MODEL_BYTES + 1)
    except OSError:
        return None


def record_trial(store: Store, study_id: int, trial, *, user=None) -> TrialInfo:
    """Store one finished trial (a TrialRecord dataclass or its dict). A trial recorded again under the same
    strategy and number (a retry after a lost worker) replaces the earlier row."""
    t = dataclasses.asdict(trial) if dataclasses.is_dataclass(trial) else trial
    if not isinstance(t, dict):
        raise InvalidValueError(f"a trial must be a TrialRecord or a dict, not {type(trial).__name__}")
    number = t.get("number")
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        raise InvalidValueError(f"trial number must be a non-negative whole number, not {number!r:.40}")
    state = t.get("state")
    if state not in STATES:
        raise InvalidValueError(f"trial state must be one of {', '.join(STATES)}, not {state!r:.40}")
    strategy = _text(t.get("strategy") or "", "trial strategy", False)
    objectives = {k: _number(t.get(k), k, k in ("ram_bytes", "flash_bytes", "macs")) for k in OBJECTIVES}
    params_json = dump_json(t.get("params") or {}, "trial params")
    broke, error = _text(t.get("broke"), "trial constraint"), _text(t.get("error"), "trial error")
    model_path = _text(t.get("model_path"), "trial model path")
    seconds = _number(t.get("seconds") or 0.0, "seconds")
    blob = _model_bytes(model_path)  # read before taking the database lock
    user = actor(store, user)
    with store.transaction() as con:
        st = _study_row(con, study_id, None, user, write=True)
        con.execute("DELETE FROM trials WHERE study_id = ? AND strategy = ? AND number = ?", [st.id, strategy, number])
        con.execute("INSERT INTO trials VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [st.id, strategy, number, state, params_json, dump_json(objectives), broke, error, model_path,
                     blob, seconds, utcnow()])
        con.execute("UPDATE studies SET updated = ? WHERE id = ?", [utcnow(), st.id])
        r = con.execute(f"SELECT {_TRIAL_COLUMNS} FROM trials WHERE study_id = ? AND strategy = ? AND number = ?",
                        [st.id, strategy, number]).fetchone()
        return _trial(r)


def finish_study(store: Store, study_id: int, status: str, message: str = "", result=None, *,
                 user=None) -> StudyInfo:
    """Mark the study done / failed / cancelled / interrupted, with the engine's StudyResult.to_json()."""
    if status not in STUDY_STATUSES or status == "running":
        raise InvalidValueError(f"a study finishes as one of done, failed, cancelled, interrupted, not {status!r:.40}")
    message = _text(message, "study message") or ""
    result_json = None if result is None else dump_json(result, "study result")
    user = actor(store, user)
    with store.transaction() as con:
        st = _study_row(con, study_id, None, user, write=True)
        con.execute("UPDATE studies SET status = ?, message = ?, result = coalesce(?, result), updated = ? "
                    "WHERE id = ?", [status, message, result_json, utcnow(), st.id])
        return _study_row(con, st.id)


def get_study(store: Store, study_id: int, session_id: int | None = None, *, user=None) -> StudyInfo:
    """The study; with `session_id`, an error when it belongs to another session."""
    session_id = opt_id(session_id, "session id")
    user = actor(store, user)
    with store.transaction() as con:
        return _study_row(con, study_id, session_id, user)


def list_studies(store: Store, session_id: int, *, user=None) -> list[StudyInfo]:
    """The session's studies, newest first. A study that was running when TinyStudio stopped is marked
    interrupted when the database is opened again (store.db), and can be resumed from its storage."""
    session_id = check_id(session_id, "session id")
    user = actor(store, user)
    with store.transaction() as con:
        session_row(con, session_id, user)
        rows = con.execute(f"SELECT {_STUDY_COLUMNS} FROM studies WHERE session_id = ? ORDER BY id DESC",
                           [session_id]).fetchall()
    return [_study(r) for r in rows]


def list_trials(store: Store, study_id: int, session_id: int | None = None, *, user=None) -> list[TrialInfo]:
    """Every stored trial of the study, by strategy, then number."""
    session_id = opt_id(session_id, "session id")
    user = actor(store, user)
    with store.transaction() as con:
        st = _study_row(con, study_id, session_id, user)
        rows = con.execute(f"SELECT {_TRIAL_COLUMNS} FROM trials WHERE study_id = ? ORDER BY strategy, number",
                           [st.id]).fetchall()
    return [_trial(r) for r in rows]


def trial_model(store: Store, study_id: int, strategy: str, number: int,
                session_id: int | None = None, *, user=None) -> tuple[str, bytes]:
    """(file name, bytes) of a trained trial's model: the stored copy, else the file at its path."""
    session_id = opt_id(session_id, "session id")
    number = check_id(number, "trial number")
    user = actor(store, user)
    with store.transaction() as con:
        st = _study_row(con, study_id, session_id, user)
        r = con.execute("SELECT model_path, model, state FROM trials WHERE study_id = ? AND strategy = ? AND "
                        "number = ?", [st.id, strategy, number]).fetchone()
    if r is None:
        raise NotFoundError(f"study {st.name!r} has no {strategy} trial {number}")
    path, blob, state = r
    if state != "trained":
        raise StoreError(f"trial {number} of study {st.name!r} was {state}: it has no trained model")
    if blob is None:
        blob = _model_bytes(path)
    if blob is None and path and os.path.isfile(path):
        raise StoreError(f"trial {number} of study {st.name!r}: its model file {path} is over "
                         f"{MAX_MODEL_BYTES // 2**20} MiB")
    if blob is None:
        raise StoreError(f"trial {number} of study {st.name!r}: its model file {path} is gone")
    return os.path.basename(path or f"trial{number}.onnx"), bytes(blob)


def delete_study(store: Store, study_id: int, session_id: int | None = None, *, user=None) -> None:
    """Forget a study and its trials (its storage and model files on disk stay)."""
    session_id = opt_id(session_id, "session id")
    user = actor(store, user)
    with store.transaction() as con:
        st = _study_row(con, study_id, session_id, user, write=True)
        con.execute("DELETE FROM trials WHERE study_id = ?", [st.id])
        con.execute("DELETE FROM studies WHERE id = ?", [st.id])


def delete_session_studies(con, session_id: int) -> None:
    """Inside store.sessions.delete_session's transaction."""
    con.execute("DELETE FROM trials WHERE study_id IN (SELECT id FROM studies WHERE session_id = ?)", [session_id])
    con.execute("DELETE FROM studies WHERE session_id = ?", [session_id])
