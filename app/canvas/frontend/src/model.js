// The canvas document (app/canvas/graph_json.py) <-> React Flow nodes and edges, plus formatting and layout.
import { Graph, layout } from "@dagrejs/dagre";

export const NODE_WIDTH = 212;

export const CATEGORY_COLORS = {
  Graph: "#475569",
  Convolution: "#2563eb",
  Dense: "#7c3aed",
  Normalization: "#0d9488",
  Activation: "#ea580c",
  Pooling: "#16a34a",
  Shape: "#64748b",
  Merge: "#db2777",
  Regularization: "#78716c",
  Quantization: "#ca8a04",
  "More ops": "#6b7280",
};

export function categoryIndex(palette) {
  const byOp = {};
  for (const e of palette) if (e.kind === "op" && !byOp[e.op]) byOp[e.op] = e.category;
  return (op) => (op === "QuantizeLinear" || op === "DequantizeLinear" ? "Quantization" : byOp[op] || "More ops");
}

export function fmtShape(shape) {
  return Array.isArray(shape) ? shape.join("×") : "?";
}

export function fmtCount(n) {
  if (n == null) return "–";
  const a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(2) + "G";
  if (a >= 1e6) return (n / 1e6).toFixed(2) + "M";
  if (a >= 1e3) return (n / 1e3).toFixed(1) + "k";
  return String(n);
}

export function edgeId(e) {
  return `${e.source}:${e.sourceHandle}->${e.target}:${e.targetHandle}`;
}

const NODE_TYPE = { op: "layer", input: "graphInput", output: "graphOutput" };

export function docToFlow(doc) {
  const nodes = doc.nodes.map((n) => ({
    id: n.id,
    type: NODE_TYPE[n.kind] || "layer",
    position: n.position || { x: 0, y: 0 },
    data: { ...n },
  }));
  const edges = doc.edges.map((e) => ({ ...e, id: edgeId(e) }));
  return { nodes, edges };
}

// The document from_canvas reads: only what the user can change, plus the ids it needs to map back.
export function flowToDoc(doc, nodes, edges) {
  const out = nodes.map((n) => {
    const d = n.data;
    const base = { id: n.id, kind: d.kind, position: { x: Math.round(n.position.x), y: Math.round(n.position.y) } };
    if (d.kind === "input") return { ...base, tensor: d.tensor || n.id, shape: d.shape, dtype: d.dtype || "float32" };
    if (d.kind === "output") return { ...base, tensor: d.tensor || null };
    return {
      ...base,
      op: d.op,
      attrs: d.attrs || {},
      layer: d.layer || null,
      slots: (d.slots || []).map((s) => ({ role: s.role, kind: s.kind, tensor: s.kind === "param" ? s.tensor || null : null })),
      n_outputs: d.n_outputs || (d.outputs || []).length || 1,
      new: Boolean(d.new),
    };
  });
  return {
    format: doc.format,
    version: doc.version,
    name: doc.name,
    layout: doc.layout,
    revision: doc.revision,
    nodes: out,
    edges: edges.map((e) => ({ id: e.id, source: e.source, sourceHandle: e.sourceHandle || "out0", target: e.target, targetHandle: e.targetHandle || "in0" })),
  };
}

// Top-to-bottom layered layout (dagre) using the sizes React Flow measured.
export function autoLayout(nodes, edges) {
  const g = new Graph();
  g.setGraph({ rankdir: "TB", nodesep: 36, ranksep: 48, marginx: 20, marginy: 20 });
  g.setDefaultEdgeLabel(() => ({}));
  const size = (n) => ({ width: n.measured?.width ?? NODE_WIDTH, height: n.measured?.height ?? 92 });
  nodes.forEach((n) => g.setNode(n.id, size(n)));
  edges.forEach((e) => g.setEdge(e.source, e.target));
  layout(g);
  return nodes.map((n) => {
    const p = g.node(n.id);
    const { width, height } = size(n);
    return { ...n, position: { x: Math.round(p.x - width / 2), y: Math.round(p.y - height / 2) } };
  });
}

// Would an edge source -> target close a cycle? (Is source reachable from target?)
export function createsCycle(edges, source, target) {
  const out = new Map();
  edges.forEach((e) => {
    if (!out.has(e.source)) out.set(e.source, []);
    out.get(e.source).push(e.target);
  });
  const stack = [target];
  const seen = new Set();
  while (stack.length) {
    const v = stack.pop();
    if (v === source) return true;
    if (seen.has(v)) continue;
    seen.add(v);
    (out.get(v) || []).forEach((w) => stack.push(w));
  }
  return false;
}

export function uniqueId(prefix, taken) {
  const base = prefix.toLowerCase().replace(/[^a-z0-9_]+/g, "_");
  let i = 1;
  while (taken.has(`${base}_${i}`)) i += 1;
  return `${base}_${i}`;
}

// Typed parsing of a form field; returns { ok, value } (value null = unset, the op's default applies).
export function parseField(kind, text) {
  const t = String(text ?? "").trim();
  if (t === "") return { ok: true, value: null };
  if (kind === "int") {
    return /^-?\d+$/.test(t) ? { ok: true, value: parseInt(t, 10) } : { ok: false, message: "a whole number" };
  }
  if (kind === "float") {
    const v = Number(t);
    return Number.isFinite(v) ? { ok: true, value: v } : { ok: false, message: "a number" };
  }
  if (kind === "ints" || kind === "floats") {
    const parts = t.split(/[\s,x×]+/).filter(Boolean);
    const vals = parts.map(Number);
    if (!vals.every(Number.isFinite)) return { ok: false, message: "numbers separated by commas" };
    if (kind === "ints" && !vals.every(Number.isInteger)) return { ok: false, message: "whole numbers separated by commas" };
    return { ok: true, value: vals };
  }
  return { ok: true, value: t };
}

export function fieldText(value) {
  if (value == null) return "";
  if (Array.isArray(value)) return value.join(", ");
  return String(value);
}

// One-line summary of the settings that matter most, for the node card.
export function summary(d) {
  const parts = [];
  const L = d.layer || {};
  const A = d.attrs || {};
  if (L.depthwise) parts.push(`depthwise×${L.multiplier || 1}`);
  else if (L.out_channels != null) parts.push(`${L.out_channels} ch`);
  if (L.out_features != null) parts.push(`${L.out_features} out`);
  const k = L.kernel || A.kernel_shape;
  if (k) parts.push(`k ${k.join("×")}`);
  if (A.strides && A.strides.some((s) => s !== 1)) parts.push(`s ${A.strides.join("×")}`);
  if (A.auto_pad && A.auto_pad !== "NOTSET") parts.push(A.auto_pad === "VALID" ? "valid" : "same");
  if (A.group > 1 && !L.depthwise) parts.push(`g ${A.group}`);
  if (A.activation && A.activation !== "none") parts.push(`+${A.activation}`);
  if (A.axis != null && !k) parts.push(`axis ${A.axis}`);
  if (A.shape) parts.push(`[${A.shape.join(", ")}]`);
  if (d.op === "Clip" && A.min != null) parts.push(`[${A.min}, ${A.max}]`);
  return parts.join(" · ");
}

// A layer dropped on the edge src -> dst: src -> node -> dst, into the node's data input `slot`, out of its out0.
export function spliceEdge(edges, edge, nodeId, slot) {
  const a = { source: edge.source, sourceHandle: edge.sourceHandle || "out0", target: nodeId, targetHandle: `in${slot}` };
  const b = { source: nodeId, sourceHandle: "out0", target: edge.target, targetHandle: edge.targetHandle || "in0" };
  return edges.filter((e) => e.id !== edge.id).concat({ ...a, id: edgeId(a) }, { ...b, id: edgeId(b) });
}

// A layer appended after `srcId`: it takes over everything out0 of srcId fed, so the chain grows, no side branch.
export function appendAfter(edges, srcId, nodeId, slot) {
  const moved = edges.filter((e) => e.source === srcId && (e.sourceHandle || "out0") === "out0");
  const a = { source: srcId, sourceHandle: "out0", target: nodeId, targetHandle: `in${slot}` };
  return edges.filter((e) => !moved.includes(e)).concat({ ...a, id: edgeId(a) }, moved.map((e) => {
    const b = { source: nodeId, sourceHandle: "out0", target: e.target, targetHandle: e.targetHandle || "in0" };
    return { ...b, id: edgeId(b) };
  }));
}

// Room for a new card at height y: every node whose top is at or below y moves down by dy.
export function pushDown(nodes, y, dy) {
  return nodes.map((n) => (n.position.y >= y ? { ...n, position: { ...n.position, y: n.position.y + dy } } : n));
}

// Graph search: op nodes whose name (or op) contains the query, names that start with it first.
export function searchNodes(nodes, query, limit = 8) {
  const q = query.trim().toLowerCase();
  if (!q) return [];
  const hits = nodes.filter((n) => n.id.toLowerCase().includes(q) || (n.data.op || n.data.kind || "").toLowerCase().includes(q));
  const rank = (n) => (n.id.toLowerCase() === q ? 0 : n.id.toLowerCase().startsWith(q) ? 1 : n.id.toLowerCase().includes(q) ? 2 : 3);
  return hits.sort((a, b) => rank(a) - rank(b)).slice(0, limit);
}

// Where a new palette node goes and how it is wired: (1) dropped on an edge, into that edge; (2) dropped
// elsewhere, where it was dropped, unwired; clicked, (3) after the selected node (appendAfter), or (4) with
// nothing selected, into the single edge that feeds the graph output. In (1), (3) and (4) it goes below the node
// it follows and everything below moves down. `center()` gives a free spot when nothing else does.
export const NEW_HEIGHT = 96;
export function placeNew(nodes, edges, node, { position = null, onEdge = null, center = () => ({ x: 0, y: 0 }) }) {
  const { data } = node;
  const slot = data.kind === "output" ? 0 : data.kind === "op" ? data.slots.findIndex((s) => s.kind === "data") : -1;
  const byId = new Map(nodes.map((n) => [n.id, n]));
  let edge = data.kind === "op" && slot >= 0 ? onEdge : null;
  let sel = nodes.find((n) => n.selected && !n.hidden) || null;
  if (sel && (sel.data.kind === "output" || slot < 0)) sel = null;
  if (!position && !edge && !sel && data.kind === "op" && slot >= 0) {
    const outs = nodes.filter((n) => n.data.kind === "output");
    const into = outs.length === 1 ? edges.filter((e) => e.target === outs[0].id) : [];
    if (into.length === 1) edge = into[0];
  }
  const anchor = edge ? byId.get(edge.source) : !position ? sel : null;
  let pos = position;
  if (anchor) pos = { x: anchor.position.x, y: anchor.position.y + (anchor.measured?.height ?? 90) + 48 };
  if (!pos) pos = center();
  let next = edges;
  if (edge) next = spliceEdge(edges, edge, node.id, slot);
  else if (sel && !position) {
    const e = { source: sel.id, sourceHandle: "out0", target: node.id, targetHandle: "in0" };
    next = data.kind === "op" ? appendAfter(edges, sel.id, node.id, slot) : edges.concat({ ...e, id: edgeId(e) });
  }
  let placed = nodes.map((n) => (n.selected ? { ...n, selected: false } : n));
  if (anchor && data.kind === "op") placed = pushDown(placed, anchor.position.y + 1, NEW_HEIGHT + 48); // all below the anchor
  return { nodes: placed.concat({ ...node, position: pos, selected: true }), edges: next, position: pos, anchored: Boolean(anchor) };
}

// What the page keeps of unsaved edits to restore them later: the nodes and edges as drawn.
export const drawn = (ns, es) => ({
  nodes: ns.map(({ id, type, position, data }) => ({ id, type, position, data })),
  edges: es.map(({ id, source, sourceHandle, target, targetHandle }) => ({ id, source, sourceHandle, target, targetHandle })),
});

// The first view of a graph (nodes `ns`, their bounds `b`, the pane's box): centred when it fits, else at the
// top, centred on its first input. Zoom 1 at most and at least: the smallest text on a card is 11 px; the
// minimap and "Find a node" lead to the rest.
export function firstViewport(ns, b, box, pad = 24) {
  const first = ns.find((n) => n.data.kind === "input") || ns[0];
  const fitsW = b.width + 2 * pad <= box.width;
  const x = fitsW ? (box.width - b.width) / 2 - b.x : box.width / 2 - (first.position.x + (first.measured?.width ?? 212) / 2);
  const y = b.height + 2 * pad <= box.height ? (box.height - b.height) / 2 - b.y : pad - b.y;
  return { x, y, zoom: 1 };
}
