// The canvas: palette | React Flow graph | inspector, a toolbar, local edits with undo, live validation
// through Streamlit (the draft goes to Python, errors and shapes come back) and "Save version".
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import {
  Background, Controls, MarkerType, MiniMap, ReactFlow, ReactFlowProvider,
  applyNodeChanges, useEdgesState, useNodesInitialized, useNodesState, useReactFlow,
} from "@xyflow/react";
import { Streamlit, nonce } from "./streamlit.js";
import { CanvasContext, nodeTypes } from "./nodes.jsx";
import Inspector from "./Inspector.jsx";
import Palette, { DRAG_TYPE } from "./Palette.jsx";
import Toolbar, { graphTotals, useUndoKeys } from "./Toolbar.jsx";
import {
  CATEGORY_COLORS, categoryIndex, createsCycle, docToFlow, drawn, edgeId, firstViewport, flowToDoc, placeNew, uniqueId,
} from "./model.js";
import { FOLD_BY_DEFAULT, blockCard, findBlocks, isBlockId, useFolding } from "./groups.js";
import { useLeaveGuard } from "./leave.js";

const EMPTY = { errors: {}, nodes: {} };
const KIND_TYPE = { op: "layer", input: "graphInput", output: "graphOutput" };

export default function App(props) {
  return (
    <ReactFlowProvider>
      <Canvas {...props} />
    </ReactFlowProvider>
  );
}

function Canvas({ args, theme }) {
  const { doc, palette = [], errors: pageErrors = {}, live: liveArg, live_validation: liveOn, height = 600, draft, guard } = args;
  const rf = useReactFlow();
  const [nodes, setNodes, onNodesChangeRF] = useNodesState([]);
  const [edges, setEdges, onEdgesChangeRF] = useEdgesState([]);
  const [dirty, setDirty] = useState(false);
  const [editCount, setEditCount] = useState(0);
  const [editedSinceSave, setEditedSinceSave] = useState(false);
  const [live, setLive] = useState(EMPTY);
  const [checking, setChecking] = useState(false);
  const [saving, setSaving] = useState(false);
  // A save was sent and not answered with errors: the edits are the app's now, so leaving does not ask about
  // them, however long the app takes to draw the next version's canvas in place of this one.
  const saveSent = useRef(false);
  const [dismissed, setDismissed] = useState(null); // page errors the user discarded (until Python drops them)
  const [found, setFound] = useState(null); // the node the graph search jumped to (highlighted)
  const [dropEdge, setDropEdge] = useState(null); // the edge a dragged palette layer would be dropped on
  const history = useRef({ undo: [], redo: [] });
  const latestSeq = useRef(null);
  const needsLayout = useRef(false);
  const pendingView = useRef(false);
  const validateTimer = useRef(null);
  const saveTimer = useRef(null);
  const shownName = useRef(null);
  const current = useRef({ nodes, edges });
  current.current = { nodes, edges };
  const initialized = useNodesInitialized();

  const categoryOf = useMemo(() => categoryIndex(palette), [palette]);
  const {
    folded, setFolded, blockNodes, setBlockNodes, blocks, view, currentView, relayoutView, toggleBlock,
  } = useFolding({ nodes, edges, setNodes, current, dropEdge });
  const schemaOf = useCallback((op) => doc.schemas?.[op] || palette.find((e) => e.op === op && e.kind === "op")?.schema || { attrs: [], layer: [] }, [doc, palette]);

  // First view of a graph: fit it when it fits at a readable zoom, else start readable at its inputs (top).
  const showGraph = useCallback(() => {
    const ns = currentView.current.nodes.filter((n) => !n.hidden);
    const box = document.querySelector(".ts-flow")?.getBoundingClientRect();
    if (!ns.length || !box) return;
    rf.setViewport(firstViewport(ns, rf.getNodesBounds(ns), box));
  }, [rf]);

  // A new revision (first load, a saved version, another graph) replaces the local state; unsaved edits of
  // this revision kept by the page (after a page switch) come back as they were.
  useEffect(() => {
    const restored = draft && draft.revision === doc.revision && draft.view && Array.isArray(draft.view.nodes);
    const flow = restored ? draft.view : docToFlow(doc);
    setNodes(flow.nodes);
    setEdges(flow.edges);
    setDirty(Boolean(restored));
    setEditedSinceSave(Boolean(restored));
    saveSent.current = false;
    setSaving(false);
    setLive(EMPTY);
    setChecking(false);
    setEditCount(restored ? 1 : 0); // a restored draft is validated again
    setDismissed(null);
    setFound(null);
    history.current = { undo: [], redo: [] };
    latestSeq.current = null;
    const bl = findBlocks(flow.nodes);
    const opCount = flow.nodes.filter((n) => n.data.kind === "op").length;
    const fold = opCount >= FOLD_BY_DEFAULT ? new Set(bl.keys()) : new Set();
    setFolded(fold);
    setBlockNodes(fold.size ? [...fold].map((k) => blockCard(k, bl.get(k), { x: 0, y: 0 })) : []);
    needsLayout.current = Boolean(doc.needs_layout) || fold.size > 0;
    // A saved version of the same graph keeps the user's viewport; another graph gets a fresh view.
    if (shownName.current !== doc.name || needsLayout.current) pendingView.current = true;
    shownName.current = doc.name;
  }, [doc.revision]); // eslint-disable-line react-hooks/exhaustive-deps

  // Imported graphs have no stored positions, folded ones a new view: lay them out once the cards have been
  // measured, then show them.
  useEffect(() => {
    if (!initialized) return;
    if (needsLayout.current) {
      needsLayout.current = false;
      relayoutView(folded);
    }
    if (pendingView.current) {
      pendingView.current = false;
      requestAnimationFrame(() => requestAnimationFrame(showGraph));
    }
  }, [initialized, relayoutView, showGraph]); // eslint-disable-line react-hooks/exhaustive-deps

  const foldAll = useCallback((fold) => {
    const next = fold ? new Set(blocks.keys()) : new Set();
    setFolded(next);
    relayoutView(next);
    requestAnimationFrame(() => requestAnimationFrame(showGraph));
  }, [blocks, relayoutView, showGraph]);

  useEffect(() => {
    if (liveArg && liveArg.seq && liveArg.seq === latestSeq.current) {
      setLive({ errors: liveArg.errors || {}, nodes: liveArg.nodes || {} });
      setChecking(false);
    }
  }, [liveArg?.seq]); // eslint-disable-line react-hooks/exhaustive-deps

  useEffect(() => { saveSent.current = false; setSaving(false); }, [JSON.stringify(pageErrors)]); // eslint-disable-line react-hooks/exhaustive-deps

  // ---- edits ------------------------------------------------------------------------------------------
  const pushHistory = useCallback(() => {
    const h = history.current;
    h.undo.push(current.current);
    if (h.undo.length > 100) h.undo.shift();
    h.redo = [];
  }, []);
  // Every edit, a move included, sends the draft: the page keeps it for when the user comes back.
  const edited = useCallback(() => {
    setDirty(true);
    setEditedSinceSave(true);
    setEditCount((c) => c + 1);
  }, []);
  const commit = useCallback((mutate) => {
    pushHistory();
    const next = mutate(current.current);
    setNodes(next.nodes);
    setEdges(next.edges);
    edited(true);
  }, [pushHistory, setNodes, setEdges, edited]);

  const travel = useCallback((from, to) => {
    const h = history.current;
    if (!h[from].length) return;
    h[to].push(current.current);
    const s = h[from].pop();
    setNodes(s.nodes);
    setEdges(s.edges);
    edited(true);
  }, [setNodes, setEdges, edited]);

  const onNodesChange = useCallback((changes) => {
    // Block cards are part of the view only: their moves, sizes and selection stay in their own state.
    const mine = changes.filter((c) => !isBlockId(c.id ?? c.item?.id));
    const cards = changes.filter((c) => isBlockId(c.id ?? c.item?.id) && c.type !== "remove");
    if (cards.length) setBlockNodes((bs) => applyNodeChanges(cards, bs));
    if (mine.length) onNodesChangeRF(mine);
    if (mine.some((c) => c.type === "remove")) edited(true);
  }, [onNodesChangeRF, edited]);
  const onEdgesChange = useCallback((changes) => {
    const mine = changes.filter((c) => !String(c.id ?? c.item?.id).startsWith("fold:"));
    if (mine.length) onEdgesChangeRF(mine);
    if (mine.some((c) => c.type === "remove")) edited(true);
  }, [onEdgesChangeRF, edited]);
  const onBeforeDelete = useCallback(async () => { pushHistory(); return true; }, [pushHistory]);

  const isValidConnection = useCallback((c) => c.source !== c.target && !isBlockId(c.source) && !isBlockId(c.target)
    && !createsCycle(current.current.edges, c.source, c.target), []);
  const onConnect = useCallback((c) => {
    commit(({ nodes: ns, edges: es }) => ({
      nodes: ns,
      // An input takes one connection: a new one replaces the old.
      edges: es.filter((e) => !(e.target === c.target && e.targetHandle === c.targetHandle)).concat({ ...c, id: edgeId(c) }),
    }));
  }, [commit]);

  // A palette layer goes (1) onto the edge it was dropped on, (2) where it was dropped, or, clicked, (3) right
  // after the selected node, or (4) with nothing selected, right before the graph output: the chain grows.
  const addNode = useCallback((entry, position, onEdge = null) => {
    const { nodes: ns, edges: es } = current.current;
    const id = uniqueId(entry.kind === "op" ? entry.type : entry.kind, new Set(ns.map((n) => n.id)));
    let data;
    if (entry.kind === "input") data = { kind: "input", tensor: id, shape: [...entry.shape], dtype: entry.dtype, new: true };
    else if (entry.kind === "output") data = { kind: "output", tensor: null, new: true };
    else {
      const attrs = { ...entry.attrs };
      if (doc.layout === "NHWC" && (entry.schema?.attrs || []).some((a) => a.name === "layout")) attrs.layout = "NHWC";
      data = {
        kind: "op", op: entry.op, attrs, layer: entry.layer ? { ...entry.layer } : null,
        slots: entry.slots.map((s) => ({ ...s })), n_outputs: entry.outputs || 1, outputs: [], new: true,
      };
    }
    const center = () => {
      const box = document.querySelector(".ts-flow")?.getBoundingClientRect();
      return rf.screenToFlowPosition({ x: (box?.left ?? 0) + (box?.width ?? 600) / 2, y: (box?.top ?? 0) + (box?.height ?? 400) / 2 });
    };
    pushHistory();
    const next = placeNew(ns, es, { id, type: KIND_TYPE[data.kind], data }, { position, onEdge, center });
    setNodes(next.nodes);
    setEdges(next.edges);
    edited();
    setFound(null);
    if (next.anchored) {
      const p = next.position;
      requestAnimationFrame(() => rf.setCenter(p.x + 106, p.y + 48, { zoom: Math.max(rf.getZoom(), 1), duration: 200 }));
    }
  }, [pushHistory, setNodes, setEdges, edited, doc.layout, rf]);

  // The real (not folded) edge under the pointer while a palette layer is dragged over the graph.
  const edgeAt = useCallback((x, y) => {
    for (const el of document.elementsFromPoint(x, y)) {
      const id = el.closest?.(".react-flow__edge")?.getAttribute("data-id");
      if (id && !id.startsWith("fold:")) return current.current.edges.find((e) => e.id === id) || null;
    }
    return null;
  }, []);
  const onDragOver = useCallback((ev) => {
    ev.preventDefault();
    ev.dataTransfer.dropEffect = "move";
    const e = edgeAt(ev.clientX, ev.clientY);
    setDropEdge((cur) => (cur === (e?.id ?? null) ? cur : e?.id ?? null));
  }, [edgeAt]);
  const onDrop = useCallback((ev) => {
    ev.preventDefault();
    setDropEdge(null);
    const type = ev.dataTransfer.getData(DRAG_TYPE);
    const entry = palette.find((e) => e.type === type);
    if (!entry) return;
    const at = rf.screenToFlowPosition({ x: ev.clientX, y: ev.clientY });
    const edge = edgeAt(ev.clientX, ev.clientY);
    addNode(entry, { x: at.x - 106, y: at.y - 30 }, edge);
  }, [palette, addNode, rf, edgeAt]);

  const onPatch = useCallback((id, patch) => {
    commit(({ nodes: ns, edges: es }) => ({ nodes: ns.map((n) => (n.id === id ? { ...n, data: { ...n.data, ...patch } } : n)), edges: es }));
  }, [commit]);

  const selectedNodes = nodes.filter((n) => n.selected);
  const selectedNode = selectedNodes.length === 1 ? selectedNodes[0] : null;
  const selectedEdge = selectedNodes.length === 0 ? edges.find((e) => e.selected) || null : null;
  const selectedBlock = selectedNodes.length === 0 && !selectedEdge ? blockNodes.find((b) => b.selected) || null : null;

  const deleteSelection = useCallback(() => {
    const { nodes: ns, edges: es } = current.current;
    rf.deleteElements({ nodes: ns.filter((n) => n.selected).map((n) => ({ id: n.id })), edges: es.filter((e) => e.selected).map((e) => ({ id: e.id })) });
  }, [rf]);

  // Select a node and bring it to the middle of the view at a readable zoom, unfolding its block if needed.
  const selectNode = useCallback((id, highlight = false) => {
    if (id === "__graph__") return;
    const owner = [...folded].find((k) => blocks.get(k)?.members.includes(id));
    if (owner) toggleBlock(owner, true);
    setNodes((ns) => ns.map((n) => ({ ...n, selected: n.id === id })));
    setEdges((es) => es.map((e) => (e.selected ? { ...e, selected: false } : e)));
    setBlockNodes((bs) => bs.map((b) => (b.selected ? { ...b, selected: false } : b)));
    setFound(highlight ? id : null);
    requestAnimationFrame(() => requestAnimationFrame(() => {
      const n = current.current.nodes.find((x) => x.id === id);
      if (!n) return;
      const w = n.measured?.width ?? 212;
      const h = n.measured?.height ?? 90;
      rf.setCenter(n.position.x + w / 2, n.position.y + h / 2, { zoom: Math.max(rf.getZoom(), 1), duration: 300 });
    }));
  }, [folded, blocks, toggleBlock, setNodes, setEdges, rf]);

  const relayout = useCallback(() => {
    pushHistory();
    relayoutView(folded);
    edited(false);
    requestAnimationFrame(() => requestAnimationFrame(showGraph));
  }, [pushHistory, relayoutView, folded, edited, showGraph]);

  // Discard drops every local edit and every error, the page's errors of a failed save included.
  const discard = useCallback((then = null) => {
    const flow = docToFlow(doc);
    setNodes(flow.nodes);
    setEdges(flow.edges);
    setDirty(false);
    setEditedSinceSave(false);
    setLive(EMPTY);
    setChecking(false);
    setEditCount(0);
    setDismissed(JSON.stringify(pageErrors));
    clearTimeout(validateTimer.current);
    latestSeq.current = null;
    history.current = { undo: [], redo: [] };
    needsLayout.current = Boolean(doc.needs_layout) || folded.size > 0;
    Streamlit.setComponentValue({ type: "discard", seq: nonce(), revision: doc.revision, then });
  }, [doc, pageErrors, folded, setNodes, setEdges]);

  // A value sent while Streamlit still runs the script for the previous one replaces it, so no validation
  // request may follow a save until the app has answered it (a new revision or new errors), or 5 s passed.
  const save = useCallback((then = null) => {
    clearTimeout(validateTimer.current);
    const { nodes: ns, edges: es } = current.current;
    Streamlit.setComponentValue({ type: "save", seq: nonce(), revision: doc.revision, doc: flowToDoc(doc, ns, es), then });
    saveSent.current = true;
    setSaving(true);
    setEditedSinceSave(false);
    clearTimeout(saveTimer.current);
    saveTimer.current = setTimeout(() => setSaving(false), 5000);
  }, [doc]);

  // The edited document and the drawn state ("view", what the page keeps of a draft) to Python; returns its seq.
  const sendDraft = useCallback((type, extra = {}) => {
    const { nodes: ns, edges: es } = current.current;
    const seq = nonce();
    Streamlit.setComponentValue({ type, seq, revision: doc.revision, doc: flowToDoc(doc, ns, es), view: drawn(ns, es), ...extra });
    return seq;
  }, [doc]);

  // Live validation: the draft goes to Python a moment after the last edit, with the drawn state ("view") the
  // page keeps so that the edits survive a switch to another page and back.
  useEffect(() => {
    if (editCount === 0) return undefined;
    if (liveOn) setChecking(true);
    if (saving) return undefined; // sent once the save is answered (this effect runs again then)
    validateTimer.current = setTimeout(() => { latestSeq.current = sendDraft("validate"); }, 400);
    return () => clearTimeout(validateTimer.current);
  }, [editCount, liveOn, saving]); // eslint-disable-line react-hooks/exhaustive-deps

  // Leaving with unsaved edits asks first (the studio's own navigation; reload and close via beforeunload).
  // "Leave, keep edits for later" sends the draft with the request, so nothing is lost to the debounce.
  const later = useCallback((then) => {
    clearTimeout(validateTimer.current);
    sendDraft("leave", { then });
  }, [sendDraft]);
  useLeaveGuard(guard, {
    dirty: dirty && !(saveSent.current && !editedSinceSave),
    title: "Unsaved canvas edits",
    text: `Your edits to ${doc.name} are not saved yet. Save them as a new version, discard them, keep editing, or leave them here for later (this browser tab only)?`,
  }, { onSave: save, onDiscard: discard, onLater: later });

  useUndoKeys(travel);

  // ---- derived view ---------------------------------------------------------------------------------
  const pageErrorsShown = editedSinceSave || dismissed === JSON.stringify(pageErrors) ? {} : pageErrors;
  const errors = useMemo(() => ({ ...pageErrorsShown, ...live.errors }), [JSON.stringify(pageErrorsShown), live]); // eslint-disable-line react-hooks/exhaustive-deps
  const errorList = Object.entries(errors);
  const byId = useMemo(() => new Map(nodes.map((n) => [n.id, n])), [nodes]);
  const ctx = useMemo(() => ({ errors, live: live.nodes, categoryOf, found, byId, toggleBlock }),
    [errors, live, categoryOf, found, byId, toggleBlock]);
  const totals = useMemo(() => graphTotals(nodes, live.nodes), [nodes, live]);
  const minimapColor = useCallback((n) => (errors[n.id] ? "#dc2626" : n.data.kind === "block" ? "#94a3b8"
    : n.data.kind === "op" ? CATEGORY_COLORS[categoryOf(n.data.op)] || "#6b7280" : "#334155"), [errors, categoryOf]);

  const dark = theme?.base === "dark";

  return (
    <CanvasContext.Provider value={ctx}>
      <div className={`ts-root${dark ? " dark" : ""}`} style={{ height: `${height}px` }}>
        <Toolbar name={doc.name} nodes={nodes} totals={totals} errorCount={errorList.length} checking={checking}
          liveOn={liveOn} dirty={dirty} saving={saving} failedSave={Object.keys(pageErrorsShown).length > 0}
          canUndo={history.current.undo.length > 0} canRedo={history.current.redo.length > 0}
          canDelete={Boolean(selectedNodes.length || selectedEdge)} blockCount={blocks.size} foldedCount={folded.size}
          on={{ relayout, fit: () => rf.fitView({ padding: 0.12, duration: 300, maxZoom: 1.1 }),
            undo: () => travel("undo", "redo"), redo: () => travel("redo", "undo"), deleteSelection, foldAll,
            pick: (id) => selectNode(id, true), discard: () => discard(), save: () => save() }} />
        <div className="ts-main">
          <Palette palette={palette} onAdd={addNode} />
          <div className="ts-flow" onDragOver={onDragOver} onDragLeave={() => setDropEdge(null)} onDrop={onDrop}>
            <ReactFlow
              nodes={view.nodes} edges={view.edges} nodeTypes={nodeTypes}
              onPaneClick={() => setFound(null)}
              onNodeDoubleClick={(_, n) => { if (isBlockId(n.id)) toggleBlock(n.data.key, true); }}
              onNodesChange={onNodesChange} onEdgesChange={onEdgesChange} onConnect={onConnect}
              onBeforeDelete={onBeforeDelete} isValidConnection={isValidConnection}
              onNodeDragStart={(_, n) => { if (!isBlockId(n.id)) pushHistory(); }}
              onNodeDragStop={(_, n) => { if (!isBlockId(n.id)) edited(); }}
              deleteKeyCode={["Delete", "Backspace"]} multiSelectionKeyCode={["Shift", "Meta", "Control"]}
              defaultEdgeOptions={{ markerEnd: { type: MarkerType.ArrowClosed, width: 16, height: 16 } }}
              colorMode={dark ? "dark" : "light"} minZoom={0.1} maxZoom={2}
            >
              <Background gap={18} size={1} />
              <Controls showInteractive={false} />
              <MiniMap pannable zoomable nodeColor={minimapColor} nodeStrokeWidth={2} style={{ width: 110, height: 80 }} />
            </ReactFlow>
          </div>
          <Inspector node={selectedNode} edge={selectedEdge} block={selectedBlock} schemaOf={schemaOf} errors={errors} live={live.nodes}
            totals={totals} errorList={errorList} onPatch={onPatch} onDelete={deleteSelection} onSelect={selectNode}
            onToggleBlock={toggleBlock} blockOf={(id) => [...blocks.values()].find((b) => b.members.includes(id))?.key}
            docName={doc.name} />
        </div>
      </div>
    </CanvasContext.Provider>
  );
}
