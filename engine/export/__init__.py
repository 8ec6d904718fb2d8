"""Firmware export: the generated C library in a bundle, verified against the int8 reference.

    from engine.export import export_model
    res = export_model(graph, "stm32l4r5zi", "kws.zip", verify="qemu", name="kws")  # `tinystudio export`
    res.report["measured"]["flash_bytes"], res.verify.bit_exact, res.verify.instructions_per_mac

Pieces, usable on their own:
    bundle.build_bundle(graph, lib, mcu, out_zip, report)       the zip: src/, CMake, Makefile, Arduino, README ...
    verify_host.verify_host(graph, lib, n_random=20)            host gcc, byte-for-byte against run_int8
    verify_qemu.verify_qemu(graph, lib, mcu, n_random=3)        QEMU Cortex-M3/M4/M7/M33/M55, instructions counted
    crossbuild.measure_footprint(lib, mcu, workdir)             flash and RAM with arm-none-eabi-size
    targets.core_target(mcu)                                    compiler flags and QEMU board of the MCU's core
    targets.verify_options(mcu)                                 which verifications run for the MCU, why not
    firmware.firmware_files(...)                                the MCU's startup + linker script / ESP-IDF project
    preprocess.input_spec(...), helper_sources(...)             input layout, normalization, the C helper
    summary.figure_rows(report)                                 headline figures of any stored report, safely
The board support and instruction-counting plugin for QEMU live in engine/export/qemu/.
"""
from engine.export.bundle import build_bundle
from engine.export.pipeline import ExportResult, export_model
from engine.export.verify import VerifyResult
from engine.export.verify_host import verify_host
from engine.export.verify_qemu import verify_qemu

__all__ = ["ExportResult", "VerifyResult", "build_bundle", "export_model", "verify_host", "verify_qemu"]
