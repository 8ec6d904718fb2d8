"""Who may see and change what in a lab store: the ownership rules every repository function applies.

    view = as_user(store, user)          # the shared Store acting as one account (None: the store itself)
    list_sessions(view)                  # == list_sessions(store, user=user): only what `user` may see

Rules. No user (single-user local use, the CLI without --user, the grader's own work): everything, as before
accounts existed. A student: the sessions they own and everything under them (versions, jobs, exports,
uploads, data sets, studies, profiles). An instructor: their own sessions, and may look at (not change) those
of the students enrolled in the courses they teach; nothing of other courses. Anything else is refused with
the same NotFoundError a missing id gets, so a refusal never tells that the row exists.

Only sessions carry an owner (sessions.owner_id); every other row reaches its owner through its session.
A new table with rows of its own (not under a session) gets an owner column and the same two helpers: lists
filter with owner_filter(user, "x.owner_id"), reads and changes of one row call check_owner(con, user, owner,
"no ... with id N", write).
"""
from __future__ import annotations

from store.errors import NotFoundError, ReadOnlyError

STUDENT, INSTRUCTOR = "student", "instructor"
ROLES = (INSTRUCTOR, STUDENT)

# Ids of the students enrolled in a course that the instructor (second ?) teaches.
TAUGHT = ("SELECT m.user_id FROM course_members m JOIN course_members t ON t.course_id = m.course_id "
          "WHERE t.user_id = ? AND t.role = 'instructor' AND m.role = 'student'")


class StoreView:
    """A Store seen as one account: repository functions called on it act as `user` (unless given another).
    Shares the store's connection and lock; closing a view leaves the store open (its opener closes it)."""

    def __init__(self, store, user):
        self.base = getattr(store, "base", store)
        self.user = user

    def transaction(self):
        return self.base.transaction()

    @property
    def path(self) -> str:
        return self.base.path

    @property
    def closed(self) -> bool:
        return self.base.closed

    def close(self) -> None:
        pass

    def __enter__(self) -> "StoreView":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def __repr__(self) -> str:
        return f"StoreView({self.base.path!r}, user={self.user.name!r})"


def as_user(store, user):
    """`store` acting as `user`; the plain store for None."""
    base = getattr(store, "base", store)
    return base if user is None else StoreView(base, user)


def actor(store, user):
    """The account a repository call acts as: `user` when given, else the one the store view is bound to."""
    return user if user is not None else getattr(store, "user", None)


def owner_filter(user, column: str = "s.owner_id") -> tuple[str | None, list]:
    """(SQL condition on an owner column, its arguments) selecting the rows `user` may see; (None, []) for all."""
    if user is None:
        return None, []
    if user.role == INSTRUCTOR:
        return f"({column} = ? OR {column} IN ({TAUGHT}))", [user.id, user.id]
    return f"{column} = ?", [user.id]


def teaches(con, user, owner_id) -> bool:
    """Is `owner_id` a student in a course the instructor `user` teaches?"""
    return (owner_id is not None and user.role == INSTRUCTOR
            and con.execute(f"SELECT 1 WHERE ? IN ({TAUGHT})", [owner_id, user.id]).fetchone() is not None)


def check_owner(con, user, owner_id, missing: str, write: bool = False, what: str = "this session") -> None:
    """Refuse `user` a row owned by `owner_id`: NotFoundError(`missing`) when they may not see it,
    ReadOnlyError when they may see but `write` asks to change it."""
    if user is None or owner_id == user.id:
        return
    if teaches(con, user, owner_id):
        if not write:
            return
        raise ReadOnlyError(f"{what} belongs to a student of your course: an instructor can look at it, not change it")
    raise NotFoundError(missing)


def session_owner(con, session_id: int):
    r = con.execute("SELECT owner_id FROM sessions WHERE id = ?", [session_id]).fetchone()
    return None if r is None else r[0]

