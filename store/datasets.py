"""Data sets uploaded to a session, kept with it in the database so they are there after a reload or restart.

    d = add_session_dataset(store, session_id, "photos.zip", zip_bytes)    # the same bytes twice: stored once
    list_session_datasets(store, session_id)        # newest first, without the bytes
    session_dataset_bytes(store, d.id, session_id)  # the bytes, for engine.data to read (never unpickled)
    delete_session_dataset(store, d.id, session_id)

The store keeps bytes, not arrays: engine.data validates them each time they are read (shapes, NaNs, labels,
zip paths), so a stored upload is checked exactly like a fresh one.
A data set belongs to its session's owner: every function takes `user` (store.access).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass

from store.access import actor, check_owner, session_owner
from store.clock import iso, utcnow
from store.db import Store
from store.errors import InvalidValueError, NotFoundError
from store.rows import check_id, check_name, owned_row, session_row, session_rows

KINDS = ("npz", "csv", "zip")
MAX_DATASET_BYTES = 64 * 1000 * 1000  # one upload (the Data panel's limit)
MAX_SESSION_DATASET_BYTES = 256 * 1000 * 1000  # all uploads of one session together

_COLUMNS = "id, session_id, name, kind, hash, nbytes, created"


@dataclass(frozen=True)
class DatasetInfo:
    id: int
    session_id: int
    name: str
    kind: str  # npz | csv | zip
    hash: str  # sha256 of the bytes
    nbytes: int
    created: str

    def to_json(self) -> dict:
        return asdict(self)


def _from_row(r) -> DatasetInfo:
    return DatasetInfo(r[0], r[1], r[2], r[3], r[4], int(r[5]), iso(r[6]))


def _row(con, dataset_id: int, session_id: int | None, user=None, write: bool = False) -> DatasetInfo:
    r = con.execute(f"SELECT {_COLUMNS} FROM session_datasets WHERE id = ?", [dataset_id]).fetchone()
    missing = f"no data set with id {dataset_id}" + (f" in session {session_id}" if session_id else "")
    if r is None or (session_id is not None and r[1] != session_id):
        raise NotFoundError(missing)
    if user is not None:
        check_owner(con, user, session_owner(con, r[1]), missing, write, f"data set {dataset_id}")
    return _from_row(r)


def dataset_kind(name: str) -> str:
    """npz | csv | zip from the file name; anything else is refused with one line."""
    ext = os.path.splitext(name)[1].lower().lstrip(".")
    if ext not in KINDS:
        raise InvalidValueError(f"{name}: a data set is a .npz, .csv or .zip file, not '.{ext or '(none)'}'")
    return ext


def add_session_dataset(store: Store, session_id: int, name: str, data: bytes, *, user=None) -> DatasetInfo:
    """Keep an uploaded data file with the session; an identical upload returns the stored record."""
    session_id = check_id(session_id, "session id")
    name = check_name(os.path.basename(str(name)), "data set name")
    kind = dataset_kind(name)
    if not isinstance(data, (bytes, bytearray)):
        raise InvalidValueError(f"{name}: data set contents must be bytes, not {type(data).__name__}")
    if not data:
        raise InvalidValueError(f"{name}: the file is empty (0 bytes)")
    if len(data) > MAX_DATASET_BYTES:
        raise InvalidValueError(f"{name}: {len(data):,} bytes is over the limit of {MAX_DATASET_BYTES:,} bytes "
                                "per data set")
    digest = hashlib.sha256(data).hexdigest()
    user = actor(store, user)
    with store.transaction() as con:
        session_row(con, session_id, user, write=True)
        same = con.execute(f"SELECT {_COLUMNS} FROM session_datasets WHERE session_id = ? AND hash = ? AND name = ?",
                           [session_id, digest, name]).fetchone()
        if same is not None:
            return _from_row(same)
        used = con.execute("SELECT coalesce(sum(nbytes), 0) FROM session_datasets WHERE session_id = ?",
                           [session_id]).fetchone()[0]
        if used + len(data) > MAX_SESSION_DATASET_BYTES:
            raise InvalidValueError(f"{name}: the session's data sets would take {used + len(data):,} bytes, over "
                                    f"the limit of {MAX_SESSION_DATASET_BYTES:,}; delete one first")
        did = con.execute("INSERT INTO session_datasets VALUES (nextval('session_dataset_ids'), ?, ?, ?, ?, ?, ?, ?) "
                          "RETURNING id", [session_id, name, kind, digest, bytes(data), len(data), utcnow()]
                          ).fetchone()[0]
        return _row(con, did, session_id)


def list_session_datasets(store: Store, session_id: int, *, user=None) -> list[DatasetInfo]:
    rows = session_rows(store, session_id, f"SELECT {_COLUMNS} FROM session_datasets WHERE session_id = ? "
                                           "ORDER BY id DESC", user)
    return [_from_row(r) for r in rows]


def get_session_dataset(store: Store, dataset_id: int, session_id: int | None = None, *, user=None) -> DatasetInfo:
    with owned_row(store, _row, dataset_id, "data set id", session_id, user) as (_, row):
        return row


def session_dataset_bytes(store: Store, dataset_id: int, session_id: int | None = None, *, user=None) -> bytes:
    """The stored file; with `session_id`, NotFoundError when it belongs to another session."""
    with owned_row(store, _row, dataset_id, "data set id", session_id, user) as (con, row):
        return bytes(con.execute("SELECT data FROM session_datasets WHERE id = ?", [row.id]).fetchone()[0])


def delete_session_dataset(store: Store, dataset_id: int, session_id: int | None = None, *, user=None) -> None:
    with owned_row(store, _row, dataset_id, "data set id", session_id, user, write=True) as (con, row):
        con.execute("DELETE FROM session_datasets WHERE id = ?", [row.id])


def copy_session_datasets(con, source_session_id: int, target_session_id: int) -> None:
    """Inside the caller's transaction: the source session's data sets, copied to the target session."""
    con.execute("INSERT INTO session_datasets SELECT nextval('session_dataset_ids'), ?, name, kind, hash, data, "
                "nbytes, created FROM session_datasets WHERE session_id = ? ORDER BY id",
                [target_session_id, source_session_id])
