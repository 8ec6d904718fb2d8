"""Versions: every saved graph of a session, with the action that produced it. History is never rewritten.

    v = add_version(store, session_id, graph, "set_channels", {"node": "conv1", "channels": 16})
    graph = get_graph(store, v.id)
    list_versions(store, session_id)     # oldest first; parent_id links make the tree
    restore_version(store, session_id, old_id)   # a NEW version copying old_id, action "restore"
"""
from __future__ import annotations

from engine.ir import Graph
from store.access import actor
from store.db import Store
from store.errors import NotFoundError
from store.graphs import decode_graph, encode_graph
from store.records import VERSION_COLUMNS, VersionInfo, dump_json, load_json, version_from_row
from store.rows import (check_action, check_id, copy_version, insert_version, opt_id, owned_row, session_row,
                        session_rows, version_row)


def add_version(store: Store, session_id: int, graph: Graph, action: str, params: dict | None = None,
                parent_id: int | None = None, *, user=None) -> VersionInfo:
    """Save `graph` as the session's new current version. The parent defaults to the current version, read
    inside the transaction, so concurrent saves to one session chain instead of overwriting each other.
    Raises GraphError (nothing written) for a graph that does not validate."""
    session_id = check_id(session_id, "session id")
    parent_id = opt_id(parent_id, "parent version id")
    action = check_action(action)
    params_json = dump_json(params or {}, "params")
    enc = encode_graph(graph)  # serialize, hash and measure before taking the lock
    user = actor(store, user)
    with store.transaction() as con:
        s = session_row(con, session_id, user, write=True)
        if parent_id is None:
            parent_id = s.current_version_id
        else:
            version_row(con, parent_id, session_id, user)
        vid = insert_version(con, session_id, parent_id, enc, action, params_json)
        return version_row(con, vid)


def get_version(store: Store, version_id: int, session_id: int | None = None, *, user=None) -> VersionInfo:
    """The version's record; with `session_id`, VersionNotInSessionError when it belongs elsewhere."""
    with owned_row(store, version_row, version_id, "version id", session_id, user) as (_, row):
        return row


def get_graph(store: Store, version_id: int, session_id: int | None = None, *, user=None) -> Graph:
    with owned_row(store, version_row, version_id, "version id", session_id, user) as (con, row):
        doc, keys, blob = con.execute("SELECT v.graph_doc, b.keys, b.data FROM versions v JOIN blobs b "
                                      "ON b.hash = v.blob_hash WHERE v.id = ?", [row.id]).fetchone()
    return decode_graph(load_json(doc), load_json(keys), blob)


def current_version(store: Store, session_id: int, *, user=None) -> VersionInfo | None:
    session_id = check_id(session_id, "session id")
    user = actor(store, user)
    with store.transaction() as con:
        s = session_row(con, session_id, user)
        return None if s.current_version_id is None else version_row(con, s.current_version_id)


def current_graph(store: Store, session_id: int, *, user=None) -> Graph:
    session_id = check_id(session_id, "session id")
    v = current_version(store, session_id, user=user)
    if v is None:
        raise NotFoundError(f"session {session_id} has no saved graph yet")
    return get_graph(store, v.id, user=user)


def list_versions(store: Store, session_id: int, *, user=None) -> list[VersionInfo]:
    """All versions of a session in the order they were made; parent_id gives the tree."""
    rows = session_rows(store, session_id, f"SELECT {VERSION_COLUMNS} FROM versions WHERE session_id = ? ORDER BY id",
                        user)
    return [version_from_row(r) for r in rows]


def version_layers(store: Store, version_id: int, *, user=None) -> list[dict]:
    """Per-layer rows saved with the version: name, op, macs, params, weight_bytes, output_shape, ..."""
    version_id = check_id(version_id, "version id")
    user = actor(store, user)
    with store.transaction() as con:
        version_row(con, version_id, user=user)
        return load_json(con.execute("SELECT layers FROM versions WHERE id = ?", [version_id]).fetchone()[0])


def restore_version(store: Store, session_id: int, version_id: int, *, user=None) -> VersionInfo:
    """Make an old version current again by appending a copy of it (action "restore", parent: the current
    version), so the versions made since stay in the history."""
    session_id = check_id(session_id, "session id")
    version_id = check_id(version_id, "version id")
    user = actor(store, user)
    with store.transaction() as con:
        s = session_row(con, session_id, user, write=True)
        version_row(con, version_id, session_id, user)
        vid = copy_version(con, version_id, session_id, s.current_version_id, "restore",
                           dump_json({"version_id": version_id}))
        return version_row(con, vid)
