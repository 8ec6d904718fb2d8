"""Compressing a version: what the Compress page and `tinystudio compress` share.

    out = compress_version(graph, "prune-magnitude", {"sparsity": 0.5}, data, progress=...)
    out.result                  # engine.compress.CompressResult: before/after figures, the new graph, notes
    out.provenance              # what the new version stores as its params (action params, accuracy, dataset)
    pred = predict_effect(graph, "prune-magnitude", {"sparsity": 0.5, "epochs": 3}, data)  # no fine-tuning

A zoo model is randomly initialized: `compress_version(..., pretrain=(spec, epochs))` trains it on the data
first with the Train page's settings (TrainSettings: Adam lr 3e-3, batch 32, patience 5) and reports that under
`out.pretrained`. The dataset record in the provenance is the one a trained version carries (dataset_record),
so Export calibrates a compressed version on the same split and normalization.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Callable

from app.workflows.files import write_model
from app.workflows.train import TrainSettings, dataset_record, train_version
from engine.data import Dataset
from engine.ir import Graph

Progress = Callable[[float, str], None]

# Compression actions that make sense on an untrained model: the others (quantization accuracy, pruning by
# importance, QAT, distillation) measure or keep what the weights learned, so the page warns before running them.
NO_TRAINING_NEEDED = ("fold-bn",)


@dataclass
class CompressOutcome:
    result: object  # engine.compress.CompressResult
    pretrained: dict | None  # {"epochs_run", "accuracy", "note"} when a zoo model was trained first
    provenance: dict  # the new version's params: the action's params, "accuracy" and "dataset"

    def to_json(self) -> dict:
        return {"pretrained": self.pretrained, **self.result.to_json(), "provenance": self.provenance}


def compress_version(graph: Graph, action: str, params: dict, data: Dataset | None, *, teacher: Graph | None = None,
                     progress: Progress | None = None, seed: int = 0,
                     pretrain: tuple[str, int] | None = None) -> CompressOutcome:
    """Run one compression action (engine.compress.compress) on `graph`, after training it first when
    `pretrain` = (zoo spec, most epochs) is given and there is data."""
    from engine.compress import compress

    pretrained = None
    if pretrain is not None and data is not None:
        spec, epochs = pretrain
        trained = train_version(graph, data, TrainSettings(epochs=epochs, seed=seed), progress=progress)
        graph, rep = trained.graph, trained.report
        pretrained = {"epochs_run": rep.epochs_run, "accuracy": rep.accuracy,
                      "note": f"{spec} is randomly initialized: trained on {data.name} for {rep.epochs_run} "
                              "epochs before compressing (--no-train skips this)"}
    res = compress(graph, action, params, data, teacher=teacher, progress=progress, seed=seed)
    doc = res.to_json()
    provenance = {**doc["params"], "accuracy": res.after.get("accuracy"),
                  "dataset": None if data is None else dataset_record(data, seed)}
    return CompressOutcome(res, pretrained, provenance)


def predict_effect(graph: Graph, action: str, params: dict, data: Dataset | None, *,
                   teacher: Graph | None = None) -> dict:
    """The same action with its fine-tuning switched off (epochs 0, where it has epochs): the structural effect
    (MACs, bytes, arena) is exact, the accuracy is what the user would get before fine-tuning."""
    from engine.compress import compress, get_action

    quick = {**params, **({"epochs": 0} if "epochs" in get_action(action).params else {})}
    return compress(graph, action, quick, data, teacher=teacher).to_json()


def accepted_params(result: dict) -> dict:
    """The params a compression job's result (compress_job) is stored with when the user accepts it."""
    if isinstance(result.get("provenance"), dict):
        return result["provenance"]
    # a job finished by an older studio: the fields it kept
    return {**result["params"], "accuracy": result["after"].get("accuracy"), "dataset": result.get("dataset")}


def compress_job(get_graph: Callable[[int], Graph], version_id: int, teacher_id: int | None, action: str,
                 params: dict, data: Dataset | None):
    """The work function for app.jobs.submit: compress the version (on a worker: app.job_executor) and keep the new graph in a temporary
    .tsgraph (the candidate) until the user accepts or discards it."""

    def work(progress):
        from app.job_executor import run_remote  # the action runs on a worker process, not in the server

        teacher = get_graph(teacher_id) if teacher_id else None
        out = run_remote(compress_version, get_graph(version_id), action, params, data, teacher=teacher,
                         progress=progress)
        fd, path = tempfile.mkstemp(prefix="tinystudio-candidate-", suffix=".tsgraph")
        os.close(fd)
        write_model(out.result.graph, path)
        return {"candidate": path, "version": version_id, "dataset": out.provenance["dataset"],
                **out.to_json()}

    return work


def result_trained(base_trained: bool, action: str, params: dict) -> bool:
    """Is the result of a compression action on a version trained? Fine-tuning on data trains it."""
    if base_trained:
        return True
    from engine.compress import ACTIONS

    spec = ACTIONS.get(action)
    return bool(spec and spec.trains and params.get("epochs", 1) and params.get("epochs", 1) > 0)


def without_untrained_accuracy(rows: list[dict], trained: bool) -> list[dict]:
    """Figure rows ({"figure": ...}) without the accuracy row when the model is untrained (it means nothing)."""
    return rows if trained else [r for r in rows if r.get("key", r.get("figure")) != "accuracy"]
