"""Statements shared by the repository modules. Every function here runs inside the caller's transaction."""
from __future__ import annotations

import json
import numbers
import unicodedata
from contextlib import contextmanager
from datetime import datetime

import duckdb

from store.access import actor, check_owner, session_owner
from store.clock import utcnow
from store.errors import InvalidValueError, NotFoundError, VersionNotInSessionError
from store.graphs import EncodedGraph
from store.records import (SESSION_COLUMNS, VERSION_COLUMNS, SessionInfo, VersionInfo, dump_json,
                           session_from_row, version_from_row)

MAX_NAME = 200


def check_name(name, what: str = "session name") -> str:
    """Names are free text shown in lists; they need not be unique (ids identify sessions)."""
    if not isinstance(name, str):
        raise InvalidValueError(f"{what} must be text, not {type(name).__name__}")
    name = name.strip()
    if not name:
        raise InvalidValueError(f"{what} is empty")
    if len(name) > MAX_NAME:
        raise InvalidValueError(f"{what} is longer than {MAX_NAME} characters")
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise InvalidValueError(f"{what} contains control characters")
    return name


def where(*conditions: tuple[str, object]) -> tuple[str, list]:
    """(" WHERE a = ? AND b = ?", [va, vb]) from (SQL condition, value) pairs, leaving out those whose value is
    None ("" and [] when none is left): a list query's optional filters."""
    used = [(sql, value) for sql, value in conditions if value is not None]
    return (f" WHERE {' AND '.join(sql for sql, _ in used)}" if used else ""), [value for _, value in used]


def check_id(value, what: str) -> int:
    """A plain int (numpy integers from dataframes are accepted; DuckDB cannot bind them)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidValueError(f"{what} must be an integer id, not {value!r:.40}")
    return int(value)


def opt_id(value, what: str) -> int | None:
    return None if value is None else check_id(value, what)


@contextmanager
def owned_row(store, row, item_id, what: str, session_id=None, user=None, write: bool = False):
    """A transaction on the row `item_id` (checked as `what`, e.g. "version id"): yields (connection, record)
    where `row(con, item_id, session_id, user, write)` returns the record and raises when there is none, when
    `user` may not see it (or, with `write`, change it) or, with `session_id`, when it belongs to another
    session. The store's get/read/delete functions share this."""
    item_id = check_id(item_id, what)
    session_id = opt_id(session_id, "session id")
    user = actor(store, user)
    with store.transaction() as con:
        yield con, row(con, item_id, session_id, user, write)


def fetch_row(con, columns: str, table: str, item_id, what: str) -> tuple:
    """The row `item_id` of `table` (its `columns`); NotFoundError "no {what} with id N" when there is none."""
    check_id(item_id, f"{what} id")
    r = con.execute(f"SELECT {columns} FROM {table} WHERE id = ?", [item_id]).fetchone()
    if r is None:
        raise NotFoundError(f"no {what} with id {item_id}")
    return r


def session_rows(store, session_id, sql: str, user=None) -> list[tuple]:
    """The rows of `sql` (one ? for the session id) after checking that the session exists and that the
    acting user may see it."""
    session_id = check_id(session_id, "session id")
    user = actor(store, user)
    with store.transaction() as con:
        session_row(con, session_id, user)
        return con.execute(sql, [session_id]).fetchall()


def session_row(con: duckdb.DuckDBPyConnection, session_id, user=None, write: bool = False) -> SessionInfo:
    """The session; NotFoundError when there is none or `user` may not see it (store.access), ReadOnlyError
    when `write` and `user` may only look at it."""
    session_id = check_id(session_id, "session id")
    r = con.execute(f"SELECT {SESSION_COLUMNS} FROM sessions s WHERE s.id = ?", [session_id]).fetchone()
    missing = f"no session with id {session_id}"
    if r is None:
        raise NotFoundError(missing)
    s = session_from_row(r)
    check_owner(con, user, s.owner_id, missing, write, f"session {session_id}")
    return s


def version_row(con: duckdb.DuckDBPyConnection, version_id, session_id: int | None = None, user=None,
                write: bool = False) -> VersionInfo:
    version_id = check_id(version_id, "version id")
    r = con.execute(f"SELECT {VERSION_COLUMNS} FROM versions WHERE id = ?", [version_id]).fetchone()
    missing = f"no version with id {version_id}"
    if r is None:
        raise NotFoundError(missing)
    v = version_from_row(r)
    if user is not None:  # before the session check, whose message names the version's session
        check_owner(con, user, session_owner(con, v.session_id), missing, write, f"session {v.session_id}")
    check_session("version", version_id, v.session_id, session_id)
    return v


def check_session(what: str, item_id: int, owner: int, session_id: int | None) -> None:
    """With `session_id`, refuse a record (a version, a study) that belongs to another session."""
    if session_id is not None and owner != session_id:
        raise VersionNotInSessionError(f"{what} {item_id} belongs to session {owner}, not to session {session_id}")


def insert_session(con, name: str, model: str, source_version_id: int | None = None,
                   created: datetime | None = None, owner=None) -> int:
    """`owner`: the acting user (store.access), whose session it is; None in single-user use."""
    now = utcnow()
    return con.execute("INSERT INTO sessions (id, name, model, current_version_id, created, updated, "
                       "source_version_id, owner_id) VALUES (nextval('session_ids'), ?, ?, NULL, ?, ?, ?, ?) "
                       "RETURNING id", [name, model, created or now, now, source_version_id,
                                        None if owner is None else owner.id]).fetchone()[0]


def put_blob(con, enc: EncodedGraph) -> None:
    """Store the constants unless an identical set is stored already."""
    if con.execute("SELECT 1 FROM blobs WHERE hash = ?", [enc.blob_hash]).fetchone() is None:
        con.execute("INSERT INTO blobs VALUES (?, ?, ?, ?)",
                    [enc.blob_hash, json.dumps(enc.keys), enc.blob, len(enc.blob)])


def insert_version(con, session_id: int, parent_id: int | None, enc: EncodedGraph, action: str, params: str,
                   created: datetime | None = None) -> int:
    """Insert a version and make it the session's current one."""
    put_blob(con, enc)
    now = utcnow()
    vid = con.execute("INSERT INTO versions VALUES (nextval('version_ids'), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                      "RETURNING id",
                      [session_id, parent_id, json.dumps(enc.doc), enc.blob_hash, enc.graph_hash, action, params,
                       dump_json(enc.metrics), dump_json(enc.layers), created or now]).fetchone()[0]
    set_current(con, session_id, vid, now)
    return vid


def copy_version(con, source_id: int, session_id: int, parent_id: int | None, action: str, params: str,
                 created: datetime | None = None) -> int:
    """A new version with the graph, metrics and profiles of `source_id` (the blob is shared, not copied)."""
    now = utcnow()
    vid = con.execute("INSERT INTO versions SELECT nextval('version_ids'), ?, ?, graph_doc, blob_hash, graph_hash, "
                      "?, ?, metrics, layers, ? FROM versions WHERE id = ? RETURNING id",
                      [session_id, parent_id, action, params, created or now, source_id]).fetchone()[0]
    con.execute("INSERT INTO profiles SELECT ?, mcu, runtime, totals, layers, doc, tool_version, created "
                "FROM profiles WHERE version_id = ?", [vid, source_id])
    set_current(con, session_id, vid, now)
    return vid


def set_current(con, session_id: int, version_id: int, now: datetime | None = None) -> None:
    con.execute("UPDATE sessions SET current_version_id = ?, updated = ? WHERE id = ?",
                [version_id, now or utcnow(), session_id])


def check_action(action) -> str:
    if not isinstance(action, str) or not action.strip() or len(action) > 100:
        raise InvalidValueError(f"action must be a short non-empty name, not {action!r:.60}")
    return action.strip()
