"""Timestamps are stored as naive UTC TIMESTAMPs and handed out as ISO-8601 strings ending in Z."""
from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.isoformat(timespec="microseconds") + "Z"


def parse_iso(text: str) -> datetime:
    """Inverse of iso(); ValueError for anything else."""
    if not isinstance(text, str) or not text.endswith("Z"):
        raise ValueError(f"not a UTC timestamp: {text!r}")
    return datetime.fromisoformat(text[:-1])
