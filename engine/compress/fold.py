"""fold-bn: BatchNormalization folded into the conv/FC before it, then Relu/Relu6/Clip fused into the layer.

The same function (float32 rounding aside): the action runs both graphs on samples (validation data, or
standard-normal inputs without data) and reports the largest output difference; over 1e-5 relative to
the output's range is a bug, and the action refuses to return such a graph.
"""
from __future__ import annotations

import numpy as np

from engine.compress.base import Action, ActionContext, CompressError, Param
from engine.compress.measure import predict
from engine.ir import Graph
from engine.passes import fold_batchnorm, fuse_activations, remove_noops

TOLERANCE = 1e-5


def run_fold(graph: Graph, params: dict, ctx: ActionContext) -> tuple[Graph, dict]:
    g1, r0 = remove_noops(graph)
    g2, r1 = fold_batchnorm(g1)
    g3, r2 = fuse_activations(g2)
    n = params["check_samples"]
    if ctx.data is not None:
        x = ctx.data.x_val[:n]
    else:
        x = np.random.default_rng(ctx.seed).standard_normal((n, *graph.tensors[graph.inputs[0]].shape[1:]))
    ref, got = predict(graph, x), predict(g3, x)
    worst = 0.0
    for o in graph.outputs:
        scale = max(1.0, float(np.abs(ref[o]).max()) if ref[o].size else 1.0)
        worst = max(worst, float(np.abs(ref[o] - got[o]).max()) / scale if ref[o].size else 0.0)
    if worst > TOLERANCE:
        raise CompressError(f"fold-bn changed the function by {worst:.3g} (relative), over {TOLERANCE:g}; "
                            "the graph was not changed")
    bn = sum(1 for nd in graph.nodes if nd.op == "BatchNormalization")
    report = {"batchnorms_folded": bn, "nodes_before": len(graph.nodes), "nodes_after": len(g3.nodes),
              "max_relative_difference": worst, "checked_samples": int(len(x)),
              "passes": [r.to_json() for r in (r0, r1, r2)]}
    return g3, report


ACTION = Action("fold-bn", "fold BatchNormalization into the conv/FC before it and fuse Relu/Relu6/Clip into "
                "the layer; the same function within 1e-5", {
                    "check_samples": Param("int", 16, "samples on which the folded graph is compared", min=1,
                                           max=10000)}, run_fold, needs_data=False)
