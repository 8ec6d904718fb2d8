"""The database schema as an ordered list of migrations; each one runs in its own transaction.

    migrate(con, "studio.duckdb")        # brings any older database to SCHEMA_VERSION
    schema_version(con)                  # 0 for a new, empty database

Rules: a released migration is never edited; a change is a new migration appended at the end. The
`schema_version` table records every applied step, so an interrupted upgrade resumes at the first missing one.

No FOREIGN KEY clauses: DuckDB refuses to delete a parent row even after its children were deleted in the
same transaction, which would make a cascading delete impossible. The repository functions keep references
valid inside their transactions, and store.integrity.check_integrity verifies them.
No secondary indexes either: the tables hold at most thousands of rows, and fewer indexes mean less to replay
after a crash.
"""
from __future__ import annotations

import duckdb

from store.clock import utcnow
from store.errors import SchemaTooNewError, StoreError

# (description, statements). Version n is the state after the first n entries.
MIGRATIONS: list[tuple[str, list[str]]] = [
    ("sessions, versions with deduplicated constants, per-target profiles", [
        """CREATE TABLE schema_version (
            version INTEGER PRIMARY KEY,
            description VARCHAR NOT NULL,
            applied TIMESTAMP NOT NULL)""",
        """CREATE TABLE sessions (
            id BIGINT PRIMARY KEY,
            name VARCHAR NOT NULL,
            model VARCHAR NOT NULL,                -- model label shown in the session list
            current_version_id BIGINT,             -- NULL only while the session has no version
            created TIMESTAMP NOT NULL,            -- UTC
            updated TIMESTAMP NOT NULL)""",
        "CREATE SEQUENCE session_ids START 1",
        # Constants of a graph (engine.serialize's .npz blob), shared by every version with the same constants.
        """CREATE TABLE blobs (
            hash VARCHAR PRIMARY KEY,              -- sha256 of constant names, dtypes, shapes and bytes
            keys JSON NOT NULL,                    -- npz member -> tensor name (serialize's blob_keys)
            data BLOB NOT NULL,
            nbytes BIGINT NOT NULL)""",
        """CREATE TABLE versions (
            id BIGINT PRIMARY KEY,
            session_id BIGINT NOT NULL,
            parent_id BIGINT,                      -- the version this one was made from; NULL for a first version
            graph_doc JSON NOT NULL,               -- serialize.dumps structure, without blob_keys
            blob_hash VARCHAR NOT NULL,            -- -> blobs.hash
            graph_hash VARCHAR NOT NULL,           -- serialize.content_hash of the graph
            action VARCHAR NOT NULL,
            params JSON NOT NULL,
            metrics JSON NOT NULL,                 -- totals: macs, params, weight_bytes, arena_bytes, ...
            layers JSON NOT NULL,                  -- per layer: name, op, macs, params, weight_bytes, output_shape
            created TIMESTAMP NOT NULL)""",
        "CREATE SEQUENCE version_ids START 1",
        """CREATE TABLE profiles (
            version_id BIGINT NOT NULL,
            mcu VARCHAR NOT NULL,
            runtime VARCHAR NOT NULL,
            totals JSON NOT NULL,
            layers JSON NOT NULL,
            doc JSON NOT NULL,                     -- the whole Profile.to_json() for this one target
            tool_version VARCHAR NOT NULL,         -- engine version that computed it (estimates change with it)
            created TIMESTAMP NOT NULL,
            PRIMARY KEY (version_id, mcu, runtime))""",
    ]),
    ("jobs, exports, branch source of a session", [
        "ALTER TABLE sessions ADD COLUMN source_version_id BIGINT",  # the version a branch was made from
        """CREATE TABLE jobs (
            id BIGINT PRIMARY KEY,
            session_id BIGINT NOT NULL,
            kind VARCHAR NOT NULL,
            params JSON NOT NULL,
            status VARCHAR NOT NULL,               -- queued | running | done | failed | cancelled
            progress DOUBLE NOT NULL,              -- 0..1
            message VARCHAR NOT NULL,
            result JSON,
            created TIMESTAMP NOT NULL,
            updated TIMESTAMP NOT NULL)""",
        "CREATE SEQUENCE job_ids START 1",
        """CREATE TABLE exports (
            id BIGINT PRIMARY KEY,
            version_id BIGINT NOT NULL,
            mcu VARCHAR NOT NULL,
            options JSON NOT NULL,
            bundle_path VARCHAR,                   -- a bundle written to disk, or
            bundle BLOB,                           -- the bundle itself
            bundle_bytes BIGINT NOT NULL,
            report JSON NOT NULL,
            created TIMESTAMP NOT NULL)""",
        "CREATE SEQUENCE export_ids START 1",
    ]),
    ("data sets uploaded to a session", [
        """CREATE TABLE session_datasets (
            id BIGINT PRIMARY KEY,
            session_id BIGINT NOT NULL,
            name VARCHAR NOT NULL,                 -- the uploaded file's name, shown in the Data panel
            kind VARCHAR NOT NULL,                 -- npz | csv | zip (how engine.data reads the bytes)
            hash VARCHAR NOT NULL,                 -- sha256 of data: the same upload twice is stored once
            data BLOB NOT NULL,
            nbytes BIGINT NOT NULL,
            created TIMESTAMP NOT NULL)""",
        "CREATE SEQUENCE session_dataset_ids START 1",
    ]),
    ("versions the deep integrity check verified, so the check at every studio start skips them", [
        """CREATE TABLE verified (
            version_id BIGINT PRIMARY KEY,
            fingerprint VARCHAR NOT NULL,          -- md5 of the stored document, hashes and constants it passed with
            checked TIMESTAMP NOT NULL)""",
    ]),
    ("search studies and every trial they ran", [
        """CREATE TABLE studies (
            id BIGINT PRIMARY KEY,
            session_id BIGINT NOT NULL,
            name VARCHAR NOT NULL,                 -- the Optuna study name inside `storage`
            spec JSON NOT NULL,                    -- engine.search.StudySpec as a dict
            storage VARCHAR NOT NULL,              -- Optuna journal file: the same storage + name resumes
            out_dir VARCHAR NOT NULL,              -- where the trained candidates' models are written
            base_version_id BIGINT,                -- the version a "version" space searches around
            job_id BIGINT,                         -- the job that runs (ran) it
            status VARCHAR NOT NULL,               -- running | done | failed | cancelled | interrupted
            message VARCHAR NOT NULL,
            result JSON,                           -- pareto, hypervolume, counts when finished
            created TIMESTAMP NOT NULL,
            updated TIMESTAMP NOT NULL)""",
        "CREATE SEQUENCE study_ids START 1",
        """CREATE TABLE trials (
            study_id BIGINT NOT NULL,
            strategy VARCHAR NOT NULL,             -- random | tpe | nsga2 (the random baseline shares a study)
            number INTEGER NOT NULL,
            state VARCHAR NOT NULL,                -- trained | rejected | pruned | failed
            params JSON NOT NULL,
            objectives JSON NOT NULL,              -- accuracy, latency_ms, ram_bytes, flash_bytes, energy_uj, macs
            broke VARCHAR,                         -- the constraint a rejected candidate broke
            error VARCHAR,
            model_path VARCHAR,
            model BLOB,                            -- the trained float model's file, so a study outlives out_dir
            seconds DOUBLE NOT NULL,
            created TIMESTAMP NOT NULL,
            PRIMARY KEY (study_id, strategy, number))""",
    ]),
    ("accounts, courses, owners", [
        """CREATE TABLE users (
            id BIGINT PRIMARY KEY,
            name VARCHAR NOT NULL,                 -- login name, unique ignoring case (checked by store.users)
            role VARCHAR NOT NULL,                 -- instructor | student
            password_hash VARCHAR NOT NULL,        -- argon2id (argon2-cffi PasswordHasher); never the password
            created TIMESTAMP NOT NULL,
            updated TIMESTAMP NOT NULL)""",
        "CREATE SEQUENCE user_ids START 1",
        """CREATE TABLE courses (
            id BIGINT PRIMARY KEY,
            name VARCHAR NOT NULL,
            created_by BIGINT NOT NULL,            -- -> users.id, an instructor
            created TIMESTAMP NOT NULL)""",
        "CREATE SEQUENCE course_ids START 1",
        """CREATE TABLE course_members (
            course_id BIGINT NOT NULL,             -- -> courses.id
            user_id BIGINT NOT NULL,               -- -> users.id
            role VARCHAR NOT NULL,                 -- the user's role (instructor | student) when enrolled
            added TIMESTAMP NOT NULL,
            PRIMARY KEY (course_id, user_id))""",
        # The account a session belongs to; versions, jobs, exports, uploads, data sets and studies follow their
        # session. NULL: made in single-user use (or before accounts existed): only account-less use sees it.
        "ALTER TABLE sessions ADD COLUMN owner_id BIGINT",
    ]),
    ("challenges, submissions, grades", [
        """CREATE TABLE challenges (
            id BIGINT PRIMARY KEY,
            title VARCHAR NOT NULL,
            toml VARCHAR NOT NULL,                 -- the challenge file as published; the files it names below
            source VARCHAR NOT NULL,               -- where it was published from: a file name, builtin:NAME, form
            course_id BIGINT,                      -- the course whose students see it; NULL: every account
            owner_id BIGINT,                       -- the instructor who published it; NULL in single-user use
            deadline TIMESTAMP,                    -- UTC, copied from the file; NULL: no deadline
            counts VARCHAR NOT NULL,               -- best | last: which submission counts
            hide_names BOOLEAN NOT NULL,           -- the leaderboard shows "student N" instead of names
            created TIMESTAMP NOT NULL)""",
        "CREATE SEQUENCE challenge_ids START 1",
        """CREATE TABLE challenge_files (
            challenge_id BIGINT NOT NULL,
            name VARCHAR NOT NULL,                 -- the path the challenge file names it by
            hidden BOOLEAN NOT NULL,               -- the hidden test split: never served to students
            data BLOB NOT NULL,
            nbytes BIGINT NOT NULL,
            PRIMARY KEY (challenge_id, name))""",
        """CREATE TABLE submissions (
            id BIGINT PRIMARY KEY,
            challenge_id BIGINT NOT NULL,
            user_id BIGINT,                        -- the student; NULL in single-user use
            session_id BIGINT,                     -- where it came from (the session may be deleted later:
            version_id BIGINT,                     --   the model itself is kept below)
            model_name VARCHAR NOT NULL,
            graph_hash VARCHAR NOT NULL,
            model BLOB NOT NULL,                   -- the graph as submitted (.tsgraph bytes)
            status VARCHAR NOT NULL,               -- queued | grading | graded | not graded
            job_id BIGINT,                         -- the job grading it (latest)
            passed BOOLEAN,
            score DOUBLE,
            error VARCHAR,                         -- "not graded: why"
            result JSON,                           -- engine.labs.grade's GradeResult.to_json()
            created TIMESTAMP NOT NULL,
            started TIMESTAMP,                     -- the grading's start and end (fair-queueing evidence)
            graded TIMESTAMP)""",
        "CREATE SEQUENCE submission_ids START 1",
        """CREATE TABLE grades (
            submission_id BIGINT NOT NULL,
            name VARCHAR NOT NULL,                 -- sram | flash | latency | energy | accuracy | export | int8
            value DOUBLE,
            limit_value DOUBLE,
            passed BOOLEAN NOT NULL,
            detail VARCHAR NOT NULL,
            PRIMARY KEY (submission_id, name))""",
    ]),
]
SCHEMA_VERSION = len(MIGRATIONS)


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()
    return {r[0] for r in rows}


def schema_version(con: duckdb.DuckDBPyConnection, path: str = "database") -> int:
    """The applied schema version; 0 for an empty database. A DuckDB file holding other tables is refused."""
    tables = _tables(con)
    if "schema_version" not in tables:
        if tables:
            raise StoreError(f"{path}: not a TinyStudio database (it holds tables {', '.join(sorted(tables)[:5])} "
                             "but no schema_version)")
        return 0
    return int(con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])


def migrate(con: duckdb.DuckDBPyConnection, path: str = "database", target: int = SCHEMA_VERSION) -> int:
    """Apply the missing migrations up to `target`, one transaction each; returns the version reached."""
    current = schema_version(con, path)
    if current > SCHEMA_VERSION:
        raise SchemaTooNewError(f"{path}: database schema version {current} is newer than this TinyStudio "
                                f"supports ({SCHEMA_VERSION}); upgrade TinyStudio or choose another file with --db")
    for version in range(current + 1, target + 1):
        description, statements = MIGRATIONS[version - 1]
        con.execute("BEGIN TRANSACTION")
        try:
            for sql in statements:
                con.execute(sql)
            con.execute("INSERT INTO schema_version VALUES (?, ?, ?)", [version, description, utcnow()])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return max(current, target)
