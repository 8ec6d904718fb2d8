"""evaluate(): accuracy, loss and confusion matrix of a graph on a Dataset split.

Float graphs run through their PyTorch form (the same numbers as engine.execute.run_graph, batched);
int8 graphs (quantized activations) run sample by sample through the integer kernels
(engine.int8.execute, bit-exact to tflite-micro) with inputs quantized on the graph's input grid.
"""
from __future__ import annotations

import numpy as np
import torch

from engine.data import Dataset, DataError
from engine.exporters.torch_export import GraphModule
from engine.ir import Graph
from engine.train.graphs import (adapt_input_layout, check_fits, check_outputs, ends_in_softmax, is_int8, logits_view,
                                 rebatch)
from engine.train.metrics import forward_batches, metrics, torch_threads

EVAL_BATCH = 256


def _int8_outputs(graph: Graph, x: np.ndarray) -> torch.Tensor:
    from engine.int8.execute import prepare_int8
    from engine.passes.ptq import dequantize_outputs, quantize_inputs

    plan = prepare_int8(graph)
    name, out = graph.inputs[0], graph.outputs[0]
    rows = []
    for i in range(len(x)):
        ys = plan.run(quantize_inputs(graph, {name: x[i:i + 1]}))
        rows.append(np.asarray(dequantize_outputs(graph, {out: ys[out]})[out], np.float32).reshape(-1))
    return torch.from_numpy(np.stack(rows))


def evaluate(graph: Graph, data: Dataset, split: str = "val") -> dict:
    """{"accuracy", "loss", "confusion", "samples", "split", "int8"} on data's "val" or "train" split.

    accuracy is R^2 and loss the mean squared error for regression/reconstruction; confusion is None there.
    Multi-output graphs are judged on their first output."""
    if split not in ("val", "train"):
        raise DataError(f"split must be 'val' or 'train', got '{split}'")
    x, y = (data.x_val, data.y_val) if split == "val" else (data.x_train, data.y_train)
    if len(x) == 0:
        raise DataError(f"data set '{data.name}' has no {split} samples")
    graph = adapt_input_layout(graph, data.input_shape)
    check_fits(graph, data.input_shape, data.name)
    int8 = is_int8(graph)
    if int8:
        check_outputs(graph, data, f"graph '{graph.name}'")
        out = _int8_outputs(graph, x)
        probs = ends_in_softmax(graph, graph.outputs[0])
    else:
        view = logits_view(graph)
        check_outputs(view, data, f"graph '{graph.name}'")
        b = min(EVAL_BATCH, len(x))
        with torch_threads(1):  # see train(): one thread is fastest for these models on a shared CPU
            out = forward_batches(GraphModule(rebatch(view, b)), view, x, b)[0]
        probs = False
    res = metrics(out, y, data.task, data.classes, probabilities=probs)
    return {**res, "samples": int(len(x)), "split": split, "int8": int8}
