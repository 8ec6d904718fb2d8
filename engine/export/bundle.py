"""The firmware bundle: one zip with the library, build files for a PC, the MCU and Arduino, a golden example,
a host runner, the README, the report and the ONNX models.

    path = build_bundle(graph, lib, get_mcu("stm32l4r5zi"), "kws.zip", report)

Layout (every member sits in one top folder `tinystudio_<name>/`; names are fixed or derived from the
library's C identifier (the session's name), never from a user-supplied path):
    src/                 library sources and headers (with <name>_input.[ch], the preprocessing helper)
    examples/main.c, examples/golden.h                            CMakeLists.txt, Makefile
    host/host_main.c     host runner
    mcu/                 the chosen MCU's startup_<id>.c, <id>.ld and syscalls.c (Cortex-M parts)
    esp-idf/             ESP-IDF project + components/<name>/ (Espressif parts)
    qemu/                the emulator harness: QEMU board startup, semihosting, linker script (emulated cores)
    arduino/TinyStudio_<name>/  library.properties, src/, examples/<name>_golden/<name>_golden.ino + golden.h
    onnx/model_float.onnx (float sources), onnx/model_int8_qdq.onnx
    README.md, report.json, report.md
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
from pathlib import Path

from engine.errors import TinyStudioError
from engine.export import templates
from engine.export.firmware import esp_idf_main, firmware_files
from engine.export.golden import Case, make_cases
from engine.export.qemu import board_sources
from engine.export.readme import readme
from engine.export.report import base_report, report_markdown
from engine.export.targets import QemuBoard, core_target

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SAFE_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same export gives the same zip


def _check_rel(path: str) -> str:
    parts = path.split("/")
    if not parts or any(not _SAFE_PART.match(p) or p in (".", "..") for p in parts):
        raise TinyStudioError(f"generated file name {path!r} is not a plain relative path")
    return path


def host_runner(lib) -> str:
    """The codegen's host runner source (function or template file)."""
    try:
        from engine.codegen.hostbuild import host_runner_source
    except ImportError:
        host_runner_source = None
    if host_runner_source is not None:
        return host_runner_source(lib)
    import engine.codegen

    return (Path(engine.codegen.__file__).parent / "templates" / "host_main.c").read_text()


def qemu_board(mcu, target) -> QemuBoard | None:
    """The emulator harness's board: the QEMU board of the core with its memory capped at the MCU's own
    sizes (a model that does not fit the MCU fails to link there too); None when QEMU cannot run the core."""
    b = target.board
    if not target.arm or b is None:
        return None
    return QemuBoard(b.machine, b.rom_origin, min(b.rom_length, mcu.flash_bytes), b.ram_origin,
                     min(b.ram_length, mcu.sram_bytes))


def onnx_models(graph, float_graph) -> tuple[dict[str, bytes], list[str]]:
    """Serialized ONNX models and notes about any that could not be exported."""
    from engine.exporters.onnx_export import to_onnx

    out, notes = {}, []
    for fname, g in (("model_float.onnx", float_graph), ("model_int8_qdq.onnx", graph)):
        if g is None:
            continue
        try:
            out[fname] = to_onnx(g).SerializeToString()
        except TinyStudioError as e:
            notes.append(f"{fname} not included: ONNX export failed ({e})")
    return out, notes


def bundle_files(graph, lib, mcu, report: dict, float_graph=None, golden: Case | None = None,
                 onnx: dict[str, bytes] | None = None) -> dict[str, str | bytes]:
    """Relative path (inside the top folder) -> contents."""
    if not _IDENT.match(lib.name):
        raise TinyStudioError(f"library name {lib.name!r} is not a lowercase C identifier")
    n = lib.name
    target = core_target(mcu)
    golden = golden if golden is not None else make_cases(graph, lib, 0)[0]
    report = {**base_report(graph, lib, mcu), **report}
    if onnx is None:
        onnx, notes = onnx_models(graph, float_graph)
        report["warnings"] = list(report.get("warnings", [])) + notes
    board = qemu_board(mcu, target)
    files: dict[str, str | bytes] = {}
    for rel, text in lib.files.items():
        files[f"src/{_check_rel(rel)}"] = text
    gold = templates.golden_header(lib, golden, f"{n.upper()}_GOLDEN_H")
    files["examples/golden.h"] = gold
    files["examples/main.c"] = templates.example_main(lib)
    files["host/host_main.c"] = host_runner(lib)
    files["CMakeLists.txt"] = templates.cmakelists(lib)
    decl, call = templates.run_expr(lib)
    fw_files, fw = firmware_files(lib, mcu, target, {_check_rel(r): x for r, x in lib.files.items()}, gold,
                                  esp_idf_main(lib, call, decl))
    files.update(fw_files)
    files["Makefile"] = templates.makefile(lib, mcu, target, lib.sources, fw, board.machine if board else None)
    if board is not None:
        for rel, text in board_sources(board).items():
            files[f"qemu/{rel}"] = text
        files["qemu/README.md"] = templates.qemu_readme(lib, mcu, board)
    ard = f"arduino/TinyStudio_{n}"
    files[f"{ard}/library.properties"] = templates.library_properties(lib, mcu)
    for rel, text in lib.files.items():
        files[f"{ard}/src/{_check_rel(rel)}"] = text
    files[f"{ard}/examples/{n}_golden/{n}_golden.ino"] = templates.arduino_sketch(lib)
    files[f"{ard}/examples/{n}_golden/golden.h"] = gold
    for fname, data in onnx.items():
        files[f"onnx/{fname}"] = data
    files["report.json"] = json.dumps(report, indent=1) + "\n"
    files["report.md"] = report_markdown(report)
    files["README.md"] = readme(report, {"qemu": board.machine if board else None, "firmware": fw,
                                         "onnx": sorted(onnx)})
    return files


def write_zip(files: dict[str, str | bytes], top: str, out_zip: str | Path) -> Path:
    """Write atomically (temp file + rename) with fixed timestamps and permissions."""
    out = Path(out_zip)
    if out.is_dir():
        raise TinyStudioError(f"{out}: is a folder; give a file name for the bundle, e.g. {out / (top + '.zip')}")
    if not out.parent.is_dir():
        raise TinyStudioError(f"{out}: the folder {out.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".tinystudio-", suffix=".zip", dir=out.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for rel in sorted(files):
                info = zipfile.ZipInfo(f"{top}/{rel}", date_time=_EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                data = files[rel]
                z.writestr(info, data.encode() if isinstance(data, str) else data)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def build_bundle(graph, lib, mcu, out_zip: str | Path, report: dict, *, float_graph=None,
                 golden: Case | None = None, onnx: dict[str, bytes] | None = None) -> Path:
    """Write the bundle zip for `lib` (generated from the int8 `graph`) targeting `mcu`; returns its path.
    `report` is the export report (report.json); `float_graph` adds the float ONNX model; `golden` is the
    case the examples embed (computed from the graph when None)."""
    files = bundle_files(graph, lib, mcu, report, float_graph, golden, onnx)
    return write_zip(files, f"tinystudio_{lib.name}", out_zip)
