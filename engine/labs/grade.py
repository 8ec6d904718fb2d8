"""Grade a model against a challenge: profile as deployed, accuracy on the held-out test split, export and
bit-exact host verification of the C. The offline grader (`tinystudio grade`) and a lab server call this.

    res = grade(load_challenge("builtin:kws64k"), graph)
    res.passed, res.score, [c.to_json() for c in res.checks]    # {"name", "value", "limit", "passed", "detail"}
    res.to_json()        # {"passed", "score", "checks": [...], ...}; a failure: {"passed": false, "error": ...}

Nothing is written again here: a float model is quantized by the export's own PTQ (engine.passes.ptq,
calibrated on the data set's training split as the studio's export does), and that one int8 graph is
profiled (engine.profile + hwmodels), evaluated (engine.train.evaluate, the int8 kernels) and exported
(engine.export.export_model, verified on the host with gcc). Every step is seeded, so grading the same
model twice gives the same result. A model that does not fit gets a verdict per limit; only a model the
grader cannot run at all (or a crash) gives "not graded: why".
"""
from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.errors import TinyStudioError, one_line
from engine.ir import Graph
from engine.labs.challenge import LIMITS, Challenge

CALIBRATION_SAMPLES = 256  # as many training samples as the studio's export calibrates on


@dataclass(frozen=True)
class Check:
    name: str  # sram | flash | latency | energy | accuracy | export | int8
    value: object
    limit: object
    passed: bool
    detail: str = ""  # how the value was obtained

    def to_json(self) -> dict:
        return {"name": self.name, "value": self.value, "limit": self.limit, "passed": self.passed,
                "detail": self.detail}


@dataclass(frozen=True)
class GradeResult:
    passed: bool
    score: float | None
    checks: tuple[Check, ...] = ()
    error: str | None = None  # "not graded: why"
    info: dict = field(default_factory=dict)  # challenge, model, target, split, precision: context, not verdicts

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def to_json(self) -> dict:
        doc = {"passed": self.passed, "score": self.score, "checks": [c.to_json() for c in self.checks]}
        if self.error:
            doc["error"] = self.error
        return {**doc, **self.info}


def grade(challenge: Challenge, graph: Graph, data=None) -> GradeResult:
    """Grade `graph` (float or int8) against `challenge`. `data`: the loaded data set, when the caller has it.
    Never raises: a failure is a result with passed False and error "not graded: why"."""
    try:
        return _grade(challenge, graph, data)
    except TinyStudioError as e:
        return not_graded(one_line(str(e)))
    except Exception as e:  # noqa: BLE001 - a grader crash must mark the submission, never lose it
        return not_graded(f"the grader failed ({type(e).__name__}: {one_line(str(e))})")


def not_graded(why: str) -> GradeResult:
    return GradeResult(False, None, (), f"not graded: {why}")


def counted(challenge: Challenge, results: list[GradeResult]) -> GradeResult | None:
    """The submission that counts among `results` (oldest first): the last graded one, or the best graded one
    (highest score, then passed; the later one of equals). None when none was graded."""
    graded = [r for r in results if r.error is None]
    if not graded:
        return None
    if challenge.counts == "last":
        return graded[-1]
    return max(reversed(graded), key=lambda r: (r.score if r.score is not None else float("-inf"), r.passed))


def held_out_data(challenge: Challenge, data) -> tuple[np.ndarray, np.ndarray, str]:
    """(x, y, split name): the challenge's hidden test file when it names one, else the data set's held-out
    test split where it has one (keywords: the test voices), else its validation split; at most
    challenge.test_samples of them, evenly spaced (deterministic)."""
    if challenge.test_dataset:
        x, y = _hidden_test(challenge, data)
        split = "hidden test"
    elif data.source == "builtin:keywords":
        from engine.data.keywords import held_out_split

        x, y = held_out_split(data)
        split = "test"
    else:
        x, y, split = data.x_val, data.y_val, "validation"
    n = challenge.test_samples
    if n and n < len(x):
        idx = np.unique(np.linspace(0, len(x) - 1, n).round().astype(np.int64))
        x, y = x[idx], y[idx]
    return x, y, split


def _hidden_test(challenge: Challenge, data) -> tuple[np.ndarray, np.ndarray]:
    """Every sample of the challenge's test file, normalized as the training samples were."""
    from engine.data import load_dataset
    from engine.data.dataset import normalize

    t = load_dataset(challenge.test_dataset, task=data.task, normalize_inputs=False)
    if t.input_shape != data.input_shape:
        raise TinyStudioError(f"{Path(challenge.test_dataset).name}: test samples have shape {list(t.input_shape)}, "
                              f"the data set's {list(data.input_shape)}")
    x, y = np.concatenate([t.x_train, t.x_val]), np.concatenate([t.y_train, t.y_val])
    return (normalize(x, data.normalization) if data.normalization else x), y


def deployed_graph(graph: Graph, data) -> tuple[Graph, str]:
    """The int8 graph the export generates C from: the model itself when it is int8, else PTQ calibrated on
    the first training samples."""
    from engine.data import dataset_feeds
    from engine.deployed import precision_of
    from engine.passes.ptq import quantize_model
    from engine.train.graphs import adapt_input_layout, check_fits

    if precision_of(graph) == "int8":
        return graph, "int8, as submitted"
    g = adapt_input_layout(graph, data.input_shape)
    check_fits(g, data.input_shape, data.name)
    feeds = dataset_feeds(g, data.x_train, limit=CALIBRATION_SAMPLES)
    qgraph, _ = quantize_model(g, calibration=feeds)
    return qgraph, (f"float as submitted; graded as deployed: int8 after post-training quantization calibrated on "
                    f"{len(feeds)} training samples")


def _grade(challenge: Challenge, graph: Graph, data) -> GradeResult:
    from engine.data import load_dataset
    from engine.deployed import precision_of
    from engine.profile import profile_graph
    from engine.serialize import content_hash

    if data is None:
        data = load_dataset(challenge.dataset)
    submitted = precision_of(graph)
    qgraph, precision_note = deployed_graph(graph, data)
    info = {"challenge": challenge.title, "model": {"name": graph.name, "hash": content_hash(graph),
                                                    "precision": submitted},
            "target": {"mcu": challenge.mcu, "runtime": challenge.runtime}, "precision_note": precision_note}
    prof = profile_graph(qgraph, [(challenge.mcu, challenge.runtime)], schedule=challenge.schedule,
                         max_mac_overhead=challenge.max_mac_overhead)
    est = prof.targets[0]
    where = f"estimate on {est.mcu} + {est.runtime}, int8 as deployed"
    if challenge.schedule != "layer":
        info["schedule"] = prof.schedule_json()
        where += f", {prof.plan.schedule.kind} schedule"
    checks: list[Check] = []
    for key, cap, value in (("sram_bytes", est.sram_bytes, est.ram_bytes),
                            ("flash_bytes", est.flash_capacity_bytes, est.flash_bytes)):
        limit = challenge.limits.get(key, cap)
        whose = "the challenge's limit" if key in challenge.limits else f"{est.mcu}'s capacity"
        checks.append(Check(LIMITS[key], int(value), int(limit), value <= limit, f"{where}; limit: {whose}"))
    for key, value in (("latency_ms", round(est.latency_ms, 4)), ("energy_uj", round(est.energy_uj, 3))):
        if key in challenge.limits:
            checks.append(Check(LIMITS[key], value, challenge.limits[key], value <= challenge.limits[key], where))
    if challenge.needs_accuracy():
        checks.append(_accuracy(challenge, qgraph, data, info))
    if challenge.export:
        checks.append(_export(challenge, qgraph, data))
    if challenge.require_int8:
        checks.append(Check("int8", submitted, "int8", submitted == "int8",
                            "the submission itself must be int8 (the grader does not quantize it)"))
    passed = all(c.passed for c in checks)
    # A formula may read latency and energy without a limit on them: every profile estimates both.
    measures = {"sram": float(est.ram_bytes), "flash": float(est.flash_bytes), "latency": round(est.latency_ms, 4),
                "energy": round(est.energy_uj, 3)}
    return GradeResult(passed, _score(challenge, checks, passed, measures), tuple(checks), None, info)


def _accuracy(challenge: Challenge, qgraph: Graph, data, info: dict) -> Check:
    from engine.train import evaluate

    x, y, split = held_out_data(challenge, data)
    res = evaluate(qgraph, dataclasses.replace(data, x_val=x, y_val=y), split="val")
    info["split"] = {"name": split, "samples": int(len(x))}
    value = round(float(res["accuracy"]), 6)
    target = challenge.accuracy_target
    return Check("accuracy", value, target, target is None or value >= target,
                 f"int8 on {len(x)} samples of the {data.name} {split} split")


def _export(challenge: Challenge, qgraph: Graph, data) -> Check:
    from engine.export import export_model

    with tempfile.TemporaryDirectory(prefix="tinystudio-grade-") as td:
        res = export_model(qgraph, challenge.mcu, Path(td) / "submission.zip", verify="host",
                           n_inputs=challenge.verify_inputs, name="submission",
                           dataset=data.to_json(), schedule=challenge.schedule,
                           max_mac_overhead=challenge.max_mac_overhead)
    v = res.verify
    return Check("export", v.matched, v.inputs, v.bit_exact,
                 f"generated C built with the host gcc, outputs compared byte for byte with the int8 reference: "
                 f"{v.summary()}")


def _score(challenge: Challenge, checks: list[Check], passed: bool, measures: dict[str, float]) -> float:
    if challenge.method == "pass-fail":
        return 1.0 if passed else 0.0
    by_name = {c.name: c for c in checks}
    others = all(c.passed for c in checks if c.name != "accuracy")
    if challenge.method == "accuracy-if-fits":
        return float(by_name["accuracy"].value) if others else 0.0
    limit_checks = [c for c in checks if c.name in LIMITS.values()]
    values = dict(measures)
    if "accuracy" in by_name:
        values["accuracy"] = float(by_name["accuracy"].value)
    if "export" in by_name:
        values["export"] = 1.0 if by_name["export"].passed else 0.0
    values["fits"] = 1.0 if all(c.passed for c in limit_checks) else 0.0
    missing = challenge.formula.names - set(values)
    if missing:  # latency/energy are measured with every profile, even without a limit
        raise TinyStudioError(f"formula {challenge.formula.text!r} reads {', '.join(sorted(missing))}, "
                              "which this grading did not measure")  # parse_challenge should have refused it
    return round(challenge.formula.evaluate(values), 6)
