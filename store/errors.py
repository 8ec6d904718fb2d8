"""Errors the store raises for things a user can cause: one readable line each (see engine.errors)."""
from __future__ import annotations

from engine.errors import ModelFormatError, TinyStudioError


class StoreError(TinyStudioError):
    """The database cannot be used: unreadable file, disk error, closed store."""


class StoreLockedError(StoreError):
    """Another process holds the database file (DuckDB allows one writing process per file)."""


class SchemaTooNewError(StoreError):
    """The database was written by a newer TinyStudio; opening it here could damage it."""


class NotFoundError(StoreError):
    """An id that names no session, version, job or export."""


class VersionNotInSessionError(NotFoundError):
    """A version id that exists but belongs to another session."""


class InvalidValueError(StoreError):
    """A name, status or parameter the store cannot accept (empty name, progress outside 0..1, ...)."""


class JobStateError(StoreError):
    """A job transition that is not allowed (finishing a job that already failed, ...)."""


class SessionFileError(ModelFormatError):
    """A .tinystudio session file that cannot be imported: corrupted, over a limit, unexpected member names."""


class AuthError(StoreError):
    """A login that failed (wrong name or password, too many tries) or an account operation not allowed."""


class ReadOnlyError(StoreError):
    """A change to a row the user may look at but not change (an instructor and a student's session)."""
