"""Search: architectures, training hyperparameters and compression policies under MCU constraints.

    spec = StudySpec(name="kws", space="dscnn", dataset="keywords", mcu="nrf52840", max_sram=64 * 1024,
                     max_flash=256 * 1024, objectives=("accuracy", "latency_ms"), strategy="tpe", trials=30)
    res = run_study(spec, out_dir=Path("out"), storage=Path("out/study.journal"), workers=2)
    res.counts()        # {"total", "trained", "rejected", "pruned", "failed"}
    res.to_json()       # what `tinystudio search --json` prints

Spaces are data (engine.search.spaces); every candidate is profiled as deployed (int8) on the MCU before any
training and rejected at no training cost when it breaks a constraint; trials run on engine.executor's
client; the study state lives in an optuna JournalStorage file, so a study resumes where it stopped.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

STATES = ("trained", "rejected", "pruned", "failed")
OBJECTIVES = ("accuracy", "latency_ms", "ram_bytes", "flash_bytes", "energy_uj")
STRATEGIES = ("random", "tpe", "nsga2")


@dataclass(frozen=True)
class StudySpec:
    name: str
    space: str
    dataset: str
    mcu: str
    runtime: str | None = None
    max_sram: int | None = None
    max_flash: int | None = None
    max_latency_ms: float | None = None
    objectives: tuple[str, ...] = ("accuracy", "latency_ms")
    strategy: str = "tpe"  # random | tpe | nsga2
    trials: int = 20
    time_budget_s: float | None = None
    epochs: int = 5
    seed: int = 0
    search_training: bool = False  # learning rate, batch size, ... jointly with the architecture
    prune: bool = True  # successive halving on epochs; False: every candidate trains all its epochs
    marks: tuple[tuple[str, tuple], ...] = ()  # for space == "version": ("node.attr", choices)


@dataclass(frozen=True)
class TrialRecord:
    number: int
    state: str  # "trained" | "rejected" | "pruned" | "failed"
    params: dict
    accuracy: float | None
    latency_ms: float | None
    ram_bytes: int | None
    flash_bytes: int | None
    energy_uj: float | None
    macs: int | None
    broke: str | None  # the constraint a rejected candidate broke
    error: str | None
    model_path: str | None
    seconds: float
    strategy: str
    attempts: int = 1  # >1: its worker died and Dask ran it again

    def to_json(self) -> dict:
        return {"trial": self.number, "state": self.state, "params": dict(self.params), "accuracy": self.accuracy,
                "latency_ms": self.latency_ms, "ram_bytes": self.ram_bytes, "flash_bytes": self.flash_bytes,
                "energy_uj": self.energy_uj, "macs": self.macs, "broke": self.broke, "error": self.error,
                "model": self.model_path, "seconds": self.seconds, "strategy": self.strategy,
                "attempts": self.attempts}

    @classmethod
    def from_json(cls, d: dict) -> "TrialRecord":
        return cls(int(d["trial"]), d["state"], dict(d.get("params") or {}), d.get("accuracy"), d.get("latency_ms"),
                   d.get("ram_bytes"), d.get("flash_bytes"), d.get("energy_uj"), d.get("macs"), d.get("broke"),
                   d.get("error"), d.get("model"), float(d.get("seconds") or 0.0), d.get("strategy") or "",
                   int(d.get("attempts") or 1))


@dataclass
class StudyResult:
    study: str
    strategy: str
    trials: list[TrialRecord] = field(default_factory=list)
    pareto: list[int] = field(default_factory=list)  # trial numbers on the Pareto front of the objectives
    hypervolume: float | None = None
    duplicates: int = 0  # candidates proposed again after they were measured: told their outcome, not trained

    def counts(self) -> dict[str, int]:
        out = {"total": len(self.trials)}
        out.update({s: sum(1 for t in self.trials if t.state == s) for s in STATES})
        return out

    def to_json(self) -> dict:
        by_number = {t.number: t for t in self.trials}
        front = [by_number[n] for n in self.pareto if n in by_number]
        return {"study": self.study, "strategy": self.strategy, "trials": self.counts(),
                "pareto": [{"trial": t.number, "params": dict(t.params), "accuracy": t.accuracy,
                            "latency_ms": t.latency_ms, "ram_bytes": t.ram_bytes, "flash_bytes": t.flash_bytes,
                            "macs": t.macs, "model": t.model_path} for t in front],
                "hypervolume": self.hypervolume}


def list_spaces() -> list[tuple[str, str]]:
    """(name, one-line description) of every built-in space, in a stable order."""
    from engine.search.spaces import SPACES as _spaces

    return [(name, s.description) for name, s in _spaces.items()]


def version_space(graph, marks: dict[str, list]):
    """The user's own version as a space: each "node.attr" mark is a choice among its values."""
    from engine.search.version import version_space as _vs

    return _vs(graph, marks)


def run_study(spec: StudySpec, *, out_dir: Path, storage: Path, workers: int = 1, scheduler: str | None = None,
              base_graph=None, on_trial: Callable[[TrialRecord], None] | None = None,
              stop: Callable[[], bool] | None = None) -> StudyResult:
    """Run (or resume) the study `spec` on engine.executor.get_client(workers, scheduler); see engine.search.study."""
    from engine.search.study import run_study as _run

    return _run(spec, out_dir=Path(out_dir), storage=Path(storage), workers=workers, scheduler=scheduler,
                base_graph=base_graph, on_trial=on_trial, stop=stop)


def __getattr__(name: str):
    # SPACES is loaded lazily: importing engine.search must stay cheap (the CLI parser imports it).
    if name == "SPACES":
        from engine.search.spaces import SPACES as _spaces

        return _spaces
    raise AttributeError(name)


__all__ = ["OBJECTIVES", "SPACES", "STATES", "STRATEGIES", "StudyResult", "StudySpec", "TrialRecord",
           "list_spaces", "run_study", "version_space"]
