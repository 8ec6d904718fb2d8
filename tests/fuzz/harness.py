"""The fuzz harness: mutated model files through every stage, in forked workers with time and memory limits.

    summary = fuzz(cases=300, seed=1, workers=2, timeout_s=20)
    print(summary.report())          # figures and the first crash reproducers
    summary.counts["crash"] == 0

Each case (tests/fuzz/mutate.py) goes through import (from bytes, as an upload; from a folder on disk when
it carries side files), inspect, profile, save to a store in a temporary DuckDB file and reading it back, an
int8 run for quantized models and C generation (without compiling) for small ones. Outcomes:
  ok          every stage passed
  clean       an engine error (TinyStudioError) with a one-line message
  multiline   an engine error whose message spans lines or holds control characters
  crash       any other exception, or the worker died by a signal
  hang        over the time limit (the worker is killed and replaced)
  memory      MemoryError under the address-space limit (RLIMIT_AS)
Workers are forked once and reused across cases (the seeds and imports are shared copy-on-write); a worker
that hangs, dies or grows past its memory is replaced. A crash or hang saves its reproducer (the model bytes
and side files) under `crash_dir`.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import random
import resource
import shutil
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path

import numpy as np

from tests.fuzz.mutate import Case, make_case
from tests.fuzz.seeds import load_seeds

OUTCOMES = ("ok", "clean", "multiline", "crash", "hang", "memory")
MEMORY_LIMIT = 1 << 30  # bytes of address space a worker may add to what it holds after start-up
SMALL_MACS = 3_000_000  # int8 run and C generation only for models up to this size
SMALL_NODES = 64


# ---- the stages, run inside a worker ------------------------------------------------------------------

def _write_case(case: Case, folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    outside = folder.parent / "outside.bin"
    outside.write_bytes(b"SECRET-" * 64)
    path = folder / case.name
    path.write_bytes(case.data)
    for name, data in case.files.items():
        (folder / name).write_bytes(data)
    for name, target in case.links.items():
        kind, _, where = target.partition(":")
        (os.link if kind == "hard" else os.symlink)(folder.parent / where, folder / name)
    return path


def run_stages(case: Case, folder: Path, store, full: bool = True) -> str:
    """Every stage on one case; returns the last stage reached. Exceptions propagate to the caller.
    `full=False` stops after the save (the int8 run and C generation cost the most per case)."""
    from app.cli import inspect_report
    from engine.compress.base import is_quantized_graph as is_quantized  # moved from engine.export.pipeline
    from engine.importers import load_model, load_model_bytes
    from engine.profile import profile_graph
    from store.sessions import create_session
    from store.versions import current_graph

    if case.files or case.links:
        g = load_model(str(_write_case(case, folder)))
    else:
        g = load_model_bytes(case.data, case.name)
    rep = inspect_report(g)
    profile_graph(g, [("stm32l4r5zi", "tflm-cmsis-nn")])
    s = create_session(store, "fuzz", g, model="fuzz", action="import")
    current_graph(store, s.id)
    macs = rep["totals"]["macs"]
    big_input = any(np.prod(g.tensors[x].shape, dtype=float) > 1e6 for x in g.inputs)
    if not full or macs > SMALL_MACS or len(g.nodes) > SMALL_NODES or big_input:
        return "save"
    rng = np.random.default_rng(0)
    if is_quantized(g):
        from engine.int8.execute import run_int8

        feeds = {}
        for x in g.inputs:
            t = g.tensors[x]
            info = np.iinfo(t.dtype) if t.dtype.startswith(("int", "uint")) else None
            feeds[x] = (rng.integers(info.min, info.max + 1, t.shape).astype(t.dtype) if info is not None
                        else rng.standard_normal(t.shape).astype(np.float32))
        run_int8(g, feeds)
        from engine.export.pipeline import channels_last_int8

        qg = channels_last_int8(g)  # as the export does for channels-first int8 (ONNX) models
    else:
        from engine.passes.ptq import quantize_model

        if macs > SMALL_MACS // 10:
            return "save"
        qg, _ = quantize_model(g)
    from engine.codegen import generate_library

    generate_library(qg, "fuzz")
    return "export"


def _classify(e: BaseException) -> tuple[str, str]:
    from engine.errors import TinyStudioError, one_line

    if isinstance(e, MemoryError):
        return "memory", "MemoryError"
    if isinstance(e, TinyStudioError):
        msg = str(e)
        return ("clean" if msg == one_line(msg) else "multiline"), msg
    tb = traceback.format_exception(type(e), e, e.__traceback__)
    return "crash", "".join(tb[-4:]).strip()


def _save_reproducer(case: Case, crash_dir: Path, tag: str) -> str:
    d = crash_dir / tag
    d.mkdir(parents=True, exist_ok=True)
    (d / case.name).write_bytes(case.data)
    for name, data in case.files.items():
        (d / name).write_bytes(data)
    (d / "case.txt").write_text(f"{case.description}\nlinks: {case.links}\n")
    return str(d / case.name)


def _vm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _worker(conn, seeds, run_seed: int, workdir: str, crash_dir: str, memory_limit: int, full_every: int) -> None:
    from store.db import open_store

    store = open_store(os.path.join(workdir, "fuzz.duckdb"))
    base = _vm_bytes()
    limit = base + memory_limit
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    folder = Path(workdir) / "case"
    while True:
        index = conn.recv()
        if index is None:
            return
        t = time.perf_counter()
        case = make_case(seeds, run_seed, index)
        stage, repro = "import", ""
        try:
            stage = run_stages(case, folder, store, full=index % full_every == 0)
            outcome, msg = "ok", ""
        except BaseException as e:  # noqa: BLE001 - classifying every exception is the point
            outcome, msg = _classify(e)
            stage = "?"
        if outcome in ("crash", "memory", "multiline"):
            repro = _save_reproducer(case, Path(crash_dir), f"{run_seed}-{index}")
        conn.send({"index": index, "outcome": outcome, "message": msg, "case": case.description,
                   "reproducer": repro, "seconds": time.perf_counter() - t, "stage": stage,
                   "recycle": _vm_bytes() - base > memory_limit // 2})


# ---- the pool, in the parent -------------------------------------------------------------------------

@dataclass
class Summary:
    cases: int = 0
    counts: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)  # outcome -> first few results
    seconds: float = 0.0
    slowest: tuple = (0.0, "")
    stages: Counter = field(default_factory=Counter)  # last stage reached by the ok cases
    started: float = field(default_factory=time.perf_counter)

    def add(self, r: dict) -> None:
        self.cases += 1
        self.counts[r["outcome"]] += 1
        if r["outcome"] == "ok":
            self.stages[r.get("stage", "?")] += 1
        if r["outcome"] not in ("ok", "clean") and len(self.examples.setdefault(r["outcome"], [])) < 5:
            self.examples[r["outcome"]].append(r)
        if r.get("seconds", 0) > self.slowest[0]:
            self.slowest = (r["seconds"], r["case"])

    @property
    def failures(self) -> int:
        return sum(self.counts[k] for k in ("crash", "hang", "memory", "multiline"))

    def report(self) -> str:
        c = self.counts
        seconds = self.seconds or time.perf_counter() - self.started
        lines = [f"cases {self.cases:,}  ok {c['ok']:,}  clean errors {c['clean']:,}  crashes {c['crash']}  "
                 f"hangs {c['hang']}  over-memory {c['memory']}  multi-line errors {c['multiline']}  "
                 f"({seconds:.0f} s, {self.cases / max(seconds, 1e-9):.1f} cases/s; slowest "
                 f"{self.slowest[0]:.1f} s: {self.slowest[1][:80]})"]
        for outcome in ("crash", "hang", "memory", "multiline"):
            for r in self.examples.get(outcome, []):
                lines.append(f"{outcome}: case {r['index']} ({r['case'][:160]!r}) -> {r['reproducer']}\n    "
                             + r["message"].replace("\n", "\n    "))
        return "\n".join(lines)


class _Slot:
    def __init__(self, ctx, args):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, *args), daemon=True)
        self.proc.start()
        child.close()
        self.index, self.started = None, 0.0

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.proc.kill()
        else:
            try:
                self.conn.send(None)
            except OSError:
                pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def fuzz(cases: int, seed: int = 1, workers: int = 2, timeout_s: float = 20.0, memory_limit: int = MEMORY_LIMIT,
         include_large: bool = True, crash_dir: str | None = None, progress=None, start: int = 0,
         full_every: int = 1) -> Summary:
    """Run `cases` cases (indices start .. start+cases-1 of the run `seed`) and count the outcomes; the int8
    run and C generation run on every `full_every`-th case (all stages up to the save run on every case)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    seeds = load_seeds(include_large)
    import app.cli  # noqa: F401  - imported before forking so that workers start warm
    import engine.importers.onnx_import  # noqa: F401
    import engine.importers.tflite_import  # noqa: F401

    ctx = mp.get_context("fork")
    workdir = tempfile.mkdtemp(prefix="tinystudio-fuzz-")
    crash_dir = crash_dir or os.path.join(workdir, "reproducers")
    summary, t0 = Summary(), time.perf_counter()
    todo = list(range(start, start + cases))
    todo.reverse()

    def spawn(i: int) -> _Slot:
        d = os.path.join(workdir, f"w{i}-{random.randrange(1 << 30)}")
        os.makedirs(d)
        return _Slot(ctx, (seeds, seed, d, crash_dir, memory_limit, full_every))

    slots = [spawn(i) for i in range(workers)]
    try:
        while todo or any(s.index is not None for s in slots):
            for s in slots:
                if s.index is None and todo:
                    s.index, s.started = todo.pop(), time.perf_counter()
                    s.conn.send(s.index)
            busy = [s for s in slots if s.index is not None]
            deadline = min(s.started for s in busy) + timeout_s
            ready = wait([s.conn for s in busy] + [s.proc.sentinel for s in busy],
                         timeout=max(0.0, deadline - time.perf_counter()))
            for k, s in enumerate(slots):
                if s.index is None:
                    continue
                result = None
                if s.conn in ready:
                    try:
                        result = s.conn.recv()
                    except (EOFError, OSError):
                        result = None
                if result is None and (s.proc.sentinel in ready or s.conn in ready):
                    s.proc.join(1)
                    code = s.proc.exitcode
                    case = make_case(seeds, seed, s.index)
                    result = {"index": s.index, "outcome": "memory" if code == -9 else "crash",
                              "message": f"worker died (exit code {code})", "case": case.description,
                              "reproducer": _save_reproducer(case, Path(crash_dir), f"{seed}-{s.index}"),
                              "seconds": time.perf_counter() - s.started}
                elif result is None and time.perf_counter() - s.started > timeout_s:
                    case = make_case(seeds, seed, s.index)
                    result = {"index": s.index, "outcome": "hang", "message": f"over {timeout_s:.0f} s",
                              "case": case.description, "seconds": time.perf_counter() - s.started,
                              "reproducer": _save_reproducer(case, Path(crash_dir), f"{seed}-{s.index}")}
                if result is None:
                    continue
                summary.add(result)
                if progress:
                    progress(summary, result)
                s.index = None
                if result["outcome"] in ("hang", "crash", "memory") and not s.proc.is_alive() or \
                        result["outcome"] == "hang" or result.get("recycle"):
                    s.stop(kill=True)
                    slots[k] = spawn(k)
    finally:
        for s in slots:
            s.stop()
        summary.seconds = time.perf_counter() - t0
        shutil.rmtree(os.path.join(workdir), ignore_errors=True) if not any(
            summary.counts[k] for k in ("crash", "hang", "memory", "multiline")) else None
    return summary
