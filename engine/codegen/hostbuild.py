"""Build and run a generated C library on the host (gcc): the check that the C computes the reference bytes.

    exe = compile_host(lib, workdir)                       # writes the sources, builds <name>_host
    ys = run_host(exe, xs)                                 # xs: (N, ...) int8 -> (N, OUTPUT_SIZE) int8
    exe = compile_host(lib, d, extra_cflags=("-DTINYSTUDIO_EMULATE_DSP",))   # the DSP code path
    exe = compile_host(lib, d, sanitize=True)              # AddressSanitizer + UndefinedBehaviorSanitizer

The runner (host_runner_source) reads INPUT_SIZE bytes per inference from stdin until EOF and writes
OUTPUT_SIZE bytes per inference to stdout, so one process serves any number of inferences.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from engine.codegen import CLibrary
from engine.codegen.generate import template
from engine.errors import TinyStudioError

CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic")
SANITIZE = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g")


class HostBuildError(TinyStudioError):
    """The host compiler or the runner failed; the message carries the compiler's or runner's output."""


def host_runner_source(lib: CLibrary) -> str:
    """host_main.c for `lib` (also shipped in bundles)."""
    return template("host_main.c").replace("@UPPER@", lib.name.upper()).replace("@NAME@", lib.name)


def write_library(lib: CLibrary, directory: str | Path) -> Path:
    """Write every file of the library (and host_main.c) into `directory`."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    for rel, text in lib.files.items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    (d / "host_main.c").write_text(host_runner_source(lib))
    return d


def compile_host(lib: CLibrary, workdir: str | Path, sanitize: bool = False, extra_cflags=(),
                 cc: str | None = None) -> Path:
    """Build the host runner of `lib` in `workdir` with -Werror -pedantic; returns the executable."""
    cc = cc or os.environ.get("CC", "gcc")
    if shutil.which(cc) is None:
        raise HostBuildError(f"C compiler '{cc}' not found")
    d = write_library(lib, workdir)
    exe = d / f"{lib.name}_host{'_asan' if sanitize else ''}"
    cmd = [cc, *CFLAGS, *(SANITIZE if sanitize else ()), *extra_cflags, "-I", str(d),
           *(str(d / s) for s in lib.sources), str(d / "host_main.c"), "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 or r.stderr.strip():
        raise HostBuildError(f"{cc} failed on {lib.name} ({' '.join(cmd[1:len(CFLAGS) + 1])}):\n"
                             f"{(r.stderr or r.stdout)[-4000:]}")
    return exe


def run_host(exe: str | Path, inputs: np.ndarray, timeout: float = 600.0) -> np.ndarray:
    """Run the host runner on inputs (N, ...) int8 (each row all graph inputs back to back); returns the
    outputs as (N, OUTPUT_SIZE) int8."""
    x = np.ascontiguousarray(np.asarray(inputs))
    if x.dtype != np.int8:
        raise TinyStudioError(f"host runner inputs must be int8, got {x.dtype}")
    n = x.shape[0] if x.ndim else 1
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
    r = subprocess.run([str(exe)], input=x.tobytes(), capture_output=True, timeout=timeout, env=env)
    if r.returncode != 0 or r.stderr:
        raise HostBuildError(f"{Path(exe).name} exited with status {r.returncode}: "
                             f"{r.stderr.decode(errors='replace')[-4000:]}")
    out = np.frombuffer(r.stdout, dtype=np.int8)
    if n and out.size % n:
        raise HostBuildError(f"{Path(exe).name} wrote {out.size} bytes for {n} inferences")
    return out.reshape(n, -1) if n else out.reshape(0, 0)
