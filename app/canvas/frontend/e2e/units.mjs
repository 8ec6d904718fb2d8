// Unit checks of the canvas's pure functions (no browser): node e2e/units.mjs   (npm run units)
// Inserting on an edge, appending after a node, folding blocks by name prefix, and the graph search.
import assert from "node:assert/strict";
import { appendAfter, edgeId, placeNew, pushDown, searchNodes, spliceEdge } from "../src/model.js";
import { findBlocks, foldedView } from "../src/groups.js";

const E = (s, t, sh = "out0", th = "in0") => ({ source: s, sourceHandle: sh, target: t, targetHandle: th, id: edgeId({ source: s, sourceHandle: sh, target: t, targetHandle: th }) });
const pairs = (es) => es.map((e) => `${e.source}->${e.target}`).sort();

// A layer dropped on the edge a -> b: a -> n -> b, and nothing else changes.
let es = [E("in", "a"), E("a", "b"), E("b", "out")];
es = spliceEdge(es, es[1], "n", 0);
assert.deepEqual(pairs(es), ["a->n", "b->out", "in->a", "n->b"]);
// Into a second input slot of the target (e.g. an Add's in1): the target handle is kept.
es = spliceEdge([E("x", "add", "out0", "in1")], E("x", "add", "out0", "in1"), "n", 0);
assert.ok(es.some((e) => e.source === "n" && e.target === "add" && e.targetHandle === "in1"));

// Appending after a node takes over everything it fed: the chain grows, no side branch.
es = appendAfter([E("in", "out"), E("in", "other", "out0", "in1")], "in", "conv", 0);
assert.deepEqual(pairs(es), ["conv->other", "conv->out", "in->conv"]);

// Nodes at or below the new card move down.
const moved = pushDown([{ id: "a", position: { x: 0, y: 0 } }, { id: "b", position: { x: 0, y: 200 } }], 100, 50);
assert.deepEqual(moved.map((n) => n.position.y), [0, 250]);

// Folding: consecutive layers sharing a prefix form a block; a prefix split into several runs does not.
const op = (id) => ({ id, data: { kind: "op", op: "Conv" }, position: { x: 0, y: 0 } });
const names = ["conv1", "conv1_bn", "conv1_relu"];
for (let b = 1; b <= 8; b += 1) names.push(`block${b}_dw`, `block${b}_dw_bn`, `block${b}_pw`, `block${b}_pw_bn`);
names.push("pool", "fc", "softmax");
const nodes = names.map(op);
const blocks = findBlocks(nodes);
assert.deepEqual([...blocks.keys()], ["conv1", ...Array.from({ length: 8 }, (_, i) => `block${i + 1}`)]);
assert.deepEqual(blocks.get("block3").members, ["block3_dw", "block3_dw_bn", "block3_pw", "block3_pw_bn"]);
const tfl = Array.from({ length: 30 }, (_, i) => op(i % 2 ? `DEPTHWISE_CONV_2D_${i}` : `CONV_2D_${i}`));
assert.equal(findBlocks(tfl).size, 0);
assert.equal(findBlocks(nodes.slice(0, 10)).size, 0); // small graphs are never folded

// The folded view: members hidden, one card, edges in and out drawn from the card, inner edges hidden.
const chain = names.slice(1).map((n, i) => E(names[i], n));
const card = { id: "block:block3", type: "block", position: { x: 0, y: 0 }, data: { kind: "block", key: "block3", members: [] } };
const view = foldedView(nodes, chain, blocks, new Set(["block3"]), [card], null);
assert.equal(view.nodes.filter((n) => n.hidden).length, 4);
assert.equal(view.nodes.find((n) => n.id === "block:block3").data.members.length, 4);
const shown = view.edges.filter((e) => !e.hidden).map((e) => `${e.source}->${e.target}`);
assert.ok(shown.includes("block2_pw_bn->block:block3") && shown.includes("block:block3->block4_dw"));
assert.ok(!shown.some((e) => e.includes("block3_")));

// Graph search: by name or op, exact and prefix hits first.
const hits = searchNodes([op("block1_dw_bn"), op("dw"), op("block1_dw")], "block1_dw");
assert.deepEqual(hits.map((n) => n.id), ["block1_dw", "block1_dw_bn"]);
assert.equal(searchNodes(nodes, "conv").length, 8); // every Conv, capped at 8
// Clicking palette layers on a blank canvas (input -> output), nothing selected: each goes before the output.
const io = [{ id: "in", data: { kind: "input" }, position: { x: 0, y: 0 } }, { id: "out", data: { kind: "output" }, position: { x: 0, y: 120 } }];
const layer = (id) => ({ id, type: "layer", data: { kind: "op", op: "Relu", slots: [{ kind: "data" }] } });
let g = { nodes: io, edges: [E("in", "out")] };
for (const id of ["conv", "relu"]) {
  g = placeNew(g.nodes.map((n) => ({ ...n, selected: false })), g.edges, layer(id), {});
}
assert.deepEqual(pairs(g.edges), ["conv->relu", "in->conv", "relu->out"]);
assert.ok(g.nodes.find((n) => n.id === "out").position.y > g.nodes.find((n) => n.id === "relu").position.y);
// With "conv" selected, a click appends right after it; dropped on the edge conv -> relu, it goes in between.
const selConv = g.nodes.map((n) => ({ ...n, selected: n.id === "conv" }));
assert.deepEqual(pairs(placeNew(selConv, g.edges, layer("bn"), {}).edges), ["bn->relu", "conv->bn", "in->conv", "relu->out"]);
const dropped = placeNew(g.nodes, g.edges, layer("pool"), { position: { x: 5, y: 5 }, onEdge: g.edges.find((e) => e.target === "relu") });
assert.deepEqual(pairs(dropped.edges), ["conv->pool", "in->conv", "pool->relu", "relu->out"]);
// Dropped on empty canvas: where it was dropped, unwired.
const loose = placeNew(g.nodes, g.edges, layer("x"), { position: { x: 5, y: 5 } });
assert.deepEqual(loose.edges, g.edges);
assert.deepEqual(loose.nodes.find((n) => n.id === "x").position, { x: 5, y: 5 });
console.log("canvas units: ok");
