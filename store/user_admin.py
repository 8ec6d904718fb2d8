"""Removing and renaming accounts of a lab server, and the login token that ends other tabs' logins.

    delete_user(store, None, "ada")                      # refused while ada owns sessions (or challenges, ...)
    delete_user(store, None, "ada", give_to="prof")      # her sessions, submissions, ... go to prof first
    rename_user(store, instructor, "ada", "ada.l")
    token = login_token(store, user.id)                  # kept by a tab at login; None once the account is gone
    check_login(store, user_id, token)                   # -> the current User, or None: log that tab out

`actor` None is the server's administrator (the CLI, which holds the database file): any account. An instructor
(the studio) may delete or rename only students enrolled in a course they teach, never an instructor's account
(theirs included) — the same rule as reset_password. A refusal is one line (AuthError / InvalidValueError).

The login token is a digest of the account's stored password hash: argon2 salts every hash, so any password
change (reset by an instructor, by the administrator, or one's own) gives a new token, and a tab whose token
no longer matches is logged out at its next page load. No clear password is involved.
"""
from __future__ import annotations

import hashlib

from store.access import INSTRUCTOR, STUDENT, teaches
from store.clock import utcnow
from store.db import Store
from store.errors import AuthError, InvalidValueError, NotFoundError
from store.users import User, check_user_name, find_user, forget_failures, user_row

# (table, owner column, what it holds): every row an account owns directly (the rest follows its session).
OWNED = (("sessions", "owner_id", "session"), ("submissions", "user_id", "submission"),
         ("challenges", "owner_id", "challenge"), ("courses", "created_by", "course"))
# What only an instructor may own (given to a student, it would make them one in effect).
INSTRUCTOR_ONLY = ("challenges", "courses")


def _may_manage(con, actor: User | None, target: User, what: str) -> None:
    if actor is None:
        return
    if actor.role != INSTRUCTOR:
        raise AuthError(f"only an instructor can {what} an account")
    if target.role != STUDENT:
        raise AuthError(f"only the server's administrator (tinystudio users) can {what} the instructor account "
                        f"{target.name!r}")
    if not teaches(con, actor, target.id):
        raise AuthError(f"{target.name!r} is not a student in a course you teach")


def owned_counts(con, user_id: int) -> dict[str, int]:
    """{table: rows the account owns} for the tables of OWNED where it owns any."""
    out = {}
    for table, col, _ in OWNED:
        n = con.execute(f"SELECT count(*) FROM {table} WHERE {col} = ?", [user_id]).fetchone()[0]
        if n:
            out[table] = int(n)
    return out


def _describe(counts: dict[str, int]) -> str:
    words = {t: w for t, _, w in OWNED}
    return ", ".join(f"{n} {words[t]}{'' if n == 1 else 's'}" for t, n in counts.items())


def delete_user(store: Store, actor: User | None, name: str, *, give_to: str | None = None) -> dict[str, int]:
    """Delete the account `name`. While it owns sessions, submissions, challenges or courses it is refused,
    unless `give_to` names the account that gets them (an instructor's account for challenges and courses).
    Returns {table: rows given}. Course memberships of the deleted account go with it."""
    target = find_user(store, name)
    with store.transaction() as con:
        _may_manage(con, actor, target, "delete")
        counts = owned_counts(con, target.id)
        heir = None
        if give_to is not None:
            r = user_row(con, check_user_name(give_to))
            if r is None:
                raise NotFoundError(f"--give-to: no user named {give_to.strip()[:70]!r}")
            heir = User(int(r[0]), r[1], r[2])
            if heir.id == target.id:
                raise InvalidValueError(f"--give-to: {heir.name!r} is the account being deleted; name another one")
            if actor is not None and heir.id != actor.id and not teaches(con, actor, heir.id):
                raise AuthError(f"--give-to: {heir.name!r} is neither you nor a student in a course you teach")
            only = [t for t in INSTRUCTOR_ONLY if t in counts]
            if only and heir.role != INSTRUCTOR:
                raise InvalidValueError(f"--give-to: {target.name!r} owns {_describe({t: counts[t] for t in only})}"
                                        f", which only an instructor can own; {heir.name!r} is a student")
        elif counts:
            raise InvalidValueError(f"user {target.name!r} owns {_describe(counts)}: give them to another account "
                                    f"(--give-to NAME) or delete them first")
        for table, col, _ in OWNED:
            if table in counts:
                con.execute(f"UPDATE {table} SET {col} = ? WHERE {col} = ?", [heir.id, target.id])
        if heir is not None and heir.role == INSTRUCTOR:  # the courses a deleted instructor taught keep a teacher
            con.execute("INSERT INTO course_members SELECT course_id, ?, 'instructor', ? FROM course_members "
                        "WHERE user_id = ? AND role = 'instructor' ON CONFLICT DO NOTHING",
                        [heir.id, utcnow(), target.id])
        con.execute("DELETE FROM course_members WHERE user_id = ?", [target.id])
        con.execute("DELETE FROM users WHERE id = ?", [target.id])
    forget_failures(store, target.name)
    return counts


def rename_user(store: Store, actor: User | None, name: str, new_name: str) -> User:
    """Give the account `name` the login name `new_name` (unique ignoring case; a change of case is allowed).
    Sessions and grades follow: they refer to the account by id."""
    new_name = check_user_name(new_name)
    target = find_user(store, name)
    with store.transaction() as con:
        _may_manage(con, actor, target, "rename")
        other = user_row(con, new_name)
        if other is not None and other[0] != target.id:
            raise InvalidValueError(f"user {new_name!r} exists already")
        con.execute("UPDATE users SET name = ?, updated = ? WHERE id = ?", [new_name, utcnow(), target.id])
    forget_failures(store, target.name)
    return User(target.id, new_name, target.role)


def login_token(store: Store, user_id: int) -> str | None:
    """The account's current login token (see the module docstring); None when there is no such account."""
    with store.transaction() as con:
        r = con.execute("SELECT password_hash FROM users WHERE id = ?", [user_id]).fetchone()
    return None if r is None else hashlib.sha256(r[0].encode()).hexdigest()[:32]


def check_login(store: Store, user_id: int, token: str | None) -> User | None:
    """The account as it is now (its name may have changed) when `token` is still its login token; None when
    the password was changed since that login or the account was deleted."""
    with store.transaction() as con:
        r = con.execute("SELECT id, name, role, password_hash FROM users WHERE id = ?", [user_id]).fetchone()
    if r is None or token is None or hashlib.sha256(r[3].encode()).hexdigest()[:32] != token:
        return None
    return User(int(r[0]), r[1], r[2])
