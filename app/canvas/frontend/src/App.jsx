// The canvas: palette | React Flow graph | inspector, a toolbar, local edits with undo, live validation
// through Streamlit (the draft goes to Python, errors and shapes come back) and "Save version".
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import {
  Background, Controls, MarkerType, MiniMap, ReactFlow, ReactFlowProvider,
  useEdgesState, useNodesInitialized, useNodesState, useReactFlow,
} from "@xyflow/react";
import { Streamlit } from "./streamlit.js";
import { CanvasContext, nodeTypes } from "./nodes.jsx";
import Inspector from "./Inspector.jsx";
import Palette, { DRAG_TYPE } from "./Palette.jsx";
import {
  CATEGORY_COLORS, autoLayout, categoryIndex, createsCycle, docToFlow, edgeId, flowToDoc, fmtCount, uniqueId,
} from "./model.js";

const EMPTY = { errors: {}, nodes: {} };
const KIND_TYPE = { op: "layer", input: "graphInput", output: "graphOutput" };
const nonce = () => `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

export default function App(props) {
  return (
    <ReactFlowProvider>
      <Canvas {...props} />
    </ReactFlowProvider>
  );
}

function Canvas({ args, theme }) {
  const { doc, palette = [], errors: pageErrors = {}, live: liveArg, live_validation: liveOn, height = 600 } = args;
  const rf = useReactFlow();
  const [nodes, setNodes, onNodesChangeRF] = useNodesState([]);
  const [edges, setEdges, onEdgesChangeRF] = useEdgesState([]);
  const [dirty, setDirty] = useState(false);
  const [editCount, setEditCount] = useState(0);
  const [editedSinceSave, setEditedSinceSave] = useState(false);
  const [live, setLive] = useState(EMPTY);
  const [checking, setChecking] = useState(false);
  const [saving, setSaving] = useState(false);
  const history = useRef({ undo: [], redo: [] });
  const latestSeq = useRef(null);
  const needsLayout = useRef(false);
  const pendingView = useRef(false);
  const shownName = useRef(null);
  const current = useRef({ nodes, edges });
  current.current = { nodes, edges };
  const initialized = useNodesInitialized();

  const categoryOf = useMemo(() => categoryIndex(palette), [palette]);
  const schemaOf = useCallback((op) => doc.schemas?.[op] || palette.find((e) => e.op === op && e.kind === "op")?.schema || { attrs: [], layer: [] }, [doc, palette]);

  // First view of a graph: fit it when it fits at a readable zoom, else start readable at its inputs (top).
  const showGraph = useCallback(() => {
    const ns = current.current.nodes;
    const box = document.querySelector(".ts-flow")?.getBoundingClientRect();
    if (!ns.length || !box) return;
    const b = rf.getNodesBounds(ns);
    const pad = 24;
    const zoom = Math.max(0.7, Math.min(1, (box.width - 2 * pad) / b.width, (box.height - 2 * pad) / b.height));
    const x = (box.width - b.width * zoom) / 2 - b.x * zoom;
    const y = b.height * zoom + 2 * pad <= box.height ? (box.height - b.height * zoom) / 2 - b.y * zoom : pad - b.y * zoom;
    rf.setViewport({ x, y, zoom });
  }, [rf]);

  // A new revision (first load, a saved version, another graph) replaces the local state.
  useEffect(() => {
    const flow = docToFlow(doc);
    setNodes(flow.nodes);
    setEdges(flow.edges);
    setDirty(false);
    setEditedSinceSave(false);
    setSaving(false);
    setLive(EMPTY);
    setChecking(false);
    setEditCount(0);
    history.current = { undo: [], redo: [] };
    latestSeq.current = null;
    needsLayout.current = Boolean(doc.needs_layout);
    // A saved version of the same graph keeps the user's viewport; another graph gets a fresh view.
    if (shownName.current !== doc.name || doc.needs_layout) pendingView.current = true;
    shownName.current = doc.name;
  }, [doc.revision]); // eslint-disable-line react-hooks/exhaustive-deps

  // Imported graphs have no stored positions: lay them out once the cards have been measured, then show them.
  useEffect(() => {
    if (!initialized) return;
    if (needsLayout.current) {
      needsLayout.current = false;
      setNodes((ns) => autoLayout(ns, current.current.edges));
    }
    if (pendingView.current) {
      pendingView.current = false;
      requestAnimationFrame(() => requestAnimationFrame(showGraph));
    }
  }, [initialized, setNodes, showGraph]);

  useEffect(() => {
    if (liveArg && liveArg.seq && liveArg.seq === latestSeq.current) {
      setLive({ errors: liveArg.errors || {}, nodes: liveArg.nodes || {} });
      setChecking(false);
    }
  }, [liveArg?.seq]); // eslint-disable-line react-hooks/exhaustive-deps

  useEffect(() => { setSaving(false); }, [JSON.stringify(pageErrors)]); // eslint-disable-line react-hooks/exhaustive-deps

  // ---- edits ------------------------------------------------------------------------------------------
  const pushHistory = useCallback(() => {
    const h = history.current;
    h.undo.push(current.current);
    if (h.undo.length > 100) h.undo.shift();
    h.redo = [];
  }, []);
  const edited = useCallback((structural = true) => {
    setDirty(true);
    setEditedSinceSave(true);
    if (structural) setEditCount((c) => c + 1);
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
    onNodesChangeRF(changes);
    if (changes.some((c) => c.type === "remove")) edited(true);
  }, [onNodesChangeRF, edited]);
  const onEdgesChange = useCallback((changes) => {
    onEdgesChangeRF(changes);
    if (changes.some((c) => c.type === "remove")) edited(true);
  }, [onEdgesChangeRF, edited]);
  const onBeforeDelete = useCallback(async () => { pushHistory(); return true; }, [pushHistory]);

  const isValidConnection = useCallback((c) => c.source !== c.target && !createsCycle(current.current.edges, c.source, c.target), []);
  const onConnect = useCallback((c) => {
    commit(({ nodes: ns, edges: es }) => ({
      nodes: ns,
      // An input takes one connection: a new one replaces the old.
      edges: es.filter((e) => !(e.target === c.target && e.targetHandle === c.targetHandle)).concat({ ...c, id: edgeId(c) }),
    }));
  }, [commit]);

  const addNode = useCallback((entry, position) => {
    const { nodes: ns } = current.current;
    const id = uniqueId(entry.kind === "op" ? entry.type : entry.kind, new Set(ns.map((n) => n.id)));
    const sel = ns.find((n) => n.selected);
    let pos = position;
    if (!pos && sel) pos = { x: sel.position.x, y: sel.position.y + (sel.measured?.height ?? 90) + 48 };
    if (!pos) {
      const box = document.querySelector(".ts-flow")?.getBoundingClientRect();
      pos = rf.screenToFlowPosition({ x: (box?.left ?? 0) + (box?.width ?? 600) / 2, y: (box?.top ?? 0) + (box?.height ?? 400) / 2 });
    }
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
    const node = { id, type: KIND_TYPE[data.kind], position: pos, data, selected: true };
    commit(({ nodes: cur, edges: es }) => {
      let next = es;
      const target = data.kind === "output" ? 0 : data.kind === "op" ? data.slots.findIndex((s) => s.kind === "data") : -1;
      if (!position && sel && sel.data.kind !== "output" && target >= 0) {
        const e = { source: sel.id, sourceHandle: "out0", target: id, targetHandle: `in${target}` };
        next = es.concat({ ...e, id: edgeId(e) });
      }
      return { nodes: cur.map((n) => (n.selected ? { ...n, selected: false } : n)).concat(node), edges: next };
    });
  }, [commit, doc.layout, rf]);

  const onDrop = useCallback((ev) => {
    ev.preventDefault();
    const type = ev.dataTransfer.getData(DRAG_TYPE);
    const entry = palette.find((e) => e.type === type);
    if (entry) addNode(entry, rf.screenToFlowPosition({ x: ev.clientX, y: ev.clientY }));
  }, [palette, addNode, rf]);

  const onPatch = useCallback((id, patch) => {
    commit(({ nodes: ns, edges: es }) => ({ nodes: ns.map((n) => (n.id === id ? { ...n, data: { ...n.data, ...patch } } : n)), edges: es }));
  }, [commit]);

  const selectedNodes = nodes.filter((n) => n.selected);
  const selectedNode = selectedNodes.length === 1 ? selectedNodes[0] : null;
  const selectedEdge = selectedNodes.length === 0 ? edges.find((e) => e.selected) || null : null;

  const deleteSelection = useCallback(() => {
    const { nodes: ns, edges: es } = current.current;
    rf.deleteElements({ nodes: ns.filter((n) => n.selected).map((n) => ({ id: n.id })), edges: es.filter((e) => e.selected).map((e) => ({ id: e.id })) });
  }, [rf]);

  const selectNode = useCallback((id) => {
    if (id === "__graph__") return;
    setNodes((ns) => ns.map((n) => ({ ...n, selected: n.id === id })));
    setEdges((es) => es.map((e) => (e.selected ? { ...e, selected: false } : e)));
    rf.fitView({ nodes: [{ id }], duration: 300, maxZoom: 1.2 });
  }, [setNodes, setEdges, rf]);

  const relayout = useCallback(() => {
    pushHistory();
    setNodes((ns) => autoLayout(ns, current.current.edges));
    edited(false);
    requestAnimationFrame(() => rf.fitView({ padding: 0.12, duration: 300, maxZoom: 1.1 }));
  }, [pushHistory, setNodes, edited, rf]);

  const discard = useCallback(() => {
    const flow = docToFlow(doc);
    setNodes(flow.nodes);
    setEdges(flow.edges);
    setDirty(false);
    setLive(EMPTY);
    setChecking(false);
    setEditCount(0);
    history.current = { undo: [], redo: [] };
    needsLayout.current = Boolean(doc.needs_layout);
  }, [doc, setNodes, setEdges]);

  // A value sent while Streamlit still runs the script for the previous one replaces it, so no validation
  // request may follow a save until the app has answered it (a new revision or new errors), or 5 s passed.
  const validateTimer = useRef(null);
  const saveTimer = useRef(null);
  const save = useCallback(() => {
    clearTimeout(validateTimer.current);
    const { nodes: ns, edges: es } = current.current;
    Streamlit.setComponentValue({ type: "save", seq: nonce(), revision: doc.revision, doc: flowToDoc(doc, ns, es) });
    setSaving(true);
    setEditedSinceSave(false);
    clearTimeout(saveTimer.current);
    saveTimer.current = setTimeout(() => setSaving(false), 5000);
  }, [doc]);

  // Live validation: the draft goes to Python a moment after the last edit.
  useEffect(() => {
    if (!liveOn || editCount === 0) return undefined;
    setChecking(true);
    if (saving) return undefined; // sent once the save is answered (this effect runs again then)
    validateTimer.current = setTimeout(() => {
      const seq = nonce();
      latestSeq.current = seq;
      const { nodes: ns, edges: es } = current.current;
      Streamlit.setComponentValue({ type: "validate", seq, revision: doc.revision, doc: flowToDoc(doc, ns, es) });
    }, 400);
    return () => clearTimeout(validateTimer.current);
  }, [editCount, liveOn, saving]); // eslint-disable-line react-hooks/exhaustive-deps

  useEffect(() => {
    const onKey = (e) => {
      if (["INPUT", "SELECT", "TEXTAREA"].includes(e.target?.tagName)) return;
      const mod = e.ctrlKey || e.metaKey;
      if (mod && e.key.toLowerCase() === "z") {
        e.preventDefault();
        if (e.shiftKey) travel("redo", "undo");
        else travel("undo", "redo");
      } else if (mod && e.key.toLowerCase() === "y") {
        e.preventDefault();
        travel("redo", "undo");
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [travel]);

  // ---- derived view ---------------------------------------------------------------------------------
  const errors = useMemo(() => ({ ...(editedSinceSave ? {} : pageErrors), ...live.errors }), [pageErrors, live, editedSinceSave]);
  const errorList = Object.entries(errors);
  const ctx = useMemo(() => ({ errors, live: live.nodes, categoryOf }), [errors, live, categoryOf]);
  const totals = useMemo(() => {
    let macs = 0, params = 0, count = 0;
    for (const n of nodes) {
      if (n.data.kind !== "op") continue;
      count += 1;
      const info = live.nodes[n.id];
      macs += info ? info.macs : n.data.macs || 0;
      params += info ? info.params : n.data.params || 0;
    }
    return { nodes: count, macs, params };
  }, [nodes, live]);
  const minimapColor = useCallback((n) => (errors[n.id] ? "#dc2626" : n.data.kind === "op" ? CATEGORY_COLORS[categoryOf(n.data.op)] || "#6b7280" : "#334155"), [errors, categoryOf]);

  let status;
  if (saving) status = <span className="ts-status-saving">Saving version…</span>;
  else if (!editedSinceSave && Object.keys(pageErrors).length) status = <span className="ts-status-bad">Not saved: fix the marked nodes</span>;
  else if (dirty) status = <span className="ts-status-dirty">● Unsaved changes</span>;
  else status = <span className="ts-status-ok">Saved</span>;
  const dark = theme?.base === "dark";

  return (
    <CanvasContext.Provider value={ctx}>
      <div className={`ts-root${dark ? " dark" : ""}`} style={{ height: `${height}px` }}>
        <div className="ts-toolbar">
          <div className="ts-title" title={doc.name}>{doc.name}</div>
          <button className="ts-btn" onClick={relayout} title="Lay the graph out top to bottom (dagre)">Auto layout</button>
          <button className="ts-btn" onClick={() => rf.fitView({ padding: 0.12, duration: 300, maxZoom: 1.1 })}>Fit</button>
          <button className="ts-btn" onClick={() => travel("undo", "redo")} disabled={!history.current.undo.length} title="Undo (Ctrl+Z)">Undo</button>
          <button className="ts-btn" onClick={() => travel("redo", "undo")} disabled={!history.current.redo.length} title="Redo (Ctrl+Shift+Z)">Redo</button>
          <button className="ts-btn" onClick={deleteSelection} disabled={!selectedNodes.length && !selectedEdge} title="Delete the selection (Delete key)">Delete</button>
          <div className="ts-spacer" />
          <div className="ts-status">
            <span>{totals.nodes} layers · {fmtCount(totals.macs)} MACs · {fmtCount(totals.params)} params</span>
            {checking ? <span className="ts-status-check">checking…</span>
              : errorList.length ? <span className="ts-status-bad">{errorList.length} error{errorList.length > 1 ? "s" : ""}</span>
                : liveOn && dirty ? <span className="ts-status-ok">valid</span> : null}
            {status}
          </div>
          <button className="ts-btn" onClick={discard} disabled={!dirty}>Discard</button>
          <button className="ts-btn ts-btn-primary" onClick={save} disabled={!dirty || saving}>Save version</button>
        </div>
        <div className="ts-main">
          <Palette palette={palette} onAdd={addNode} />
          <div className="ts-flow" onDragOver={(e) => { e.preventDefault(); e.dataTransfer.dropEffect = "move"; }} onDrop={onDrop}>
            <ReactFlow
              nodes={nodes} edges={edges} nodeTypes={nodeTypes}
              onNodesChange={onNodesChange} onEdgesChange={onEdgesChange} onConnect={onConnect}
              onBeforeDelete={onBeforeDelete} isValidConnection={isValidConnection}
              onNodeDragStart={pushHistory} onNodeDragStop={() => edited(false)}
              deleteKeyCode={["Delete", "Backspace"]} multiSelectionKeyCode={["Shift", "Meta", "Control"]}
              defaultEdgeOptions={{ markerEnd: { type: MarkerType.ArrowClosed, width: 16, height: 16 } }}
              colorMode={dark ? "dark" : "light"} minZoom={0.1} maxZoom={2}
            >
              <Background gap={18} size={1} />
              <Controls showInteractive={false} />
              <MiniMap pannable zoomable nodeColor={minimapColor} nodeStrokeWidth={2} style={{ width: 150, height: 110 }} />
            </ReactFlow>
          </div>
          <Inspector node={selectedNode} edge={selectedEdge} schemaOf={schemaOf} errors={errors} live={live.nodes}
            totals={totals} errorList={errorList} onPatch={onPatch} onDelete={deleteSelection} onSelect={selectNode} docName={doc.name} />
        </div>
      </div>
    </CanvasContext.Provider>
  );
}
