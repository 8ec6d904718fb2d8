"""The file a session was created from, kept as uploaded (the Model view shows it in Netron beside the current
version): its bytes in the `blobs` table under the key "upload:<sha256>", named by the first version's params.

    s = create_session(store, "kws.tflite", graph, action="import", params={"file": "kws.tflite"}, upload=data)
    session_upload(store, s.id)        # ("kws.tflite", b"TFL3...") or None

No schema change: `blobs` holds content-addressed bytes already (a graph's constants); an upload is one more
kind, told apart by its key prefix. A branch or a duplicate finds the upload of the session it came from.
Session files (.tinystudio) do not carry it: a session imported from a file shows only its versions.
"""
from __future__ import annotations

import hashlib
import json

from store.access import actor
from store.db import Store
from store.rows import check_id, session_row

PREFIX = "upload:"
# Upload keys still named by a version: blobs the garbage collection and the integrity check must keep.
REFERENCED = ("SELECT json_extract_string(params, '$.upload') FROM versions "
              "WHERE json_extract_string(params, '$.upload') IS NOT NULL")


def put_upload(con, data: bytes, filename: str) -> str:
    """Store the bytes (once per content) inside the caller's transaction; returns their key."""
    key = PREFIX + hashlib.sha256(data).hexdigest()
    if con.execute("SELECT 1 FROM blobs WHERE hash = ?", [key]).fetchone() is None:
        con.execute("INSERT INTO blobs VALUES (?, ?, ?, ?)",
                    [key, json.dumps({"kind": "upload", "file": filename}), data, len(data)])
    return key


def session_upload(store: Store, session_id: int, *, user=None) -> tuple[str, bytes] | None:
    """(file name, bytes) of the file the session (or the session it was branched from) was created from.
    `user` must be allowed to see the session (store.access); the sessions it was branched from are followed
    without a check: a branch holds a copy of their graph already."""
    session_id = check_id(session_id, "session id")
    user = actor(store, user)
    with store.transaction() as con:
        session_row(con, session_id, user)
        for _ in range(100):  # a chain of branches; bounded against a cycle a damaged file could hold
            row = con.execute("SELECT json_extract_string(params, '$.upload'), json_extract_string(params, '$.file') "
                              "FROM versions WHERE session_id = ? AND json_extract_string(params, '$.upload') "
                              "IS NOT NULL ORDER BY id LIMIT 1", [session_id]).fetchone()
            if row is not None:
                data = con.execute("SELECT data FROM blobs WHERE hash = ?", [row[0]]).fetchone()
                return (row[1] or "uploaded model", bytes(data[0])) if data else None
            source = session_row(con, session_id).source_version_id
            if source is None:
                return None
            r = con.execute("SELECT session_id FROM versions WHERE id = ?", [source]).fetchone()
            if r is None:
                return None
            session_id = r[0]
    return None
