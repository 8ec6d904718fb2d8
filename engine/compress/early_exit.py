"""early-exit: an intermediate classifier after a chosen block, taken when it is confident enough.

The exit head is GlobalAveragePool -> Flatten -> fully connected layer (-> Softmax when the main output is
a Softmax), reading the activation after the chosen node (`after`: a node or tensor name; "auto" takes
the single-tensor cut of the graph closest to half of its MACs). The backbone is frozen: the features at
the exit are computed once for every sample and the head is trained on them alone (engine.train on a
graph of the head, on features standardized per channel, a scaling then folded into the FC weights),
so the main classifier's function is unchanged.

At inference the device runs up to the exit, and stops there when the head's top softmax probability is
at least `threshold`. On the validation set the report gives the fraction of samples that exit early, the
accuracy of that policy, and the expected MACs per inference:
    exit fraction x MACs to the exit + (1 - exit fraction) x MACs of the whole graph (head included).
The graph gets the exit as a second output, and graph.meta["early_exit"] = {threshold, output, exit_point,
macs_to_exit, macs_full, ...} tells a runtime where to branch (the generated C computes both outputs).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from engine.compress.base import Action, ActionContext, CompressError, Param, is_quantized_graph
from engine.compress.measure import predict
from engine.compress.quantize import train_json
from engine.builder import GraphBuilder
from engine.ir import Graph, Node, Tensor
from engine.passes.base import fresh_name
from engine.summary import layer_records
from engine.validate import infer_shapes, producers, topological_order


def ancestors(g: Graph, tensor: str) -> set[str]:
    """Names of the nodes `tensor` depends on (itself computed by the last of them)."""
    prod = producers(g)
    seen: set[str] = set()
    stack = [tensor]
    while stack:
        t = stack.pop()
        n = prod.get(t)
        if n is None or n.name in seen:
            continue
        seen.add(n.name)
        stack.extend(i for i in n.inputs if i)
    return seen


def cut_points(g: Graph) -> list[tuple[str, float]]:
    """(tensor, fraction of MACs before it) for each tensor that is the only live activation at its step:
    every path from the input to the outputs goes through it."""
    order = topological_order(g)
    macs = {r.name: r.macs for r in layer_records(g)}
    total = max(sum(macs.values()), 1)
    last_use: dict[str, int] = {}
    for i, n in enumerate(order):
        for t in n.inputs:
            if t and g.tensors[t].data is None:
                last_use[t] = i
    live: dict[str, int] = {}
    done = 0
    out = []
    for i, n in enumerate(order):
        done += macs.get(n.name, 0)
        live = {t: j for t, j in live.items() if j > i}
        for o in n.outputs:
            if o in last_use and o not in g.outputs:
                live[o] = last_use[o]
        if len(live) == 1 and i < len(order) - 1:
            (t,) = live
            if t in n.outputs and len(g.tensors[t].shape) >= 2:
                out.append((t, done / total))
    return out


def choose_exit(g: Graph, after: str) -> str:
    if after != "auto":
        if after in g.tensors and g.tensors[after].data is None and after not in g.inputs:
            return after
        try:
            return g.node(after).outputs[0]
        except KeyError:
            cuts = ", ".join(t for t, _ in cut_points(g)) or "none"
            raise CompressError(f"early-exit: no node or tensor '{after}'; single-path points: {cuts}") from None
    cuts = [(t, f) for t, f in cut_points(g) if 0.05 <= f <= 0.8]
    if not cuts:
        raise CompressError(f"early-exit: graph '{g.name}' has no point between 5 % and 80 % of its MACs where one "
                            "tensor carries everything; give --param after=NODE")
    return min(cuts, key=lambda c: abs(c[1] - 0.5))[0]


def head_graph(shape: tuple[int, ...], classes: int, layout: str, softmax: bool, seed: int) -> Graph:
    """GAP -> Flatten -> FC (-> Softmax) on an input of `shape` (the exit tensor's)."""
    b = GraphBuilder("early_exit_head")
    x = b.input("features", shape)
    if len(shape) > 2:
        x = b.node("GlobalAveragePool", [x], name="exit_gap", layout=layout)
        x = b.node("Flatten", [x], name="exit_flatten", axis=1)
        c = shape[1] if layout == "NCHW" else shape[-1]
    else:
        c = shape[1]
    rng = np.random.default_rng(seed)
    w = b.const("exit_fc_W", rng.normal(0.0, np.sqrt(1.0 / c), (classes, c)).astype(np.float32))
    bias = b.const("exit_fc_B", np.zeros(classes, np.float32))
    y = b.node("Gemm", [x, w, bias], name="exit_fc", transB=1)
    if softmax:
        y = b.node("Softmax", [y], name="exit_softmax", axis=-1)
    b.output(y)
    return b.build()


def _probs(v: np.ndarray, softmax: bool) -> np.ndarray:
    v = v.reshape(len(v), -1).astype(np.float64)
    if softmax:
        return v
    e = np.exp(v - v.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def attach(g: Graph, head: Graph, exit_tensor: str) -> str:
    """Copy the head's nodes and constants into g (fresh names) reading `exit_tensor`; returns the new output."""
    rename = {head.inputs[0]: exit_tensor}
    for t in head.tensors.values():
        if t.name not in rename:
            rename[t.name] = fresh_name(g, t.name)
            g.tensors[rename[t.name]] = Tensor(rename[t.name], t.shape, t.dtype, t.quant,
                                               None if t.data is None else t.data.copy(), dict(t.meta))
    for n in head.nodes:
        g.nodes.append(Node(n.op, fresh_name(g, n.name), [rename.get(i, i) for i in n.inputs],
                            [rename[o] for o in n.outputs], dict(n.attrs), {"early_exit": True}))
    return rename[head.outputs[0]]


def run_early_exit(graph: Graph, params: dict, ctx: ActionContext) -> tuple[Graph, dict]:
    from engine.train import train
    data = ctx.data
    if is_quantized_graph(graph):
        raise CompressError("early-exit trains a float head: add it to the float graph, then quantize")
    if getattr(data, "task", "classification") != "classification" or not data.classes:
        raise CompressError("early-exit needs a classification data set (confidence of the exit's prediction)")
    if "early_exit" in graph.meta:
        raise CompressError(f"graph '{graph.name}' already has an early exit "
                            f"('{graph.meta['early_exit'].get('output')}')")
    main = graph.outputs[0]
    softmax = any(n.op == "Softmax" and main in n.outputs for n in graph.nodes)
    exit_t = choose_exit(graph, params["after"])
    producer = producers(graph)[exit_t]
    shape = graph.tensors[exit_t].shape
    layout = producer.attrs.get("layout", "NCHW")
    ctx.say(0.02, f"features at {exit_t}")
    feats = {s: predict(graph, getattr(data, f"x_{s}"), [exit_t])[exit_t] for s in ("train", "val")}
    # Standardize each channel (statistics of the pooled training features) so the head trains in a few
    # epochs whatever the scale of the backbone's activations; folded into the FC weights afterwards.
    cax = 1 if layout == "NCHW" or len(shape) == 2 else len(shape) - 1
    pooled = np.moveaxis(feats["train"], cax, 1).reshape(len(feats["train"]), shape[cax], -1).mean(-1)
    mean, std = pooled.mean(0), pooled.std(0) + 1e-6
    bshape = [1] * len(shape)
    bshape[cax] = -1
    norm = {k: ((v - mean.reshape(bshape)) / std.reshape(bshape)).astype(np.float32) for k, v in feats.items()}
    head_data = dataclasses.replace(data, x_train=norm["train"], x_val=norm["val"], input_shape=tuple(shape[1:]),
                                    normalization={}, name=f"{data.name}@{exit_t}")
    head = head_graph(shape, data.classes, layout, softmax, ctx.seed)
    ctx.say(0.15, "training the exit head")
    head, tr = train(head, head_data, epochs=params["epochs"], lr=params["lr"], seed=ctx.seed,
                     progress=ctx.sub(0.15, 0.9))
    fc = head.node("exit_fc")
    w, b = head.tensors[fc.inputs[1]].data.astype(np.float64), head.tensors[fc.inputs[2]].data.astype(np.float64)
    head.tensors[fc.inputs[1]].data = (w / std).astype(np.float32)  # W (classes, C) x ((f - mean) / std)
    head.tensors[fc.inputs[2]].data = (b - (w / std) @ mean).astype(np.float32)
    g = graph.copy()
    exit_out = attach(g, head, exit_t)
    g.outputs.append(exit_out)
    g = infer_shapes(g)
    macs = {r.name: r.macs for r in layer_records(g)}
    head_nodes = {n.name for n in g.nodes if n.meta.get("early_exit")}
    macs_exit = sum(macs[n] for n in ancestors(g, exit_out))
    macs_full = sum(macs.values())
    macs_main = macs_full - sum(macs[n] for n in head_nodes)
    ctx.say(0.92, "exit statistics on the validation set")
    outs = predict(g, data.x_val, [main, exit_out])
    y = np.asarray(data.y_val).reshape(-1)
    p_exit = _probs(outs[exit_out], softmax)
    main_pred = outs[main].reshape(len(y), -1).argmax(1)
    conf, exit_pred = p_exit.max(1), p_exit.argmax(1)

    def policy(th: float) -> dict:
        taken = conf >= th
        f = float(taken.mean()) if len(y) else 0.0
        pred = np.where(taken, exit_pred, main_pred)
        return {"threshold": th, "exit_fraction": f, "accuracy": float((pred == y).mean()) if len(y) else None,
                "exit_accuracy": float((exit_pred[taken] == y[taken]).mean()) if taken.any() else None,
                "expected_macs": f * macs_exit + (1.0 - f) * macs_full}
    chosen = policy(params["threshold"])
    meta = {"threshold": params["threshold"], "output": exit_out, "exit_point": exit_t, "macs_to_exit": int(macs_exit),
            "macs_full": int(macs_full), "macs_without_exit": int(macs_main), "softmax": softmax,
            "rule": "stop at the exit when max softmax probability >= threshold"}
    g.meta["early_exit"] = meta
    report = {**meta, "validation": chosen,
              "expected_macs_saved": float(macs_main - chosen["expected_macs"]),
              "expected_macs_saved_fraction": float(1.0 - chosen["expected_macs"] / max(macs_main, 1)),
              "main_accuracy": float((main_pred == y).mean()) if len(y) else None,
              "exit_accuracy_all": float((exit_pred == y).mean()) if len(y) else None,
              "threshold_sweep": [policy(t) for t in (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)],
              "training": train_json(tr)}
    ctx.say(1.0, f"{chosen['exit_fraction']:.0%} of validation samples exit early")
    return g, report


ACTION = Action("early-exit", "insert an intermediate classifier (GAP + FC) after a block; samples whose exit "
                "confidence reaches the threshold stop there; reports the expected MACs saved", {
                    "after": Param("str", "auto", "node or tensor the exit reads (auto: the single-path point "
                                   "nearest half the MACs)"),
                    "threshold": Param("float", 0.9, "exit when the top softmax probability is at least this",
                                       min=0.0, max=1.0),
                    "epochs": Param("int", 60, "training epochs of the exit head", min=1, max=1000),
                    "lr": Param("float", 1e-2, "learning rate (Adam)", min=0.0, max=1.0, min_open=True)},
                run_early_exit, trains=True)
