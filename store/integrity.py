"""Check that the database is consistent: every reference resolves and (deep) every graph decodes to its hash.

    problems = check_integrity(store)     # [] when all is well; one readable line per problem

The crash test runs it after killing a writer; `tinystudio` may offer it as a doctor command.
"""
from __future__ import annotations

from engine.serialize import content_hash
from store.db import Store
from store.graphs import decode_graph
from store.records import load_json
from store.uploads import REFERENCED


def _lines(con, sql: str, fmt: str) -> list[str]:
    return [fmt.format(*r) for r in con.execute(sql).fetchall()]


def check_integrity(store: Store, deep: bool = True) -> list[str]:
    with store.transaction() as con:
        p = []
        p += _lines(con, "SELECT s.id, s.current_version_id FROM sessions s WHERE s.current_version_id IS NOT NULL "
                         "AND NOT EXISTS (SELECT 1 FROM versions v WHERE v.id = s.current_version_id "
                         "AND v.session_id = s.id)",
                    "session {0}: current version {1} is missing or in another session")
        p += _lines(con, "SELECT s.id FROM sessions s WHERE s.current_version_id IS NULL "
                         "AND EXISTS (SELECT 1 FROM versions v WHERE v.session_id = s.id)",
                    "session {0}: has versions but no current version")
        p += _lines(con, "SELECT s.id, s.source_version_id FROM sessions s WHERE s.source_version_id IS NOT NULL "
                         "AND NOT EXISTS (SELECT 1 FROM versions v WHERE v.id = s.source_version_id)",
                    "session {0}: source version {1} is missing")
        p += _lines(con, "SELECT v.id, v.session_id FROM versions v WHERE NOT EXISTS "
                         "(SELECT 1 FROM sessions s WHERE s.id = v.session_id)",
                    "version {0}: session {1} is missing")
        p += _lines(con, "SELECT v.id, v.parent_id FROM versions v WHERE v.parent_id IS NOT NULL AND NOT EXISTS "
                         "(SELECT 1 FROM versions w WHERE w.id = v.parent_id AND w.session_id = v.session_id "
                         "AND w.id < v.id)",
                    "version {0}: parent {1} is missing, in another session or newer")
        p += _lines(con, "SELECT v.id, v.blob_hash FROM versions v WHERE NOT EXISTS "
                         "(SELECT 1 FROM blobs b WHERE b.hash = v.blob_hash)",
                    "version {0}: constants {1} are missing")
        p += _lines(con, "SELECT b.hash FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM versions v "
                         f"WHERE v.blob_hash = b.hash) AND b.hash NOT IN ({REFERENCED})",
                    "constants {0}: not used by any version")
        p += _lines(con, "SELECT b.hash FROM blobs b WHERE octet_length(b.data) != b.nbytes",
                    "constants {0}: size differs from the recorded size")
        p += _lines(con, "SELECT p.version_id, p.mcu, p.runtime FROM profiles p WHERE NOT EXISTS "
                         "(SELECT 1 FROM versions v WHERE v.id = p.version_id)",
                    "profile {1}/{2}: version {0} is missing")
        p += _lines(con, "SELECT j.id, j.session_id FROM jobs j WHERE NOT EXISTS "
                         "(SELECT 1 FROM sessions s WHERE s.id = j.session_id)", "job {0}: session {1} is missing")
        p += _lines(con, "SELECT j.id, j.status FROM jobs j WHERE j.status NOT IN "
                         "('queued', 'running', 'done', 'failed', 'cancelled') OR j.progress < 0 OR j.progress > 1",
                    "job {0}: invalid status {1} or progress")
        p += _lines(con, "SELECT e.id, e.version_id FROM exports e WHERE NOT EXISTS "
                         "(SELECT 1 FROM versions v WHERE v.id = e.version_id)", "export {0}: version {1} is missing")
        p += _lines(con, "SELECT d.id, d.session_id FROM session_datasets d WHERE NOT EXISTS "
                         "(SELECT 1 FROM sessions s WHERE s.id = d.session_id)",
                    "data set {0}: session {1} is missing")
        ids = [r[0] for r in con.execute("SELECT id FROM versions ORDER BY id").fetchall()] if deep else []
    for vid in ids:  # one short transaction per graph, so a deep check does not hold the lock for long
        with store.transaction() as con:
            row = con.execute("SELECT v.graph_doc, b.keys, b.data, v.graph_hash FROM versions v JOIN blobs b "
                              "ON b.hash = v.blob_hash WHERE v.id = ?", [vid]).fetchone()
        if row is None:
            continue  # deleted meanwhile, or its blob is missing (reported above)
        try:
            graph = decode_graph(load_json(row[0]), load_json(row[1]), row[2])
        except Exception as e:  # any failure to decode is a finding, not a crash of the checker
            p.append(f"version {vid}: graph does not decode ({type(e).__name__}: {e})")
            continue
        if content_hash(graph) != row[3]:
            p.append(f"version {vid}: graph content hash differs from the recorded hash")
    return p
