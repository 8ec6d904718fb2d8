"""Estimates against published measurements: the check behind every runtime profile.

    rows = calibration_rows()               # one CalibrationRow per (published board/runtime, model)
    median_abs_error(rows)                  # runtime id -> median |estimate / published - 1|
The published figures live in hwmodels/calibration.toml; the workloads are the MLPerf Tiny reference
models (shared/data/mlperf-tiny, or $TINYSTUDIO_MLPERF_TINY). benchmarks/latency_calibration.py prints
these tables and tests/hwmodels asserts on the same rows, so both use this one computation.
"""
from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from engine.ir import Graph, Tensor
from engine.validate import infer_shapes
from hwmodels.data import read_toml
from hwmodels.estimate import MAC_KINDS, LayerWork, estimate_layers, layer_work, persistent_bytes
from hwmodels.mcu import get_mcu
from hwmodels.runtime import get_runtime

PUBLISHED = Path(__file__).resolve().parent / "calibration.toml"


def mlperf_dir() -> Path:
    env = os.environ.get("TINYSTUDIO_MLPERF_TINY")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data" / "mlperf-tiny"


@dataclass(frozen=True)
class CalibrationRow:
    board: str
    mcu: str
    runtime: str
    published_runtime: str
    model: str
    published_ms: float
    estimated_ms: float
    source: str

    @property
    def error(self) -> float:
        """Signed relative error of the estimate (+0.10 = estimate 10 % slower than measured)."""
        return self.estimated_ms / self.published_ms - 1.0


def grayscale(graph: Graph) -> Graph:
    """The same network on a one-channel input: keep the first input channel of the first conv's weights."""
    g = graph.copy()
    x = g.tensors[g.inputs[0]]
    first = next(n for n in g.nodes if x.name in n.inputs)
    w = g.tensors[first.inputs[1]]
    g.tensors[x.name] = Tensor(x.name, (*x.shape[:-1], 1), x.dtype, x.quant, None, x.meta)
    g.tensors[w.name] = Tensor(w.name, (*w.shape[:-1], 1), w.dtype, w.quant, np.ascontiguousarray(w.data[..., :1]),
                               w.meta)
    g.name = f"{graph.name}-grayscale"
    return infer_shapes(g)


@lru_cache(maxsize=4)
def _workloads(data_dir: str) -> dict[str, tuple[Graph, tuple[LayerWork, ...]]]:
    from engine.importers.tflite_import import load_tflite

    out = {}
    loaded: dict[str, Graph] = {}
    for key, spec in read_toml(PUBLISHED)["workloads"].items():
        fname, _, variant = spec.partition(":")
        if fname not in loaded:
            loaded[fname] = load_tflite(str(Path(data_dir) / fname))
        g = grayscale(loaded[fname]) if variant == "grayscale" else loaded[fname]
        out[key] = (g, tuple(layer_work(g)))
    return out


def workloads(data_dir: str | Path | None = None) -> dict[str, tuple[Graph, tuple[LayerWork, ...]]]:
    """Calibration workload name -> (graph, its layer work), loaded once per folder."""
    return _workloads(str(data_dir or mlperf_dir()))


def _latency(key, mcu_id, rt_id, data_dir) -> float:
    g, work = workloads(data_dir)[key]
    return sum(le.latency_ms for le in estimate_layers(g, get_mcu(mcu_id), get_runtime(rt_id), list(work)))


def calibration_rows(data_dir: str | Path | None = None) -> list[CalibrationRow]:
    rows = []
    for r in read_toml(PUBLISHED)["rows"]:
        for model, ms in r["latency_ms"].items():
            rows.append(CalibrationRow(r["board"], r["mcu"], r["runtime"], r["published_runtime"], model, float(ms),
                                       _latency(model, r["mcu"], r["runtime"], data_dir), r["source"]))
    return rows


def median_abs_error(rows: list[CalibrationRow]) -> dict[str, float]:
    by_rt: dict[str, list[float]] = {}
    for r in rows:
        by_rt.setdefault(r.runtime, []).append(abs(r.error))
    return {rt: statistics.median(errs) for rt, errs in sorted(by_rt.items())}


def energy_rows(data_dir: str | Path | None = None) -> list[tuple[str, float, float]]:
    """(model, published uJ, estimated uJ) for the published energy figures."""
    e = read_toml(PUBLISHED)["energy"]
    power = get_mcu(e["mcu"]).active_power_mw
    return [(m, float(uj), _latency(m, e["mcu"], e["runtime"], data_dir) * power) for m, uj in e["energy_uj"].items()]


def tail_rows(data_dir: str | Path | None = None) -> list[tuple[str, int, int]]:
    """(model, measured TFLM arena tail, estimated persistent bytes) for the TFLM tail figures."""
    t = read_toml(PUBLISHED)["tflm_tail"]
    rt = get_runtime(t["runtime"])
    wl = workloads(data_dir)
    return [(m, int(b), persistent_bytes(wl[m][0], rt, list(wl[m][1]))) for m, b in t["bytes"].items()]


@dataclass(frozen=True)
class MeasuredRow:
    """One figure of TinyStudio's generated C: measured on the exported library vs the tinystudio-c profile."""

    model: str
    what: str  # ram_bytes | flash_bytes | code_bytes | instructions_dsp | instructions_portable
    measured: float
    estimated: float

    @property
    def error(self) -> float:
        return self.estimated / self.measured - 1.0


def tinystudio_c_rows(data_dir: str | Path | None = None) -> list[MeasuredRow]:
    """The tinystudio-c profile against the measurements in calibration.toml [tinystudio_c]: RAM and flash as
    Profile computes them (planner arena, weights + quantization data), code, and executed instructions
    (estimated cycles / the assumed cycles per instruction) with the DSP kernels and the portable ones."""
    from engine.memory import plan_memory
    from engine.summary import layer_records
    from hwmodels.estimate import code_bytes, estimate_target, layer_cycles

    t = read_toml(PUBLISHED)["tinystudio_c"]
    rt, mcu, cpi = get_runtime(t["runtime"]), get_mcu(t["mcu"]), float(t["cycles_per_instruction"])
    wl = workloads(data_dir)
    rows = []
    for m in t["ram_bytes"]:
        g, work = wl[m]
        work = list(work)
        data = sum(r.weight_bytes + r.quant_bytes for r in layer_records(g))
        est = estimate_target(g, mcu, rt, arena_bytes=plan_memory(g).arena_bytes, weight_bytes=data, work=work)
        instr = {k: sum(layer_cycles(w, rt.core_profile(t[f"{k}_core"]), rt, mcu) for w in work) / cpi
                 for k in ("dsp", "portable")}
        figures = {"ram_bytes": est.ram_bytes, "flash_bytes": est.flash_bytes, "code_bytes": code_bytes(work, rt),
                   "instructions_dsp": instr["dsp"], "instructions_portable": instr["portable"]}
        rows += [MeasuredRow(m, what, float(t[what][m]), float(v)) for what, v in figures.items()]
    return rows


def tinystudio_c_core_rows(data_dir: str | Path | None = None) -> list[MeasuredRow]:
    """The tinystudio-c profile of each core in calibration.toml [tinystudio_c_cores] against the instructions
    our generated C executes there in QEMU (benchmarks/kernel_table.py): estimated cycles / that core's cycles
    per instruction. what = "instructions_<core>"."""
    from hwmodels.estimate import layer_cycles

    t = read_toml(PUBLISHED)["tinystudio_c_cores"]
    rt = get_runtime(t["runtime"])
    wl = workloads(data_dir)
    rows = []
    for core, counts in t["instructions"].items():
        mcu, cpi, prof = get_mcu(t["mcu"][core]), float(t["cycles_per_instruction"][core]), rt.core_profile(core)
        for m, n in counts.items():
            est = sum(layer_cycles(w, prof, rt, mcu) for w in wl[m][1]) / cpi
            rows.append(MeasuredRow(m, f"instructions_{core}", float(n), est))
    return rows


# ---- fitting (how the calibrated figures were obtained, and how well they predict unseen models) ------

_FIT_FIELDS = ("conv_macs_per_cycle", "pointwise_macs_per_cycle", "depthwise_macs_per_cycle", "fc_macs_per_cycle",
               "layer_overhead_cycles")


def fit_core(mcu_id: str, runtime_id: str, published: dict[str, float], data_dir: str | Path | None = None,
             prior_weight: float = 0.3, start=None):
    """Refit the rate figures of the runtime's table for the MCU's core on `published` (model -> ms).

    Least squares on log(estimate / published), pulled toward `start` (default: the current figures)
    with `prior_weight` per log unit: with four models and five figures the fit needs that anchor.
    The penalty shapes (column and channel overheads, per-element costs) stay as they are.
    """
    from scipy.optimize import least_squares

    from hwmodels.estimate import layer_cycles

    mcu, rt = get_mcu(mcu_id), get_runtime(runtime_id)
    start = start or rt.core_profile(mcu.core)
    wl = workloads(data_dir)
    x0 = np.log([getattr(start, f) for f in _FIT_FIELDS])

    def profile(x):
        return replace(start, **{f: float(v) for f, v in zip(_FIT_FIELDS, np.exp(x))})

    def residuals(x):
        p = profile(x)
        res = [np.log(sum(layer_cycles(w, p, rt, mcu) for w in wl[m][1]) / (ms * mcu.clock_mhz * 1e3))
               for m, ms in published.items()]
        return np.concatenate([res, prior_weight * (x - x0)])

    return profile(least_squares(residuals, x0).x)


def leave_one_out(data_dir: str | Path | None = None) -> list[tuple[str, str, str, float]]:
    """(board, runtime, held-out model, error): predict each model of a 4-model row from the other three.

    The held-out model must not leak through the prior, so each fit starts from a neutral table: every
    MAC kind at the training models' overall MACs/cycle, the current penalty shapes and overheads.
    """
    from hwmodels.estimate import layer_cycles

    out = []
    wl = workloads(data_dir)
    for r in read_toml(PUBLISHED)["rows"]:
        pub = r["latency_ms"]
        if len(pub) < 3:
            continue
        mcu, rt = get_mcu(r["mcu"]), get_runtime(r["runtime"])
        for held in pub:
            train = {m: v for m, v in pub.items() if m != held}
            rate = sum(sum(w.macs for w in wl[m][1]) for m in train) / sum(train.values()) / (mcu.clock_mhz * 1e3)
            neutral = replace(rt.core_profile(mcu.core), **{f"{k}_macs_per_cycle": rate for k in MAC_KINDS})
            prof = fit_core(r["mcu"], r["runtime"], train, data_dir, start=neutral)
            ms = sum(layer_cycles(w, prof, rt, mcu) for w in wl[held][1]) / (mcu.clock_mhz * 1e3)
            out.append((r["board"], r["runtime"], held, ms / pub[held] - 1.0))
    return out
