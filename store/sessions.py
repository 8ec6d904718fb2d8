"""Sessions: create, list, rename, duplicate, branch, delete. Each function is one transaction.

    s = create_session(store, "KWS lab", graph, model="zoo:kws_dscnn", action="zoo")
    list_sessions(store)        # newest change first: name, model, version_count, updated
    b = branch_session(store, version_id)      # a new session starting from any version
    delete_session(store, s.id)                # hard delete: versions, profiles, jobs, exports (ask first)

Names need not be unique; sessions are identified by id (the list shows both when names repeat).
Every function takes `user` (store.access): a new session belongs to it; the others see and change only
what that account may (None: everything, single-user use).
"""
from __future__ import annotations

from engine.ir import Graph
from store.access import actor, owner_filter
from store.clock import utcnow
from store.datasets import copy_session_datasets
from store.db import Store
from store.errors import NotFoundError, ReadOnlyError
from store.graphs import encode_graph
from store.search import delete_session_studies
from store.uploads import REFERENCED, put_upload
from store.records import SESSION_COLUMNS, SessionInfo, dump_json, session_from_row
from store.rows import (check_action, check_id, check_name, copy_version, insert_session, insert_version,
                        session_row, version_row)


def _model_label(graph: Graph | None) -> str:
    if graph is None:
        return ""
    source = graph.meta.get("source") if isinstance(graph.meta, dict) else None
    if isinstance(source, dict) and isinstance(source.get("spec"), str):
        return source["spec"]
    return graph.name


def create_session(store: Store, name: str, graph: Graph | None = None, *, model: str | None = None,
                   action: str = "create", params: dict | None = None, upload: bytes | None = None,
                   user=None) -> SessionInfo:
    """A new session; with `graph`, its first version is written in the same transaction.
    `model` is the label the list shows (default: the zoo spec or the graph's name). `upload`: the bytes of the
    file the graph was read from, kept with the session (store.uploads)."""
    name = check_name(name)
    model = check_name(model, "model label") if model else _model_label(graph)
    action = check_action(action)
    params = dict(params or {})
    dump_json(params, "params")
    enc = encode_graph(graph) if graph is not None else None  # heavy work before the lock
    user = actor(store, user)
    with store.transaction() as con:
        sid = insert_session(con, name, model, owner=user)
        if enc is not None:
            if upload:
                params["upload"] = put_upload(con, bytes(upload), str(params.get("file") or name))
            insert_version(con, sid, None, enc, action, dump_json(params, "params"))
        return session_row(con, sid)


def get_session(store: Store, session_id: int, *, user=None) -> SessionInfo:
    session_id = check_id(session_id, "session id")
    user = actor(store, user)
    with store.transaction() as con:
        return session_row(con, session_id, user)


def list_sessions(store: Store, *, user=None) -> list[SessionInfo]:
    """The sessions `user` may see (an instructor: theirs and their courses' students'), newest change first."""
    cond, args = owner_filter(actor(store, user))
    with store.transaction() as con:
        rows = con.execute(f"SELECT {SESSION_COLUMNS} FROM sessions s{' WHERE ' + cond if cond else ''} "
                           "ORDER BY s.updated DESC, s.id DESC", args).fetchall()
    return [session_from_row(r) for r in rows]


def rename_session(store: Store, session_id: int, name: str, *, user=None) -> SessionInfo:
    session_id = check_id(session_id, "session id")
    name = check_name(name)
    user = actor(store, user)
    with store.transaction() as con:
        session_row(con, session_id, user, write=True)
        con.execute("UPDATE sessions SET name = ?, updated = ? WHERE id = ?", [name, utcnow(), session_id])
        return session_row(con, session_id)


def set_model_label(store: Store, session_id: int, model: str, *, user=None) -> SessionInfo:
    session_id = check_id(session_id, "session id")
    model = check_name(model, "model label")
    user = actor(store, user)
    with store.transaction() as con:
        session_row(con, session_id, user, write=True)
        con.execute("UPDATE sessions SET model = ?, updated = ? WHERE id = ?", [model, utcnow(), session_id])
        return session_row(con, session_id)


def set_session_owner(store: Store, session_id: int, owner, *, user=None) -> SessionInfo:
    """Give a session to the account `owner` (a store.users.User; None: no owner, seen only without a login),
    e.g. the sessions of a single-user store that became a lab server. Only the administrator (no `user`: the
    CLI, which holds the database file) may."""
    session_id = check_id(session_id, "session id")
    user = actor(store, user)
    with store.transaction() as con:
        session_row(con, session_id, user, write=True)
        if user is not None:
            raise ReadOnlyError("only the server's administrator (tinystudio sessions give) can give a session to "
                                "another account")
        if owner is not None and con.execute("SELECT 1 FROM users WHERE id = ?", [owner.id]).fetchone() is None:
            raise NotFoundError(f"no user with id {owner.id}")
        con.execute("UPDATE sessions SET owner_id = ? WHERE id = ?", [None if owner is None else owner.id, session_id])
        return session_row(con, session_id)


def duplicate_session(store: Store, session_id: int, name: str | None = None, *, user=None) -> SessionInfo:
    """A copy with the whole version tree (same actions, parents and timestamps, new ids) and its profiles.
    The copy belongs to `user` (an instructor may copy a student's session they can see)."""
    session_id = check_id(session_id, "session id")
    user = actor(store, user)
    with store.transaction() as con:
        src = session_row(con, session_id, user)
        new_name = check_name(name) if name is not None else check_name(f"{src.name} (copy)"[:200])
        sid = insert_session(con, new_name, src.model, src.source_version_id, owner=user)
        rows = con.execute("SELECT id, parent_id, action, params, created FROM versions WHERE session_id = ? "
                           "ORDER BY id", [session_id]).fetchall()
        new_id: dict[int, int] = {}
        for vid, parent, action, params, created in rows:  # ids grow, so a parent comes before its children
            new_id[vid] = copy_version(con, vid, sid, new_id.get(parent), action, params, created)
        if src.current_version_id is not None:
            con.execute("UPDATE sessions SET current_version_id = ? WHERE id = ?",
                        [new_id[src.current_version_id], sid])
        copy_session_datasets(con, session_id, sid)
        return session_row(con, sid)


def branch_session(store: Store, version_id: int, name: str | None = None, *, user=None) -> SessionInfo:
    """A new session whose first version copies `version_id` (action "branch"); the source is recorded in
    the session (source_version_id) and in the version's params. The branch belongs to `user`."""
    version_id = check_id(version_id, "version id")
    user = actor(store, user)
    with store.transaction() as con:
        v = version_row(con, version_id, user=user)
        src = session_row(con, v.session_id, user)
        new_name = check_name(name) if name is not None else check_name(f"{src.name} (branch of v{v.number})"[:200])
        sid = insert_session(con, new_name, src.model, version_id, owner=user)
        copy_version(con, version_id, sid, None, "branch",
                     dump_json({"session_id": v.session_id, "version_id": version_id}))
        return session_row(con, sid)


def delete_session(store: Store, session_id: int, *, user=None) -> None:
    """Delete a session and everything in it (versions, profiles, jobs, export records, unshared constants).
    Bundle files written to disk by exports stay where the user put them. Only its owner may (or no user)."""
    session_id = check_id(session_id, "session id")
    user = actor(store, user)
    with store.transaction() as con:
        session_row(con, session_id, user, write=True)
        in_session = "(SELECT id FROM versions WHERE session_id = ?)"
        con.execute(f"DELETE FROM profiles WHERE version_id IN {in_session}", [session_id])
        con.execute(f"DELETE FROM exports WHERE version_id IN {in_session}", [session_id])
        # Branches made from this session keep their graphs; only the link to the deleted source goes.
        con.execute(f"UPDATE sessions SET source_version_id = NULL WHERE source_version_id IN {in_session}",
                    [session_id])
        con.execute("DELETE FROM jobs WHERE session_id = ?", [session_id])
        delete_session_studies(con, session_id)
        con.execute("DELETE FROM session_datasets WHERE session_id = ?", [session_id])
        con.execute("DELETE FROM versions WHERE session_id = ?", [session_id])
        con.execute("DELETE FROM sessions WHERE id = ?", [session_id])
        con.execute("DELETE FROM blobs WHERE hash NOT IN (SELECT blob_hash FROM versions) "
                    f"AND hash NOT IN ({REFERENCED})")  # uploads still named by a version stay
