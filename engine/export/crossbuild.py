"""Cross-compile a generated C library for a Cortex-M core and measure what it occupies.

    objs = compile_library(lib, target.cflags, work)            # one object per source, plus .su/.ci files
    fp = measure_footprint(lib, mcu, work)                     # Footprint: text, rodata, data, bss, stack
    fp.flash_bytes, fp.ram_bytes                               # measured with arm-none-eabi-size

The library's footprint is the difference between two linked programs that differ only in calling
`<name>_init` and `<name>_run` (both linked with --gc-sections from the same startup code), so it counts
exactly the code, constants and RAM the library brings in, library helpers (memcpy, libgcc) included.
Stack: the deepest path below `<name>_run` in GCC's call graph with per-function stack use
(-fcallgraph-info=su); QEMU runs replace it with a painted-stack measurement.
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from engine.errors import TinyStudioError
from engine.export.qemu import board_sources
from engine.export.targets import ARM_GCC, QemuBoard, core_target, have_tool, local_cflags

OPT = ("-O2",)
COMMON_CFLAGS = ("-std=c99", "-ffunction-sections", "-fdata-sections", "-Wall", "-Wextra")
LDFLAGS = ("-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs", "-Wl,--gc-sections")
# Regions large enough for any model, used only to measure (fit is judged against the MCU's figures).
MEASURE_BOARD = QemuBoard("none", 0x0, 256 << 20, 0x20000000, 256 << 20)
TIMEOUT_S = 600


class BuildError(TinyStudioError):
    """The cross compiler or linker failed on generated code (a bug to report, or a missing toolchain)."""


@dataclass(frozen=True)
class Footprint:
    """Measured sizes of the library in bytes (arm-none-eabi-size on linked programs)."""

    text: int  # code (with literal pools and unwind tables)
    rodata: int  # constants: weights, biases, requantization data
    data: int  # initialised RAM (its initial values also take flash)
    bss: int  # zeroed RAM: the tensor arena
    stack: int  # deepest stack below <name>_run
    stack_method: str  # how `stack` was obtained
    io_bytes: int  # input and output buffers the application provides (not counted in ram_bytes)
    cflags: tuple[str, ...] = ()

    @property
    def flash_bytes(self) -> int:
        return self.text + self.rodata + self.data

    @property
    def ram_bytes(self) -> int:
        return self.data + self.bss + self.stack

    def to_json(self) -> dict:
        return {"label": "measured", "flash_bytes": self.flash_bytes, "ram_bytes": self.ram_bytes,
                "text": self.text, "rodata": self.rodata, "data": self.data, "bss": self.bss, "stack": self.stack,
                "stack_method": self.stack_method, "io_bytes": self.io_bytes, "cflags": " ".join(self.cflags)}


def run_tool(cmd: list[str], cwd: Path, what: str, timeout: float = TIMEOUT_S) -> str:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise BuildError(f"{cmd[0]} is not installed (Debian: apt-get install gcc-arm-none-eabi "
                         "libnewlib-arm-none-eabi)") from None
    except subprocess.TimeoutExpired:
        raise BuildError(f"{what}: {cmd[0]} did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        lines = proc.stderr.splitlines()
        # The linker's reason (e.g. "region `ROM' overflowed by N bytes") beats collect2's summary line.
        err = ([ln for ln in lines if "overflowed" in ln]
               + [ln for ln in lines if "error" in ln.lower() and not ln.startswith("collect2")] + lines + [""])
        raise BuildError(f"{what} failed: {re.sub(r'^.*?/ld: ', 'ld: ', err[0].strip())[:400]}")
    return proc.stdout


def write_files(files: dict[str, str], dest: Path) -> None:
    for rel, text in files.items():
        p = dest / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def compile_library(lib, cflags: tuple[str, ...], work: Path, defines: tuple[str, ...] = ()) -> list[Path]:
    """Write the library into work/src and compile each source into work/obj (with .su and .ci files)."""
    src, obj = work / "src", work / "obj"
    write_files(lib.files, src)
    obj.mkdir(parents=True, exist_ok=True)
    objs = []
    for name in lib.sources:
        o = obj / (Path(name).stem + ".o")
        run_tool([ARM_GCC, *cflags, *OPT, *COMMON_CFLAGS, *defines, "-fstack-usage", "-fcallgraph-info=su",
                  f"-I{src}", "-c", str(src / name), "-o", str(o)], work, f"compiling {name} for {cflags[0]}")
        objs.append(o)
    return objs


def compile_board(board: QemuBoard, cflags: tuple[str, ...], work: Path) -> tuple[list[Path], Path]:
    """Startup and semihosting objects plus the linker script for `board`, in work/board."""
    bdir = work / "board"
    write_files(board_sources(board), bdir)
    objs = []
    for name in ("startup.c", "semihost.c"):
        o = bdir / (Path(name).stem + ".o")
        run_tool([ARM_GCC, *cflags, *OPT, *COMMON_CFLAGS, "-c", str(bdir / name), "-o", str(o)], work,
                 f"compiling {name}")
        objs.append(o)
    return objs, bdir / "link.ld"


def link_program(main_c: str, name: str, objs: list[Path], board_objs: list[Path], ld: Path,
                 cflags: tuple[str, ...], work: Path) -> Path:
    """Compile `main_c` (text) and link it with the objects into work/<name>.elf."""
    main = work / f"{name}.c"
    main.write_text(main_c)
    elf = work / f"{name}.elf"
    run_tool([ARM_GCC, *cflags, *OPT, *COMMON_CFLAGS, f"-I{work / 'src'}", f"-I{work / 'board'}", "-T", str(ld),
              *LDFLAGS, str(main), *map(str, board_objs), *map(str, objs), "-o", str(elf)], work,
             f"linking {elf.name}")
    return elf


_SECTION = re.compile(r"^(\.\S+)\s+(\d+)\s+(\d+)")


def section_sizes(elf: Path) -> dict[str, int]:
    """text / rodata / data / bss of a program linked with the board linker script (arm-none-eabi-size -A)."""
    out = run_tool(["arm-none-eabi-size", "-A", "-d", str(elf)], elf.parent, "arm-none-eabi-size")
    sizes = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
    for line in out.splitlines():
        m = _SECTION.match(line.strip())
        if not m:
            continue
        sec, size = m.group(1), int(m.group(2))
        if sec in (".text", ".ARM.extab", ".ARM.exidx"):
            sizes["text"] += size
        elif sec == ".rodata":
            sizes["rodata"] += size
        elif sec == ".data":
            sizes["data"] += size
        elif sec == ".bss":
            sizes["bss"] += size
    return sizes


_NODE = re.compile(r'node:\s*\{\s*title:\s*"([^"]+)"\s*label:\s*"([^"]*)"')
_EDGE = re.compile(r'edge:\s*\{\s*sourcename:\s*"([^"]+)"\s*targetname:\s*"([^"]+)"')
_STACK = re.compile(r"(\d+) bytes \(([a-z, ]+)\)")


def callgraph_stack(ci_files: list[Path], root: str) -> tuple[int, list[str]]:
    """Deepest stack from `root` down GCC's call graph (-fcallgraph-info=su). Returns (bytes, notes): notes
    name functions whose use is dynamic or unknown (external, e.g. memcpy, counted as 0)."""
    frame: dict[str, int] = {}
    kind: dict[str, str] = {}
    calls: dict[str, set[str]] = {}
    for f in ci_files:
        text = f.read_text()
        for title, label in _NODE.findall(text):
            m = _STACK.search(label)
            if m:
                frame[title] = int(m.group(1))
                kind[title] = m.group(2)
        for src, dst in _EDGE.findall(text):
            calls.setdefault(src, set()).add(dst)
    notes: list[str] = []
    best: dict[str, int] = {}

    def deepest(fn: str, path: tuple[str, ...]) -> int:
        if fn in path:
            notes.append(f"recursion through {fn}")
            return 0
        if fn in best:
            return best[fn]
        if fn == "__indirect_call":  # GCC's node for calls through a function pointer
            notes.append("calls through function pointers not followed")
        elif fn not in frame:
            notes.append(f"{fn}: stack use unknown (external)")
        elif kind.get(fn) != "static":
            notes.append(f"{fn}: {kind[fn]} stack use")
        below = max((deepest(c, path + (fn,)) for c in calls.get(fn, ())), default=0)
        best[fn] = frame.get(fn, 0) + below
        return best[fn]

    if root not in frame:
        raise BuildError(f"the call graph has no function {root}")
    return deepest(root, ()), sorted(set(notes))


def _io_buffers(lib) -> str:
    # External linkage: in the program without the library the compiler must still keep the buffers.
    decl = [f"int8_t ts_in{i}[{s.size}];" for i, s in enumerate(lib.inputs)]
    decl += [f"int8_t ts_out{i}[{s.size}];" for i, s in enumerate(lib.outputs)]
    return "\n".join(decl)


def run_call(lib) -> str:
    """The C expression that runs one inference on the ts_in*/ts_out* buffers."""
    if len(lib.inputs) == 1 and len(lib.outputs) == 1:
        return f"{lib.name}_run(ts_in0, ts_out0)"
    ins = ", ".join(f"ts_in{i}" for i in range(len(lib.inputs)))
    outs = ", ".join(f"ts_out{i}" for i in range(len(lib.outputs)))
    return (f"{lib.name}_run_multi((const int8_t *const[]){{{ins}}}, (int8_t *const[]){{{outs}}})")


def footprint_mains(lib) -> tuple[str, str]:
    """Two programs with the same I/O buffers: one runs the library, the other only touches the buffers."""
    head = f'#include <stdint.h>\n#include "{lib.header}"\n{_io_buffers(lib)}\nvolatile int8_t ts_sink;\n'
    touch = " ".join(f"ts_sink = ts_in{i}[0];" for i in range(len(lib.inputs)))
    touch += " " + " ".join(f"ts_sink = ts_out{i}[0];" for i in range(len(lib.outputs)))
    with_lib = head + (f"int main(void)\n{{\n    {touch}\n    if ({lib.name}_init() != 0) return 1;\n"
                       f"    return {run_call(lib)};\n}}\n")
    without = head + f"int main(void)\n{{\n    {touch}\n    return 0;\n}}\n"
    return with_lib, without


def measure_footprint(lib, mcu, work: Path, defines: tuple[str, ...] = ()) -> Footprint:
    """Build the library for `mcu`'s core and measure it. Raises BuildError when it cannot be built here."""
    target = core_target(mcu)
    if not target.arm:
        raise BuildError(target.note)
    if not have_tool(ARM_GCC):
        raise BuildError(f"{ARM_GCC} is not installed (Debian: apt-get install gcc-arm-none-eabi "
                         "libnewlib-arm-none-eabi); flash and RAM are estimates only")
    cflags = local_cflags(target.cflags)
    work.mkdir(parents=True, exist_ok=True)
    objs = compile_library(lib, cflags, work, defines)
    board_objs, ld = compile_board(MEASURE_BOARD, cflags, work)
    with_lib, without = footprint_mains(lib)
    a = section_sizes(link_program(with_lib, "footprint", objs, board_objs, ld, cflags, work))
    b = section_sizes(link_program(without, "baseline", objs, board_objs, ld, cflags, work))
    diff = {k: max(0, a[k] - b[k]) for k in a}
    stack, notes = callgraph_stack(sorted((work / "obj").glob("*.ci")), f"{lib.name}_run")
    external = [n.split(":")[0] for n in notes if n.endswith("(external)")]
    others = [n for n in notes if not n.endswith("(external)")]
    method = "static call graph (gcc -fstack-usage)" + "".join(f"; {n}" for n in others[:2]) + (
        f"; not counted: {', '.join(external[:3])}{' ...' if len(external) > 3 else ''} (small library helpers)"
        if external else "")
    io = sum(s.size for s in lib.inputs) + sum(s.size for s in lib.outputs)
    return Footprint(diff["text"], diff["rodata"], diff["data"], diff["bss"], stack, method, io, cflags)
