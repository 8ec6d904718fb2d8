"""Accounts of a lab server: instructors and students, their passwords (argon2id), logins, courses.

    u = add_user(store, "ada", "student", password)         # the password is hashed, never stored
    authenticate(store, "ada", password)                     # -> User, or AuthError (one line; rate-limited)
    reset_password(store, instructor, "ada", new_password)   # an instructor, for a student of their courses
    users = import_roster(store, csv_text, generated)        # name,role[,password]; made-up passwords in `generated`
    cid = create_course(store, instructor, "TinyML 2026"); enroll(store, instructor, cid, "ada")
    is_lab(store)                                            # True once the store has an account: login required

A store without accounts is single-user local use, exactly as before accounts existed. What an account may
see and change is decided by store.access, from the sessions' owners and the courses' members.
Passwords are checked with argon2-cffi's PasswordHasher (default parameters: argon2id, 64 MiB, t=3); the
clear text is never stored, printed or logged. After MAX_FAILURES failed logins for one name within
WINDOW_S seconds, logins for that name are refused (without checking the password) until the window passes.
"""
from __future__ import annotations

import csv
import io
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from store.access import INSTRUCTOR, ROLES, STUDENT
from store.clock import iso, utcnow
from store.db import Store
from store.errors import AuthError, InvalidValueError, NotFoundError
from store.rows import check_id, check_name

MIN_PASSWORD = 8
MAX_PASSWORD = 1024
MAX_FAILURES = 5  # failed logins per name ...
WINDOW_S = 60.0  # ... within this many seconds, then refused until the oldest of them is this old
MAX_ROSTER_BYTES = 1 << 20
MAX_ROSTER_ROWS = 10_000
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")

_hasher = PasswordHasher()
# Each hash or check takes 64 MiB for ~0.1 s: a class logging in at once would take 64 MiB per student, so at
# most HASHES_AT_ONCE run together (the others wait their turn).
HASHES_AT_ONCE = 4
_hashing = threading.BoundedSemaphore(HASHES_AT_ONCE)


def _hash(password: str) -> str:
    with _hashing:
        return _hasher.hash(password)


def _verify(digest: str, password: str) -> None:
    with _hashing:
        _hasher.verify(digest, password)


_DUMMY_HASH = _hash("not a password of anyone")  # verified for unknown names: same cost, same answer
_clock = time.monotonic  # tests replace it to step past the rate limit's window
_failures: dict[tuple[str, str], deque] = {}
_failures_lock = threading.Lock()


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str  # "instructor" | "student"

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Course:
    id: int
    name: str
    created_by: int  # the instructor who made it
    instructors: tuple[str, ...]
    students: tuple[str, ...]
    created: str

    def to_json(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- checks

def check_user_name(name) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name.strip()):
        raise InvalidValueError(f"user name {str(name)[:70]!r}: use 1 to 64 letters, digits, '.', '_', '-' or '@', "
                                "starting with a letter or digit")
    return name.strip()


def check_role(role) -> str:
    if role not in ROLES:
        raise InvalidValueError(f"role must be instructor or student, not {str(role)[:40]!r}")
    return role


def check_password(password) -> str:
    if not isinstance(password, str):
        raise InvalidValueError("password must be text")
    if len(password) < MIN_PASSWORD:
        raise InvalidValueError(f"password is too short: use at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidValueError(f"password is longer than {MAX_PASSWORD} characters")
    if "\n" in password or "\r" in password or "\0" in password:
        raise InvalidValueError("password contains a line break or a NUL character")
    return password


def new_password() -> str:
    """A random password (16 URL-safe characters, 96 bits) for an account made without one."""
    return secrets.token_urlsafe(12)


# ---------------------------------------------------------------- accounts

def _user(r) -> User:
    return User(int(r[0]), r[1], r[2])


def _by_name(con, name: str):
    return con.execute("SELECT id, name, role, password_hash FROM users WHERE lower(name) = lower(?)",
                       [name]).fetchone()


def add_user(store: Store, name: str, role: str, password: str, *, actor: User | None = None) -> User:
    """A new account; names are unique ignoring case. `actor`: None for the administrator (the CLI); an
    instructor in the studio may add students only (while the studio runs, the CLI cannot open the database)."""
    name, role = check_user_name(name), check_role(role)
    if actor is not None and (actor.role != INSTRUCTOR or role != STUDENT):
        raise AuthError("only an instructor can add accounts in the studio, and only students")
    digest = _hash(check_password(password))  # ~0.1 s: before taking the database lock
    with store.transaction() as con:
        return _insert(con, name, role, digest)


def _insert(con, name: str, role: str, digest: str) -> User:
    if _by_name(con, name) is not None:
        raise InvalidValueError(f"user {name!r} exists already")
    now = utcnow()
    uid = con.execute("INSERT INTO users VALUES (nextval('user_ids'), ?, ?, ?, ?, ?) RETURNING id",
                      [name, role, digest, now, now]).fetchone()[0]
    return User(int(uid), name, role)


def user_row(con, name: str):
    """(id, name, role, password_hash) of the account named `name` (ignoring case), or None; inside a transaction."""
    return _by_name(con, name)


def list_users(store: Store) -> list[User]:
    with store.transaction() as con:
        return [_user(r) for r in con.execute("SELECT id, name, role FROM users ORDER BY lower(name)").fetchall()]


def get_user(store: Store, user_id: int) -> User:
    user_id = check_id(user_id, "user id")
    with store.transaction() as con:
        r = con.execute("SELECT id, name, role FROM users WHERE id = ?", [user_id]).fetchone()
    if r is None:
        raise NotFoundError(f"no user with id {user_id}")
    return _user(r)


def find_user(store: Store, name: str) -> User:
    """The account named `name` (ignoring case); NotFoundError when there is none."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidValueError("user name is empty")
    with store.transaction() as con:
        r = _by_name(con, name.strip())
    if r is None:
        raise NotFoundError(f"no user named {name.strip()[:70]!r}")
    return _user(r)


def is_lab(store: Store) -> bool:
    """True when the store has at least one account: the studio then asks for a login."""
    with store.transaction() as con:
        return con.execute("SELECT count(*) FROM users").fetchone()[0] > 0


# ---------------------------------------------------------------- logins

def _key(store: Store, name: str) -> tuple[str, str]:
    return (getattr(store, "path", ""), name.strip().lower())


def login_wait(store: Store, name: str) -> float:
    """Seconds until `name` may try to log in again (0 when it may now)."""
    now = _clock()
    with _failures_lock:
        q = _failures.get(_key(store, name))
        if not q:
            return 0.0
        while q and now - q[0] >= WINDOW_S:
            q.popleft()
        return 0.0 if len(q) < MAX_FAILURES else max(0.0, WINDOW_S - (now - q[0]))


def _failed(store: Store, name: str) -> int:
    """Count a failed login; returns how many more may fail before the wait."""
    now = _clock()
    with _failures_lock:
        q = _failures.setdefault(_key(store, name), deque())
        while q and now - q[0] >= WINDOW_S:
            q.popleft()
        q.append(now)
        while len(q) > MAX_FAILURES:
            q.popleft()
        return MAX_FAILURES - len(q)


def authenticate(store: Store, name: str, password: str) -> User:
    """The account when `password` is right. AuthError (one line, the same for an unknown name and a wrong
    password) otherwise; refused without a check after MAX_FAILURES failures within WINDOW_S seconds."""
    if not isinstance(name, str) or not name.strip():
        raise AuthError("enter your user name")
    name = name.strip()[:200]
    wait = login_wait(store, name)
    if wait > 0:
        raise AuthError(f"too many failed logins for {name!r}: try again in {int(wait) + 1} s")
    if not isinstance(password, str) or not password:
        raise AuthError("enter your password")
    with store.transaction() as con:
        r = _by_name(con, name)
    try:
        _verify(r[3] if r else _DUMMY_HASH, password[:MAX_PASSWORD])
        ok = r is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if not ok:  # the same words for an unknown name: failures are counted per name whether it exists or not
        left = _failed(store, name)
        if left:
            raise AuthError(f"wrong user name or password ({left} more {'try' if left == 1 else 'tries'} before a "
                            f"{WINDOW_S:.0f} s wait)")
        raise AuthError(f"wrong user name or password; too many failed logins for {name!r}: try again in "
                        f"{int(login_wait(store, name)) + 1} s")
    with _failures_lock:
        _failures.pop(_key(store, name), None)
    if _hasher.check_needs_rehash(r[3]):  # stored with older parameters: upgrade while the password is at hand
        _set_hash(store, r[0], _hash(password))
    return _user(r)


def _set_hash(store: Store, user_id: int, digest: str) -> None:
    with store.transaction() as con:
        con.execute("UPDATE users SET password_hash = ?, updated = ? WHERE id = ?", [digest, utcnow(), user_id])


def reset_password(store: Store, actor: User | None, name: str, new_password: str) -> None:
    """Set `name`'s password. `actor`: an instructor, for a student in a course they teach or for themselves;
    None: the server's administrator (the CLI, which holds the database file)."""
    digest = _hash(check_password(new_password))
    target = find_user(store, name)
    if actor is not None and actor.id != target.id:
        if actor.role != INSTRUCTOR:
            raise AuthError("only an instructor can reset another user's password")
        with store.transaction() as con:
            from store.access import teaches

            if target.role != STUDENT or not teaches(con, actor, target.id):
                raise AuthError(f"{target.name!r} is not a student in a course you teach")
    _set_hash(store, target.id, digest)
    forget_failures(store, target.name)  # a fresh password: the student may log in at once


def forget_failures(store: Store, name: str) -> None:
    """Clear the failed logins counted for `name` (a new password, a renamed or deleted account)."""
    with _failures_lock:
        _failures.pop(_key(store, name), None)


def roster_rows(csv_text: str) -> list[tuple[str, str, str | None]]:
    """(name, role, password or None) of each line of a roster `name,role[,password]`; a first line
    `name,role[,password]` is a header. One-line InvalidValueError naming the line for anything wrong."""
    if not isinstance(csv_text, str):
        raise InvalidValueError("roster must be text (a CSV file)")
    if len(csv_text.encode("utf-8", "replace")) > MAX_ROSTER_BYTES:
        raise InvalidValueError(f"roster is over {MAX_ROSTER_BYTES:,} bytes")
    out, seen = [], set()
    for n, row in enumerate(csv.reader(io.StringIO(csv_text)), start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if n == 1 and cells[0].lower() == "name":
            continue
        if len(cells) not in (2, 3):
            raise InvalidValueError(f"roster line {n}: expected name,role[,password], got {len(cells)} fields")
        try:
            name, role = check_user_name(cells[0]), check_role(cells[1].lower())
            password = check_password(cells[2]) if len(cells) == 3 and cells[2] else None
        except InvalidValueError as e:
            raise InvalidValueError(f"roster line {n}: {e}") from None
        if name.lower() in seen:
            raise InvalidValueError(f"roster line {n}: user {name!r} is listed twice")
        seen.add(name.lower())
        out.append((name, role, password))
        if len(out) > MAX_ROSTER_ROWS:
            raise InvalidValueError(f"roster has more than {MAX_ROSTER_ROWS:,} users")
    if not out:
        raise InvalidValueError("roster lists no users (expected lines name,role[,password])")
    return out


def import_roster(store: Store, csv_text: str, generated: dict[str, str] | None = None) -> list[User]:
    """Add every user of the roster, all or none (a name that exists already refuses the whole file).
    A line without a password gets a random one, put in `generated` (name -> password) to hand out once."""
    rows = roster_rows(csv_text)
    made = {name: new_password() for name, _, password in rows if password is None}
    digests = [_hash(password or made[name]) for name, _, password in rows]  # before the lock
    with store.transaction() as con:
        users = [_insert(con, name, role, digest) for (name, role, _), digest in zip(rows, digests)]
    if generated is not None:
        generated.update(made)
    return users


# ---------------------------------------------------------------- courses

def _course(con, cid: int) -> Course:
    r = con.execute("SELECT id, name, created_by, created FROM courses WHERE id = ?", [cid]).fetchone()
    if r is None:
        raise NotFoundError(f"no course with id {cid}")
    members = con.execute("SELECT u.name, m.role FROM course_members m JOIN users u ON u.id = m.user_id "
                          "WHERE m.course_id = ? ORDER BY lower(u.name)", [cid]).fetchall()
    return Course(int(r[0]), r[1], int(r[2]), tuple(n for n, role in members if role == INSTRUCTOR),
                  tuple(n for n, role in members if role == STUDENT), iso(r[3]))


def create_course(store: Store, actor: User, name: str) -> int:
    """A new course taught by the instructor `actor`; returns its id."""
    name = check_name(name, "course name")
    if actor is None or actor.role != INSTRUCTOR:
        raise AuthError("only an instructor can create a course")
    now = utcnow()
    with store.transaction() as con:
        if con.execute("SELECT 1 FROM users WHERE id = ? AND role = 'instructor'", [actor.id]).fetchone() is None:
            raise NotFoundError(f"no instructor with id {actor.id}")
        if con.execute("SELECT 1 FROM courses WHERE lower(name) = lower(?)", [name]).fetchone() is not None:
            raise InvalidValueError(f"course {name!r} exists already")
        cid = con.execute("INSERT INTO courses VALUES (nextval('course_ids'), ?, ?, ?) RETURNING id",
                          [name, actor.id, now]).fetchone()[0]
        con.execute("INSERT INTO course_members VALUES (?, ?, 'instructor', ?)", [cid, actor.id, now])
    return int(cid)


def enroll(store: Store, actor: User | None, course_id: int, user_name: str) -> None:
    """Add `user_name` to the course (as a student or, for an instructor's account, a co-instructor).
    `actor`: an instructor of the course, or None for the administrator (the CLI). Enrolling twice is a no-op."""
    course_id = check_id(course_id, "course id")
    target = find_user(store, user_name)
    with store.transaction() as con:
        _course(con, course_id)
        if actor is not None and con.execute("SELECT 1 FROM course_members WHERE course_id = ? AND user_id = ? AND "
                                             "role = 'instructor'", [course_id, actor.id]).fetchone() is None:
            raise AuthError(f"only an instructor of course {course_id} can enroll users in it")
        con.execute("INSERT INTO course_members VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [course_id, target.id, target.role, utcnow()])


def find_course(store: Store, course: int | str) -> int:
    """A course's id from its id or its name (ignoring case)."""
    with store.transaction() as con:
        if isinstance(course, int) or (isinstance(course, str) and course.strip().isdigit()):
            return _course(con, int(course)).id
        r = con.execute("SELECT id FROM courses WHERE lower(name) = lower(?)", [str(course).strip()]).fetchone()
    if r is None:
        raise NotFoundError(f"no course named {str(course).strip()[:70]!r}")
    return int(r[0])


def courses_of(store: Store, user: User | None = None) -> list[Course]:
    """The courses `user` teaches or is enrolled in (None: every course)."""
    with store.transaction() as con:
        if user is None:
            ids = [r[0] for r in con.execute("SELECT id FROM courses ORDER BY id").fetchall()]
        else:
            ids = [r[0] for r in con.execute("SELECT course_id FROM course_members WHERE user_id = ? "
                                             "ORDER BY course_id", [user.id]).fetchall()]
        return [_course(con, cid) for cid in ids]
