"""Verify a generated library on an emulated Cortex-M: cross-compile it for the MCU's core, run test inputs in
QEMU, compare every output byte with the int8 reference and count the instructions each inference executes.

    res = verify_qemu(graph, lib, get_mcu("stm32l4r5zi"), n_random=3)
    res.bit_exact, res.instructions_per_inference, res.instructions_per_mac, res.stack_bytes

The test program streams inputs from a host file and writes outputs to another through semihosting, so
any number of inputs fits; instructions are counted between two marker functions around `<name>_run`, and
the stack below `<name>_run` is measured by painting it before each call and finding the deepest change.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from engine.errors import TinyStudioError
from engine.export.crossbuild import BuildError, compile_board, compile_library, link_program, run_call
from engine.export.golden import Case, compare, make_cases, pack_inputs, unpack_outputs
from engine.export.qemu import STACK_SIZE, QemuError, run_elf
from engine.export.targets import ARM_GCC, core_target, have_tool, local_cflags
from engine.export.verify import VerifyResult

MARKERS = ("ts_bench_begin", "ts_bench_end")
EXIT_MEANING = {3: "<name>_init failed", 4: "could not open inputs.bin/outputs.bin through semihosting",
                5: "inputs.bin ended inside an input tensor", 6: "<name>_run returned an error"}


def qemu_unavailable(mcu) -> str:
    """Why `mcu` cannot be verified in QEMU on this machine ('' when it can)."""
    target = core_target(mcu)
    if not target.emulated:
        return target.why_no_qemu
    for tool, pkg in ((ARM_GCC, "gcc-arm-none-eabi libnewlib-arm-none-eabi"), ("qemu-system-arm", "qemu-system-arm")):
        if not have_tool(tool):
            return f"{tool} is not installed (Debian: apt-get install {pkg})"
    return ""


def verify_program_source(lib) -> str:
    """The bare-metal test program: read inputs, run with markers and a painted stack, write outputs."""
    n = lib.name
    reads = "\n".join(
        f"        got = ts_sh_read(fin, ts_in{i}, {s.size});\n"
        + ("        if (got == 0) break;\n" if i == 0 else "")
        + f"        if (got != {s.size}) return 5;" for i, s in enumerate(lib.inputs))
    writes = "\n".join(f"        ts_sh_write(fout, ts_out{i}, {s.size});" for i, s in enumerate(lib.outputs))
    bufs = "\n".join([f"static int8_t ts_in{i}[{s.size}];" for i, s in enumerate(lib.inputs)]
                     + [f"static int8_t ts_out{i}[{s.size}];" for i, s in enumerate(lib.outputs)])
    return f"""/* TinyStudio QEMU verification program for {n}: inputs.bin -> {n}_run -> outputs.bin */
#include <stdint.h>
#include "semihost.h"
#include "{lib.header}"

#define TS_PAINT 0xA5A5A5A5u
extern uint32_t __StackLimit[];
{bufs}

/* Markers for the instruction counter: distinct bodies and noipa so they are neither inlined nor merged. */
volatile uint32_t ts_marker;
__attribute__((noinline, noipa)) void ts_bench_begin(void) {{ ts_marker = 1u; }}
__attribute__((noinline, noipa)) void ts_bench_end(void) {{ ts_marker = 2u; }}

int main(void)
{{
    uint32_t deepest = 0;
    int got;
    if ({n}_init() != 0) return 3;
    int fin = ts_sh_open("inputs.bin", TS_SH_READ_BINARY);
    int fout = ts_sh_open("outputs.bin", TS_SH_WRITE_BINARY);
    if (fin < 0 || fout < 0) return 4;
    for (;;) {{
{reads}
        /* Paint the free stack below this frame; no interrupts run, so only the calls below write there. */
        uint32_t *sp;
        __asm__ volatile("mov %0, sp" : "=r"(sp));
        for (volatile uint32_t *p = __StackLimit; p < sp; p++) *p = TS_PAINT;
        ts_bench_begin();
        int rc = {run_call(lib)};
        ts_bench_end();
        const volatile uint32_t *q = __StackLimit;
        while (q < sp && *q == TS_PAINT) q++;
        if ((uint32_t)(sp - q) * 4u > deepest) deepest = (uint32_t)(sp - q) * 4u;
        if (rc != 0) return 6;
{writes}
    }}
    ts_sh_close(fout);
    ts_sh_close(fin);
    ts_put_u32("stack_bytes", deepest);
    return 0;
}}
"""


def build_test_elf(lib, mcu, work: Path, dsp: bool | None = None) -> tuple[Path, str]:
    """Cross-compile the library and the test program for the emulated board of `mcu`'s core.
    dsp: None = the library's default, True/False = -DTINYSTUDIO_USE_DSP=1/0."""
    target = core_target(mcu)
    cflags = local_cflags(target.cflags)
    defines = () if dsp is None else (f"-DTINYSTUDIO_USE_DSP={int(dsp)}",)
    objs = compile_library(lib, cflags, work, defines)
    board = target.board
    board_objs, ld = compile_board(board, cflags, work)
    try:
        elf = link_program(verify_program_source(lib), "verify", objs, board_objs, ld, cflags, work)
    except BuildError as e:
        if "overflow" not in str(e):
            raise
        raise QemuError(f"the program is too large for the emulated board {board.machine} "
                        f"({board.rom_length >> 10} KB for code and constants, {board.ram_length >> 10} KB RAM): "
                        f"{e}; verify on the host instead") from None
    return elf, board.machine


def qemu_timeout(lib, n: int) -> float:
    # QEMU with the counter runs some 10^8 guest instructions per second; allow 50 instructions per MAC.
    return 30.0 + n * (lib.macs * 50 + 1_000_000) / 1e8


def verify_qemu(graph, lib, mcu, n_random: int = 3, seed: int = 0, workdir: str | Path | None = None,
                dsp: bool | None = None, cases: list[Case] | None = None, sample: dict | None = None,
                timeout: float | None = None) -> VerifyResult:
    """Run `lib` on QEMU for `mcu`'s core on the golden input and `n_random` random ones (or `cases`)."""
    why = qemu_unavailable(mcu)
    if why:
        raise TinyStudioError(why)
    t0 = time.monotonic()
    cases = cases if cases is not None else make_cases(graph, lib, n_random, seed, sample)
    with tempfile.TemporaryDirectory(prefix="tinystudio-qemu-") as td:
        work = Path(workdir) if workdir is not None else Path(td)
        work.mkdir(parents=True, exist_ok=True)
        elf, machine = build_test_elf(lib, mcu, work, dsp)
        (work / "inputs.bin").write_bytes(pack_inputs(lib, cases))
        (work / "outputs.bin").unlink(missing_ok=True)
        limit = timeout if timeout is not None else qemu_timeout(lib, len(cases))
        run = run_elf(machine, elf, cwd=work, timeout=limit, region=MARKERS)
        if run.timed_out:
            raise QemuError(f"QEMU {machine} did not finish {len(cases)} inferences within {limit:.0f} s "
                            f"(stopped after {run.insns or 0:,} instructions); the program may hang")
        if run.rc != 0:
            meaning = EXIT_MEANING.get(run.rc, "").replace("<name>", lib.name)
            if run.rc >= 128:
                meaning = f"CPU fault (exception {run.rc - 128})"
            detail = (run.stderr.strip().splitlines() or run.stdout.strip().splitlines() or [""])[-1]
            raise QemuError(f"the test program on QEMU {machine} exited with status {run.rc}"
                            + (f" ({meaning})" if meaning else "") + (f": {detail[:200]}" if detail else ""))
        blob = (work / "outputs.bin").read_bytes()
    try:
        got = unpack_outputs(lib, blob, len(cases))
    except ValueError as e:
        raise QemuError(f"QEMU {machine}: {e}") from None
    matched, first = compare(cases, got)
    windows = run.region_windows or 0
    per_inf = run.region_insns / windows if windows else None
    stack = next((int(line.split("=", 1)[1]) for line in run.stdout.splitlines()
                  if line.startswith("stack_bytes=")), None)
    notes = () if windows == len(cases) else (f"counted {windows} inference windows for {len(cases)} inputs",)
    if stack is not None and stack >= STACK_SIZE - 64:
        notes += (f"the stack reached the {STACK_SIZE >> 10} KB reserve of the test program: "
                  f"{stack} B is a lower bound",)
    return VerifyResult("qemu", len(cases), matched, first, time.monotonic() - t0, machine=machine,
                        instructions_per_inference=per_inf,
                        instructions_per_mac=per_inf / lib.macs if per_inf is not None and lib.macs else None,
                        stack_bytes=stack, notes=notes)
