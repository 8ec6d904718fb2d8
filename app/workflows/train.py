"""Training a version on a data set: what the Train page and `tinystudio train` share.

    graph, note = fit_to_data(graph, data, zoo_spec="zoo:lenet5")     # a zoo model rebuilt for the data
    res = train_version(graph, data, TrainSettings(epochs=10), progress=..., on_epoch=...)
    res.graph, res.report, res.provenance       # provenance: what the new version stores (params)

The provenance is the record a trained version carries: accuracy (validation, 0..1), the data set (source,
name, sample counts, split, normalization), the training settings and the epochs run. The Train page stores
it as the version's params (action "train"); the CLI prints it under "provenance" in `train --json`, with the
same field names.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

from engine.data import Dataset
from engine.errors import TinyStudioError
from engine.ir import Graph

VAL_FRACTION = 0.2  # engine.data.load_dataset's default: what the page and the CLI split with


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 20
    lr: float = 3e-3
    batch_size: int = 32
    seed: int = 0
    patience: int | None = 5

    def check(self) -> "TrainSettings":
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or not 1 <= self.epochs <= 1000:
            raise TinyStudioError(f"epochs must be a whole number from 1 to 1000, got {self.epochs!r}")
        if not isinstance(self.lr, (int, float)) or not 0 < self.lr <= 1:
            raise TinyStudioError(f"learning rate must be in (0, 1], got {self.lr!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or not 1 <= self.batch_size \
                <= 4096:
            raise TinyStudioError(f"batch size must be a whole number from 1 to 4096, got {self.batch_size!r}")
        return self


@dataclass
class TrainResult:
    graph: Graph
    report: object  # engine.train.TrainReport
    provenance: dict


def dataset_record(data: Dataset, seed: int = 0) -> dict:
    """The data set as a version records it: where it came from, its split and its normalization."""
    return {"source": data.source, "name": data.name, "task": data.task, "classes": data.classes,
            "class_names": list(data.class_names), "input_shape": list(data.input_shape),
            "train": int(len(data.x_train)), "val": int(len(data.x_val)),
            "split": {"seed": seed, "val_fraction": VAL_FRACTION, "stratified": data.task == "classification"},
            "normalization": data.normalization}


def fit_to_data(graph: Graph, data: Dataset, zoo_spec: str | None = None, seed: int = 0) -> tuple[Graph, str | None]:
    """`graph` when `data` feeds it; else, for an unchanged zoo model (`zoo_spec`), the zoo model rebuilt for the
    data's sample shape and classes as `tinystudio train` does (engine.train.adapt_zoo), with a note saying so.
    Otherwise a one-line error naming both shapes."""
    from engine.train.graphs import data_mismatch

    why = data_mismatch(graph, data)
    if why is None:
        out_ok = _output_mismatch(graph, data)
        if out_ok is None:
            return graph, None
        why = out_ok
    if zoo_spec and zoo_spec.strip().lower().startswith("zoo:"):
        from engine.train import adapt_zoo

        g = adapt_zoo(zoo_spec, data, seed=seed)
        shape = "x".join(map(str, data.input_shape))
        return g, (f"{zoo_spec} rebuilt for data set '{data.name}' ({shape} samples, {data.classes} classes): "
                   f"{g.name}" + (" with a resize in front" if g.meta.get("input_resize") else ""))
    raise TinyStudioError(why)


def _output_mismatch(graph: Graph, data: Dataset) -> str | None:
    from engine.train.graphs import check_outputs, logits_view

    try:
        check_outputs(logits_view(graph), data, f"graph '{graph.name}'")
    except TinyStudioError as e:
        return str(e)
    return None


def train_version(graph: Graph, data: Dataset, settings: TrainSettings,
                  progress: Callable[[float, str], None] | None = None,
                  on_epoch: Callable[[dict], None] | None = None, adapted: str | None = None) -> TrainResult:
    """Train `graph` on `data` (engine.train.train) and build the provenance the new version carries."""
    from engine.train import train

    s = settings.check()
    trained, rep = train(graph, data, epochs=s.epochs, lr=float(s.lr), batch_size=s.batch_size, seed=s.seed,
                         patience=s.patience, progress=progress, on_epoch=on_epoch)
    acc = rep.accuracy
    from engine.train.graphs import is_int8

    if is_int8(trained):  # trained through simulated quantization: the stored figure is the int8 kernels' own
        from engine.train import evaluate

        acc = evaluate(trained, data)["accuracy"]
    prov = {"trained": True, "accuracy": acc, "loss": rep.loss, "dataset": dataset_record(data, s.seed),
            "settings": asdict(s), "epochs_run": rep.epochs_run, "best_epoch": rep.best_epoch,
            "early_stopped": rep.early_stopped, "seconds": round(rep.seconds, 2)}
    if adapted:
        prov["adapted"] = adapted
    return TrainResult(trained, rep, prov)


def per_class_accuracy(confusion: list[list[int]] | None, class_names=()) -> list[dict]:
    """Rows {"class", "samples", "correct", "accuracy"} from a confusion matrix (rows: true class)."""
    rows = []
    for i, row in enumerate(confusion or []):
        n = int(sum(row))
        name = class_names[i] if i < len(class_names) else str(i)
        rows.append({"class": name, "samples": n, "correct": int(row[i]), "accuracy": row[i] / n if n else None})
    return rows
