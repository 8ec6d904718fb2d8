"""PyTorch's memory of the same training step, measured (the independent reference for engine.ondevice.memory).

    ref = torch_step_memory(float_graph, layers=None)   # full backprop: every weight trainable
    ref["saved_bytes"], ref["saved_elements"], ref["grad_bytes"], ref["param_bytes"], ref["total_bytes"]

Saved activations (of the model's forward; the loss's own are left out) are counted with torch.autograd.graph.saved_tensors_hooks (every tensor autograd keeps for
the backward, parameters excluded, each storage once), gradients from .grad after backward(), batch 1.
"""
from __future__ import annotations

import numpy as np
import torch

from engine.ir import Graph


def torch_step_memory(graph: Graph, layers: list[str] | None = None, seed: int = 0) -> dict:
    """One forward + cross-entropy + backward of `graph` (float) in PyTorch; `layers`: node names whose weights
    (and bias) are trainable, None for all."""
    from engine.exporters.torch_export import GraphModule
    from engine.train.graphs import logits_view
    from engine.validate import infer_shapes

    view = infer_shapes(logits_view(graph))
    module = GraphModule(view)
    by_node = {n.name: n for n in view.nodes}
    want = None
    if layers is not None:
        want = {t for k in layers if k in by_node for t in by_node[k].inputs[1:3] if t}
    params = {}
    for name, key in module.tensor_keys.items():
        if key.startswith("params."):
            p = module.tensor(name)
            p.requires_grad_(want is None or name in want)
            params[name] = p
    param_ptrs = {p.data_ptr() for p in params.values()}
    seen: dict[int, int] = {}

    def pack(t):
        if t.data_ptr() not in param_ptrs:
            seen[t.untyped_storage().data_ptr()] = (t.untyped_storage().nbytes(), t.numel())
        return t

    shape = view.tensors[view.inputs[0]].shape
    x = torch.from_numpy(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):  # the model's forward, not the loss
        out = module(x)
    out = out[0] if isinstance(out, (tuple, list)) else out
    loss = torch.nn.functional.cross_entropy(out.reshape(1, -1), torch.zeros(1, dtype=torch.long))
    loss.backward()
    trainable = [p for p in params.values() if p.requires_grad]
    grad = sum(p.grad.nbytes for p in trainable if p.grad is not None)
    saved = sum(b for b, _ in seen.values())
    pbytes = sum(p.nbytes for p in params.values())
    return {"saved_bytes": int(saved), "saved_elements": int(sum(n for _, n in seen.values())),
            "grad_bytes": int(grad), "param_bytes": int(pbytes),
            "trainable_param_bytes": int(sum(p.nbytes for p in trainable)),
            "total_bytes": int(saved + grad + pbytes)}
