"""Three browser contexts (three users) each create a session and save a canvas edit at the same moment:
afterwards every session has exactly its two versions, with its own edit."""
from __future__ import annotations

import store as db
from tests.e2e import studio as ui

CHANNELS = (16, 24, 40)  # conv1's new width in each user's session (KWS starts at 64)


def test_concurrent_sessions(studio, new_page, shot):
    names = [f"user {i + 1}" for i in range(len(CHANNELS))]
    pages = [new_page(studio.url) for _ in names]

    for page, name in zip(pages, names):
        ui.go(page, "Sessions")
        page.get_by_role("tab", name="From the zoo").click()
        create = page.get_by_role("button", name="Create session", exact=True)
        page.get_by_test_id("stForm").filter(has=create).get_by_role("textbox", name="Session name").fill(name)
    for page in pages:  # the three creations reach the server together
        page.get_by_role("button", name="Create session", exact=True).click()
    frames = []
    for page, name, ch in zip(pages, names, CHANNELS):
        page.get_by_role("heading", name="Design", exact=True).wait_for(timeout=60_000)
        ui.wait_versions(page, 1)
        assert ui.caption(page).startswith(f"Session {name} ·")
        frame = ui.canvas(page)
        ui.edit_field(frame, "conv1", "out channels", str(ch))
        frame.locator(".ts-status-ok", has_text="valid").wait_for()
        frames.append(frame)
    for frame in frames:  # and the three saves too
        frame.locator("button", has_text="Save version").click()
    for page, name, ch in zip(pages, names, CHANNELS):
        ui.wait_versions(page, 2)
        assert ui.caption(page).startswith(f"Session {name} ·")
        ui.canvas(page).locator('.react-flow__node[data-id="conv1"]', has_text=f"{ch} ch").wait_for()
    shot(pages[-1], "design")

    ui.go(pages[0], "Sessions")
    pages[0].get_by_role("tab", name="All sessions").click()
    listed = {r["name"]: r["versions"] for r in ui.table(ui.dataframe(pages[0], "id"))}
    assert listed == {name: "2" for name in names}, listed
    shot(pages[0], "sessions")

    studio.stop()
    store = db.open_store(str(studio.db_path))
    try:
        sessions = {s.name: s for s in db.list_sessions(store)}
        assert sorted(sessions) == sorted(names)
        for name, ch in zip(names, CHANNELS):
            versions = db.list_versions(store, sessions[name].id)
            assert [v.action for v in versions] == ["zoo", "edit"], (name, versions)
            assert versions[1].parent_id == versions[0].id
            graph = db.get_graph(store, versions[1].id)
            conv1 = next(n for n in graph.nodes if n.name == "conv1")
            assert graph.tensors[conv1.inputs[1]].shape[0] == ch, (name, graph.tensors[conv1.inputs[1]].shape)
    finally:
        store.close()
