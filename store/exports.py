"""Records of firmware/C exports of a version: target, options, the bundle (bytes or a path) and its report.

    e = add_export(store, version_id, "stm32f746ng", report, bundle=zip_bytes, options={"runtime": "..."})
    list_exports(store, session_id=sid)          # newest first, without the bundle bytes
    export_bundle(store, e.id)                   # the bytes (None when the bundle lives at bundle_path)

An export belongs to its version's session's owner: every function takes `user` (store.access).
"""
from __future__ import annotations

from store.access import actor, check_owner, owner_filter, session_owner
from store.clock import utcnow
from store.db import Store
from store.errors import InvalidValueError
from store.records import EXPORT_COLUMNS, ExportInfo, dump_json, export_from_row
from store.rows import check_id, check_name, fetch_row, opt_id, session_row, version_row, where

MAX_BUNDLE_BYTES = 512 << 20


def add_export(store: Store, version_id: int, mcu: str, report: dict, bundle: bytes | None = None,
               bundle_path: str | None = None, options: dict | None = None, *, user=None) -> ExportInfo:
    """Keep `bundle` in the database, or only its `bundle_path` on disk (exactly one of the two)."""
    version_id = check_id(version_id, "version id")
    mcu = check_name(mcu, "MCU id")
    if (bundle is None) == (bundle_path is None):
        raise InvalidValueError("an export keeps either the bundle bytes or a bundle path")
    if bundle is not None and not isinstance(bundle, (bytes, bytearray)):
        raise InvalidValueError(f"export bundle must be bytes, not {type(bundle).__name__}")
    if bundle is not None and len(bundle) > MAX_BUNDLE_BYTES:
        raise InvalidValueError(f"export bundle is {len(bundle)} bytes, over the limit of {MAX_BUNDLE_BYTES}")
    if bundle_path is not None and not isinstance(bundle_path, str):
        raise InvalidValueError("bundle path must be text")
    row = [mcu, dump_json(options or {}, "export options"), bundle_path,
           None if bundle is None else bytes(bundle), len(bundle) if bundle is not None else 0,
           dump_json(report, "export report"), utcnow()]
    user = actor(store, user)
    with store.transaction() as con:
        version_row(con, version_id, user=user, write=True)
        eid = con.execute("INSERT INTO exports VALUES (nextval('export_ids'), ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                          [version_id, *row]).fetchone()[0]
        return _row(con, eid)


def _row(con, export_id, user=None, write: bool = False) -> ExportInfo:
    e = export_from_row(fetch_row(con, EXPORT_COLUMNS, "exports", export_id, "export"))
    if user is not None:
        r = con.execute("SELECT session_id FROM versions WHERE id = ?", [e.version_id]).fetchone()
        check_owner(con, user, session_owner(con, r[0]) if r else None, f"no export with id {export_id}", write,
                    f"export {export_id}")
    return e


def get_export(store: Store, export_id: int, *, user=None) -> ExportInfo:
    export_id = check_id(export_id, "export id")
    user = actor(store, user)
    with store.transaction() as con:
        return _row(con, export_id, user)


def export_bundle(store: Store, export_id: int, *, user=None) -> bytes | None:
    export_id = check_id(export_id, "export id")
    user = actor(store, user)
    with store.transaction() as con:
        _row(con, export_id, user)
        return con.execute("SELECT bundle FROM exports WHERE id = ?", [export_id]).fetchone()[0]


def list_exports(store: Store, session_id: int | None = None, version_id: int | None = None, *,
                 user=None) -> list[ExportInfo]:
    """Newest first; only the exports of sessions `user` may see."""
    session_id = opt_id(session_id, "session id")
    version_id = opt_id(version_id, "version id")
    user = actor(store, user)
    owned, owned_args = owner_filter(user)
    visible = (f"version_id IN (SELECT v.id FROM versions v JOIN sessions s ON s.id = v.session_id WHERE {owned})"
               if owned else None)
    cond, args = where(("version_id IN (SELECT id FROM versions WHERE session_id = ?)", session_id),
                       ("version_id = ?", version_id))
    if visible:
        cond = f"{cond} AND {visible}" if cond else f" WHERE {visible}"
        args += owned_args
    sql = f"SELECT {EXPORT_COLUMNS} FROM exports{cond} ORDER BY id DESC"
    with store.transaction() as con:
        if session_id is not None:
            session_row(con, session_id, user)
        if version_id is not None:
            version_row(con, version_id, user=user)
        return [export_from_row(r) for r in con.execute(sql, args).fetchall()]


def delete_export(store: Store, export_id: int, *, user=None) -> None:
    export_id = check_id(export_id, "export id")
    user = actor(store, user)
    with store.transaction() as con:
        _row(con, export_id, user, write=True)
        con.execute("DELETE FROM exports WHERE id = ?", [export_id])
