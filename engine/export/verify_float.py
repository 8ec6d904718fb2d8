"""Verify the float API of a library whose model takes and returns float32 (QUANTIZE first, DEQUANTIZE last):
build `<name>_run_float` on the host and compare its float32 outputs, bit for bit, with the int8 reference of
the whole model, edges included (engine.int8.run_int8, itself checked against tflite-micro).

    res = verify_float_api(graph, lib, n_random=20)   # {"inputs", "matched", "bit_exact", "first_mismatch"}
"""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from engine.errors import TinyStudioError
from engine.int8 import prepare_int8

RUN_TIMEOUT_S = 300


def float_inputs(lib, n: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Random float32 inputs over 1.25x each input's int8 range (so clamping is exercised), every fourth one
    on exact half steps of the scale (where rounding half away from zero decides)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        feeds = {}
        for s in lib.inputs:
            lo, hi = s.scale * (-128 - s.zero_point), s.scale * (127 - s.zero_point)
            if k % 4 == 3:
                x = (rng.integers(-140, 140, size=s.shape) + 0.5 - s.zero_point) * s.scale
            else:
                mid, half = (lo + hi) / 2, (hi - lo) / 2 * 1.25
                x = rng.uniform(mid - half, mid + half, size=s.shape)
            feeds[s.float_name] = x.astype(np.float32)
        out.append(feeds)
    return out


def verify_float_api(graph, lib, n_random: int = 20, seed: int = 0, workdir: str | Path | None = None) -> dict:
    from engine.codegen.hostbuild import compile_host

    plan = prepare_int8(graph)
    feeds = float_inputs(lib, n_random, seed)
    want = [plan.run(f) for f in feeds]
    blob = b"".join(np.ascontiguousarray(f[s.float_name], "<f4").tobytes() for f in feeds for s in lib.inputs)
    with tempfile.TemporaryDirectory(prefix="tinystudio-float-") as td:
        work = Path(workdir) if workdir is not None else Path(td)
        exe = compile_host(lib, work, float_api=True)
        try:
            proc = subprocess.run([str(exe)], input=blob, capture_output=True, timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise TinyStudioError(f"float runner {exe.name} did not finish within {RUN_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        raise TinyStudioError(f"float runner {exe.name} exited with status {proc.returncode}: "
                              f"{proc.stderr.decode(errors='replace').strip()[-300:]}")
    got = np.frombuffer(proc.stdout, "<f4")
    per = sum(int(np.prod(s.shape)) for s in lib.outputs)
    if got.size != per * len(feeds):
        raise TinyStudioError(f"float runner {exe.name}: expected {per * len(feeds)} floats, got {got.size}")
    matched, first, pos = 0, None, 0
    for k, w in enumerate(want):
        ok = True
        for s in lib.outputs:
            n = int(np.prod(s.shape))
            g, e = got[pos:pos + n], np.asarray(w[s.float_name], np.float32).reshape(-1)
            pos += n
            bad = np.flatnonzero(g.view(np.int32) != e.view(np.int32))
            if bad.size:
                ok = False
                if first is None:
                    i = int(bad[0])
                    first = {"case": k, "output": s.float_name, "index": i, "got": float(g[i]),
                             "expected": float(e[i]), "differing": int(bad.size), "size": n}
        matched += ok
    return {"inputs": len(feeds), "matched": matched, "bit_exact": matched == len(feeds), "first_mismatch": first}
