// Blocks of a large graph folded into one card each, so a 150-layer network reads at the default zoom.
// A block is a run of consecutive layers (in execution order) whose names share a prefix: "block3_expand",
// "block3_dw_bn", ... form "block3". Consecutive runs only, so folding never creates a cycle in the view
// (every path between two members stays inside the block).
import { useCallback, useMemo, useRef, useState } from "react";
import { autoLayout } from "./model.js";

export const FOLD_MIN_LAYERS = 25; // smaller graphs read fine unfolded
export const FOLD_BY_DEFAULT = 40; // from this many layers, blocks start folded
const SEP = /[/_.:]+/;
export const BLOCK_PREFIX = "block:";

function runsAt(ops, depth) {
  const key = (id) => id.split(SEP).filter(Boolean).slice(0, depth).join("_");
  const runs = [];
  for (const n of ops) {
    const k = key(n.id);
    const last = runs[runs.length - 1];
    if (last && last.key === k) last.members.push(n.id);
    else runs.push({ key: k, members: [n.id] });
  }
  const seen = new Map();
  runs.forEach((r) => seen.set(r.key, (seen.get(r.key) || 0) + 1));
  // A prefix split into several runs (e.g. TFLite's CONV_2D_0 ... CONV_2D_26) is no block.
  return runs.filter((r) => r.members.length >= 2 && seen.get(r.key) === 1);
}

// Map block key -> { key, members: [node ids] } for the graph's op nodes (document order = execution order).
export function findBlocks(nodes) {
  const ops = nodes.filter((n) => n.data.kind === "op");
  if (ops.length < FOLD_MIN_LAYERS) return new Map();
  let best = [];
  let bestCards = ops.length;
  for (let depth = 1; depth <= 3; depth += 1) {
    const runs = runsAt(ops, depth);
    const largest = Math.max(0, ...runs.map((r) => r.members.length));
    if (largest > Math.max(16, ops.length * 0.34)) continue; // one block holding most of the graph says nothing
    const cards = ops.length - runs.reduce((s, r) => s + r.members.length - 1, 0);
    if (cards < bestCards) {
      best = runs;
      bestCards = cards;
    }
  }
  return new Map(best.map((r) => [r.key, r]));
}

// The nodes and edges React Flow draws: members of folded blocks hidden, one block card per folded block,
// edges into and out of a block drawn from and to its card (never selectable or deletable).
export function foldedView(nodes, edges, blocks, folded, blockNodes, dropEdge) {
  const owner = new Map();
  for (const key of folded) for (const id of blocks.get(key)?.members || []) owner.set(id, BLOCK_PREFIX + key);
  // Cards of blocks that still exist (an edit can rename or split a block), with its current members.
  const cards = blockNodes.filter((b) => folded.has(b.data.key) && blocks.has(b.data.key)).map((b) => {
    const members = blocks.get(b.data.key).members;
    return b.data.members === members ? b : { ...b, data: { ...b.data, members } };
  });
  const viewNodes = owner.size ? nodes.map((n) => (owner.has(n.id) ? { ...n, hidden: true } : n)).concat(cards) : nodes;
  const viewEdges = [];
  const extra = new Map();
  for (const e of edges) {
    const s = owner.get(e.source);
    const t = owner.get(e.target);
    if (!s && !t) {
      viewEdges.push(e.id === dropEdge ? { ...e, className: "ts-drop-target" } : e);
      continue;
    }
    viewEdges.push({ ...e, hidden: true });
    if (s && s === t) continue;
    const f = {
      source: s || e.source, sourceHandle: s ? "out0" : e.sourceHandle,
      target: t || e.target, targetHandle: t ? "in0" : e.targetHandle,
    };
    const id = `fold:${f.source}:${f.sourceHandle}->${f.target}:${f.targetHandle}`;
    if (!extra.has(id)) extra.set(id, { ...f, id, selectable: false, deletable: false, className: "ts-fold-edge" });
  }
  return { nodes: viewNodes, edges: viewEdges.concat([...extra.values()]) };
}

export function blockCard(key, block, position, selected = false) {
  return { id: BLOCK_PREFIX + key, type: "block", position, deletable: false, connectable: false, selected,
    data: { kind: "block", key, members: block.members } };
}

// Lay the visible view out with dagre: positions for the visible real nodes and for the block cards.
export function layoutView(view) {
  const shown = view.nodes.filter((n) => !n.hidden);
  const laid = autoLayout(shown, view.edges.filter((e) => !e.hidden));
  return new Map(laid.map((n) => [n.id, n.position]));
}

export const isBlockId = (id) => typeof id === "string" && id.startsWith(BLOCK_PREFIX);

// The folding state of the canvas: which blocks are folded, their cards, the view React Flow draws, and
// relayoutView(fold) / toggleBlock(key, open?) that change it (a new layout of the view, no edit).
export function useFolding({ nodes, edges, setNodes, current, dropEdge }) {
  const [folded, setFolded] = useState(() => new Set());
  const [blockNodes, setBlockNodes] = useState([]);
  const nodeIds = nodes.map((n) => n.id).join("\n");
  const blocks = useMemo(() => findBlocks(current.current.nodes), [nodeIds]); // eslint-disable-line react-hooks/exhaustive-deps
  const view = useMemo(() => foldedView(nodes, edges, blocks, folded, blockNodes, dropEdge),
    [nodes, edges, blocks, folded, blockNodes, dropEdge]);
  const currentView = useRef(view);
  currentView.current = view;

  const relayoutView = useCallback((fold) => {
    const { nodes: ns, edges: es } = current.current;
    const bl = findBlocks(ns);
    const keep = new Map(currentView.current.nodes.filter((n) => isBlockId(n.id)).map((n) => [n.id, n]));
    const cards = [...fold].filter((k) => bl.has(k)).map((k) => {
      const old = keep.get(BLOCK_PREFIX + k);
      return old ? { ...old, hidden: false } : blockCard(k, bl.get(k), { x: 0, y: 0 });
    });
    const pos = layoutView(foldedView(ns, es, bl, fold, cards, null));
    setNodes((cur) => cur.map((n) => (pos.has(n.id) ? { ...n, position: pos.get(n.id) } : n)));
    setBlockNodes(cards.map((c) => ({ ...c, position: pos.get(c.id) || c.position })));
  }, [setNodes, current]);

  const toggleBlock = useCallback((key, open) => {
    const next = new Set(folded);
    if (open ?? next.has(key)) next.delete(key);
    else next.add(key);
    setFolded(next);
    relayoutView(next);
  }, [folded, relayoutView]);

  return { folded, setFolded, blockNodes, setBlockNodes, blocks, view, currentView, relayoutView, toggleBlock };
}
