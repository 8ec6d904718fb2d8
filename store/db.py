"""The database handle: one DuckDB connection per file and process, every access serialized by one lock.

    store = open_store()                     # ~/.local/share/tinystudio/studio.duckdb, created and migrated
    with store.transaction() as con:         # BEGIN ... COMMIT, ROLLBACK on any exception
        con.execute("SELECT count(*) FROM sessions").fetchone()
    store.close()

DuckDB lets one process write a database file; inside that process we keep one connection and take a
process-wide lock for every transaction, reads included. Writes are then strictly serialized (no DuckDB
write-write conflicts to retry) and reads see committed data only. The repository functions do their heavy
work (serializing graphs, computing metrics) before taking the lock, so it is held for milliseconds.
A transaction opened while the same thread already holds one joins it, so repository functions compose
into one atomic action (an import writes a whole session or nothing).
"""
from __future__ import annotations

import os
import re
import threading
from contextlib import contextmanager
from typing import Iterator

import duckdb

from store.clock import utcnow
from store.errors import StoreError, StoreLockedError
from store.schema import migrate


def default_db_path() -> str:
    """$XDG_DATA_HOME/tinystudio/studio.duckdb, or ~/.local/share/tinystudio/studio.duckdb."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "tinystudio", "studio.duckdb")


class Store:
    """An open database. Use the repository functions (store.sessions, store.versions, ...) on it."""

    def __init__(self, path: str, con: duckdb.DuckDBPyConnection):
        self.path = path
        self._con: duckdb.DuckDBPyConnection | None = con
        self._lock = threading.RLock()
        self._depth = 0  # nesting of transaction() in the thread holding the lock
        self._refs = 1

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock:
            if self._con is None:
                raise StoreError(f"{self.path}: the store is closed")
            con = self._con
            if self._depth:
                self._depth += 1
                try:
                    yield con
                finally:
                    self._depth -= 1
                return
            con.execute("BEGIN TRANSACTION")
            self._depth = 1
            try:
                yield con
            except BaseException as e:
                self._depth = 0
                _rollback(con)
                if isinstance(e, duckdb.IOException):  # disk full, file removed: the user's to fix
                    raise _db_error(self.path, e) from e
                raise
            self._depth = 0
            try:
                con.execute("COMMIT")
            except duckdb.Error as e:
                _rollback(con)
                raise _db_error(self.path, e) from e

    def close(self) -> None:
        """Release this handle; the connection closes (and checkpoints) when the last holder closes."""
        with _registry_lock, self._lock:
            if self._con is None:
                return
            self._refs -= 1
            if self._refs == 0:
                self._con.close()
                self._con = None
                _open.pop(self.path, None)

    @property
    def closed(self) -> bool:
        return self._con is None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.path!r}{', closed' if self.closed else ''})"


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass  # no transaction left to roll back (DuckDB already aborted it)


def _db_error(path: str, e: Exception) -> StoreError:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return StoreError(f"{path}: database error: {first}")


# Opening a path twice in one process returns the same Store: two connections would need two locks.
_open: dict[str, Store] = {}
_registry_lock = threading.Lock()


def open_store(path: str | None = None) -> Store:
    """Open (creating folders and file on first use) and migrate the database at `path`.

    Raises StoreLockedError when another process has it open, SchemaTooNewError for a newer schema,
    StoreError for a file that is not a TinyStudio database."""
    path = os.path.abspath(os.path.expanduser(path or default_db_path()))
    with _registry_lock:
        store = _open.get(path)
        if store is not None and not store.closed:
            store._refs += 1
            return store
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            # A zero-byte file holds nothing (e.g. made by `touch` or an interrupted copy); DuckDB refuses it.
            if os.path.isfile(path) and os.path.getsize(path) == 0 and not os.path.exists(path + ".wal"):
                os.remove(path)
        except OSError as e:
            raise StoreError(f"{path}: cannot create the database: {e.strerror or e}") from None
        try:
            con = duckdb.connect(path)
        except duckdb.Error as e:
            raise _open_error(path, e) from None
        try:
            migrate(con, path)
            _recover_jobs(con)
        except BaseException:
            con.close()
            raise
        store = Store(path, con)
        _open[path] = store
        return store


def _open_error(path: str, e: Exception) -> StoreError:
    msg = str(e)
    if "Could not set lock" in msg or "Conflicting lock" in msg:
        pid = re.search(r"PID (\d+)", msg)
        who = f"process {pid.group(1)}" if pid else "another process"
        return StoreLockedError(f"{path}: the database is in use by {who} (another TinyStudio?); close it or "
                                "choose another file with --db")
    if "not a valid DuckDB database" in msg:
        return StoreError(f"{path}: not a TinyStudio database (not a DuckDB file)")
    return _db_error(path, e)


def _recover_jobs(con: duckdb.DuckDBPyConnection) -> None:
    """Jobs run in threads of the process holding the database; after a restart none of them is running."""
    con.execute("UPDATE jobs SET status = 'failed', message = 'interrupted: TinyStudio stopped while this job "
                "was running', updated = ? WHERE status IN ('queued', 'running')", [utcnow()])
    # A search study is run by such a job: it stopped too, and can be resumed from its journal (store.search).
    con.execute("UPDATE studies SET status = 'interrupted', message = 'TinyStudio stopped while it ran', updated = ? "
                "WHERE status = 'running'", [utcnow()])
