"""train(): fit any IR graph to a Dataset through its PyTorch form (engine.exporters.torch_export), on CPU.

    g2, rep = train(graph, load_dataset("digits"), epochs=10, seed=0)
    rep.accuracy, rep.history[-1], rep.confusion, rep.early_stopped

Adam on cross-entropy (classification; a final Softmax is trained through its logits) or mean squared error
(regression, reconstruction). Early stopping watches the validation loss; the returned graph holds the
weights of the best epoch. Deterministic for a seed: shuffling uses numpy's generator, dropout and
initialisation torch's, inside a forked RNG with deterministic algorithms on.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from engine.data import Dataset, DataError
from engine.errors import TinyStudioError
from engine.exporters.torch_export import GraphModule, from_torch_weights
from engine.ir import Graph
from engine.train.fakequant import WeightFn, weight_quantizer
from engine.train.graphs import (adapt_input_layout, check_fits, check_outputs, is_int8, logits_view, rebatch,
                                 to_layout)
from engine.train.metrics import forward_batches, metrics

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class TrainReport:
    """accuracy: validation accuracy 0..1 of the returned (best) weights; R^2 for regression/reconstruction.
    history: one {"epoch", "train_loss", "val_loss", "val_accuracy", "seconds"} per epoch run."""

    accuracy: float
    history: tuple[dict, ...]
    confusion: list[list[int]] | None
    epochs_run: int
    early_stopped: bool
    seconds: float
    seed: int
    best_epoch: int = 0
    loss: float = 0.0

    def to_json(self) -> dict:
        return {"accuracy": self.accuracy, "loss": self.loss, "history": list(self.history),
                "confusion": self.confusion, "epochs_run": self.epochs_run, "best_epoch": self.best_epoch,
                "early_stopped": self.early_stopped, "seconds": self.seconds, "seed": self.seed}


class TrainModule(GraphModule):
    """GraphModule whose trainable constants pass through `weight_fn` (fake quantization) in forward.

    from_torch_weights reads constants through tensor() too, so the written-back weights are the ones the
    validation measured (already on the quantization grid)."""

    def __init__(self, graph: Graph, weight_fn: WeightFn | None = None, simulate_quant: bool = False):
        super().__init__(graph, simulate_quant)
        self.weight_fn = weight_fn

    def tensor(self, name: str) -> torch.Tensor:
        holder, key = self._const_attr[name]
        if holder == "params":
            p = self.params[key]
            return p if self.weight_fn is None else self.weight_fn(name, p)
        return getattr(self.consts, key)


def _constant_names(graph: Graph, module: GraphModule, names: Iterable[str], what: str) -> set[str]:
    """Constant names, with node names expanded to the node's trainable constants."""
    out: set[str] = set()
    nodes = {n.name: n for n in graph.nodes}
    for name in names:
        if name in module.tensor_keys:
            out.add(name)
        elif name in nodes:
            out.update(i for i in nodes[name].inputs if i in module.tensor_keys)
        else:
            raise TinyStudioError(f"{what}: '{name}' is neither a constant nor a node of graph '{graph.name}'")
    return out


def _masks(module: GraphModule, weight_mask: dict | None) -> dict[str, torch.Tensor]:
    masks = {}
    for name, m in (weight_mask or {}).items():
        if name not in module.tensor_keys:
            raise TinyStudioError(f"weight_mask: '{name}' is not a constant of the graph")
        t = module.tensor_keys[name]
        value = module.params[t.split(".", 1)[1]] if t.startswith("params.") else None
        if value is None:
            raise TinyStudioError(f"weight_mask: '{name}' is not a trainable constant")
        m = torch.as_tensor(np.asarray(m), dtype=value.dtype)
        if tuple(m.shape) != tuple(value.shape):
            raise TinyStudioError(f"weight_mask: mask for '{name}' has shape {list(m.shape)}, the constant "
                                  f"{list(value.shape)}")
        masks[name] = (value, m)
    return masks


def _loss(out: torch.Tensor, target: torch.Tensor, task: str, soft: torch.Tensor | None, alpha: float,
          temp: float) -> torch.Tensor:
    if task == "classification":
        hard = F.cross_entropy(out, target)
        if soft is None:
            return hard
        kd = F.kl_div(F.log_softmax(out / temp, dim=1), F.log_softmax(soft / temp, dim=1), reduction="batchmean",
                      log_target=True) * temp * temp  # Hinton et al.: T^2 keeps gradient scale across T
        return alpha * kd + (1.0 - alpha) * hard
    hard = F.mse_loss(out, target)
    return hard if soft is None else alpha * F.mse_loss(out, soft) + (1.0 - alpha) * hard


def _trainable(graph: Graph, module: GraphModule, freeze, weight_mask) -> tuple[list, dict]:
    """The parameters Adam updates (all but the frozen ones) and the pruning masks, already applied."""
    frozen = _constant_names(graph, module, freeze or (), "freeze")
    masks = _masks(module, weight_mask)
    params = []
    for name, key in module.tensor_keys.items():
        if key.startswith("params."):
            p = module.params[key.split(".", 1)[1]]
            p.requires_grad_(name not in frozen)
            if name not in frozen:
                params.append(p)
    if not params:
        raise TinyStudioError(f"graph '{graph.name}' has nothing to train (no trainable constants left)")
    with torch.no_grad():
        for value, m in masks.values():
            value.mul_(m)
    return params, masks


@dataclass
class _Step:
    """One epoch of mini-batch updates."""

    module: TrainModule
    opt: torch.optim.Optimizer
    masks: dict
    view: Graph
    data: Dataset
    soft: torch.Tensor | None
    alpha: float
    temp: float
    augment: Callable | None = None
    aug_rng: np.random.Generator | None = None

    def epoch(self, order: np.ndarray, batch: int, tick: Callable[[float], None]) -> float:
        self.module.train()
        steps = len(order) // batch  # the last partial batch is dropped: the module's batch size is fixed
        y = torch.from_numpy(self.data.y_train)
        total = 0.0
        for s in range(steps):
            idx = torch.from_numpy(order[s * batch:(s + 1) * batch])
            xb = self.data.x_train[idx.numpy()]
            if self.augment is not None:
                xb = np.ascontiguousarray(self.augment(xb, self.aug_rng), dtype=xb.dtype)
            outs = self.module(to_layout(self.view, torch.from_numpy(xb)))
            outs = outs if isinstance(outs, tuple) else (outs,)
            target = y[idx] if self.data.task == "classification" else y[idx].reshape(batch, -1).float()
            soft = self.soft[idx] if self.soft is not None else None
            loss = sum(_loss(o.reshape(batch, -1), target, self.data.task, soft, self.alpha, self.temp)
                       for o in outs) / len(outs)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            for value, m in self.masks.values():
                if value.grad is not None:
                    value.grad.mul_(m)
            self.opt.step()
            with torch.no_grad():
                for value, m in self.masks.values():
                    value.mul_(m)  # Adam's momentum would otherwise revive pruned weights
            total += float(loss.detach())
            if steps >= 50 and (s + 1) % (steps // 5) == 0 and s + 1 < steps:  # long epochs only
                tick((s + 1) / steps)
        return total / max(steps, 1)


def _teacher_outputs(teacher: Graph, data: Dataset, batch: int) -> torch.Tensor:
    teacher = adapt_input_layout(teacher, data.input_shape)
    check_fits(teacher, data.input_shape, data.name)
    view = logits_view(teacher)
    check_outputs(view, data, "teacher")
    b = min(batch, len(data.x_train))
    module = GraphModule(rebatch(view, b), simulate_quant=is_int8(teacher))
    return forward_batches(module, view, data.x_train, b)[0]


def train(graph: Graph, data: Dataset, *, epochs: int = 10, lr: float = 1e-3, batch_size: int = 64, seed: int = 0,
          patience: int | None = 3, progress: Progress | None = None, teacher: Graph | None = None,
          distill_alpha: float = 0.5, distill_temperature: float = 4.0, weight_mask: dict | None = None,
          fake_quant=None, freeze: Iterable[str] | None = None, threads: int | None = 1,
          on_epoch: Callable[[dict], None] | None = None, weight_decay: float = 0.0,
          augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None) -> tuple[Graph, TrainReport]:
    """Train `graph` on `data`; returns the graph with the best-validation-loss weights and a TrainReport.

    patience: epochs without a lower validation loss before stopping (None or 0: never stop early).
    progress(fraction, message): called during training; raising from it cancels the run.
    teacher: a graph whose outputs are distilled into the student (KL on softened logits, weight distill_alpha).
    weight_mask: {constant name: 0/1 array}; masked weights are zeroed and stay zero (pruning fine-tune).
    fake_quant: a spec or callable for quantization-aware training (engine.train.fakequant).
    freeze: constant or node names whose weights are not trained.
    on_epoch(record): called after each epoch with its history record (live curves in the studio).
    weight_decay: > 0 trains with AdamW's decoupled weight decay (0: plain Adam, as before).
    augment(x_batch, rng) -> x_batch: applied to each training batch (samples layout), its own seeded rng.
    threads: torch CPU threads while training (1 by default: small models train fastest on one thread, and a
    busy machine does not slow them down by oversubscription); None keeps torch's setting.
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise TinyStudioError(f"epochs must be a positive integer, got {epochs!r}")
    if not lr > 0:
        raise TinyStudioError(f"learning rate must be positive, got {lr!r}")
    if not 0.0 <= weight_decay < 1.0:
        raise TinyStudioError(f"weight decay must be in 0..1, got {weight_decay!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise TinyStudioError(f"batch size must be a positive integer, got {batch_size!r}")
    if not 0.0 <= distill_alpha <= 1.0 or distill_temperature <= 0:
        raise TinyStudioError("distill_alpha must be in 0..1 and distill_temperature positive")
    n = len(data.x_train)
    if n < 2 or len(data.x_val) < 1:
        raise DataError(f"data set '{data.name}' needs at least 2 training and 1 validation sample")
    graph = adapt_input_layout(graph, data.input_shape)
    check_fits(graph, data.input_shape, data.name)
    view = logits_view(graph)
    check_outputs(view, data, f"graph '{graph.name}'")
    batch = min(batch_size, n)
    bview = rebatch(view, batch)
    start = time.perf_counter()
    say = progress or (lambda f, m: None)
    say(0.0, f"training {graph.name} on {data.name}: {n} samples, batches of {batch}")
    det, nthreads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True)
        if threads:
            torch.set_num_threads(threads)
        try:
            soft = _teacher_outputs(teacher, data, batch) if teacher is not None else None
            module = TrainModule(bview, weight_quantizer(graph, fake_quant) if fake_quant is not None else None,
                                 simulate_quant=is_int8(graph))
            params, masks = _trainable(graph, module, freeze, weight_mask)
            opt = (torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay) if weight_decay
                   else torch.optim.Adam(params, lr=lr))
            rng = np.random.default_rng(seed)
            history: list[dict] = []
            best: tuple[float, int, dict, dict] | None = None
            bad, stopped = 0, False
            step = _Step(module, opt, masks, view, data, soft, distill_alpha, distill_temperature, augment,
                         np.random.default_rng(seed + 1))  # its own rng: the batch order stays as without it
            for epoch in range(1, epochs + 1):
                t0 = time.perf_counter()
                train_loss = step.epoch(rng.permutation(n), batch,
                                        lambda f: say((epoch - 1 + f) / epochs, f"epoch {epoch}/{epochs}"))
                if not np.isfinite(train_loss):
                    raise TinyStudioError(f"training diverged in epoch {epoch} (loss {train_loss}); "
                                          f"try a lower learning rate than {lr:g}")
                val = metrics(forward_batches(module, view, data.x_val, batch)[0], data.y_val, data.task,
                              data.classes)
                rec = {"epoch": epoch, "train_loss": train_loss, "val_loss": val["loss"],
                       "val_accuracy": val["accuracy"], "seconds": time.perf_counter() - t0}
                history.append(rec)
                if on_epoch is not None:
                    on_epoch(dict(rec))
                say(epoch / epochs, f"epoch {epoch}/{epochs}: train loss {train_loss:.4f}, val loss "
                                    f"{val['loss']:.4f}, val accuracy {val['accuracy']:.2%}")
                if best is None or val["loss"] < best[0]:
                    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
                    best, bad = (val["loss"], epoch, state, val), 0
                else:
                    bad += 1
                    if patience and bad >= patience and epoch < epochs:
                        stopped = True
                        break
            module.load_state_dict(best[2])
            trained = from_torch_weights(graph, module)
        finally:
            torch.use_deterministic_algorithms(det)
            torch.set_num_threads(nthreads)
    val = best[3]
    trained.meta["training"] = {"dataset": data.to_json(), "accuracy": val["accuracy"], "epochs_run": len(history),
                                "best_epoch": best[1], "seed": seed, "lr": lr, "batch_size": batch}
    if weight_decay:
        trained.meta["training"]["weight_decay"] = weight_decay
    report = TrainReport(val["accuracy"], tuple(history), val["confusion"], len(history), stopped,
                         time.perf_counter() - start, seed, best[1], val["loss"])
    return trained, report
