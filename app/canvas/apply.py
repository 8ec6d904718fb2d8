"""Applying an edited canvas document to the graph it was made from (used by app/canvas/graph_json.py).

`Build(doc, base)` assembles the edited graph: graph inputs from input nodes, op nodes with their slots wired
from the edges, graph outputs from output nodes; then it walks the nodes in execution order, fits each layer's
constants to its (possibly new) input shape (app/canvas/weights.py), checks attributes and infers shapes. Errors
are collected per document node, the first cause only: a node downstream of a broken one is skipped, not blamed.
"""
from __future__ import annotations

from app.canvas.doc_values import coerce, doc_attrs, doc_layer, handle_index, position_of, same_value
from app.canvas.layers import layer_params
from app.canvas.weights import fit_constants, fresh_name
from engine.errors import GraphError
from engine.ir import Graph, Node, Tensor
from engine.ops import get_op
from engine.validate import dead_ends, infer_node, node_context, topological_order
from engine.zoo.layers import same_pads

FORMAT = "tinystudio.canvas"
VERSION = 1
GRAPH_KEY = "__graph__"  # validate_canvas key for errors that belong to no node


class Build:
    """An edited graph assembled from a document, shapes inferred node by node, errors collected per node."""

    def __init__(self, doc: dict, base: Graph):
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("nodes"), list):
            raise GraphError("not a canvas document (format 'tinystudio.canvas' expected)")
        self.doc, self.base = doc, base
        self.g = base.copy()
        self.errors: dict[str, str] = {}
        self.failed: set[str] = set()  # tensors whose shape is unknown because an upstream node failed
        self.layers: dict[str, dict | None] = {}
        self.ops: dict[str, str] = {}
        self._assemble()
        if GRAPH_KEY not in self.errors:
            self._infer()
            if not self.errors:  # a dead end is often the echo of a broken node: the first cause comes first
                self._dead_ends()
        self._collect_garbage()

    def error(self, key: str, message: str) -> None:
        self.errors.setdefault(key, message)

    # -- structure ------------------------------------------------------------------------------------
    def _assemble(self) -> None:
        g, base = self.g, self.base
        docs = [n for n in self.doc["nodes"] if isinstance(n, dict) and isinstance(n.get("id"), str)]
        ids = [n["id"] for n in docs]
        if len(set(ids)) != len(ids) or len(docs) != len(self.doc["nodes"]):
            raise GraphError("canvas document: every node needs a unique string id")
        base_nodes = {n.name: n for n in base.nodes}
        ins = [n for n in docs if n.get("kind") == "input"]
        ops = [n for n in docs if n.get("kind", "op") == "op"]
        outs = [n for n in docs if n.get("kind") == "output"]
        self.kept = {n["id"] for n in ops if n["id"] in base_nodes and not n.get("new")}
        self.base_nodes = base_nodes
        for n in base.nodes:  # outputs of deleted (or replaced) nodes disappear
            if n.name not in self.kept:
                for t in n.outputs:
                    g.tensors.pop(t, None)
        self.base_refs = {t for n in base.nodes for t in (*n.inputs, *n.outputs) if t} | set(base.inputs) | set(base.outputs)

        # Graph inputs: their tensors (shape editable).
        produced: dict[str, list[str]] = {}
        self.input_ids: dict[str, str] = {}  # graph input tensor -> its document node
        g.inputs = []
        io_pos = {}
        base_inputs = set(base.inputs)
        for n in ins:
            t = n.get("tensor") or n["id"]
            produced[n["id"]] = [t]
            shape = coerce(n.get("shape"), "ints")
            old = g.tensors.get(t)
            if not isinstance(shape, list) or not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1
                                                            for d in shape):
                self.error(n["id"], f"shape {n.get('shape')!r} must be positive integers (batch first)")
                self.failed.add(t)
                shape = list(old.shape) if old is not None else [1]
            if old is not None and old.data is not None or (old is not None and t not in base_inputs):
                self.error(n["id"], f"tensor name '{t}' is already used in the graph")
                self.failed.add(t)
                continue
            if old is None or list(old.shape) != shape:
                dtype = old.dtype if old is not None else str(n.get("dtype") or "float32")
                g.tensors[t] = Tensor(t, tuple(shape), dtype, old.quant if old else None, None,
                                      dict(old.meta) if old else {})
            g.inputs.append(t)
            self.input_ids[t] = n["id"]
            p = position_of(n.get("position"))
            if p:
                io_pos[n["id"]] = [p["x"], p["y"]]

        # Output tensor names of every op node; new nodes get fresh names reserved right away.
        for n in ops:
            if n["id"] in self.kept:
                produced[n["id"]] = list(base_nodes[n["id"]].outputs)
            else:
                k = max(1, int(n.get("n_outputs") or len(n.get("outputs") or []) or 1))
                names = []
                for j in range(k):
                    name = fresh_name(g, f"{n['id']}_out" if k == 1 else f"{n['id']}_out{j}")
                    g.tensors[name] = Tensor(name, ())
                    names.append(name)
                produced[n["id"]] = names

        # Edges: one per target handle.
        into: dict[tuple[str, int], str] = {}
        for e in self.doc.get("edges") or []:
            src, dst = e.get("source"), e.get("target")
            j, i = handle_index(e.get("sourceHandle") or "out0", "out"), handle_index(e.get("targetHandle") or "in0", "in")
            if dst not in ids:
                continue
            if src not in produced or j is None or j >= len(produced[src]):
                self.error(dst, f"connected from an unknown output {src}:{e.get('sourceHandle')}")
                continue
            if i is None:
                self.error(dst, f"connection to an unknown input {e.get('targetHandle')!r}")
                continue
            if (dst, i) in into:
                self.error(dst, f"input {i} has two connections; remove one")
                continue
            into[(dst, i)] = produced[src][j]

        # Op nodes.
        nodes = []
        for n in ops:
            nid, op = n["id"], str(n.get("op") or "")
            bn = base_nodes.get(nid) if nid in self.kept else None
            inputs = []
            for i, s in enumerate(n.get("slots") or []):
                kind = s.get("kind") if isinstance(s, dict) else "absent"
                role = s.get("role", f"in{i}") if isinstance(s, dict) else f"in{i}"
                if kind == "data":
                    t = into.pop((nid, i), None)
                    if t is None:
                        self.error(nid, f"input {i} ({role}) is not connected")
                        t = ""
                    inputs.append(t)
                elif kind == "param":
                    t = s.get("tensor") or ""
                    if t and (t not in g.tensors or g.tensors[t].data is None):
                        self.error(nid, f"parameter '{t}' ({role}) is not a constant of this graph")
                    inputs.append(t)
                else:
                    inputs.append("")
            for (dst, i) in [k for k in into if k[0] == nid]:
                self.error(nid, f"input {i} cannot take a connection (it is a parameter or does not exist)")
                into.pop((dst, i))
            meta = dict(bn.meta) if bn is not None else {}
            p = position_of(n.get("position"))
            if p:
                meta["pos"] = [p["x"], p["y"]]
            attrs = doc_attrs(n.get("attrs") or {}, bn.attrs if bn is not None and bn.op == op else {}, op)
            if bn is None and "layout" in (get_op(op).attrs if get_op(op) else {}) and "layout" not in attrs \
                    and self.doc.get("layout") == "NHWC":
                attrs["layout"] = "NHWC"  # a layer added to a TFLite (channels-last) graph
            nodes.append(Node(op, nid, inputs, produced[nid], attrs, meta))
            self.layers[nid] = doc_layer(n.get("layer"), op)
            self.ops[nid] = op
            if get_op(op) is None:
                self.error(nid, f"unknown op '{op}'")

        # Graph outputs.
        g.outputs = []
        self.output_ids: list[tuple[str, str]] = []
        for n in outs:
            t = into.get((n["id"], 0))
            if t is None:
                self.error(n["id"], "graph output is not connected")
                continue
            g.outputs.append(t)
            self.output_ids.append((n["id"], t))
            p = position_of(n.get("position"))
            if p:
                io_pos[n["id"]] = [p["x"], p["y"]]
        if not outs:
            self.error(GRAPH_KEY, "the graph has no output node")
        if io_pos:
            g.meta["canvas_pos"] = io_pos
        else:
            g.meta.pop("canvas_pos", None)

        g.nodes = nodes
        if not self._in_order(nodes):
            try:
                g.nodes = topological_order(g)
            except GraphError as e:
                self.error(GRAPH_KEY, str(e))

    def _in_order(self, nodes: list[Node]) -> bool:
        seen = set(self.g.inputs) | {t.name for t in self.g.tensors.values() if t.data is not None}
        produced = {t for n in nodes for t in n.outputs}
        for n in nodes:
            if any(t and t in produced and t not in seen for t in n.inputs):
                return False
            seen.update(n.outputs)
        return True

    # -- shapes ---------------------------------------------------------------------------------------
    def _infer(self) -> None:
        g = self.g
        uses: dict[str, int] = {}
        for n in g.nodes:
            for t in set(n.inputs):
                if t and g.tensors.get(t) is not None and g.tensors[t].data is not None:
                    uses[t] = uses.get(t, 0) + 1
        shared = {t for t, k in uses.items() if k > 1}
        for node in g.nodes:
            if node.name in self.errors or any(t in self.failed for t in node.inputs if t):
                self.failed.update(node.outputs)
                continue
            try:
                self._repad(node)
                fit_constants(g, node, self.layers.get(node.name), shared)
                infer_node(g, node, allow_empty=False)
            except GraphError as e:
                self.error(node.name, message(e))
                self.failed.update(node.outputs)
            except (ValueError, TypeError, IndexError, KeyError, ZeroDivisionError, OverflowError) as e:
                # An attribute value the op's own checks did not anticipate: report it, keep the canvas alive.
                self.error(node.name, f"invalid attributes or inputs ({type(e).__name__}: {e})")
                self.failed.update(node.outputs)

    def _dead_ends(self) -> None:
        """A branch that leads nowhere is an error on its last node, so "valid" means every layer counts."""
        outputs: dict[str, list[str]] = {}
        for oid, t in self.output_ids:
            outputs.setdefault(t, []).append(oid)
        for kind, name, text in dead_ends(self.g):
            if kind == "node":
                self.error(name, text)
            elif kind == "input":
                self.error(self.input_ids.get(name, GRAPH_KEY), text)
            else:
                for oid in outputs.get(name, [GRAPH_KEY]):
                    self.error(oid, text)

    def _repad(self, node: Node) -> None:
        """Explicit pads written for one geometry ('same' or 'valid' as TF and PyTorch mean them) are
        re-derived when the kernel, strides or input size change, unless the user edited the pads."""
        bn = self.base_nodes.get(node.name) if node.name in self.kept else None
        if bn is None or node.op not in ("Conv", "MaxPool", "AveragePool") or bn.op != node.op:
            return
        pads = node.attrs.get("pads")
        if pads is None or node.attrs.get("auto_pad", "NOTSET") != "NOTSET" or not same_value(pads, bn.attrs.get("pads")):
            return
        if any(d != 1 for d in (node.attrs.get("dilations") or [])):
            return
        layout = node.attrs.get("layout", "NCHW")
        old_x, new_x = self.base.tensors.get(bn.inputs[0]), self.g.tensors.get(node.inputs[0])
        if old_x is None or new_x is None or len(old_x.shape) != len(new_x.shape) or len(old_x.shape) < 3:
            return
        r = len(new_x.shape) - 2
        old_k = self._kernel(bn, self.base, None)
        new_k = self._kernel(node, self.g, self.layers.get(node.name))
        old_s = tuple(bn.attrs.get("strides") or [1] * r)
        new_s = tuple(node.attrs.get("strides") or [1] * r)
        old_sp, new_sp = split_layout_spatial(old_x.shape, layout), split_layout_spatial(new_x.shape, layout)
        if None in (old_k, new_k) or (old_k, old_s, old_sp) == (new_k, new_s, new_sp):
            return
        if len(pads) != 2 * r or len(new_k) != r or len(new_s) != r or min(new_s) < 1:
            return
        if all(p == 0 for p in pads):
            return  # 'valid' stays valid
        if list(pads) == same_pads(old_sp, old_k, old_s):
            node.attrs["pads"] = same_pads(new_sp, new_k, new_s)
        elif list(pads) == [k // 2 for k in old_k] * 2:
            node.attrs["pads"] = [k // 2 for k in new_k] * 2

    @staticmethod
    def _kernel(node: Node, g: Graph, layer: dict | None) -> tuple[int, ...] | None:
        if node.op == "Conv":
            if layer is not None and isinstance(layer.get("kernel"), list):
                return tuple(layer["kernel"])
            lp = layer_params(g, node)
            return tuple(lp["kernel"]) if lp else None
        k = node.attrs.get("kernel_shape")
        return tuple(k) if isinstance(k, list) else None

    def _collect_garbage(self) -> None:
        """Drop tensors the edit left unused (deleted layers' outputs and weights, replaced weights);
        tensors the base graph itself never referenced are not ours to drop."""
        g = self.g
        used = {t for n in g.nodes for t in (*n.inputs, *n.outputs) if t} | set(g.inputs) | set(g.outputs)
        for name in list(g.tensors):
            if name not in used and (name in self.base_refs or name not in self.base.tensors):
                del g.tensors[name]

    # -- live feedback ----------------------------------------------------------------------------------
    def node_info(self) -> dict[str, dict]:
        info = {}
        for node in self.g.nodes:
            if node.name in self.errors or any(t in self.failed for t in node.outputs):
                continue
            try:
                ctx = node_context(self.g, node)
                cost = ctx.op.cost(ctx)
            except (GraphError, ValueError, TypeError, IndexError, KeyError, ZeroDivisionError):
                continue
            slots = [{"tensor": t, "shape": list(self.g.tensors[t].shape), "dtype": self.g.tensors[t].dtype}
                     if t and self.g.tensors.get(t) is not None else None for t in node.inputs]
            info[node.name] = {"outputs": [{"tensor": t, "shape": list(self.g.tensors[t].shape),
                                            "dtype": self.g.tensors[t].dtype} for t in node.outputs],
                               "macs": int(cost.macs), "params": int(cost.params), "slots": slots}
        for oid, t in getattr(self, "output_ids", []):
            if t not in self.failed and self.g.tensors.get(t) is not None:
                info[oid] = {"outputs": [{"tensor": t, "shape": list(self.g.tensors[t].shape),
                                          "dtype": self.g.tensors[t].dtype}], "macs": 0, "params": 0, "slots": []}
        return info


def split_layout_spatial(shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
    return tuple(shape[2:]) if layout == "NCHW" else tuple(shape[1:-1])


def message(e: GraphError) -> str:
    """The message without the "node 'x' (Op): " prefix (the badge sits on the node already)."""
    text = str(e)
    if e.node is not None:
        prefix = f"node '{e.node}'" + (f" ({e.op})" if e.op else "") + ": "
        if text.startswith(prefix):
            return text[len(prefix):]
    return text
