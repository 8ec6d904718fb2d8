"""The schedule chosen for a version (issue 13: a schedule is data beside the graph, stored with the version).

    v2 = set_schedule(store, session_id, version_id, {"requested": "auto", "max_mac_overhead": 0.1,
                                                      "schedule": Schedule(...).to_dict()})
    version_schedule(store, v2.id)     # that record; None when neither the version nor an ancestor has one

Versions never change, so choosing a schedule makes a new version (action "schedule") with the same graph
(and its stored profiles), the record in its params. A later version inherits the nearest ancestor's choice
(the pages re-check it against the graph they plan: app.workflows.profile.stored_schedule).
"""
from __future__ import annotations

from store.access import actor
from store.db import Store
from store.errors import InvalidValueError
from store.records import VersionInfo, dump_json
from store.rows import check_id, copy_version, session_row, version_row

ACTION = "schedule"
KINDS = ("layer", "inplace", "patch", "fused", "auto")


def _check(record) -> dict:
    if not isinstance(record, dict) or not isinstance(record.get("schedule"), dict):
        raise InvalidValueError("a schedule record needs 'schedule' (object)")
    if record.get("requested") not in KINDS:
        raise InvalidValueError(f"schedule record: 'requested' must be one of {', '.join(KINDS)}")
    limit = record.get("max_mac_overhead")
    if not isinstance(limit, (int, float)) or isinstance(limit, bool) or not 0 <= limit <= 10:
        raise InvalidValueError("schedule record: 'max_mac_overhead' must be a number in 0..10")
    return {"requested": record["requested"], "max_mac_overhead": float(limit), "schedule": record["schedule"]}


def set_schedule(store: Store, session_id: int, version_id: int, record: dict, *, user=None) -> VersionInfo:
    """A new current version of `session_id`: `version_id`'s graph with the schedule `record` (`user` must own the
    session: store.access)."""
    session_id = check_id(session_id, "session id")
    version_id = check_id(version_id, "version id")
    params = dump_json({"schedule": _check(record), "version_id": version_id}, "schedule")
    user = actor(store, user)
    with store.transaction() as con:
        s = session_row(con, session_id, user, write=True)
        version_row(con, version_id, session_id, user)
        vid = copy_version(con, version_id, session_id, s.current_version_id, ACTION, params)
        return version_row(con, vid)


def version_schedule(store: Store, version_id: int, *, user=None) -> dict | None:
    """The schedule record of the version or its nearest ancestor that has one (`user` must see the version)."""
    from store.versions import get_version

    seen = set()
    vid = check_id(version_id, "version id")
    while vid is not None and vid not in seen:
        seen.add(vid)
        v = get_version(store, vid, user=user)
        params = v.params if isinstance(v.params, dict) else {}
        rec = params.get("schedule")
        if v.action == ACTION and isinstance(rec, dict):
            try:
                return _check(rec)
            except InvalidValueError:  # a damaged record: as if there were none
                return None
        vid = v.parent_id
    return None
