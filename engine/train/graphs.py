"""Graph views training needs: logits instead of probabilities, a larger batch, samples in the graph's layout.

Zoo and imported graphs have a fixed batch of 1; PyTorch trains on mini-batches, so the graph is re-shaped
to batch B (graph inputs and Reshape targets that carry the batch) and its shapes are inferred again.
Constants keep their names, so weights trained on the view write back into the original graph.
"""
from __future__ import annotations

import numpy as np
import torch

from engine.data import Dataset
from engine.errors import GraphError, TinyStudioError
from engine.ir import INT_DTYPES, Graph, Tensor
from engine.ops import ops_where
from engine.validate import infer_shapes

PROBABILITY_OPS = ops_where(lambda op: op.probabilities)


def is_int8(graph: Graph) -> bool:
    """A graph with quantized integer activations (what quantize_model produces), run by the int8 kernels."""
    return any(t.data is None and t.quant is not None and t.dtype in INT_DTYPES for t in graph.tensors.values())


def producers(graph: Graph) -> dict[str, object]:
    return {o: n for n in graph.nodes for o in n.outputs}


def ends_in_softmax(graph: Graph, output: str) -> bool:
    node = producers(graph).get(output)
    return node is not None and node.op == "Softmax"


def logits_view(graph: Graph) -> Graph:
    """A copy whose outputs are the inputs of final Softmax/LogSoftmax nodes over the last axis (the logits),
    so training uses a numerically stable cross-entropy. Other outputs are unchanged."""
    g = graph.copy()
    prod = producers(g)
    consumers: dict[str, int] = {}
    for n in g.nodes:
        for i in n.inputs:
            consumers[i] = consumers.get(i, 0) + 1
    drop = set()
    for k, out in enumerate(g.outputs):
        node = prod.get(out)
        if node is None or node.op not in PROBABILITY_OPS or consumers.get(out):
            continue
        rank = len(g.tensors[out].shape)
        if node.attrs.get("axis", -1) % max(rank, 1) != rank - 1 or node.attrs.get("beta", 1.0) != 1.0:
            continue
        g.outputs[k] = node.inputs[0]
        drop.add(node.name)
        g.tensors.pop(out, None)
    g.nodes = [n for n in g.nodes if n.name not in drop]
    return g


def rebatch(graph: Graph, n: int) -> Graph:
    """`graph` with batch size n: inputs' first dim and Reshape targets that carry the batch are changed,
    then every shape is inferred again. A graph whose batch cannot change is a GraphError naming why."""
    base = infer_shapes(graph)
    b0 = base.tensors[base.inputs[0]].shape[0]
    if b0 == n:
        return base
    g = base.copy()
    for name in g.inputs:
        t = g.tensors[name]
        if not t.shape or t.shape[0] != b0:
            raise GraphError(f"cannot train graph '{graph.name}': input '{name}' {list(t.shape)} has no batch "
                             f"dimension of {b0} like input '{g.inputs[0]}'")
        g.tensors[name] = Tensor(name, (n, *t.shape[1:]), t.dtype, t.quant, None, dict(t.meta))
    for node in g.nodes:
        if node.op == "Reshape":
            target = list(node.attrs["shape"])
            src = base.tensors[node.inputs[0]].shape
            if target and target[0] == b0 and src and src[0] == b0:
                node.attrs = {**node.attrs, "shape": [n, *target[1:]]}
    try:
        out = infer_shapes(g)
    except TinyStudioError as e:
        raise GraphError(f"cannot train graph '{graph.name}' on batches of {n} (its batch size is fixed at {b0}): "
                         f"{e}") from None
    for name in out.outputs:
        shape = out.tensors[name].shape
        if not shape or shape[0] != n:
            raise GraphError(f"cannot train graph '{graph.name}' on batches: output '{name}' has shape "
                             f"{list(shape)} at batch {n}, the batch must be its first dimension")
    return out


def sample_shape(graph: Graph) -> tuple[int, ...]:
    """Per-sample input shape in channels-first order (undoing an NHWC graph's input_layout)."""
    name = graph.inputs[0]
    shape = graph.tensors[name].shape
    lay = graph.meta.get("input_layout", {}).get(name)
    if lay is not None:
        shape = tuple(shape[i] for i in np.argsort(lay["perm"]))
    return tuple(shape[1:])


def to_layout(graph: Graph, x: torch.Tensor) -> torch.Tensor:
    """Channels-first samples -> the graph's input layout (see engine.passes.ptq.to_graph_layout)."""
    lay = graph.meta.get("input_layout", {}).get(graph.inputs[0])
    return x.permute(*lay["perm"]).contiguous() if lay is not None else x


_CHANNELS_FIRST = {3: "NCW", 4: "NCHW"}
_CHANNELS_LAST = {3: "NWC", 4: "NHWC"}


def adapt_input_layout(graph: Graph, input_shape: tuple[int, ...]) -> Graph:
    """`graph` ready for channels-first samples of `input_shape` (what every data set holds).

    Unchanged when it takes them already (also an int8 graph whose meta["input_layout"] records the transpose
    quantization made). A graph that takes the same samples channels last without saying so (an imported
    TFLite model: (H, W, C) for (C, H, W)) gets a copy with that transpose recorded in meta["input_layout"],
    which training, evaluation and inference honour. Anything else is left for check_fits to report."""
    if len(graph.inputs) != 1:
        return graph
    name = graph.inputs[0]
    shape = tuple(input_shape)
    if sample_shape(graph) == shape or name in graph.meta.get("input_layout", {}) or len(shape) not in (2, 3):
        return graph
    if tuple(graph.tensors[name].shape[1:]) != (*shape[1:], shape[0]):
        return graph
    r = len(shape) + 1
    if not any(n.attrs.get("layout") == _CHANNELS_LAST[r] for n in graph.nodes):
        return graph  # not a channels-last graph: the shapes only look alike
    g = graph.copy()
    g.meta["input_layout"] = {**g.meta.get("input_layout", {}),
                              name: {"from": _CHANNELS_FIRST[r], "to": _CHANNELS_LAST[r], "perm": [0, *range(2, r), 1]}}
    return g


def data_mismatch(graph: Graph, data: Dataset) -> str | None:
    """One line saying why `data` cannot feed `graph` (after adapt_input_layout), or None when it can."""
    try:
        check_fits(adapt_input_layout(graph, data.input_shape), data.input_shape, data.name)
    except GraphError as e:
        return str(e)
    return None


def check_fits(graph: Graph, input_shape: tuple[int, ...], data_name: str) -> None:
    if len(graph.inputs) != 1:
        raise GraphError(f"graph '{graph.name}' has {len(graph.inputs)} inputs "
                         f"({', '.join(graph.inputs)}); training takes one-input models")
    want = sample_shape(graph)
    if want != tuple(input_shape):
        raise GraphError(f"graph '{graph.name}' takes samples of shape {list(want)} (input '{graph.inputs[0]}'), "
                         f"data set '{data_name}' has {list(input_shape)}")


def check_outputs(view: Graph, data: Dataset, what: str) -> None:
    """Every output must give one prediction per sample of the size the task needs."""
    if data.task == "classification":
        need, desc = data.classes, f"{data.classes} classes"
    elif data.task == "regression":
        need = int(np.prod(data.y_train.shape[1:], dtype=np.int64))
        desc = f"{need} regression target(s)"
    else:
        need, desc = int(np.prod(data.input_shape, dtype=np.int64)), f"reconstructions of {list(data.input_shape)}"
    for name in view.outputs:
        shape = view.tensors[name].shape
        size = int(np.prod(shape[1:], dtype=np.int64)) if shape else 0
        if size != need:
            raise GraphError(f"{what} output '{name}' has shape {list(shape)}, but data set '{data.name}' needs "
                             f"{desc} per sample")
