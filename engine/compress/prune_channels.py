"""prune-channels: structured pruning that physically removes output channels (and what reads them).

1. Dependencies (engine.compress.channels): channels that must go together form a class (a residual Add
   ties the channels of both branches; a depthwise conv follows its input; concat maps offsets); classes
   touching graph inputs/outputs or unsupported ops are never pruned.
2. Importance of each class, summed over the layers in it:
   - l1 / l2: the norm of each output channel's weights (times |gamma| / sqrt(var + eps) of a BN right
     after the layer, which scales that channel), divided by the layer's mean so layers compare;
   - taylor: first-order Taylor estimate of the loss change (Molchanov et al. 2019): (sum over the
     channel's weights, bias and BN scale/shift of w x dL/dw)^2 averaged over mini-batches of training data.
3. Selection, least important first, never below `min_keep` of any tensor's channels (and never 0):
   target=macs removes classes until the graph's MACs are at most `keep` x the original (the prefix is
   found by bisection, each candidate graph measured); target=channels removes (1 - keep) of the classes.
4. Fine-tuning on the data set (`epochs`), by default distilled from the unpruned graph (its softened
   outputs as a second target, engine.train's teacher), then MACs, weights and arena are measured.
"""
from __future__ import annotations

import numpy as np

from engine.compress.base import Action, ActionContext, CompressError, Param, is_quantized_graph, subset
from engine.compress.channels import ChannelGraph, analyze, apply_pruning
from engine.compress.quantize import train_json
from engine.ir import Graph
from engine.ops import OPS
from engine.summary import graph_cost, layer_records


def _following_bn(g: Graph, layer: str) -> np.ndarray | None:
    """|gamma| / sqrt(var + eps) of a BatchNormalization that alone reads the layer's output."""
    out = g.node(layer).outputs[0]
    readers = [n for n in g.nodes if out in n.inputs]
    if len(readers) != 1 or readers[0].op != "BatchNormalization":
        return None
    bn = readers[0]
    gamma, var = (g.tensors[bn.inputs[i]].data for i in (1, 4))
    if gamma is None or var is None:
        return None
    return np.abs(gamma.astype(np.float64)) / np.sqrt(var.astype(np.float64) + float(bn.attrs.get("epsilon", 1e-5)))


def norm_scores(g: Graph, cg: ChannelGraph, order: int) -> dict[str, np.ndarray]:
    """Per layer: the L1 or L2 norm of each output channel, scaled by a following BN, over the layer mean."""
    out = {}
    for layer in cg.sources:
        node = g.node(layer)
        w = g.tensors[node.inputs[1]].data.astype(np.float64)
        if node.op == "Gemm" and not node.attrs.get("transB", 0):
            w = w.T
        rows = w.reshape(w.shape[0], -1)
        s = np.abs(rows).sum(1) if order == 1 else np.sqrt((rows ** 2).sum(1))
        bn = _following_bn(g, layer)
        if bn is not None and bn.size == s.size:
            s = s * bn
        out[layer] = s / max(float(s.mean()), 1e-12)
    return out


def taylor_scores(g: Graph, cg: ChannelGraph, data, samples: int, seed: int, chunk: int = 32) -> dict[str, np.ndarray]:
    """Per layer: mean over mini-batches of (sum of w x dL/dw over the channel's parameters)^2, with L the
    cross-entropy of the logits (a final Softmax is looked through, as training does)."""
    import torch
    import torch.nn.functional as F

    from engine.exporters.torch_export import GraphModule
    from engine.train.graphs import logits_view, rebatch, to_layout
    from engine.train.metrics import torch_threads
    x, y = subset(data.x_train, data.y_train, samples, seed)
    chunk = min(chunk, len(x))
    view = logits_view(g)
    with torch_threads(1):
        m = GraphModule(rebatch(view, chunk))
        m.eval()  # BN with its running statistics: the importance of the deployed function
        groups = {}
        for layer in cg.sources:
            node = g.node(layer)
            names = [node.inputs[1]] + ([node.inputs[2]] if len(node.inputs) > 2 and node.inputs[2] else [])
            readers = [n for n in g.nodes if node.outputs[0] in n.inputs]
            if len(readers) == 1 and readers[0].op == "BatchNormalization":
                names += readers[0].inputs[1:3]
            groups[layer] = [(n, m.tensor(n)) for n in names if n in m.tensor_keys]
        acc = {layer: np.zeros(len(ids)) for layer, ids in cg.sources.items()}
        batches = 0
        for start in range(0, len(x) - chunk + 1, chunk):  # whole batches: the module's batch is fixed
            for p in m.parameters():
                p.grad = None
            xb = torch.from_numpy(np.ascontiguousarray(x[start:start + chunk], np.float32))
            out = m(to_layout(view, xb))
            out = out[0] if isinstance(out, tuple) else out
            F.cross_entropy(out.reshape(chunk, -1), torch.from_numpy(np.asarray(y[start:start + chunk], np.int64)),
                            reduction="sum").backward()
            batches += 1
            for layer, params in groups.items():
                node = g.node(layer)
                contrib = np.zeros(len(cg.sources[layer]))
                for name, p in params:
                    if p.grad is None:
                        continue
                    gw = (p.detach() * p.grad).numpy().astype(np.float64)
                    if name == node.inputs[1] and node.op == "Gemm" and not node.attrs.get("transB", 0):
                        gw = gw.T
                    contrib += gw.reshape(gw.shape[0], -1).sum(1)
                acc[layer] += contrib ** 2
    return {k: v / max(batches, 1) for k, v in acc.items()}


def class_scores(cg: ChannelGraph, per_layer: dict[str, np.ndarray]) -> dict[int, float]:
    return {root: float(sum(per_layer[layer][j] for layer, j in members))
            for root, members in cg.classes().items()}


def class_macs(g: Graph, cg: ChannelGraph) -> dict[int, float]:
    """MACs that go with each class: its share of every layer it is an output or input channel of."""
    macs = {r.name: r.macs for r in layer_records(g)}
    share: dict[int, float] = {}
    for name, info in cg.node_info.items():
        m = macs.get(name, 0)
        if not m:
            continue
        for key in ("out", "in"):
            ids = info.get(key) if info["kind"] in ("conv", "gemm", "depthwise") else None
            if ids is None or (key == "in" and info["kind"] == "depthwise"):
                continue  # a depthwise conv's input and output channels are the same class: count once
            roots, counts = np.unique(cg.roots(ids), return_counts=True)
            for r, c in zip(roots.tolist(), counts.tolist()):
                share[r] = share.get(r, 0.0) + m * c / len(ids)
    return share


def admissible_order(cg: ChannelGraph, scores: dict[int, float], sizes: dict[str, int], min_keep: float) -> list[int]:
    """Classes in increasing importance, skipping any whose removal would leave a tensor under its floor."""
    touched = cg.touched()
    kept = dict(sizes)
    floor = {t: max(1, int(np.ceil(min_keep * n))) for t, n in sizes.items()}
    seq = []
    for root in sorted(scores, key=lambda r: (scores[r], r)):
        hits = touched.get(root, {})
        if all(kept[t] - c >= floor[t] for t, c in hits.items() if t in kept):
            for t, c in hits.items():
                if t in kept:
                    kept[t] -= c
            seq.append(root)
    return seq


def select(graph: Graph, cg: ChannelGraph, seq: list[int], n_classes: int, params: dict) -> tuple[set[int], dict]:
    """The removed set: a prefix of `seq` reaching the MAC or channel target."""
    if params["target"] == "channels":
        k = min(len(seq), int(round((1.0 - params["keep"]) * n_classes)))
        return set(seq[:k]), {"target": "channels", "classes_removed": k, "reached": k == int(round(
            (1.0 - params["keep"]) * n_classes))}
    macs0 = graph_cost(graph).macs
    goal = params["keep"] * macs0
    cache: dict[int, int] = {}

    def macs(k: int) -> int:
        if k not in cache:
            cache[k] = graph_cost(apply_pruning(graph, cg, set(seq[:k]))).macs
        return cache[k]
    lo, hi = 0, len(seq)
    if macs(hi) > goal:
        return set(seq), {"target": "macs", "classes_removed": len(seq), "reached": False,
                          "macs_fraction": macs(hi) / max(macs0, 1)}
    while lo < hi:  # smallest prefix that meets the goal
        mid = (lo + hi) // 2
        if macs(mid) <= goal:
            hi = mid
        else:
            lo = mid + 1
    return set(seq[:lo]), {"target": "macs", "classes_removed": lo, "reached": True,
                           "macs_fraction": macs(lo) / max(macs0, 1)}


def channel_counts(g: Graph, layers) -> dict[str, int]:
    out = {}
    for name in layers:
        node = g.node(name)
        w = g.tensors[node.inputs[1]]
        out[name] = w.shape[OPS[node.op].weight_channel_axis(node)]
    return out


def run_prune_channels(graph: Graph, params: dict, ctx: ActionContext) -> tuple[Graph, dict]:
    if is_quantized_graph(graph) or any(t.quant is not None for t in graph.tensors.values() if t.data is not None):
        raise CompressError(f"graph '{graph.name}' has quantized tensors; prune channels of the float graph")
    cg = analyze(graph)
    classes = cg.classes()
    if not classes:
        raise CompressError(f"graph '{graph.name}' has no prunable channels (every conv/FC output is tied to a "
                            "graph output or an op that cannot be cut)")
    ctx.say(0.02, f"importance of {len(classes)} channel groups ({params['criterion']})")
    if params["criterion"] == "taylor":
        if ctx.data is None:
            raise CompressError("criterion=taylor needs a data set (gradients of the loss)")
        per_layer = taylor_scores(graph, cg, ctx.data, params["taylor_samples"], ctx.seed)
    else:
        per_layer = norm_scores(graph, cg, 1 if params["criterion"] == "l1" else 2)
    scores = class_scores(cg, per_layer)
    if params["target"] == "macs":  # importance per MAC saved: cheap-but-useless channels are not the point
        cost = class_macs(graph, cg)
        scores = {r: v / max(cost.get(r, 0.0), 1e-9) for r, v in scores.items()}
    sizes = {t: len(s.ids) for t, s in cg.maps.items()}
    seq = admissible_order(cg, scores, sizes, params["min_keep"])
    ctx.say(0.1, "choosing channels")
    removed, sel = select(graph, cg, seq, len(classes), params)
    pruned = apply_pruning(graph, cg, removed)
    before, after = channel_counts(graph, cg.sources), channel_counts(pruned, cg.sources)
    report = {"criterion": params["criterion"], "groups": len(classes),
              "groups_with_several_layers": sum(1 for m in classes.values() if len({ly for ly, _ in m}) > 1),
              "pinned_layers": [ly for ly in cg.sources if all(cg.find(int(i)) in cg.pinned_roots()
                                                               for i in cg.sources[ly])],
              "selection": sel, "channels": {ly: {"before": before[ly], "after": after[ly]} for ly in before}}
    if not sel.get("reached", True):
        report["warning"] = (f"the target was not reached: min_keep={params['min_keep']} and the dependencies "
                             "allow no further pruning")
    if params["epochs"] > 0 and removed:
        from engine.train import train
        ctx.say(0.15, "fine-tuning the pruned graph")
        teacher = graph if params["distill"] else None  # the unpruned model teaches the pruned one
        pruned, tr = train(pruned, ctx.data, epochs=params["epochs"], lr=params["lr"], seed=ctx.seed,
                           teacher=teacher, progress=ctx.sub(0.15, 0.98))
        report["training"] = train_json(tr)
    ctx.say(1.0, f"removed {len(removed)} channel groups")
    return pruned, report


ACTION = Action("prune-channels", "structured pruning: remove whole output channels (L1/L2 norm or Taylor "
                "importance) respecting residual adds, depthwise convs and concats, then fine-tune", {
                    "target": Param("str", "macs", "what `keep` measures: macs, or channels (groups)",
                                    choices=("macs", "channels")),
                    "keep": Param("float", 0.5, "fraction of MACs (or channel groups) to keep", min=0.0, max=1.0,
                                  min_open=True),
                    "criterion": Param("str", "taylor", "channel importance: first-order Taylor (loss change on the "
                                      "data; pruned LeNet-5 on digits best) or the L1/L2 weight norm",
                                      choices=("taylor", "l1", "l2")),
                    "min_keep": Param("float", 0.25, "never keep fewer than this fraction of a layer's channels",
                                      min=0.0, max=1.0),
                    "taylor_samples": Param("int", 256, "training samples for the Taylor importance", min=1,
                                            max=100000),
                    "epochs": Param("int", 20, "fine-tuning epochs", min=0, max=1000),
                    "distill": Param("bool", True, "fine-tune with the unpruned model as teacher (knowledge "
                                     "distillation) besides the labels"),
                    "lr": Param("float", 1e-3, "learning rate (Adam)", min=0.0, max=1.0, min_open=True)},
                run_prune_channels, trains=True)
