"""Training-free proxies: rank untrained candidate architectures by a score computed at initialisation.

    s = score(graph, ds.x_train[:64], kind="naswot")   # higher is expected to train to a higher accuracy
    PROXIES                                            # ("naswot", "synflow")

- naswot (Mellor et al. 2021, "Neural Architecture Search without Training"): the batch's binary ReLU codes
  c_i (1 where a unit is active, over every ReLU/ReLU6 output of the network) give the kernel
  K[i, j] = D - hamming(c_i, c_j) = c_i.c_j + (1-c_i).(1-c_j); the score is ln det K. Networks that map
  different samples to different activation patterns score higher. BatchNormalization uses batch statistics
  (the network as training would first see it). K + I is used instead of K so the score stays finite when
  two codes coincide (a dead or constant network scores about (N-1) ln 1 + ln(N D): very low, not -inf);
  for healthy networks the shift is tiny next to entries of size D.
- synflow (Tanaka et al. 2020, as a zero-cost proxy by Abdelfattah et al. 2021): with every parameter
  replaced by its absolute value and an all-ones input, R = sum of the logits; the score is
  ln sum over weights |theta * dR/dtheta| of the conv/linear weights (bias vectors excluded, as in
  Abdelfattah et al.'s reference code). It needs no data (the batch only gives the sample shape). BN is
  folded first (its running statistics become part of the weights), ReLU6 counts as ReLU (with all-positive
  weights every activation would saturate at 6 and stop the gradient), and the network runs in float64
  because its outputs grow by the product of the layers' gains. A network with no gradient path scores
  ln(1e-300) ~ -690.

Both run the graph through the PyTorch module engine.train builds (engine.exporters.torch_export), on CPU;
both are deterministic for a given graph and batch. A proxy ranks, it does not predict: its rank
correlation with trained accuracy is measured (benchmarks/search_table.py), never assumed.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from engine.errors import TinyStudioError
from engine.exporters.torch_export import to_torch
from engine.ir import Graph, Node
from engine.train.graphs import adapt_input_layout, check_fits, is_int8, logits_view, rebatch, sample_shape, to_layout

PROXIES = ("naswot", "synflow")
MAX_BATCH = 256  # the kernel is N x N; the forward pass holds N samples' activations
_RELU_ACTS = ("relu", "relu6")


def _relu_outputs(graph: Graph) -> list[str]:
    """Tensors whose positive entries are exactly the active units of a ReLU (ReLU6 included)."""
    out = []
    for node in graph.nodes:
        if node.op in ("Relu", "Relu6") or node.attrs.get("activation") in _RELU_ACTS:
            out.append(node.outputs[0])
        elif node.op == "Clip" and node.attrs.get("min") == 0.0:
            out.append(node.outputs[0])
    return out


def _prepare(graph: Graph, batch: np.ndarray, kind: str) -> tuple[Graph, np.ndarray]:
    if kind not in PROXIES:
        raise TinyStudioError(f"unknown proxy '{kind}'; proxies: {', '.join(PROXIES)}")
    if is_int8(graph):
        raise TinyStudioError(f"proxy {kind}: graph '{graph.name}' is quantized; score the float candidate")
    x = np.asarray(batch)
    if x.ndim < 2 or x.dtype.kind not in "biuf":
        raise TinyStudioError(f"proxy {kind}: the batch must be numbers of shape (N, *sample shape), got "
                              f"{list(x.shape)} {x.dtype}")
    if not 2 <= len(x) <= MAX_BATCH:
        raise TinyStudioError(f"proxy {kind}: the batch must hold 2..{MAX_BATCH} samples, got {len(x)}")
    x = np.ascontiguousarray(x, np.float32)
    if not np.isfinite(x).all():
        raise TinyStudioError(f"proxy {kind}: the batch holds NaN or infinite values")
    g = adapt_input_layout(graph, tuple(x.shape[1:]))
    check_fits(g, tuple(x.shape[1:]), "the proxy batch")
    return g, x


def naswot(graph: Graph, x: np.ndarray) -> float:
    view = logits_view(graph)
    codes = _relu_outputs(view)
    if not codes:
        raise TinyStudioError(f"proxy naswot: graph '{graph.name}' has no ReLU activations to read codes from")
    view = view.copy()
    view.outputs = list(view.outputs) + [c for c in codes if c not in view.outputs]
    n = len(x)
    module = to_torch(rebatch(view, n))
    module.train()  # batch statistics in BatchNormalization; dropout is seeded below
    kernel = torch.zeros(n, n, dtype=torch.float64)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(0)
        outs = module(to_layout(view, torch.from_numpy(x)))
        outs = dict(zip(module.output_names, outs if isinstance(outs, tuple) else (outs,)))
        for name in codes:
            c = (outs[name].reshape(n, -1) > 0).float()
            # float32 sums of 0/1 are exact below 2^24 units per tensor
            kernel += (c @ c.T + (1 - c) @ (1 - c).T).double()
    sign, logdet = np.linalg.slogdet(kernel.numpy() + np.eye(n))
    return float(logdet) if sign > 0 else float("-inf")  # K + I is positive definite: sign is 1


def _linearized(graph: Graph) -> Graph:
    """BN folded into the layers, ReLU6 as ReLU, Softmax dropped: the network synflow differentiates."""
    from engine.passes.fold import fold_batchnorm

    g, _ = fold_batchnorm(logits_view(graph))
    g = g.copy()
    nodes = []
    for node in g.nodes:
        if node.op == "Relu6" or (node.op == "Clip" and node.attrs.get("min") == 0.0):
            node = Node("Relu", node.name, node.inputs[:1], node.outputs, {})
        elif node.attrs.get("activation") == "relu6":
            node = Node(node.op, node.name, node.inputs, node.outputs, {**node.attrs, "activation": "relu"})
        nodes.append(node)
    g.nodes = nodes
    return g


def synflow(graph: Graph, x: np.ndarray) -> float:
    g = rebatch(_linearized(graph), 1)
    module = to_torch(g).double()
    weights = {name for name, key in module.tensor_keys.items()
               if key.startswith("params.") and module.tensor(name).dim() >= 2}
    with torch.no_grad():
        for p in module.parameters():
            p.abs_()
        for b in module.buffers():
            if b.is_floating_point():
                b.abs_()
    # GraphModule.forward casts inputs to float32; the loop below is its forward in float64.
    env = {name: module.tensor(name) for name in module.tensor_keys}
    env[g.inputs[0]] = to_layout(g, torch.ones((1, *sample_shape(g)), dtype=torch.float64))
    for _, ins, outs, step in module._steps:
        for o, y in zip(outs, step([env[i] if i else None for i in ins], module)):
            env[o] = y
    total = sum(env[o].sum() for o in g.outputs)
    if not torch.isfinite(total):
        raise TinyStudioError(f"proxy synflow: graph '{graph.name}' overflows float64 with all-positive weights")
    total.backward()
    s = 0.0
    with torch.no_grad():
        for name in weights:
            p = module.tensor(name)
            if p.grad is not None:
                s += float((p * p.grad).abs().sum())
    return math.log(s + 1e-300)


def score(graph: Graph, batch: np.ndarray, kind: str = "naswot") -> float:
    """The proxy `kind` (one of PROXIES) of untrained `graph` on `batch` (N, *sample shape), channels first as
    every data set holds samples; higher is better. See the module docstring."""
    g, x = _prepare(graph, batch, kind)
    det, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # small graphs: one thread is fastest and sums in a fixed order
    try:
        return naswot(g, x) if kind == "naswot" else synflow(g, x)
    finally:
        torch.use_deterministic_algorithms(det)
        torch.set_num_threads(threads)
