"""Batched inference through a graph's PyTorch module, and the metrics train and evaluate report.

Classification: accuracy (0..1), mean cross-entropy, confusion matrix (rows: true class, columns: predicted).
Regression and reconstruction: "accuracy" is R^2 = 1 - SSE / SST (1 is perfect, 0 is predicting the mean),
loss is the mean squared error.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

from engine.ir import Graph
from engine.train.graphs import to_layout


@contextmanager
def torch_threads(n: int | None):
    """Run a block with n torch CPU threads (None: unchanged), restoring the setting after."""
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def forward_batches(module, view: Graph, x: np.ndarray, batch: int) -> list[torch.Tensor]:
    """Every output of `module` (built for batch `batch`) over all samples, eval mode, no gradients.

    The last partial batch is padded with zeros and cut off again: in eval mode samples do not interact."""
    module.eval()
    outs: list[list[torch.Tensor]] = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(np.ascontiguousarray(x[i:i + batch], np.float32))
            k = len(xb)
            if k < batch:
                xb = torch.cat([xb, xb.new_zeros((batch - k, *xb.shape[1:]))])
            ys = module(to_layout(view, xb))
            ys = ys if isinstance(ys, tuple) else (ys,)
            outs.append([y[:k].reshape(k, -1).float() for y in ys])
    return [torch.cat(parts) for parts in zip(*outs)]


def classification(logits: torch.Tensor, y: np.ndarray, classes: int, probabilities: bool = False) -> dict:
    """Metrics from (N, K) logits (or probabilities when the graph ends in a Softmax that was kept)."""
    target = torch.from_numpy(np.asarray(y, np.int64))
    if probabilities:
        loss = F.nll_loss(torch.log(torch.clamp(logits, min=1e-12)), target)
    else:
        loss = F.cross_entropy(logits, target)
    pred = logits.argmax(dim=1).numpy()
    conf = np.zeros((classes, classes), np.int64)
    np.add.at(conf, (np.asarray(y, np.int64), pred), 1)
    return {"accuracy": float((pred == y).mean()) if len(y) else 0.0, "loss": float(loss),
            "confusion": conf.tolist()}


def regression(pred: torch.Tensor, y: np.ndarray) -> dict:
    target = torch.from_numpy(np.asarray(y, np.float32)).reshape(len(y), -1)
    mse = float(F.mse_loss(pred, target))
    sst = float(((target - target.mean(dim=0)) ** 2).mean())
    return {"accuracy": 1.0 - mse / sst if sst > 0 else 0.0, "loss": mse, "confusion": None}


def metrics(out: torch.Tensor, y: np.ndarray, task: str, classes: int, probabilities: bool = False) -> dict:
    return classification(out, y, classes, probabilities) if task == "classification" else regression(out, y)
