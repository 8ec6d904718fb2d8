"""One trial, as a worker process runs it: build the candidate, profile it as deployed, reject it at no
training cost when it breaks a constraint, else train it (reporting each epoch's validation accuracy to the
study, pruned by successive halving), apply the compression policy, measure it again and save the model.

    rec = run_trial(task)      # a TrialRecord.to_json() dict; the same dict is stored in the study

The function is self-contained (it opens the study's JournalStorage file itself), so Dask can run it on any
worker that reaches the storage and the output folder; a retried trial (its worker died) counts its attempts.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

from engine.errors import TinyStudioError
from engine.exporters.files import write_model
from engine.search.spaces import Space

_DATA: dict[tuple, object] = {}  # per worker process: (dataset, seed) -> Dataset, loaded once


@dataclass(frozen=True)
class TrialTask:
    study: str
    storage: str  # the JournalStorage file
    trial_id: int
    number: int
    params: dict
    space: Space
    dataset: str
    seed: int
    mcu: str
    runtime: str
    max_sram: int | None
    max_flash: int | None
    max_latency_ms: float | None
    epochs: int
    out_dir: str
    strategy: str
    objectives: tuple[str, ...] = ("accuracy",)
    prune: bool = True


class _Pruned(Exception):
    def __init__(self, message: str, accuracy: float):
        super().__init__(message)
        self.accuracy = accuracy  # at the rung where it stopped: what the samplers learn from a pruned trial


def open_storage(path: str):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(path)))


def dataset(name: str, seed: int):
    key = (name, seed)
    if key not in _DATA:
        from engine.data import load_dataset

        _DATA.clear()  # one data set per worker at a time: they can be large
        _DATA[key] = load_dataset(name, seed=seed)
    return _DATA[key]


def record(task: TrialTask, state: str, start: float, m: dict | None = None, accuracy: float | None = None,
           broke: str | None = None, error: str | None = None, model: str | None = None, attempts: int = 1) -> dict:
    m = m or {}
    return {"trial": task.number, "state": state, "params": _jsonable(task.params), "accuracy": accuracy,
            "latency_ms": m.get("latency_ms"), "ram_bytes": m.get("ram_bytes"), "flash_bytes": m.get("flash_bytes"),
            "energy_uj": m.get("energy_uj"), "macs": m.get("macs"), "broke": broke, "error": error, "model": model,
            "seconds": round(time.perf_counter() - start, 3), "strategy": task.strategy, "attempts": attempts}


def _jsonable(params: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}


def structure_of(graph, params: dict, data):
    """The candidate as it will be deployed, structurally: channel pruning applied (on the random weights:
    which channels go depends on the weights, how many does not), so the pre-filter sees the real sizes."""
    ratio = float(params.get("compress.prune", 0.0) or 0.0)
    if ratio <= 0:
        return graph
    from engine.compress import compress

    return compress(graph, "prune-channels", {"target": "channels", "keep": 1.0 - ratio, "criterion": "l1",
                                              "epochs": 0}, data, seed=0).graph


def _compressed(graph, params: dict, data, seed: int) -> tuple[object, float | None]:
    """The trained graph under the compression policy, and its accuracy (None: unchanged)."""
    from engine.compress import compress

    acc = None
    ratio = float(params.get("compress.prune", 0.0) or 0.0)
    if ratio > 0:
        res = compress(graph, "prune-channels", {"target": "channels", "keep": 1.0 - ratio, "criterion": "l1",
                                                 "epochs": 1}, data, seed=seed)
        graph, acc = res.graph, res.after.get("accuracy")
    if params.get("compress.weights") == "mixed-int4":
        # Sensitivity on 256 validation samples: enough to rank layers, bounded cost per trial.
        res = compress(graph, "mixed-precision", {"target": "accuracy", "max_drop": 1.0, "eval_samples": 256},
                       data, seed=seed)
        graph, acc = res.graph, res.after.get("accuracy")
    return graph, acc


def _save(graph, out_dir: str, number: int) -> str:
    """The trained model under out_dir: .onnx for float graphs, .tsgraph for int8/int4 ones (mixed precision)."""
    from engine.deployed import precision_of

    os.makedirs(out_dir, exist_ok=True)
    ext = ".onnx" if precision_of(graph) == "float32" else ".tsgraph"
    path = os.path.join(out_dir, f"trial_{number:04d}{ext}")
    write_model(graph, path)
    return os.path.abspath(path)


def run_trial(task: TrialTask) -> dict:
    """Run `task` to a record (never raises for a user error or a bug inside the trial: state "failed")."""
    start = time.perf_counter()
    storage = open_storage(task.storage)
    attrs = storage.get_trial(task.trial_id).user_attrs
    attempts = int(attrs.get("attempts", 0)) + 1
    storage.set_trial_user_attr(task.trial_id, "attempts", attempts)
    m = None
    try:
        data = dataset(task.dataset, task.seed)
        graph = task.space.build(task.params, data.input_shape, data.classes, task.seed)
        from engine.search.objectives import broken_constraint, deployed_figures

        m = deployed_figures(structure_of(graph, task.params, data), task.mcu, task.runtime)
        broke = broken_constraint(m, task.max_sram, task.max_flash, task.max_latency_ms)
        if broke:
            return record(task, "rejected", start, m, broke=broke, attempts=attempts)
        costs = tuple(o for o in task.objectives if o != "accuracy")
        storage.set_trial_user_attr(task.trial_id, "costs", {o: m[o] for o in costs})
        trained, acc = _train(task, storage, graph, data, {o: m[o] for o in costs})
        final, acc2 = _compressed(trained, task.params, data, task.seed)
        if final is not trained:
            m = deployed_figures(final, task.mcu, task.runtime)  # measured again: pruning/int4 changed it
            acc = acc2 if acc2 is not None else acc
        model = _save(final, task.out_dir, task.number)
        return record(task, "trained", start, m, accuracy=float(acc), model=model, attempts=attempts)
    except _Pruned as e:
        return {**record(task, "pruned", start, m, error=str(e), attempts=attempts), "rung_accuracy": e.accuracy}
    except TinyStudioError as e:
        return record(task, "failed", start, m, error=str(e), attempts=attempts)
    except Exception as e:  # a bug in one candidate must not end the study; the record says what happened
        return record(task, "failed", start, m, error=f"internal error: {type(e).__name__}: {e}", attempts=attempts)


def _train(task: TrialTask, storage, graph, data, costs: dict):
    from engine.search.pruning import peers_at, rungs, should_prune
    from engine.train import train

    p = task.params
    epochs = max(1, int(round(task.epochs * float(p.get("train.epochs_factor", 1.0)))))
    judge = set(rungs(epochs)) if task.prune else set()
    study = None

    def on_epoch(rec: dict) -> None:
        nonlocal study
        epoch, acc = int(rec["epoch"]), float(rec["val_accuracy"])
        storage.set_trial_intermediate_value(task.trial_id, epoch, acc)
        if epoch in judge:
            if study is None:
                import optuna

                study = optuna.load_study(study_name=task.study, storage=storage)
            peers = peers_at(study, epoch, task.number, tuple(costs))
            if should_prune((acc, tuple(costs.values())), peers):
                what = "accuracy" if not costs else f"accuracy and {', '.join(costs)}"
                raise _Pruned(f"successive halving at epoch {epoch}: by {what} (accuracy {acc:.4f}) outside the "
                              f"top third of {len(peers) + 1} trials", acc)

    from engine.search.augment import augmenter

    trained, rep = train(graph, data, epochs=epochs, lr=float(p.get("train.lr", 3e-3)),
                         batch_size=int(p.get("train.batch_size", 32)), seed=task.seed, patience=None,
                         on_epoch=on_epoch, weight_decay=float(p.get("train.weight_decay", 0.0)),
                         augment=augmenter(str(p.get("train.augment", "none")), data))
    return trained, rep.accuracy
