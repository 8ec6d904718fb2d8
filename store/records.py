"""What the repository functions return: frozen records with `to_json()` (the CLI's --json field names),
and the JSON encoding of the free-form columns (params, metrics, reports)."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from store.clock import iso
from store.errors import InvalidValueError


def jsonable(obj: Any, what: str = "value") -> Any:
    """Plain JSON types: numpy scalars/arrays and tuples converted, NaN/inf -> None (not standard JSON:
    browsers and other tools reject them)."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist(), what)
    if isinstance(obj, (list, tuple)):
        return [jsonable(x, what) for x in obj]
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise InvalidValueError(f"{what}: key {k!r} is not a string")
            out[str(k)] = jsonable(v, what)
        return out
    raise InvalidValueError(f"{what}: {type(obj).__name__} value {obj!r:.60} cannot be stored as JSON")


def dump_json(obj: Any, what: str = "value") -> str:
    return json.dumps(jsonable(obj, what), separators=(",", ":"))


def load_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class Record:
    """A stored row as a frozen dataclass; to_json gives its fields by the same names (the CLI's --json)."""

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SessionInfo(Record):
    id: int
    name: str
    model: str
    current_version_id: int | None
    version_count: int
    source_version_id: int | None  # set for a branch: the version it was made from
    created: str
    updated: str  # last change: a new version, a rename
    owner_id: int | None = None  # the account it belongs to (store.users); None: single-user use


@dataclass(frozen=True)
class VersionInfo(Record):
    id: int
    session_id: int
    parent_id: int | None
    action: str
    params: dict
    metrics: dict
    graph_hash: str
    created: str
    number: int = 0  # 1, 2, ... in the order the session's versions were made: what the studio shows as "v3"

    @property
    def label(self) -> str:
        return f"v{self.number}"


@dataclass(frozen=True)
class JobInfo(Record):
    id: int
    session_id: int
    kind: str
    params: dict
    status: str  # queued | running | done | failed | cancelled
    progress: float
    message: str
    result: Any
    created: str
    updated: str

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed", "cancelled")


@dataclass(frozen=True)
class ExportInfo(Record):
    id: int
    version_id: int
    mcu: str
    options: dict
    bundle_path: str | None
    bundle_bytes: int
    report: dict
    created: str


SESSION_COLUMNS = ("s.id, s.name, s.model, s.current_version_id, "
                   "(SELECT count(*) FROM versions v WHERE v.session_id = s.id), s.source_version_id, "
                   "s.created, s.updated, s.owner_id")
# The per-session number is counted, not stored (no migration): versions are never deleted one by one and ids
# grow, so a version's rank among its session's ids (= creation order) never changes.
VERSION_COLUMNS = ("id, session_id, parent_id, action, params, metrics, graph_hash, created, "
                   "(SELECT count(*) FROM versions w WHERE w.session_id = versions.session_id AND w.id <= versions.id)")
JOB_COLUMNS = "id, session_id, kind, params, status, progress, message, result, created, updated"
EXPORT_COLUMNS = "id, version_id, mcu, options, bundle_path, bundle_bytes, report, created"


def session_from_row(r) -> SessionInfo:
    return SessionInfo(r[0], r[1], r[2], r[3], int(r[4]), r[5], iso(r[6]), iso(r[7]), r[8])


def version_from_row(r) -> VersionInfo:
    return VersionInfo(r[0], r[1], r[2], r[3], load_json(r[4]), load_json(r[5]), r[6], iso(r[7]), int(r[8]))


def job_from_row(r) -> JobInfo:
    return JobInfo(r[0], r[1], r[2], load_json(r[3]), r[4], float(r[5]), r[6], load_json(r[7]), iso(r[8]), iso(r[9]))


def export_from_row(r) -> ExportInfo:
    return ExportInfo(r[0], r[1], r[2], load_json(r[3]), r[4], int(r[5]), load_json(r[6]), iso(r[7]))
