"""Shared state of the studio: the store (one per server process), the selected session, cached engine results.

Graphs and profiles are cached per version id with st.cache_resource: they are shared between browser
sessions and never mutated (every action builds a new graph).
"""
from __future__ import annotations

import os

import streamlit as st

import store as db
from engine.ir import Graph
from engine.profile import Profile, profile_graph

DB_ENV = "TINYSTUDIO_DB"


@st.cache_resource
def get_store() -> db.Store:
    return db.open_store(os.environ.get(DB_ENV) or None)


def session_id() -> int | None:
    return st.session_state.get("session_id")


def select_session(sid: int | None) -> None:
    st.session_state["session_id"] = sid


@st.cache_resource(max_entries=64)
def graph_of(version_id: int) -> Graph:
    return db.get_graph(get_store(), version_id)


@st.cache_resource(max_entries=32)
def profile_of(version_id: int, targets: tuple[tuple[str, str], ...], precision: str = "as-is") -> Profile:
    """precision: "as-is", "int8" (as deployed) or "float32" (see engine.deployed)."""
    return profile_graph(graph_of(version_id), list(targets), precision=precision)


def current() -> tuple[db.SessionInfo, db.VersionInfo, Graph] | None:
    sid = session_id()
    if sid is None:
        return None
    try:
        s = db.get_session(get_store(), sid)
    except db.NotFoundError:  # deleted in another tab
        select_session(None)
        return None
    v = db.current_version(get_store(), sid)
    if v is None:
        return None
    return s, v, graph_of(v.id)


def require_current() -> tuple[db.SessionInfo, db.VersionInfo, Graph]:
    """The open session, or a hint to open one and stop the page."""
    cur = current()
    if cur is None:
        st.info("Open or create a session on the **Sessions** page first.")
        from app.nav import PAGES

        st.page_link(PAGES["sessions"], label="Go to Sessions")
        st.stop()
    return cur


def session_caption(s: db.SessionInfo, v: db.VersionInfo) -> None:
    count = f"{s.version_count} version" + ("" if s.version_count == 1 else "s")
    st.caption(f"Session **{s.name}** · model {s.model} · version {v.id} ({v.action}) · {count}")
