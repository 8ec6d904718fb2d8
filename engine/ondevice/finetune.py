"""The PyTorch-side reference of on-device fine-tuning: SGD (optionally with momentum) of some layers (and
channel fractions) of a graph, in float32 or as the device holds them in the int8 domain, with or without
quantization-aware scaling. The sparse planner's probes and the accuracy benchmark both run it.

    ft = Finetuner(graph, data, FinetuneOptions(steps=60, momentum=0.9, weights="int8", qas=True))
    acc = ft.run({"block4_pw": 0.5, "fc": 1.0})        # validation accuracy after fine-tuning those layers
    acc = ft.run({}, bias_only=("conv1", "fc"))         # biases only
    ft.accuracy(x_test, y_test)                           # the fine-tuned weights on another split

What is trained is the graph as the device runs it: BatchNormalization folded into the conv before it (so every
conv has a bias and the layer names are the deployed int8 graph's), float arithmetic. Every run starts from
the same weights and visits the same seeded sample order, so two runs differ only in what they update.
Layers before the first updated one are frozen: their outputs are computed once per data set and reused
(exact: the forward is deterministic), which makes probes of late layers cheap.

int8 domain (weights="int8", MIT's "On-Device Training Under 256KB Memory", section 2.1): the device keeps
W_q = W / s_W (per output channel s_W = max|W_c| / 127, the deployed scales) and b_q = b / (s_W s_x). SGD on
those tensors sees the gradient G_q = s G (chain rule), so its step changes W by s^2 lr G: the weight/gradient
ratio is off by 1/s^2 and training stalls. QAS scales each tensor's gradient by s^-2 (weights: s_W^-2, biases:
(s_W s_x)^-2) before the update, restoring the float32 ratio. The int8 rounding of the updated tensors is not
modelled (they are held in float), so with QAS the int8-domain run equals the float32 run up to rounding of
float arithmetic; without it, it shows the stall.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from engine.errors import TinyStudioError
from engine.ir import Graph
from engine.train.metrics import torch_threads  # one thread: small convs run fastest so on a busy CPU


@dataclass(frozen=True)
class FinetuneOptions:
    steps: int = 60
    batch: int = 32
    lr: float = 0.05
    momentum: float = 0.0      # 0: plain SGD (the device's step, no optimizer state); 0.9: SGD with momentum
    weights: str = "float32"   # "float32" | "int8" (trained tensors held in the int8 domain, see the docstring)
    qas: bool = True           # with weights="int8": quantization-aware scaling of the gradients
    seed: int = 0
    max_val: int = 512         # validation samples the accuracy is measured on

    def __post_init__(self):
        if self.weights not in ("float32", "int8"):
            raise TinyStudioError(f"fine-tuning weights '{self.weights}' is not float32 or int8")
        if self.steps < 1 or self.batch < 1 or not 0.0 <= self.momentum < 1.0:
            raise TinyStudioError(f"fine-tuning options out of range: steps {self.steps}, batch {self.batch}, "
                                  f"momentum {self.momentum}")

    def key(self) -> dict:
        return asdict(self)


class Finetuner:
    """See the module docstring. `run` returns the validation accuracy; `last_predictions` holds the predicted
    classes of the validation samples of the last run or accuracy call (the planner's paired noise test)."""

    def __init__(self, graph: Graph, data, options: FinetuneOptions | None = None, **kw):
        from engine.exporters.torch_export import GraphModule
        from engine.passes.fold import fold_batchnorm
        from engine.train.fakequant import weight_axes
        from engine.train.graphs import adapt_input_layout, data_mismatch, logits_view, rebatch

        self.opt = options or FinetuneOptions(**kw)
        why = data_mismatch(graph, data)
        if why:
            raise TinyStudioError(f"fine-tuning on data set '{data.name}': {why}")
        if data.task != "classification":
            raise TinyStudioError(f"fine-tuning needs a classification data set; '{data.name}' is {data.task}")
        g = fold_batchnorm(adapt_input_layout(graph, data.input_shape).copy())[0]
        self.view = rebatch(logits_view(g), self.opt.batch)
        self.module = GraphModule(self.view)
        self.start = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
        self.axes = weight_axes(self.view)
        self.nodes = {n.name: n for n in self.view.nodes}
        self.data = data
        rng = np.random.default_rng(self.opt.seed)
        self.order = rng.integers(0, len(data.x_train), size=self.opt.steps * self.opt.batch)
        vi = rng.permutation(len(data.x_val))[: self.opt.max_val]
        self.xv, self.yv = data.x_val[vi], data.y_val[vi]
        self.in_scale = _input_scales(graph)
        self._feat: dict[tuple, dict] = {}
        self.last_predictions = np.zeros(0, dtype=np.int64)

    # ---- what is trained ------------------------------------------------------------------------------
    def trainable(self, layers: dict[str, float], bias_only) -> list[tuple]:
        """(parameter, mask or None, int8-domain scale or None) per trained tensor."""
        out = []
        for layer, frac in [*layers.items(), *((b, -1.0) for b in bias_only if b not in layers)]:
            n = self.nodes.get(layer)
            if n is None:
                continue  # a layer only the deployed graph has (a node the int8 conversion adds)
            for j, t in enumerate(n.inputs[1:3]):
                if not t or not self.module.tensor_keys.get(t, "").startswith("params.") or (frac < 0 and j == 0):
                    continue
                p = self.module.tensor(t)
                w_axis = self.axes.get(n.inputs[1], 0)
                axis = w_axis if j == 0 else 0
                mask = None
                if 0 <= frac < 1.0:
                    mask = torch.zeros_like(p)
                    mask.narrow(axis, 0, max(1, math.ceil(p.shape[axis] * frac))).fill_(1.0)
                scale = None
                if self.opt.weights == "int8":
                    scale = self._weight_scale(n, w_axis)
                    if j == 1:
                        scale = scale.reshape(-1) * self.in_scale.get(layer, 1.0)
                    else:
                        shape = [1] * p.dim()
                        shape[axis] = -1
                        scale = scale.reshape(shape)
                out.append((p, mask, scale))
        return out

    def _weight_scale(self, node, axis: int) -> torch.Tensor:
        w = self.start[self.module.tensor_keys[node.inputs[1]]]
        dims = [d for d in range(w.dim()) if d != axis]
        return (w.abs().amax(dim=dims) / 127.0).clamp_min(1e-12)

    def first_step(self, params) -> int:
        trained = {id(p) for p, _, _ in params}
        for i, (_, ins, _, _) in enumerate(self.module.steps):
            if any(i_ and self.module.tensor_keys.get(i_, "").startswith("params.")
                   and id(self.module.tensor(i_)) in trained for i_ in ins):
                return i
        return len(self.module.steps)

    # ---- frozen prefix, computed once -----------------------------------------------------------------
    def _features(self, first: int, which: str) -> dict[str, torch.Tensor]:
        """The tensors the steps from `first` on read that earlier steps produce (or the input), for every
        sample of the train (`which`="train") or validation split, with the start weights."""
        from engine.train.graphs import to_layout

        key = (first, which)
        if key in self._feat:
            return self._feat[key]
        steps = self.module.steps
        produced = set(self.module.input_names)
        for _, _, outs, _ in steps[:first]:
            produced.update(outs)
        need = {i for _, ins, _, _ in steps[first:] for i in ins if i in produced}
        need.update(o for o in self.module.output_names if o in produced)
        x = self.data.x_train if which == "train" else self.xv
        chunks: dict[str, list] = {k: [] for k in need}
        b = self.opt.batch
        with torch.no_grad():
            for i in range(0, len(x), b):
                xb, _ = _batch(x, i, b)
                env = self._env(to_layout(self.view, torch.from_numpy(xb)))
                for _, ins, outs, step in steps[:first]:
                    for o, y in zip(outs, step([env[i_] if i_ else None for i_ in ins], self.module)):
                        env[o] = y
                for k in need:  # padded to whole batches: the graph's reshapes have the batch in them
                    chunks[k].append(env[k])
        self._feat = {k: v for k, v in self._feat.items() if k[1] != which}  # one boundary per split at a time
        self._feat[key] = {k: torch.cat(v) for k, v in chunks.items()}
        return self._feat[key]

    def _env(self, x) -> dict:
        env = {self.module.input_names[0]: x}
        for name in self.module.tensor_keys:
            env[name] = self.module.tensor(name)
        return env

    def _forward(self, first: int, feats: dict, idx) -> torch.Tensor:
        env = self._env(None)
        env.update({k: v[idx] for k, v in feats.items()})
        for _, ins, outs, step in self.module.steps[first:]:
            for o, y in zip(outs, step([env[i_] if i_ else None for i_ in ins], self.module)):
                env[o] = y
        out = env[self.module.output_names[0]]
        return out.reshape(len(idx), -1)

    # ---- fine-tuning and accuracy ---------------------------------------------------------------------
    def run(self, layers: dict[str, float], bias_only=()) -> float:
        """Validation accuracy after fine-tuning `layers` (name -> fraction of output channels) and the biases
        of `bias_only`, from the start weights."""
        o = self.opt
        with torch_threads(1):
            self.module.load_state_dict(self.start)
            for p in self.module.parameters():
                p.requires_grad_(False)
            params = self.trainable(layers, bias_only)
            for p, _, _ in params:
                p.requires_grad_(True)
            first = self.first_step(params)
            feats = self._features(first, "train")  # before any update: the frozen prefix has the start weights
            self._features(first, "val")
            y = torch.from_numpy(self.data.y_train).long()
            bufs = [None] * len(params)
            self.losses = []
            for s in range(o.steps):
                idx = torch.from_numpy(self.order[s * o.batch:(s + 1) * o.batch])
                loss = torch.nn.functional.cross_entropy(self._forward(first, feats, idx), y[idx])
                self.losses.append(float(loss.detach()))
                for p, _, _ in params:
                    p.grad = None
                loss.backward()
                with torch.no_grad():
                    for k, (p, mask, scale) in enumerate(params):
                        g = p.grad if mask is None else p.grad * mask
                        if scale is not None:      # the gradient of the int8-domain tensor W / s
                            g = g * scale
                            if o.qas:
                                g = g / scale ** 2
                        if o.momentum:
                            bufs[k] = g if bufs[k] is None else bufs[k].mul_(o.momentum).add_(g)
                            g = bufs[k]
                        p.sub_(o.lr * (g * scale if scale is not None else g))  # W = s * W_int8
            return self._val_accuracy(first)

    def _val_accuracy(self, first: int) -> float:
        feats = self._features(first, "val")
        preds = []
        with torch.no_grad():
            for i in range(0, len(self.yv), self.opt.batch):
                idx = torch.arange(i, i + self.opt.batch)
                preds.append(self._forward(first, feats, idx).argmax(1).numpy())
        self.last_predictions = np.concatenate(preds)[: len(self.yv)] if preds else np.zeros(0, dtype=np.int64)
        return float((self.last_predictions == self.yv).mean()) if len(self.yv) else 0.0

    def accuracy(self, x=None, y=None) -> float:
        """Accuracy of the current weights on (x, y) (default: the validation samples)."""
        from engine.train.graphs import to_layout

        if x is None:
            x, y = self.xv, self.yv
        hits, b = 0, self.opt.batch
        with torch.no_grad(), torch_threads(1):
            for i in range(0, len(x), b):
                xb, n = _batch(x, i, b)
                out = self.module(to_layout(self.view, torch.from_numpy(xb)))
                out = out[0] if isinstance(out, (tuple, list)) else out
                hits += int((out.reshape(b, -1)[:n].argmax(1).numpy() == y[i:i + b]).sum())
        return hits / max(len(x), 1)

    def trained_graph(self, graph: Graph) -> Graph:
        """`graph` (BN folded, as trained here) with the module's current weights: e.g. the pre-trained start
        of a transfer task."""
        from engine.ir import Tensor
        from engine.passes.fold import fold_batchnorm
        from engine.train.graphs import adapt_input_layout

        out = fold_batchnorm(adapt_input_layout(graph, self.data.input_shape).copy())[0]
        for name, key in self.module.tensor_keys.items():
            t = out.tensors.get(name)
            if key.startswith("params.") and t is not None and t.data is not None:
                value = self.module.tensor(name).detach().numpy().astype(t.data.dtype).reshape(t.shape)
                out.tensors[name] = Tensor(t.name, t.shape, t.dtype, t.quant, value, dict(t.meta))
        return out


def _batch(x: np.ndarray, i: int, b: int) -> tuple[np.ndarray, int]:
    """Samples i .. i+b of x padded to b by repeating the last one (the graph's reshapes have the batch size in
    them), and how many are real."""
    xb = x[i:i + b]
    n = len(xb)
    return (np.concatenate([xb, np.repeat(xb[-1:], b - n, axis=0)]) if n < b else xb), n


def _input_scales(graph: Graph) -> dict[str, float]:
    """Per weighted layer of the deployed int8 graph: the scale s_x of its input (its int32 bias is b/(s_W s_x))."""
    from engine.ondevice.memory import deployed

    out = {}
    dg = deployed(graph)[0]
    for n in dg.nodes:
        t = dg.tensors.get(n.inputs[0]) if n.inputs else None
        q = getattr(t, "quant", None) if t is not None else None
        if q is not None and getattr(q, "scale", None) is not None:
            out[n.name] = float(np.asarray(q.scale).reshape(-1)[0])
    return out
