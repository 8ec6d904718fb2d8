"""Check that the database is consistent: every reference resolves and (deep) every graph decodes to its hash.

    problems = check_integrity(store)                  # [] when all is well; one readable line per problem
    problems = check_integrity(store, deep="changed")  # what `tinystudio studio` runs at every start

deep=True decodes and hashes every version (and reads every constant byte); deep="changed" decodes only the
versions not verified before or whose stored record changed since: a fingerprint of each version's graph
document, hashes, constants keys and size, computed by DuckDB in bulk, is kept in `verified` for every
version that passed; deep=False checks references only. Versions and blobs are never rewritten, so a
fingerprint that still matches means a record that once decoded to its recorded hash. Constants are read in
batches of BATCH_BYTES, one scan each (DuckDB reads a BLOB column's whole row group even for one row, which
made the old one-lookup-per-version check cost ~90 ms per version). benchmarks/integrity_speed.py measures it.
"""
from __future__ import annotations

from itertools import groupby

from engine.serialize import content_hash, graph_from_arrays, npz_arrays
from store.clock import utcnow
from store.db import Store
from store.records import load_json
from store.uploads import REFERENCED

# md5 of what a version's check depends on, computed by DuckDB in bulk (0.7 s for 2,000 versions here).
# The constants' bytes are not read: a blob is written once under the hash of its content and never
# updated, the version's first check verified its bytes, DuckDB checksums every block it reads, and the
# full check (deep=True) reads them all again.
_FINGERPRINT = ("md5(v.graph_doc::VARCHAR || '|' || v.graph_hash || '|' || v.blob_hash || '|' || b.keys::VARCHAR "
                "|| '|' || b.nbytes::VARCHAR)")


BATCH_BYTES = 256 << 20  # constants read per transaction of a deep check


def _lines(con, sql: str, fmt: str) -> list[str]:
    return [fmt.format(*r) for r in con.execute(sql).fetchall()]


def _missing(con, table: str, ref: str, parent: str, fmt: str, key: str = "id", cols: str | None = None) -> list[str]:
    """One line per row of `table` whose `ref` is set but names no row of `parent` (by its `key`); `fmt` gets
    `cols` (default: the row's id and its ref)."""
    return _lines(con, f"SELECT {cols or f'x.id, x.{ref}'} FROM {table} x WHERE x.{ref} IS NOT NULL AND NOT EXISTS "
                       f"(SELECT 1 FROM {parent} y WHERE y.{key} = x.{ref})", fmt)


def _references(con) -> list[str]:
    p = []
    p += _lines(con, "SELECT s.id, s.current_version_id FROM sessions s WHERE s.current_version_id IS NOT NULL "
                     "AND NOT EXISTS (SELECT 1 FROM versions v WHERE v.id = s.current_version_id "
                     "AND v.session_id = s.id)",
                "session {0}: current version {1} is missing or in another session")
    p += _lines(con, "SELECT s.id FROM sessions s WHERE s.current_version_id IS NULL "
                     "AND EXISTS (SELECT 1 FROM versions v WHERE v.session_id = s.id)",
                "session {0}: has versions but no current version")
    p += _missing(con, "sessions", "source_version_id", "versions", "session {0}: source version {1} is missing")
    p += _missing(con, "versions", "session_id", "sessions", "version {0}: session {1} is missing")
    p += _lines(con, "SELECT v.id, v.parent_id FROM versions v WHERE v.parent_id IS NOT NULL AND NOT EXISTS "
                     "(SELECT 1 FROM versions w WHERE w.id = v.parent_id AND w.session_id = v.session_id "
                     "AND w.id < v.id)",
                "version {0}: parent {1} is missing, in another session or newer")
    p += _missing(con, "versions", "blob_hash", "blobs", "version {0}: constants {1} are missing", key="hash")
    p += _lines(con, "SELECT b.hash FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM versions v "
                     f"WHERE v.blob_hash = b.hash) AND b.hash NOT IN ({REFERENCED})",
                "constants {0}: not used by any version")
    p += _missing(con, "profiles", "version_id", "versions", "profile {1}/{2}: version {0} is missing",
                  cols="x.version_id, x.mcu, x.runtime")
    p += _missing(con, "jobs", "session_id", "sessions", "job {0}: session {1} is missing")
    p += _lines(con, "SELECT j.id, j.status FROM jobs j WHERE j.status NOT IN "
                     "('queued', 'running', 'done', 'failed', 'cancelled') OR j.progress < 0 OR j.progress > 1",
                "job {0}: invalid status {1} or progress")
    p += _missing(con, "exports", "version_id", "versions", "export {0}: version {1} is missing")
    p += _missing(con, "session_datasets", "session_id", "sessions", "data set {0}: session {1} is missing")
    p += _missing(con, "challenge_files", "challenge_id", "challenges", "challenge file {0}: challenge {1} is missing",
                  cols="x.name, x.challenge_id")
    p += _missing(con, "submissions", "challenge_id", "challenges", "submission {0}: challenge {1} is missing")
    p += _missing(con, "grades", "submission_id", "submissions", "grade {1}/{0}: submission {1} is missing",
                  key="id", cols="x.name, x.submission_id")
    p += _accounts(con)
    return p


def _accounts(con) -> list[str]:
    """Owners, courses and their members (store.users, store.access)."""
    p = _missing(con, "sessions", "owner_id", "users", "session {0}: owner {1} is missing")
    p += _lines(con, "SELECT id, role FROM users WHERE role NOT IN ('instructor', 'student')",
                "user {0}: invalid role {1}")
    p += _lines(con, "SELECT lower(name), count(*) FROM users GROUP BY lower(name) HAVING count(*) > 1",
                "users: name {0} is used by {1} accounts")
    p += _missing(con, "courses", "created_by", "users", "course {0}: instructor {1} is missing")
    p += _missing(con, "course_members", "course_id", "courses", "course member {0}: course {1} is missing",
                  cols="x.user_id, x.course_id")
    p += _missing(con, "course_members", "user_id", "users", "course {0}: member {1} is missing",
                  cols="x.course_id, x.user_id")
    p += _lines(con, "SELECT m.course_id, u.name FROM course_members m JOIN users u ON u.id = m.user_id "
                     "WHERE m.role != u.role",
                "course {0}: member {1} is enrolled with a role other than their account's")
    return p


def _batches(store: Store, hashes: list[str]) -> list[list[str]]:
    """Blob hashes in groups of at most BATCH_BYTES of constants (at least one blob each): bounded memory."""
    max_bytes = BATCH_BYTES
    if not hashes:
        return []
    with store.transaction() as con:
        sizes = dict(con.execute("SELECT hash, nbytes FROM blobs WHERE hash IN (SELECT unnest(?::VARCHAR[]))",
                                 [hashes]).fetchall())
    out, current, total = [], [], 0
    for h in hashes:
        if current and total + sizes.get(h, 0) > max_bytes:
            out.append(current)
            current, total = [], 0
        current.append(h)
        total += sizes.get(h, 0)
    return out + [current] if current else out


def check_integrity(store: Store, deep: bool | str = True, limit: int | None = None) -> list[str]:
    """`limit` caps the graphs decoded this time (changed records first, then the newest versions): the
    first start on a large store that was never verified spreads that work over several starts."""
    if deep not in (True, False, "changed"):
        raise ValueError(f"deep must be True, False or 'changed', not {deep!r}")
    with store.transaction() as con:
        p = _references(con)
        if deep is True:  # reads every constant byte (~5 s per GB here), so not at start-up ("changed")
            p += _lines(con, "SELECT b.hash FROM blobs b WHERE octet_length(b.data) != b.nbytes",
                        "constants {0}: size differs from the recorded size")
        if deep == "changed":
            con.execute("DELETE FROM verified WHERE version_id NOT IN (SELECT id FROM versions)")
            todo = con.execute(f"SELECT v.id, v.blob_hash, {_FINGERPRINT} FROM versions v JOIN blobs b "
                               "ON b.hash = v.blob_hash LEFT JOIN verified c ON c.version_id = v.id "
                               f"WHERE c.fingerprint IS NULL OR c.fingerprint != {_FINGERPRINT} "
                               f"ORDER BY c.fingerprint IS NULL, v.id DESC LIMIT {int(limit or 0) or 'ALL'}"
                               ).fetchall()
            todo.sort(key=lambda r: (r[1], r[0]))
        elif deep:
            todo = con.execute(f"SELECT v.id, v.blob_hash, {_FINGERPRINT} FROM versions v JOIN blobs b "
                               f"ON b.hash = v.blob_hash ORDER BY v.id DESC LIMIT {int(limit or 0) or 'ALL'}"
                               ).fetchall()
            todo.sort(key=lambda r: (r[1], r[0]))
        else:
            todo = []
    passed: list[tuple[int, str]] = []
    by_blob = {bh: list(group) for bh, group in groupby(todo, key=lambda r: r[1])}
    for batch in _batches(store, list(by_blob)):
        # One scan per batch: DuckDB reads a BLOB column's whole row group even to return one row (a point
        # lookup of one blob cost as much as reading them all, ~90 ms per version on 2,000 versions).
        with store.transaction() as con:
            blobs = con.execute("SELECT hash, keys, data FROM blobs WHERE hash IN (SELECT unnest(?::VARCHAR[]))",
                                [batch]).fetchall()
            ids = [r[0] for bh in batch for r in by_blob[bh]]
            docs = dict(con.execute("SELECT id, [graph_doc::VARCHAR, graph_hash] FROM versions "
                                    "WHERE id IN (SELECT unnest(?::BIGINT[]))", [ids]).fetchall())
        for bh, keys, data in blobs:
            try:
                arrays, error = npz_arrays(data), None
            except Exception as e:  # any failure to decode is a finding, not a crash of the checker
                arrays, error = None, e
            for vid, _bh, fingerprint in by_blob[bh]:
                if vid not in docs:
                    continue  # deleted meanwhile
                doc, graph_hash = docs[vid]
                try:
                    if error is not None:
                        raise error
                    graph = graph_from_arrays({**load_json(doc), "blob_keys": load_json(keys)}, arrays)
                except Exception as e:
                    p.append(f"version {vid}: graph does not decode ({type(e).__name__}: {e})")
                    continue
                if content_hash(graph) != graph_hash:
                    p.append(f"version {vid}: graph content hash differs from the recorded hash")
                    continue
                passed.append((vid, fingerprint))
        del blobs
    if passed:
        with store.transaction() as con:
            con.execute("INSERT OR REPLACE INTO verified SELECT p.id, p.fp, ? FROM (SELECT unnest(?::BIGINT[]) AS id, "
                        "unnest(?::VARCHAR[]) AS fp) p WHERE EXISTS (SELECT 1 FROM versions v WHERE v.id = p.id)",
                        [utcnow(), [v for v, _ in passed], [f for _, f in passed]])
    return p
