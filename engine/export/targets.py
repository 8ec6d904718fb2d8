"""What the export needs to know about an MCU's core: compiler flags, and the QEMU board that emulates it.

    t = core_target(get_mcu("stm32l4r5zi"))
    t.cflags       # ('-mcpu=cortex-m4', '-mthumb', '-mfloat-abi=hard', '-mfpu=fpv4-sp-d16')
    t.board        # QemuBoard('mps2-an386', ...) or None when no QEMU machine runs this core
    t.why_no_qemu  # the sentence to show when board is None

The flags follow the MCU file's facts (core, fpu, dsp); the boards are the Arm MPS2/MPS3 FPGA images that
QEMU 7.2 models, with the memory each one gives a bare-metal program (code at the boot address, data RAM).
"""
from __future__ import annotations

import functools
import shutil
import subprocess
from dataclasses import dataclass

from hwmodels.mcu import MCU

ARM_GCC = "arm-none-eabi-gcc"


@dataclass(frozen=True)
class QemuBoard:
    machine: str  # qemu-system-arm -M
    rom_origin: int
    rom_length: int
    ram_origin: int
    ram_length: int


# mps2-an385/386/500: 4 MB SSRAM at 0x0 (boot) and 4 MB at 0x20000000. mps3-an547: 512 KB ITCM at 0x0 and
# 512 KB DTCM at 0x20000000. mps2-an505 boots Secure from 0x10000000 (the Secure alias of SSRAM1), so code
# and data go to the Secure aliases (SSRAM2 at 0x38000000).
_BOARDS = {
    "cortex-m3": QemuBoard("mps2-an385", 0x0, 4 << 20, 0x20000000, 4 << 20),
    "cortex-m4": QemuBoard("mps2-an386", 0x0, 4 << 20, 0x20000000, 4 << 20),
    "cortex-m7": QemuBoard("mps2-an500", 0x0, 4 << 20, 0x20000000, 4 << 20),
    "cortex-m33": QemuBoard("mps2-an505", 0x10000000, 4 << 20, 0x38000000, 2 << 20),
    "cortex-m55": QemuBoard("mps3-an547", 0x0, 512 << 10, 0x20000000, 512 << 10),
}


@dataclass(frozen=True)
class CoreTarget:
    core: str
    arm: bool  # an Arm Cortex-M core that arm-none-eabi-gcc builds for
    cflags: tuple[str, ...]  # for the MCU's own toolchain (what the bundle's Makefile uses)
    cc: str  # the cross compiler the Makefile names
    board: QemuBoard | None
    why_no_qemu: str = ""
    note: str = ""

    @property
    def emulated(self) -> bool:
        return self.board is not None


def _fpu_flags(fpu: str, sp: str, dp: str | None = None) -> tuple[str, ...]:
    if fpu == "none":
        return ("-mfloat-abi=soft",)
    return ("-mfloat-abi=hard", f"-mfpu={dp if fpu == 'dp' and dp else sp}")


def core_target(mcu: MCU) -> CoreTarget:
    core, fpu = mcu.core, mcu.fpu
    board = _BOARDS.get(core)
    no_qemu = "" if board else (
        f"QEMU cannot emulate {core} ({mcu.id}): it models Cortex-M3/M4/M7/M33/M55 boards only "
        "(mps2-an385, -an386, -an500, -an505, mps3-an547); verify on the host instead")
    if core in ("cortex-m0plus", "cortex-m3"):
        flags = (f"-mcpu={core}", "-mthumb", "-mfloat-abi=soft")
    elif core == "cortex-m4":
        flags = ("-mcpu=cortex-m4", "-mthumb") + _fpu_flags(fpu, "fpv4-sp-d16")
    elif core == "cortex-m7":
        flags = ("-mcpu=cortex-m7", "-mthumb") + _fpu_flags(fpu, "fpv5-sp-d16", "fpv5-d16")
    elif core == "cortex-m33":
        ext = ("" if mcu.dsp else "+nodsp") + ("+nofp" if fpu == "none" else "")
        flags = (f"-mcpu=cortex-m33{ext}", "-mthumb") + _fpu_flags(fpu, "fpv5-sp-d16")
    elif core in ("cortex-m55", "cortex-m85"):
        # The FPU and Helium come with -mcpu (-mfpu=auto); both cores have double precision. A part built
        # without Helium (its MCU file's simd is not "helium") gets +nomve: the library then takes the DSP
        # kernels instead of ts_*_mve.c (tinystudio_kernels.h tests __ARM_FEATURE_MVE).
        flags = (f"-mcpu={core}{'' if mcu.simd == 'helium' else '+nomve'}", "-mthumb", "-mfloat-abi=hard")
    else:
        return _non_arm(mcu, no_qemu)
    return CoreTarget(core, True, flags, ARM_GCC, board, no_qemu)


def _non_arm(mcu: MCU, no_qemu: str) -> CoreTarget:
    """Xtensa and RISC-V parts: the bundle names their usual toolchains; nothing is built here."""
    if mcu.core.startswith("xtensa"):
        cc = "xtensa-esp32s3-elf-gcc" if mcu.core == "xtensa-lx7" else "xtensa-esp32-elf-gcc"
        flags = ("-mlongcalls",)
        note = (f"no Xtensa toolchain in this studio; build the bundle with ESP-IDF ({cc}) or the Arduino core "
                "for ESP32")
    else:
        march = "rv32imac" if mcu.core == "riscv32-imac" else "rv32imc"
        cc = "riscv64-unknown-elf-gcc"
        flags = (f"-march={march}", "-mabi=ilp32")
        sdk = esp_idf_target(mcu) and "ESP-IDF" or sdk_name(mcu)
        note = f"no RISC-V toolchain in this studio; build the bundle with {sdk} ({cc} {' '.join(flags)})"
    return CoreTarget(mcu.core, False, flags, cc, None,
                      f"QEMU here emulates Arm Cortex-M3/M4/M7/M33/M55 boards only; {mcu.id} has a {mcu.core} core",
                      note)


def esp_idf_target(mcu: MCU) -> str:
    """The ESP-IDF target name (idf.py set-target) of an Espressif part, '' for others."""
    return mcu.id if mcu.vendor.lower().startswith("espressif") else ""


def sdk_name(mcu: MCU) -> str:
    """The vendor SDK a firmware developer builds a non-Arm part with."""
    if esp_idf_target(mcu):
        return "ESP-IDF"
    if mcu.core == "riscv32-xpulp":
        return "the GAP SDK (GreenWaves)"
    if mcu.core.startswith("riscv"):
        return "the Nuclei SDK or the GD32VF103 firmware library (PlatformIO gd32v)"
    return "the vendor SDK"


def verify_options(mcu: MCU) -> dict[str, str]:
    """Verification mode -> '' when it can run for `mcu` here, else why not (plain words, no CLI flags)."""
    from engine.export.verify_qemu import qemu_unavailable

    return {"host": "", "qemu": qemu_unavailable(mcu), "none": ""}


def have_tool(name: str) -> bool:
    return shutil.which(name) is not None


@functools.lru_cache(maxsize=None)
def local_cflags(cflags: tuple[str, ...]) -> tuple[str, ...]:
    """The flags this machine's arm-none-eabi-gcc accepts for the core: GCC 12 predates -mcpu=cortex-m85,
    whose closest older target is cortex-m55 (same ISA, Armv8.1-M with Helium)."""
    if not any(f.startswith("-mcpu=cortex-m85") for f in cflags) or not have_tool(ARM_GCC):
        return cflags
    probe = subprocess.run([ARM_GCC, "-mcpu=cortex-m85", "-mthumb", "-E", "-x", "c", "-"], input="",
                           capture_output=True, text=True, timeout=30)
    if probe.returncode == 0:
        return cflags
    return tuple(f.replace("-mcpu=cortex-m85", "-mcpu=cortex-m55") for f in cflags)
