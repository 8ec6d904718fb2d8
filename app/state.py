"""Shared state of the studio: the store (one per server process), the open session and the version shown,
the place in the URL, cached engine results.

The URL carries the place: the page is its path, and `?session=ID&version=N&mcu=ID&mcu=ID` the open session,
the version shown (per-session number: 3 means v3) and the Profile page's MCUs. Reload, back/forward and a pasted
link land in the same place. The URL wins when it differs from what this browser tab last wrote into it (the
user moved: reload, pasted link, back/forward); otherwise the tab's state wins and is written back. A parameter
that is missing says nothing (a bare link keeps the open session).

A version other than the current one can be shown (History's "View", a link to an older version): it stays
shown until the session gets a new current version (a save, an accepted compression, a restore).

Graphs and profiles are cached per version id with st.cache_resource: they are shared between browser
sessions and never mutated (every action builds a new graph). Shared between the accounts of a lab too, so
each read first asks the store whether this tab's account may see the version (store.access).

On a lab server (a store with accounts, app.auth) get_store() is the store bound to the tab's logged-in account:
every repository function a page calls sees and changes only what that account may.
"""
from __future__ import annotations

import os

import streamlit as st

import store as db
from engine.ir import Graph
from engine.profile import Profile, profile_graph

DB_ENV = "TINYSTUDIO_DB"


@st.cache_resource
def _open_store() -> db.Store:
    return db.open_store(os.environ.get(DB_ENV) or None)


def base_store() -> db.Store:
    """The store itself, for the login gate (accounts are not owned rows)."""
    return _open_store()


def get_store():
    """The store as this tab's account (app.auth.acting_user): the plain store when it has no accounts, and in
    a job thread (which acts on ids its page was allowed to use)."""
    from app.auth import acting_user

    base = _open_store()
    return db.as_user(base, acting_user(base))


def session_id() -> int | None:
    return st.session_state.get("session_id")


def select_session(sid: int | None) -> None:
    """Open session `sid` (None: none) at its current version; the URL follows on the next run."""
    st.session_state["session_id"] = sid
    st.session_state["pinned"] = None


def view_version(v: db.VersionInfo) -> None:
    """Show version `v` of the open session instead of its current version (until a new current version)."""
    cur = db.current_version(get_store(), v.session_id)
    st.session_state["session_id"] = v.session_id
    st.session_state["pinned"] = None if cur is None or cur.id == v.id else (v.id, cur.id)


def _may_see(*version_ids: int) -> None:
    """NotFoundError unless this tab's account may see every one of the versions (the caches below are shared)."""
    for vid in version_ids:
        db.get_version(get_store(), vid)


def graph_of(version_id: int) -> Graph:
    _may_see(version_id)
    return _graph(version_id)


@st.cache_resource(max_entries=64)
def _graph(version_id: int) -> Graph:
    return db.get_graph(_open_store(), version_id)


def profile_of(version_id: int, targets: tuple[tuple[str, str], ...], precision: str = "as-is",
               schedule: str = "layer", max_mac_overhead: float = 0.10) -> Profile:
    """precision: "as-is", "int8" (as deployed) or "float32" (see engine.deployed); schedule: a kind, "auto",
    or a stored schedule as JSON text (engine.memory.schedule)."""
    _may_see(version_id)
    return _profile(version_id, targets, precision, schedule, max_mac_overhead)


@st.cache_resource(max_entries=32)
def _profile(version_id: int, targets: tuple[tuple[str, str], ...], precision: str = "as-is",
             schedule: str = "layer", max_mac_overhead: float = 0.10) -> Profile:
    from app.workflows.profile import query_schedule
    from engine.memory.schedule import ScheduleError

    chosen, again = query_schedule(schedule)
    try:
        return profile_graph(_graph(version_id), list(targets), precision=precision, schedule=chosen,
                             max_mac_overhead=max_mac_overhead)
    except ScheduleError:
        if again is None:
            raise
        # the stored schedule names nodes this graph no longer has: the kind it asked for, chosen afresh
        return profile_graph(_graph(version_id), list(targets), precision=precision, schedule=again,
                             max_mac_overhead=max_mac_overhead)


def changes_of(parent_id: int, version_id: int) -> tuple[str, ...]:
    """What changed from one version to another, one phrase each (engine.diff); versions never change, so their
    ids key it."""
    _may_see(parent_id, version_id)
    return _changes(parent_id, version_id)


@st.cache_resource(max_entries=256)
def _changes(parent_id: int, version_id: int) -> tuple[str, ...]:
    from engine.diff import graph_changes

    return tuple(graph_changes(_graph(parent_id), _graph(version_id)))


def shown() -> tuple[db.SessionInfo, db.VersionInfo, db.VersionInfo] | None:
    """(open session, version shown, current version), without loading a graph; None without a session."""
    sid = session_id()
    if sid is None:
        return None
    try:
        s = db.get_session(get_store(), sid)
    except db.NotFoundError:  # deleted in another tab
        select_session(None)
        return None
    cur = db.current_version(get_store(), sid)
    if cur is None:
        return None
    pin = st.session_state.get("pinned")
    if pin and pin[1] == cur.id:
        try:
            return s, db.get_version(get_store(), pin[0], sid), cur
        except db.StoreError:  # NotFound or not in this session: show the current version
            pass
    st.session_state["pinned"] = None  # the session moved on (or nothing pinned): show its current version
    return s, cur, cur


def current() -> tuple[db.SessionInfo, db.VersionInfo, Graph] | None:
    place = shown()
    if place is None:
        return None
    s, v, _ = place
    return s, v, graph_of(v.id)


def require_current() -> tuple[db.SessionInfo, db.VersionInfo, Graph]:
    """The open session and the version shown, or a hint to open one and stop the page."""
    cur = current()
    if cur is None:
        st.info("Open or create a session on the **Sessions** page first.")
        from app.nav import PAGES

        st.page_link(PAGES["sessions"], label="Go to Sessions", query_params=url_params())
        st.stop()
    return cur


def current_label(s: db.SessionInfo) -> str:
    """'v3' for the session's current version ('' for a session without one)."""
    if s.current_version_id is None:
        return ""
    try:
        return db.get_version(get_store(), s.current_version_id).label
    except db.NotFoundError:  # deleted meanwhile
        return ""


def version_help(v: db.VersionInfo) -> str:
    """Tooltip text of a version: where its database id is shown (the studio numbers versions per session)."""
    return f"{v.label} of this session · database id {v.id} · made {v.created[:19].replace('T', ' ')} UTC"


def _read_only_note(s: db.SessionInfo) -> None:
    """An instructor looking at a student's session (store.access lets them read, not change it)."""
    from app.auth import current_user
    from store.users import get_user

    user = current_user()
    if user is None or s.owner_id is None or s.owner_id == user.id:
        return
    try:
        owner = get_user(_open_store(), s.owner_id).name
    except db.NotFoundError:
        owner = "another account"
    st.info(f"**Read only**: this session belongs to **{owner}**, a student of your course. You can look at "
            "everything; to change it, duplicate it (Sessions) or branch a version (History) into a session of "
            "your own.", icon=":material/visibility:")


def session_caption(s: db.SessionInfo, v: db.VersionInfo) -> None:
    count = f"{s.version_count} version" + ("" if s.version_count == 1 else "s")
    st.caption(f"Session **{s.name}** · model {s.model} · version {v.label} ({v.action}) · {count}",
               help=version_help(v))
    _read_only_note(s)
    place = shown()
    if place is not None and place[1].id == v.id and place[2].id != v.id:
        cur = place[2]
        c1, c2 = st.columns([5, 1], vertical_alignment="center")
        c1.warning(f"You are looking at **{v.label}**, an older version; the current version is **{cur.label}**. "
                   f"Saving or compressing from here starts a new branch from {v.label}.",
                   icon=":material/history:")
        if c2.button(f"Show {cur.label}", key="show_current"):
            view_version(cur)
            st.rerun()


# ---------------------------------------------------------------- the place in the URL

def _url_now() -> dict:
    qp = st.query_params
    return {"session": qp.get("session"), "version": qp.get("version"), "mcu": qp.get_all("mcu")}


def _positive(text) -> int | None:
    try:
        n = int(str(text).strip().removeprefix("v"))
    except (TypeError, ValueError):
        return None
    return n if n > 0 else None


def _adopt(url: dict) -> str | None:
    """Take the place the URL names; returns a one-line note when it names something that is not there."""
    from hwmodels.mcu import load_mcus

    note = None
    if url["mcu"]:
        mcus = load_mcus()
        known = [m for m in url["mcu"] if m in mcus]
        st.session_state["chosen_mcus"] = st.session_state["mcus"] = known
        if len(known) < len(url["mcu"]):
            note = f"The link names unknown MCUs ({', '.join(m for m in url['mcu'] if m not in mcus)}); left out."
    if url["session"] is None:
        return note
    sid = _positive(url["session"])
    try:
        s = db.get_session(get_store(), sid) if sid else None
    except db.NotFoundError:
        s = None
    if s is None:
        return f"The link names session {url['session']}, which does not exist (it may have been deleted)."
    st.session_state["session_id"], st.session_state["pinned"] = s.id, None
    if url["version"] is not None:
        n = _positive(url["version"])
        v = next((x for x in db.list_versions(get_store(), s.id) if x.number == n), None)
        if v is None:
            return f"Session {s.name} has no version v{url['version']}; showing its current version."
        view_version(v)
    return note


def _place() -> dict:
    """The tab's place in the URL's terms (strings), from its state."""
    from app.widgets import DEFAULT_MCUS

    place = shown()
    # The Profile page's default MCUs are set here rather than on its first visit, so that the first visit
    # does not change the URL once more (a second history entry for one page change).
    st.session_state.setdefault("chosen_mcus", list(DEFAULT_MCUS))
    mcus = st.session_state.get("mcus", st.session_state["chosen_mcus"]) or []
    return {"session": str(place[0].id) if place else None, "version": str(place[1].number) if place else None,
            "mcu": list(mcus)}


def switch_to(page: str) -> None:
    """st.switch_page to the page named `page` in app.nav, keeping the place in the URL."""
    from app.nav import PAGES

    st.switch_page(PAGES[page], query_params={k: val for k, val in _place().items() if val})


def sync_url(page: str = "") -> str | None:
    """Called by the entry before every run of `page` (its url_path): adopt the URL if the user moved, then write
    the place back. Returns a note for the user when the URL named something that is not there."""
    url = _url_now()
    note = _adopt(url) if url != st.session_state.get("_url_written") else None
    if st.session_state.get("_page") != page:
        # On a page change the MCU picker's widget state can come back stale from the browser (its first value);
        # the choice lives in "chosen_mcus" (what widgets.mcu_picker hands back to the widget).
        st.session_state.pop("mcus", None)
        st.session_state["_page"] = page
    want = _place()
    if want != _url_now():
        # A page's own parameters (the Labs page's ?challenge=) stay; only the place is written.
        keep = {k: st.query_params.get_all(k) for k in st.query_params if k not in ("session", "version", "mcu")}
        st.query_params.from_dict({**keep, **{k: val for k, val in want.items() if val}})
    st.session_state["_url_written"] = want
    return note


def url_params() -> dict:
    """The place as query parameters, for links and st.switch_page (which otherwise drop them)."""
    want = st.session_state.get("_url_written") or {}
    return {k: val for k, val in want.items() if val}
