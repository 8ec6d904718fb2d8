"""Build and run a generated C library on the host (gcc): the check that the C computes the reference bytes.

    exe = compile_host(lib, workdir)                       # writes the sources, builds <name>_host
    ys = run_host(exe, xs)                                 # xs: (N, ...) int8 -> (N, OUTPUT_SIZE) int8
    exe = compile_host(lib, d, extra_cflags=("-DTINYSTUDIO_EMULATE_DSP",))   # the DSP code path
    exe = compile_host(lib, d, sanitize=True)              # AddressSanitizer + UndefinedBehaviorSanitizer
    exe = compile_hosts([lib_a, lib_b], d)                 # one runner for several libraries:
    ys = run_host(exe, xs, args=("lib_a",))                #   its first argument names the library

The runner (host_runner_source) reads INPUT_SIZE bytes per inference from stdin until EOF and writes
OUTPUT_SIZE bytes per inference to stdout, so one process serves any number of inferences.

The kernel library's .c files are compiled once per process for each (compiler, flags, file and kernel headers'
text) and their objects reused by later builds: they are the same for every model, and under the sanitizers
they are most of a build's compile time. The model's own sources and the runner are compiled every time.
"""
from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

from engine.codegen import CLibrary
from engine.codegen.float_edges import has_float_api
from engine.codegen.generate import KERNEL_FILES, template
from engine.errors import TinyStudioError

CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic")
SANITIZE = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g")


class HostBuildError(TinyStudioError):
    """The host compiler or the runner failed; the message carries the compiler's or runner's output."""


def host_runner_source(lib: CLibrary, float_api: bool = False) -> str:
    """host_main.c for `lib` (also shipped in bundles); with `float_api`, host_main_float.c, the runner of
    `<name>_run_float` (libraries of models with float32 edges)."""
    name = "host_main_float.c" if float_api else "host_main.c"
    return template(name).replace("@UPPER@", lib.name.upper()).replace("@NAME@", lib.name)


def write_library(lib: CLibrary, directory: str | Path) -> Path:
    """Write every file of the library (and host_main.c) into `directory`."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    for rel, text in lib.files.items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    (d / "host_main.c").write_text(host_runner_source(lib))
    if has_float_api(lib.inputs, lib.outputs):
        (d / "host_main_float.c").write_text(host_runner_source(lib, float_api=True))
    return d


def compile_host(lib: CLibrary, workdir: str | Path, sanitize: bool = False, extra_cflags=(),
                 cc: str | None = None, float_api: bool = False) -> Path:
    """Build the host runner of `lib` in `workdir` with -Werror -pedantic; returns the executable. With
    `float_api`, the runner of the float API (float32 in and out)."""
    cc = cc or os.environ.get("CC", "gcc")
    if shutil.which(cc) is None:
        raise HostBuildError(f"C compiler '{cc}' not found")
    d = write_library(lib, workdir)
    exe = d / f"{lib.name}_host{'_float' if float_api else ''}{'_asan' if sanitize else ''}"
    main = "host_main_float.c" if float_api else "host_main.c"
    flags = (*CFLAGS, *(SANITIZE if sanitize else ()), *extra_cflags)
    objects = _kernel_objects([lib], {s: str(d / s) for s in lib.sources if s in KERNEL_FILES}, cc, flags)
    _compile([cc, *flags, "-I", str(d), *(str(d / s) for s in lib.sources if s not in KERNEL_FILES),
              *objects, str(d / main), "-o", str(exe)], lib.name)
    return exe


_OBJECTS: dict[str, Path] = {}   # key (compiler, flags, kernel texts) -> object file in _object_dir()
_OBJECTS_LOCK = threading.Lock()
_OBJECT_DIR: list[Path] = []


def _object_dir() -> Path:
    if not _OBJECT_DIR:
        d = Path(tempfile.mkdtemp(prefix="tinystudio-kernel-objects-"))
        atexit.register(shutil.rmtree, d, True)
        _OBJECT_DIR.append(d)
    return _OBJECT_DIR[0]


def _kernel_objects(libs, kernels: dict[str, str], cc: str, flags: tuple[str, ...]) -> list[str]:
    """The object files of the kernel sources `kernels` (file name -> path), compiled with `flags` (the same
    -Werror flags and sanitizers as the rest of the build) or reused from an earlier identical compile."""
    headers = {}
    for lib in libs:
        headers.update({n: t for n, t in lib.files.items() if n in KERNEL_FILES and n.endswith(".h")})
    objects = []
    with _OBJECTS_LOCK:
        for name, path in kernels.items():
            text = Path(path).read_text()
            h = hashlib.sha256(repr((cc, flags, name, text, sorted(headers.items()))).encode()).hexdigest()[:32]
            if h not in _OBJECTS:
                d = _object_dir() / h
                d.mkdir(parents=True, exist_ok=True)
                for n, t in headers.items():
                    (d / n).write_text(t)
                (d / name).write_text(text)
                obj = d / (Path(name).stem + ".o")
                _compile([cc, *flags, "-I", str(d), "-c", str(d / name), "-o", str(obj)], name)
                _OBJECTS[h] = obj
            objects.append(str(_OBJECTS[h]))
    return objects


def _compile(cmd: list[str], what: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 or r.stderr.strip():
        raise HostBuildError(f"{cmd[0]} failed on {what} ({' '.join(cmd[1:len(CFLAGS) + 1])}):\n"
                             f"{(r.stderr or r.stdout)[-4000:]}")


def compile_hosts(libs, workdir: str | Path, sanitize: bool = False, extra_cflags=(), cc: str | None = None) -> Path:
    """One runner for several libraries (distinct names, each in workdir/<name>/, one copy of each kernel file
    any of them uses):
    `runner <name>` streams stdin to stdout through that library like the single-library runner."""
    cc = cc or os.environ.get("CC", "gcc")
    if shutil.which(cc) is None:
        raise HostBuildError(f"C compiler '{cc}' not found")
    names = [lib.name for lib in libs]
    if len(set(names)) != len(names):
        raise ValueError(f"library names must differ: {names}")
    d = Path(workdir)
    sources, includes, kernels = [], [], {}
    for lib in libs:
        write_library(lib, d / lib.name)
        sources += [str(d / lib.name / s) for s in lib.sources if s not in KERNEL_FILES]
        kernels.update({s: str(d / lib.name / s) for s in lib.sources if s in KERNEL_FILES and s not in kernels})
        includes += ["-I", str(d / lib.name)]
    cases = "\n".join(f'    if (!strcmp(argv[1], "{n}")) {{\n        return stream({n}_init, {n}_run, '
                      f"{n.upper()}_INPUT_SIZE, {n.upper()}_OUTPUT_SIZE);\n    }}" for n in names)
    main = "\n".join([f'#include "{n}.h"' for n in names]) + f"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int stream(int (*init)(void), int (*run)(const int8_t *, int8_t *), size_t in_size, size_t out_size)
{{
    int8_t *in = malloc(in_size), *out = malloc(out_size);
    int status = 0;
    if (!in || !out || init() != 0) {{
        status = 3;
    }}
    while (status == 0) {{
        const size_t got = fread(in, 1, in_size, stdin);
        if (got == 0 && feof(stdin)) {{
            break;
        }}
        if (got != in_size) {{
            fprintf(stderr, "truncated input: %lu of %lu bytes\\n", (unsigned long)got, (unsigned long)in_size);
            status = 2;
        }} else if (run(in, out) != 0) {{
            status = 4;
        }} else if (fwrite(out, 1, out_size, stdout) != out_size) {{
            status = 5;
        }}
    }}
    free(in);
    free(out);
    return status;
}}

int main(int argc, char **argv)
{{
    if (argc < 2) {{
        fprintf(stderr, "usage: %s <library>\\n", argv[0]);
        return 1;
    }}
{cases}
    fprintf(stderr, "unknown library %s\\n", argv[1]);
    return 1;
}}
"""
    (d / "hosts_main.c").write_text(main)
    exe = d / f"hosts{'_asan' if sanitize else ''}"
    flags = (*CFLAGS, *(SANITIZE if sanitize else ()), *extra_cflags)
    objects = _kernel_objects(libs, kernels, cc, flags)
    _compile([cc, *flags, *includes, *sources, *objects, str(d / "hosts_main.c"), "-o", str(exe)],
             f"{len(libs)} libraries")
    return exe


def run_host(exe: str | Path, inputs: np.ndarray, timeout: float = 600.0, args=()) -> np.ndarray:
    """Run the host runner on inputs (N, ...) int8 (each row all graph inputs back to back); returns the
    outputs as (N, OUTPUT_SIZE) int8. `args`: command-line arguments (the library, for compile_hosts)."""
    x = np.ascontiguousarray(np.asarray(inputs))
    if x.dtype != np.int8:
        raise TinyStudioError(f"host runner inputs must be int8, got {x.dtype}")
    n = x.shape[0] if x.ndim else 1
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
    r = subprocess.run([str(exe), *args], input=x.tobytes(), capture_output=True, timeout=timeout, env=env)
    if r.returncode != 0 or r.stderr:
        raise HostBuildError(f"{Path(exe).name} exited with status {r.returncode}: "
                             f"{r.stderr.decode(errors='replace')[-4000:]}")
    out = np.frombuffer(r.stdout, dtype=np.int8)
    if n and out.size % n:
        raise HostBuildError(f"{Path(exe).name} wrote {out.size} bytes for {n} inferences")
    return out.reshape(n, -1) if n else out.reshape(0, 0)
