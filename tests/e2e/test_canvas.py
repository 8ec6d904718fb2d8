"""The Design page's canvas in a real browser: a CNN drawn on a blank canvas with the palette alone, a layer dropped
on an edge, Discard after a failed save, unsaved edits surviving a page switch (and the question before
leaving), and a 152-layer MobileNetV2 readable at the default zoom with a node found by name. Screenshots land in
test-artifacts/e2e/canvas_*.png."""
from __future__ import annotations

import re

from tests.e2e import studio as ui

NODE = '.react-flow__node[data-id="{}"]'


def _blank_session(page, name: str) -> None:
    ui.new_session_tab(page, "Blank canvas")
    form = page.get_by_test_id("stForm").filter(has=page.get_by_role("button", name="Create blank session"))
    form.get_by_role("textbox", name="Session name").fill(name)
    form.get_by_role("button", name="Create blank session").click()
    page.get_by_role("heading", name="Design", exact=True).wait_for(timeout=60_000)
    ui.wait_versions(page, 1)


def _edges(frame) -> set[tuple[str, str]]:
    ids = frame.locator(".react-flow__edge").evaluate_all("els => els.map(e => e.getAttribute('data-id'))")
    return {(m.group(1), m.group(2)) for i in ids if (m := re.match(r"(.+?):out\d+->(.+?):in\d+$", i or ""))}


def _status(frame, text: str) -> None:
    frame.locator(".ts-status span", has_text=re.compile("^" + re.escape(text) + "$")).first.wait_for(timeout=30_000)


def _edit(frame, node: str, field: str, value: str) -> None:
    """Find `node` with the graph search (it is selected and centred), then type `value` into its `field`."""
    frame.get_by_placeholder("Find a node…").fill(node)
    frame.get_by_placeholder("Find a node…").press("Enter")
    frame.locator(".ts-inspector .ts-ins-title", has_text=node).wait_for()
    label = frame.locator(".ts-label", has_text=re.compile("^" + re.escape(field) + r"( \*)?[a-z]*$"))
    box = frame.locator(".ts-inspector .ts-field", has=label).locator("input").first
    box.fill(value)
    box.press("Enter")


def _leave_via(page, title: str, choice: str, shot=None) -> None:
    """Click the sidebar link to `title` with unsaved edits: the studio asks first; answer `choice`."""
    page.locator('[data-testid="stSidebar"] a[data-testid="stPageLink-NavLink"]', has_text=title).first.click()
    dialog = page.get_by_test_id("ts-leave-dialog")
    dialog.wait_for(timeout=10_000)
    assert "Unsaved canvas edits" in dialog.inner_text()
    if shot:
        page.screenshot(path=str(shot))
    dialog.get_by_role("button", name=choice).click()


def _back_to_design(page, left_for: str, dense_1: str):
    """Once on the `left_for` page, back to Design: its canvas, with node dense_1 showing `dense_1` (its
    output shape)."""
    page.get_by_role("heading", name=left_for, exact=True).wait_for(timeout=60_000)
    ui.go(page, "Design")
    frame = ui.canvas(page)
    frame.locator(NODE.format("dense_1"), has_text=dense_1).wait_for()
    return frame


def test_blank_canvas_to_cnn_drop_on_edge_discard_and_unsaved_edits(studio, new_page, shot):
    page = new_page(studio.url)
    _blank_session(page, "drawn CNN")
    frame = ui.canvas(page)
    frame.locator(NODE.format("input:input")).wait_for()
    assert _edges(frame) == {("input:input", "output:input")}  # input -> output, nothing in between
    shot(page, "design-blank")

    # Click palette layers with nothing selected: each goes right before the output, so the chain grows.
    for label in ["Conv 2D", "ReLU", "Flatten", "Dense (fully connected)"]:
        frame.locator(".ts-pal-item", has_text=re.compile("^" + re.escape(label))).first.click()
    frame.locator(NODE.format("dense_1")).wait_for()
    assert _edges(frame) == {("input:input", "conv2d_1"), ("conv2d_1", "relu_1"), ("relu_1", "flatten_1"),
                             ("flatten_1", "dense_1"), ("dense_1", "output:input")}, _edges(frame)
    _status(frame, "valid")
    frame.locator(NODE.format("dense_1"), has_text="1×10").wait_for()
    ui.save_version(page, frame, 2)
    frame = ui.canvas(page)
    frame.locator(NODE.format("dense_1"), has_text="1×10").wait_for()
    _status(frame, "Saved")
    shot(page, "design-cnn")

    # Drop "Max pool 2D" on the edge relu_1 -> flatten_1: it goes in between, the Dense weights follow.
    edge = frame.locator('.react-flow__edge[data-id="relu_1:out0->flatten_1:in0"]')
    box = edge.bounding_box()
    pane = frame.locator(".ts-flow .react-flow__pane").bounding_box()
    frame.locator(".ts-pal-item", has_text="Max pool 2D").drag_to(
        frame.locator(".ts-flow .react-flow__pane"),
        target_position={"x": box["x"] + box["width"] / 2 - pane["x"], "y": box["y"] + box["height"] / 2 - pane["y"]})
    frame.locator(NODE.format("maxpool2d_1")).wait_for()
    edges = _edges(frame)
    assert {("relu_1", "maxpool2d_1"), ("maxpool2d_1", "flatten_1")} <= edges and ("relu_1", "flatten_1") not in edges
    _status(frame, "valid")
    frame.locator(NODE.format("dense_1"), has_text="B 10×3136").wait_for()  # 16×14×14 inputs now, 16×28×28 before
    ui.save_version(page, frame, 3)
    frame = ui.canvas(page)
    frame.locator(NODE.format("maxpool2d_1")).wait_for()

    # A save that fails, then Discard: no error is left anywhere and the next edit saves.
    frame.locator(NODE.format("relu_1")).click()
    page.keyboard.press("Delete")
    _status(frame, "1 error")
    frame.locator("button", has_text="Save version").click()
    page.get_by_test_id("stAlertContentError").first.wait_for()
    _status(frame, "Not saved: fix the marked nodes")
    frame.locator("button", has_text="Discard").click()
    page.get_by_test_id("stAlertContentError").first.wait_for(state="detached", timeout=30_000)
    ui.wait_idle(page)
    assert ui.errors_shown(page) == []
    _status(frame, "Saved")
    assert frame.locator(".ts-node-error").count() == 0 and frame.locator(".ts-status-bad").count() == 0
    _edit(frame, "dense_1", "out features", "5")
    _status(frame, "valid")
    assert frame.locator("button", has_text="Save version").is_enabled()

    # Leaving with that unsaved edit asks first; "Keep editing" stays, "Leave, keep edits for later" goes and
    # the edit is back on return; "Discard changes" drops it.
    _leave_via(page, "Profile", "Keep editing", ui.REPO / "test-artifacts" / "e2e" / "canvas-leave-question.png")
    page.get_by_role("heading", name="Design", exact=True).wait_for()
    _leave_via(page, "Profile", "Leave, keep edits for later")
    frame = _back_to_design(page, "Profile", "1×5")
    _status(frame, "● Unsaved changes")
    _status(frame, "valid")
    assert "3 versions" in ui.caption(page)
    shot(page, "design-restored-draft")
    _leave_via(page, "History", "Discard changes")
    frame = _back_to_design(page, "History", "1×10")
    _status(frame, "Saved")

    # Save from the question: a new version, then the page the user asked for.
    _edit(frame, "dense_1", "out features", "7")
    _status(frame, "valid")
    _leave_via(page, "History", "Save version")
    page.get_by_role("heading", name="History", exact=True).wait_for(timeout=60_000)
    ui.wait_versions(page, 4)

    # A reload or closing the tab with unsaved edits gets the browser's own question.
    frame = _back_to_design(page, "History", "1×7")
    _edit(frame, "dense_1", "out features", "3")
    _status(frame, "valid")
    with page.expect_event("dialog", timeout=10_000) as asked:
        page.close(run_before_unload=True)
    assert asked.value.type == "beforeunload"
    asked.value.accept()


def test_mobilenetv2_reads_at_the_default_zoom_and_search_finds_a_node(studio, new_page, shot):
    page = new_page(studio.url)
    ui.create_zoo_session(page, "mobilenetv2")
    frame = ui.canvas(page)
    frame.locator(NODE.format("block:block3")).wait_for()
    page.wait_for_timeout(800)  # the first view is set two frames after the layout
    # Every text on a drawn card is at least 11 px on screen at the default zoom.
    smallest = frame.locator(".ts-flow").evaluate("""(flow) => {
        const scale = new DOMMatrix(getComputedStyle(flow.querySelector('.react-flow__viewport')).transform).a;
        const box = flow.getBoundingClientRect();
        let min = 1e9;
        for (const el of flow.querySelectorAll('.react-flow__node *')) {
          const r = el.getBoundingClientRect();
          if (!el.childNodes.length || ![...el.childNodes].some(c => c.nodeType === 3 && c.textContent.trim())) continue;
          if (r.bottom < box.top || r.top > box.bottom || r.width === 0) continue;
          min = Math.min(min, parseFloat(getComputedStyle(el).fontSize) * scale);
        }
        return min;
    }""")
    assert 11 <= smallest < 1e9, smallest
    cards = frame.locator(".react-flow__node").evaluate_all("els => els.map(e => e.getAttribute('data-id'))")
    assert len(cards) < 40 and sum(c.startswith("block:") for c in cards) >= 15, cards  # 152 layers, folded
    frame.locator(NODE.format("block:block3"), has_text="9 layers").wait_for()
    shot(page, "design-mobilenetv2")

    # Find a node inside a folded block: its block unfolds, the node is selected, centred and highlighted.
    frame.get_by_placeholder("Find a node…").fill("block7_dw_b")
    frame.locator(".ts-find-hit", has_text="block7_dw_bn").first.click()
    hit = frame.locator(NODE.format("block7_dw_bn"))
    hit.locator(".ts-node.ts-found").wait_for()
    assert "selected" in hit.get_attribute("class")
    frame.locator(".ts-inspector .ts-ins-title", has_text="block7_dw_bn").wait_for()
    page.wait_for_timeout(600)  # the view glides there
    flow, card = frame.locator(".ts-flow").bounding_box(), hit.bounding_box()
    cx, cy = card["x"] + card["width"] / 2, card["y"] + card["height"] / 2
    assert abs(cx - (flow["x"] + flow["width"] / 2)) < 40 and abs(cy - (flow["y"] + flow["height"] / 2)) < 40, (flow, card)
    assert frame.locator(NODE.format("block:block7")).count() == 0  # unfolded
    shot(page, "design-search")
    # The palette's own search still filters the palette only.
    frame.get_by_placeholder("Search layers…").fill("depthwise")
    assert frame.locator(".ts-pal-item").count() == 1


def test_a_blank_session_opens_on_every_page(studio, new_page):
    """The blank canvas has no layers at all (input -> output): no page may break on it."""
    page = new_page(studio.url)
    _blank_session(page, "empty")
    for title in ["Profile", "Model view", "Compress", "History", "Export", "Design"]:
        ui.go(page, title)
        ui.wait_idle(page)
        page.wait_for_timeout(500)
        assert ui.tracebacks(page) == [], (title, ui.tracebacks(page))
        assert ui.errors_shown(page) == [], (title, ui.errors_shown(page))
    ui.canvas(page).locator(".ts-io-out", has_text="no layers yet").wait_for()
    page.get_by_role("tab", name="Layer table").click()
    page.get_by_text("No layers yet: add them on the Canvas tab.").wait_for()
