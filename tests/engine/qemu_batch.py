"""Many generated libraries in one QEMU program: one cross-compile of the shared kernel files, one link, one QEMU
run for a whole list of one-op models (the per-model build and QEMU start dominated the MVE tests' time).

    bad = verify_many([(name, graph, lib), ...], get_mcu("alif-e7-hp"), n_random=2, seed=5)

Each library must have its own name (generate_library(graph, name)); the kernel files they share must be the
same text past their stamp comment. The program runs each library's cases in turn (init, then every case)
from one inputs.bin and writes every output to one outputs.bin; the host splits it and compares each model's
bytes with the int8 reference.
Returns {name: first mismatch or error} for the models that were not byte-identical (empty: all were).
"""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from engine.codegen.kernelfiles import DSP_PATHS
from engine.export.crossbuild import compile_board, compile_library, link_program, run_call
from engine.export.golden import compare, make_cases, pack_inputs, unpack_outputs
from engine.export.qemu import STACK_SIZE, run_elf
from engine.export.targets import core_target, local_cflags


# tinystudio_kernels.h of a library turns off the kernel copies none of its layers use (the Helium kernels' general
# requantization, the DSP eight-pixel pointwise block, the narrow pointwise loops, kernelfiles.DSP_PATHS); the merged
# program keeps them on for the libraries that have such a layer (a layer that does not qualify runs the same code
# either way).
_SWITCHES = ("TINYSTUDIO_GENERAL_REQUANT", "TINYSTUDIO_CONV_EIGHT", "TINYSTUDIO_CONV_NARROW", *DSP_PATHS)


def _switches_on(text: str) -> str:
    for name in _SWITCHES:
        text = text.replace(f"#define {name} 0", f"#define {name} 1")
    return text


def _body(text: str) -> str:
    """A file without its generated stamp (the first comment: graph hash, arena size), every switch on."""
    return _switches_on(text.split("*/", 1)[1] if text.startswith("/*") else text)


def merged_library(libs):
    """One library object holding every file of `libs` (shared kernel files once)."""
    files, sources = {}, []
    for lib in libs:
        for fname, text in lib.files.items():
            if fname in files and _body(files[fname]) != _body(text):
                raise ValueError(f"{lib.name}: {fname} differs from the one of an earlier library")
            files[fname] = _switches_on(text)
        sources += [s for s in lib.sources if s not in sources]
    return dataclasses.replace(libs[0], files=files, sources=sources)


def _runner(j: int, lib) -> str:
    """static int ts_run_<j>(fin, fout, n): init, then n cases; its buffers are local (run_call's names)."""
    reads = "\n".join(f"        if (ts_sh_read(fin, ts_in{i}, {s.size}) != {s.size}) return 5;"
                      for i, s in enumerate(lib.inputs))
    writes = "\n".join(f"        ts_sh_write(fout, ts_out{i}, {s.size});" for i, s in enumerate(lib.outputs))
    bufs = "\n".join([f"    static int8_t ts_in{i}[{s.size}];" for i, s in enumerate(lib.inputs)]
                     + [f"    static int8_t ts_out{i}[{s.size}];" for i, s in enumerate(lib.outputs)])
    return f"""
static int ts_run_{j}(int fin, int fout, int n)
{{
{bufs}
    if ({lib.name}_init() != 0) return 3;
    for (int c = 0; c < n; ++c) {{
{reads}
        if ({run_call(lib)} != 0) return 6;
{writes}
    }}
    return 0;
}}
"""


def program_source(libs, counts: list[int]) -> str:
    heads = "".join(f'#include "{lib.header}"\n' for lib in libs)
    calls = "\n".join(f"    if ((rc = ts_run_{j}(fin, fout, {n})) != 0) {{ ts_put_u32(\"failed_model\", {j}u); "
                      f"return rc; }}" for j, n in enumerate(counts))
    return (f'#include <stdint.h>\n#include "semihost.h"\n{heads}'
            + "".join(_runner(j, lib) for j, lib in enumerate(libs))
            + f"""
int main(void)
{{
    int rc;
    int fin = ts_sh_open("inputs.bin", TS_SH_READ_BINARY);
    int fout = ts_sh_open("outputs.bin", TS_SH_WRITE_BINARY);
    if (fin < 0 || fout < 0) return 4;
{calls}
    ts_sh_close(fout);
    ts_sh_close(fin);
    return 0;
}}
""")


def _groups(libs, board) -> list[list[int]]:
    """Consecutive libraries whose arenas and I/O buffers fit the board's RAM together (and weights its ROM)."""
    ram_budget = board.ram_length - STACK_SIZE - (64 << 10)
    rom_budget = board.rom_length // 2
    groups, ram, rom = [], 0, 0
    for j, lib in enumerate(libs):
        need = lib.arena_bytes + sum(s.size for s in (*lib.inputs, *lib.outputs)) + (8 << 10)
        if not groups or ram + need > ram_budget or rom + lib.weights_bytes > rom_budget:
            groups.append([])
            ram = rom = 0
        groups[-1].append(j)
        ram += need
        rom += lib.weights_bytes
    return groups


def verify_many(models, mcu, n_random: int = 2, seed: int = 0, defines: tuple[str, ...] = (),
                timeout: float = 300.0) -> dict[str, str]:
    """models: [(name, graph, lib)]. The models whose outputs differ from the int8 reference, with why. The
    kernel files are compiled once; the models go in as few programs as the board's RAM allows."""
    libs = [lib for _, _, lib in models]
    target = core_target(mcu)
    cflags = local_cflags(target.cflags)
    bad = {}
    with tempfile.TemporaryDirectory(prefix="tinystudio-qemu-batch-") as td:
        work = Path(td)
        merged = merged_library(libs)
        objs = dict(zip(merged.sources, compile_library(merged, cflags, work, defines)))
        kernels = [o for src, o in objs.items() if src.startswith("ts_")]
        board_objs, ld = compile_board(target.board, cflags, work)
        for g, group in enumerate(_groups(libs, target.board)):
            own = [objs[src] for j in group for src in libs[j].sources if not src.startswith("ts_")]
            bad.update(_run_group([models[j] for j in group], n_random, seed, timeout, own + kernels, board_objs,
                                  ld, cflags, work, target.board.machine, g))
    return bad


def _run_group(models, n_random, seed, timeout, objs, board_objs, ld, cflags, work: Path, machine: str,
               g: int) -> dict[str, str]:
    libs = [lib for _, _, lib in models]
    cases = [make_cases(graph, lib, n_random, seed) for _, graph, lib in models]
    elf = link_program(program_source(libs, [len(c) for c in cases]), f"batch{g}", objs, board_objs, ld, cflags,
                       work)
    (work / "inputs.bin").write_bytes(b"".join(pack_inputs(lib, c) for lib, c in zip(libs, cases)))
    (work / "outputs.bin").unlink(missing_ok=True)
    run = run_elf(machine, elf, cwd=work, timeout=timeout)
    blob = (work / "outputs.bin").read_bytes() if (work / "outputs.bin").exists() else b""
    bad, pos = {}, 0
    for (name, _, lib), cs in zip(models, cases):
        size = sum(s.size for s in lib.outputs) * len(cs)
        part, pos = blob[pos:pos + size], pos + size
        if len(part) != size:
            bad[name] = f"no outputs (QEMU exit {run.rc}: {(run.stdout + run.stderr).strip()[-200:]})"
            continue
        matched, first = compare(cs, unpack_outputs(lib, part, len(cs)))
        if matched != len(cs):
            bad[name] = f"{matched}/{len(cs)} cases byte-identical; first difference: {first}"
    if run.rc != 0 and not bad:
        bad[f"program {g}"] = f"QEMU exit {run.rc}: {(run.stdout + run.stderr).strip()[-200:]}"
    return bad
