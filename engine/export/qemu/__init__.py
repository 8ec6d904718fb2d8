"""Run bare-metal Cortex-M programs in QEMU and count the instructions they execute.

    files = board_sources(board)                       # startup.c, semihost.c/.h, link.ld for that board
    run = run_elf(board.machine, elf, cwd=work, timeout=60, region=("ts_bench_begin", "ts_bench_end"))
    run.rc, run.stdout, run.insns, run.region_insns, run.region_windows

The files next to this module are the board support every emulated program links with (C startup,
semihosting, a linker script template) and the instruction-counting TCG plugin, which is compiled once with
the host C compiler into the user's cache folder (Debian's QEMU accepts -plugin but ships no plugins).
"""
from __future__ import annotations

import bisect
import hashlib
import json
import os
import resource
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import TinyStudioError

HERE = Path(__file__).resolve().parent
BOARD_FILES = ("startup.c", "semihost.c", "semihost.h")
PLUGIN_FILES = ("insncount.c", "qemu_plugin_api.h")
QEMU = "qemu-system-arm"
STACK_SIZE = 0x4000  # main stack reserved at the top of RAM by the linker script


class QemuError(TinyStudioError):
    """QEMU could not run the program, hung, or the program crashed."""


def linker_script(board, stack_size: int = STACK_SIZE) -> str:
    text = (HERE / "link.ld.in").read_text()
    for key, val in (("BOARD", f"QEMU {board.machine}"), ("ROM_ORIGIN", f"{board.rom_origin:#x}"),
                     ("ROM_LENGTH", f"{board.rom_length:#x}"), ("RAM_ORIGIN", f"{board.ram_origin:#x}"),
                     ("RAM_LENGTH", f"{board.ram_length:#x}"), ("STACK_SIZE", f"{stack_size:#x}")):
        text = text.replace(f"@{key}@", val)
    return text


def board_sources(board, stack_size: int = STACK_SIZE) -> dict[str, str]:
    """Relative path -> text of the board support files for `board` (a targets.QemuBoard)."""
    files = {name: (HERE / name).read_text() for name in BOARD_FILES}
    files["link.ld"] = linker_script(board, stack_size)
    return files


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tinystudio"


def plugin_path(cc: str = "cc") -> Path:
    """Path of the compiled instruction-count plugin; built on first use (keyed by its source text)."""
    sources = {name: (HERE / name).read_bytes() for name in PLUGIN_FILES}
    key = hashlib.sha256(b"".join(sources[n] for n in PLUGIN_FILES)).hexdigest()[:16]
    out = cache_dir() / "qemu-plugin" / key / "libinsncount.so"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as td:
        tmp = Path(td) / out.name
        try:
            proc = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-I", str(HERE), str(HERE / "insncount.c"),
                                   "-o", str(tmp)], capture_output=True, text=True, timeout=120)
        except FileNotFoundError:
            raise QemuError(f"no host C compiler '{cc}' to build the QEMU instruction-count plugin") from None
        if proc.returncode != 0:
            raise QemuError(f"building the QEMU instruction-count plugin failed: {_first_line(proc.stderr)}")
        os.replace(tmp, out)  # atomic: a concurrent build of the same source writes the same file
    return out


def _first_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if "error" in ln.lower()] or text.strip().splitlines() or [""]
    return lines[0].strip()[:300]


def symbols(elf: str | Path, nm: str = "arm-none-eabi-nm") -> dict[str, tuple[int, int]]:
    """Function name -> (address without the Thumb bit, size) from the ELF's symbol table."""
    out = subprocess.run([nm, "-S", "--defined-only", str(elf)], capture_output=True, text=True, check=True,
                         timeout=60).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tTwW":
            syms[parts[3]] = (int(parts[0], 16) & ~1, int(parts[1], 16))
    return syms


@dataclass
class QemuRun:
    rc: int | None  # None: killed after the timeout
    stdout: str
    stderr: str
    wall_s: float
    insns: int | None = None
    region_insns: int | None = None
    region_windows: int | None = None
    per_function: dict[str, int] = field(default_factory=dict)  # only with per_function=True
    window_insns: list[int] = field(default_factory=list)  # each window's count, in order: only with windows=True
    tbs: list = field(default_factory=list)  # [vaddr, instructions, executions] per block: only with per_function

    @property
    def timed_out(self) -> bool:
        return self.rc is None


def _no_core_dump():
    # A fault inside the fault handler makes QEMU abort ("Lockup: can't escalate"); no core file for that.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_elf(machine: str, elf: str | Path, cwd: str | Path, timeout: float = 60.0,
            region: tuple[str, str] | None = None, per_function: bool = False, windows: bool = False) -> QemuRun:
    """Run `elf` on QEMU `machine` with semihosting (host files relative to `cwd`) and the counter plugin.

    `region` names the two marker functions whose first instructions open and close a counted window.
    A program still running after `timeout` seconds is stopped (SIGTERM, so the plugin still reports)."""
    syms = symbols(elf)
    plugin = plugin_path()
    with tempfile.TemporaryDirectory() as td:
        out = Path(td) / "count.json"
        args = f"{plugin},out={out}" + (",tbs=on" if per_function else "") + (",windows=on" if windows else "")
        if region:
            missing = [s for s in region if s not in syms]
            if missing:
                raise QemuError(f"{elf}: marker function(s) {missing} not found in the program")
            args += f",start={syms[region[0]][0]:#x},stop={syms[region[1]][0]:#x}"
        cmd = [QEMU, "-M", machine, "-display", "none", "-monitor", "none", "-serial", "none", "-nic", "none",
               "-semihosting-config", "enable=on,target=native", "-plugin", args, "-kernel", str(elf)]
        t0 = time.monotonic()
        try:
            proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, preexec_fn=_no_core_dump)
        except FileNotFoundError:
            raise QemuError(f"{QEMU} is not installed (Debian: apt-get install qemu-system-arm)") from None
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
            rc: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                stdout, stderr = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                stdout, stderr = proc.communicate()
            rc = None
        wall = time.monotonic() - t0
        counts = json.loads(out.read_text()) if out.is_file() else {}
    run = QemuRun(rc, stdout, stderr, round(wall, 3), counts.get("insns"), counts.get("region_insns"),
                  counts.get("region_windows"), window_insns=list(counts.get("windows", [])))
    if per_function and "tbs" in counts:
        run.tbs = counts["tbs"]
        spans = sorted(syms.items(), key=lambda kv: kv[1][0])
        starts = [a for _, (a, _) in spans]
        for vaddr, n, execs in counts["tbs"]:
            i = bisect.bisect_right(starts, vaddr) - 1
            if i >= 0:
                name, (addr, size) = spans[i]
                if vaddr < addr + max(size, 1):
                    run.per_function[name] = run.per_function.get(name, 0) + n * execs
    return run
