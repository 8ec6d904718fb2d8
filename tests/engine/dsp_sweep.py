"""Build and run a kernel sweep program on the host under ASan/UBSan (the DSP kernels' emulated build): every
header of the library is written next to it, so a kernel that includes a new internal header needs no list here."""
from __future__ import annotations

import subprocess

from engine.codegen.kernelfiles import DSP_PATHS, PUBLIC_HEADER
from tests.engine.test_codegen import DSP


def run_host_sweep(lib, tmp_path, source: str, c_files: tuple[str, ...], timeout: float = 120,
                   cflags: tuple[str, ...] = ()) -> None:
    """Compile `source` (t.c) with the library's ts_fixedpoint.c and `c_files`; fail on a warning, a sanitizer
    report or a non-zero exit (the program prints the first case that differs). The switched DSP paths
    (kernelfiles.DSP_PATHS) are on whatever the library's own layers needed, since a sweep's shapes go beyond
    them; `cflags` (-D<switch>=0) turns them off to sweep the fallbacks."""
    for name, text in lib.files.items():
        if name == PUBLIC_HEADER:
            for switch in DSP_PATHS:
                text = text.replace(f"#define {switch} 0", f"#define {switch} 1")
        if name.endswith(".h") or name in c_files or name == "ts_fixedpoint.c":
            (tmp_path / name).write_text(text)
    (tmp_path / "t.c").write_text(source)
    exe = tmp_path / "t"
    r = subprocess.run(["gcc", "-std=c99", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-pedantic", *DSP, *cflags,
                        "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-I", str(tmp_path),
                        *(str(tmp_path / f) for f in ("t.c", "ts_fixedpoint.c", *c_files)), "-o", str(exe)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-2000:])


def run_qemu_sweep(lib, tmp_path, source: str, timeout: float = 300) -> None:
    """The same kind of program on QEMU mps2-an386 (Cortex-M4) with the real instructions, every switched DSP
    path on as for the host sweep; the program's exit status is the verdict (3: a case differs)."""
    import pytest

    import importlib

    from engine.export import qemu
    from hwmodels.mcu import get_mcu

    vq = importlib.import_module("engine.export.verify_qemu")  # the package re-exports a function of that name

    mcu = get_mcu("stm32l4r5zi")
    why = vq.qemu_unavailable(mcu)
    if why:
        pytest.skip(why)
    target = vq.core_target(mcu)
    cflags = vq.local_cflags(target.cflags)
    objs = vq.compile_library(lib, cflags, tmp_path, ("-DTINYSTUDIO_USE_DSP=1", *(f"-D{s}=1" for s in DSP_PATHS)))
    board_objs, ld = vq.compile_board(target.board, cflags, tmp_path)
    elf = vq.link_program("#define SWEEP_TARGET 1\n" + source, "sweep", objs, board_objs, ld, cflags, tmp_path)
    run = qemu.run_elf(target.board.machine, elf, cwd=tmp_path, timeout=timeout)
    assert run.rc == 0, (run.rc, run.stderr[-500:])
