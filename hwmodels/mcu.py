"""Microcontrollers as data: one TOML file of facts per MCU, each figure with its source (DESIGN.md, example 7).

    mcus = load_mcus()                    # id -> MCU: built-in files, $TINYSTUDIO_MCU_DIR, extra folders
    m = get_mcu("stm32l4r5zi")            # unknown id -> one-line error listing the valid ids
    m.sram_bytes, m.active_power_mw

Adding a board is adding a file: drop `<id>.toml` into hwmodels/mcus/, into a folder named by the
environment variable TINYSTUDIO_MCU_DIR (several folders separated by os.pathsep), or pass `extra_dirs`.
A user file whose id equals a built-in one replaces it. Fields (see any built-in file for an example):

    id, name, vendor, board, core, clock_mhz, sram_kb, flash_kb, fpu, dsp, simd      required
    cores (default 1), flash_external (default false), npu (optional), notes (optional)
    active_current_ma + supply_v, or active_power_mw                                 run-mode power
    [sources] core, clock_mhz, sram_kb, flash_kb, fpu, dsp, simd, power (+ npu)       where each came from
    flash_origin, sram_origin (+ [sources] entries)   memory map for the bundle's linker script (Cortex-M)
    link_flash_kb, link_sram_kb (default flash_kb, sram_kb)  sizes of the linked regions when they differ
    boot_note                                          what a bare-metal image needs besides the linker script
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from hwmodels.data import HardwareDataError, by_id, field, load_descriptions

BUILTIN_DIR = Path(__file__).resolve().parent / "mcus"
ENV_DIR = "TINYSTUDIO_MCU_DIR"

# Core families the runtime profiles know (hwmodels/runtimes/*.toml key their tables by these names).
CORES = ("cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55", "cortex-m85",
         "xtensa-lx6", "xtensa-lx7", "riscv32-imc", "riscv32-imac", "riscv32-xpulp")
FPUS = ("none", "sp", "dp")
SIMDS = ("none", "dsp", "helium", "xtensa-pie", "xpulp")
# Fields that are figures and therefore need an entry in [sources]; power is checked as one figure.
SOURCED = ("core", "clock_mhz", "sram_kb", "flash_kb", "fpu", "dsp", "simd", "power")
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_KNOWN = {"id", "name", "vendor", "board", "core", "cores", "clock_mhz", "sram_kb", "flash_kb", "flash_external",
          "fpu", "dsp", "simd", "npu", "active_current_ma", "supply_v", "active_power_mw", "notes", "sources",
          "flash_origin", "sram_origin", "link_flash_kb", "link_sram_kb", "boot_note"}


@dataclass(frozen=True)
class MCU:
    id: str
    name: str
    vendor: str
    board: str
    core: str
    clock_mhz: float
    sram_kb: float  # usable for the tensor arena (the file's comment says which banks)
    flash_kb: float
    fpu: str
    dsp: bool
    simd: str
    active_power_mw: float  # run mode at clock_mhz, the core busy
    cores: int = 1
    flash_external: bool = False
    npu: str = ""
    active_current_ma: float | None = None
    supply_v: float | None = None
    notes: str = ""
    sources: tuple[tuple[str, str], ...] = ()
    path: str = ""
    # Memory map for a bare-metal linker script (None: not in the file). The linked regions are the flash
    # from flash_origin and the contiguous SRAM from sram_origin, link_*_kb long when set (else flash_kb/sram_kb).
    flash_origin: int | None = None
    sram_origin: int | None = None
    link_flash_kb: float | None = None
    link_sram_kb: float | None = None
    boot_note: str = ""

    @property
    def sram_bytes(self) -> int:
        return int(self.sram_kb * 1024)

    @property
    def flash_bytes(self) -> int:
        return int(self.flash_kb * 1024)

    @property
    def memory_map(self) -> tuple[int, int, int, int] | None:
        """(flash origin, flash bytes, SRAM origin, SRAM bytes) for a linker script, or None."""
        if self.flash_origin is None or self.sram_origin is None:
            return None
        return (self.flash_origin, int((self.link_flash_kb or self.flash_kb) * 1024), self.sram_origin,
                int((self.link_sram_kb or self.sram_kb) * 1024))

    def source(self, figure: str) -> str:
        return dict(self.sources).get(figure, "")

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "vendor": self.vendor, "board": self.board, "core": self.core,
                "cores": self.cores, "clock_mhz": self.clock_mhz, "sram_kb": self.sram_kb, "flash_kb": self.flash_kb,
                "flash_external": self.flash_external, "fpu": self.fpu, "dsp": self.dsp, "simd": self.simd,
                "npu": self.npu, "active_power_mw": round(self.active_power_mw, 3),
                "active_current_ma": self.active_current_ma, "supply_v": self.supply_v, "notes": self.notes,
                "flash_origin": self.flash_origin, "sram_origin": self.sram_origin,
                "link_flash_kb": self.link_flash_kb, "link_sram_kb": self.link_sram_kb, "boot_note": self.boot_note,
                "sources": dict(self.sources)}


def parse_mcu(doc: dict, path: str | Path) -> MCU:
    """Validate one MCU description; any problem is a one-line HardwareDataError naming file and field."""
    f = lambda key, kind, **kw: field(doc, key, kind, path, **kw)  # noqa: E731
    unknown = sorted(set(doc) - _KNOWN)
    if unknown:  # most likely a typo, which would otherwise silently drop a figure
        known = ", ".join(sorted(_KNOWN))
        raise HardwareDataError(path, f"field '{unknown[0]}' is not a known MCU field; known: {known}")
    mcu_id = f("id", "str")
    if not _ID.match(mcu_id):
        raise HardwareDataError(path, f"field 'id' must be lowercase letters, digits, '-', '_' or '.'; got {mcu_id!r}")
    current = f("active_current_ma", "number", default=None, positive=True)
    volts = f("supply_v", "number", default=None, positive=True)
    power = f("active_power_mw", "number", default=None, positive=True)
    if power is None:
        if current is None or volts is None:
            raise HardwareDataError(path, "field 'active_current_ma' with 'supply_v' (or 'active_power_mw') is missing")
        power = current * volts
    npu = f("npu", "str", default="")
    sources = f("sources", "table")
    flash_origin = f("flash_origin", "int", default=None)
    sram_origin = f("sram_origin", "int", default=None)
    for name, val in (("flash_origin", flash_origin), ("sram_origin", sram_origin)):
        if val is not None and not 0 <= val < 1 << 32:
            raise HardwareDataError(path, f"field '{name}' must be a 32-bit address, got {val:#x}")
    if (flash_origin is None) != (sram_origin is None):
        raise HardwareDataError(path, "fields 'flash_origin' and 'sram_origin' go together: give both or neither")
    origins = ("flash_origin", "sram_origin") if flash_origin is not None else ()
    for key in SOURCED + (("npu",) if npu else ()) + origins:
        field(sources, key, "str", path, where="sources")
    return MCU(
        id=mcu_id, name=f("name", "str"), vendor=f("vendor", "str"), board=f("board", "str"),
        core=f("core", "str", choices=CORES), clock_mhz=f("clock_mhz", "number", positive=True),
        sram_kb=f("sram_kb", "number", positive=True), flash_kb=f("flash_kb", "number", positive=True),
        fpu=f("fpu", "str", choices=FPUS), dsp=f("dsp", "bool"), simd=f("simd", "str", choices=SIMDS),
        active_power_mw=power, cores=f("cores", "int", default=1, positive=True),
        flash_external=f("flash_external", "bool", default=False), npu=npu, active_current_ma=current,
        supply_v=volts, notes=f("notes", "str", default=""),
        sources=tuple(sorted((k, str(v)) for k, v in sources.items())), path=str(path),
        flash_origin=flash_origin, sram_origin=sram_origin,
        link_flash_kb=f("link_flash_kb", "number", default=None, positive=True),
        link_sram_kb=f("link_sram_kb", "number", default=None, positive=True),
        boot_note=f("boot_note", "str", default=""))


_CACHE: dict[tuple[str, int, int], MCU] = {}


def mcu_dirs(extra_dirs: list[str | Path] | None = None) -> list[Path]:
    """Folders searched, in order (later ones override earlier ids): built-in, $TINYSTUDIO_MCU_DIR, extra."""
    dirs = [BUILTIN_DIR]
    env = os.environ.get(ENV_DIR, "")
    dirs += [Path(d) for d in env.split(os.pathsep) if d]
    dirs += [Path(d) for d in (extra_dirs or [])]
    return dirs


def load_mcus(extra_dirs: list[str | Path] | None = None) -> dict[str, MCU]:
    return load_descriptions(mcu_dirs(extra_dirs), "MCU", parse_mcu, _CACHE)


def get_mcu(mcu_id: str, extra_dirs: list[str | Path] | None = None) -> MCU:
    return by_id(load_mcus(extra_dirs), mcu_id, "MCU")
