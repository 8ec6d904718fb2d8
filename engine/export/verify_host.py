"""Verify a generated library on the host: build it with the host C compiler, run test inputs, compare
every output byte with the int8 reference (engine.int8.run_int8).

    res = verify_host(graph, lib, n_random=20)      # VerifyResult: inputs, matched, bit_exact, first_mismatch
"""
from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

from engine.export.golden import Case, compare, make_cases, pack_inputs, unpack_outputs
from engine.export.verify import VerifyResult
from engine.errors import TinyStudioError

RUN_TIMEOUT_S = 300


def run_runner(exe: Path, lib, cases: list[Case], timeout: float = RUN_TIMEOUT_S) -> list[dict]:
    """Feed every case's raw inputs to the host runner on stdin; split its stdout into outputs."""
    try:
        proc = subprocess.run([str(exe)], input=pack_inputs(lib, cases), capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TinyStudioError(f"host runner {exe.name} did not finish {len(cases)} inferences within "
                              f"{timeout:.0f} s") from None
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise TinyStudioError(f"host runner {exe.name} exited with status {proc.returncode}"
                              + (f": {err[-1][:300]}" if err else ""))
    try:
        return unpack_outputs(lib, proc.stdout, len(cases))
    except ValueError as e:
        raise TinyStudioError(f"host runner {exe.name}: {e}") from None


def verify_host(graph, lib, n_random: int = 20, seed: int = 0, workdir: str | Path | None = None,
                sanitize: bool = False, cases: list[Case] | None = None, sample: dict | None = None) -> VerifyResult:
    """Build `lib` with gcc (hostbuild.compile_host) and compare it with run_int8 on the golden input and
    `n_random` random inputs (or on `cases` when given)."""
    from engine.codegen.hostbuild import compile_host

    t0 = time.monotonic()
    cases = cases if cases is not None else make_cases(graph, lib, n_random, seed, sample)
    with tempfile.TemporaryDirectory(prefix="tinystudio-host-") as td:
        work = Path(workdir) if workdir is not None else Path(td)
        work.mkdir(parents=True, exist_ok=True)
        exe = Path(compile_host(lib, work, sanitize=sanitize))
        got = run_runner(exe, lib, cases)
    matched, first = compare(cases, got)
    return VerifyResult("host", len(cases), matched, first, time.monotonic() - t0)
