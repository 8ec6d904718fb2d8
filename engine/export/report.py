"""The export report as Markdown (report.md) and the bundle's README.md, both rendered from the report dict
that `tinystudio export --json` prints (engine.export.pipeline builds it)."""
from __future__ import annotations

import json

from engine import __version__
from engine.export.targets import core_target


def model_info(graph) -> dict:
    from engine.serialize import content_hash

    src = graph.meta.get("source", {}) if isinstance(graph.meta, dict) else {}
    return {"name": graph.name, "source": src.get("spec") or src.get("path") or "", "format": src.get("format", ""),
            "hash": content_hash(graph)}


def _io_json(s) -> dict:
    return {"name": s.name, "c_name": s.c_name, "shape": list(s.shape), "dtype": s.dtype, "scale": s.scale,
            "zero_point": s.zero_point, "size": s.size}


def base_report(graph, lib, mcu) -> dict:
    """What the bundle's README needs in any case: model, target, library."""
    target = core_target(mcu)
    return {
        "tool": f"TinyStudio {__version__}",
        "model": model_info(graph),
        "mcu": mcu.id,
        "target": {"id": mcu.id, "name": mcu.name, "core": mcu.core, "clock_mhz": mcu.clock_mhz,
                   "sram_bytes": mcu.sram_bytes, "flash_bytes": mcu.flash_bytes, "fpu": mcu.fpu, "dsp": mcu.dsp,
                   "cc": target.cc, "cflags": list(target.cflags)},
        "arena_bytes": lib.arena_bytes,
        "macs": lib.macs,
        "library": {"name": lib.name, "header": lib.header, "sources": list(lib.sources),
                    "inputs": [_io_json(s) for s in lib.inputs], "outputs": [_io_json(s) for s in lib.outputs],
                    "weights_bytes": getattr(lib, "weights_bytes", 0), "stamp": dict(lib.stamp)},
        "layers": [dict(layer) for layer in getattr(lib, "layers", ())],
        "warnings": [],
    }


def _b(n) -> str:
    return "n/a" if n is None else f"{int(n):,} B"


def _kb(n) -> str:
    return "n/a" if n is None else f"{n / 1024:,.1f} KB"


def memory_table(rep: dict) -> list[str]:
    est, meas = rep.get("estimate") or {}, rep.get("measured") or {}
    rows = ["| figure | bytes | how it was obtained |", "|---|---:|---|",
            f"| tensor arena (static, in .bss) | {_b(rep['arena_bytes'])} | memory planner "
            f"({rep.get('planner', 'engine.memory')}); the generated code uses these offsets |"]
    if meas.get("flash_bytes") is not None:
        rows += [
            f"| flash: code (.text) | {_b(meas['text'])} | measured (arm-none-eabi-size, {meas.get('cflags', '')}) |",
            f"| flash: constants (.rodata: weights, biases, requantization) | {_b(meas['rodata'])} | measured |",
            f"| flash: initialised data (.data) | {_b(meas['data'])} | measured |",
            f"| **flash total** (text + rodata + data) | **{_b(meas['flash_bytes'])}** | measured |",
            f"| RAM: .data + .bss (arena included) | {_b(meas['data'] + meas['bss'])} | measured |",
            f"| RAM: stack below `{rep['library']['name']}_run` | {_b(meas['stack'])} | measured: "
            f"{meas.get('stack_method', '')} |",
            f"| **RAM total** (data + bss + stack) | **{_b(meas['ram_bytes'])}** | measured |",
            f"| input/output buffers (yours, not included above) | {_b(meas.get('io_bytes'))} | "
            "from the tensor shapes |",
        ]
    elif meas.get("note"):
        rows.append(f"| measured flash/RAM | n/a | {meas['note']} |")
    if est:
        rows += [f"| flash | {_b(est.get('flash_bytes'))} | estimate ({est.get('runtime')} runtime model) |",
                 f"| RAM | {_b(est.get('ram_bytes'))} | estimate ({est.get('runtime')} runtime model) |"]
    return rows


def timing_lines(rep: dict) -> list[str]:
    est, ver = rep.get("estimate") or {}, rep.get("verify") or {}
    out = []
    if est.get("latency_ms") is not None:
        out.append(f"- Latency on {rep['target']['name']} at {rep['target']['clock_mhz']:g} MHz: "
                   f"{est['latency_ms']:.2f} ms, energy {est.get('energy_uj', 0):.0f} uJ per inference "
                   f"(estimate, {est.get('runtime')} runtime model).")
    if ver.get("instructions_per_inference") is not None:
        out.append(f"- Executed instructions per inference: {ver['instructions_per_inference']:,.0f} "
                   f"({ver['instructions_per_mac']:.2f} per MAC) (measured in QEMU {ver.get('machine')}; "
                   "instructions, not cycles).")
    return out


def verify_line(rep: dict) -> str:
    v = rep.get("verify") or {}
    if v.get("mode", "none") == "none":
        return ("Not verified in this export (`--verify host` or `--verify qemu` checks the C against the int8 "
                "reference).")
    where = "on the host (gcc)" if v["mode"] == "host" else f"in QEMU {v.get('machine')} (arm-none-eabi-gcc)"
    if v.get("bit_exact"):
        return (f"Verified {where}: the C output equals the TinyStudio int8 reference byte for byte on "
                f"{v['inputs']} inputs (the golden input and {v['inputs'] - 1} random ones).")
    mm = v.get("first_mismatch") or {}
    return (f"**Verification FAILED {where}**: {v['inputs'] - v['matched']} of {v['inputs']} inputs differ "
            f"(first: input #{mm.get('case')}, output '{mm.get('output')}' at {mm.get('index')}: C {mm.get('got')}, "
            f"reference {mm.get('expected')}).")


def report_markdown(rep: dict) -> str:
    lib, t = rep["library"], rep["target"]
    lines = [f"# Export report: {rep['model'].get('name') or lib['name']} for {t['name']}", "",
             f"TinyStudio {__version__}. Model hash `{rep['model'].get('hash', '')}`; target {t['id']} "
             f"({t['core']}, {t['clock_mhz']:g} MHz, {_kb(t['sram_bytes'])} SRAM, {_kb(t['flash_bytes'])} flash).",
             "", "## Verification", "", verify_line(rep), ""]
    if rep.get("warnings"):
        lines += ["## Warnings", ""] + [f"- {w}" for w in rep["warnings"]] + [""]
    lines += ["## Memory", ""] + memory_table(rep) + ["", "## Speed", ""] + (timing_lines(rep) or ["- n/a"])
    lines += ["", f"## Layers ({len(rep.get('layers', []))}, {rep['macs']:,} MACs)", "",
              "| # | layer | op | kernel | MACs | weights B |", "|---:|---|---|---|---:|---:|"]
    for i, layer in enumerate(rep.get("layers", [])):
        lines.append(f"| {i} | {layer.get('node') or layer.get('name', '')} | {layer.get('op', '')} | "
                     f"{layer.get('kernel', '')} | {layer.get('macs', 0):,} | {layer.get('weights_bytes', 0):,} |")
    q = rep.get("quantization")
    if q:
        lines += ["", "## Quantization", "", f"- method: {q.get('method')}, calibration: {q.get('calibration')}"]
        for o in q.get("outputs") or []:
            agree = o.get("argmax_agreement")
            snr = o.get("snr_db")
            lines.append(f"- output {o.get('name')}: int8 vs float SNR "
                         f"{snr if isinstance(snr, str) else f'{snr:.1f}'} dB, max |error| {o.get('max_abs_error'):.3g}"
                         + (f", top-1 agreement {agree:.1%}" if agree is not None else "")
                         + f" on {o.get('samples')} calibration samples")
    return "\n".join(lines) + "\n"


def _io_rows(lib: dict) -> list[str]:
    rows = ["| tensor | C buffer | shape | bytes | scale | zero point |", "|---|---|---|---:|---:|---:|"]
    for kind in ("inputs", "outputs"):
        for s in lib[kind]:
            rows.append(f"| {kind[:-1]} `{s['name']}` | `{s['c_name']}` | {s['shape']} | {s['size']} | "
                        f"{s['scale']:.9g} | {s['zero_point']} |")
    return rows


def readme(rep: dict, files: dict) -> str:
    """The bundle's README.md. `files`: which optional parts exist (board, qemu machine, onnx files)."""
    lib, t = rep["library"], rep["target"]
    n, N = lib["name"], lib["name"].upper()
    multi = len(lib["inputs"]) > 1 or len(lib["outputs"]) > 1
    model = rep["model"]
    origin = model.get("source") or model.get("name") or n
    lines = [f"# {n}: neural network library for {t['name']} ({t['core']})", "",
             f"Model: `{origin}` (content hash `{model.get('hash', '')[:16]}`).", "",
             f"Generated by TinyStudio {__version__}: a C99 inference library with a static "
             f"{rep['arena_bytes']:,}-byte tensor arena, const weights in flash, no malloc, no stdio and no "
             "floating point in the int8 path.", "",
             verify_line(rep), ""]
    if rep.get("warnings"):
        lines += ["**Warnings**", ""] + [f"- {w}" for w in rep["warnings"]] + [""]
    lines += ["## Contents", "", "| path | what |", "|---|---|",
              "| `src/` | the library: sources and headers (add them to your build) |",
              "| `examples/main.c`, `examples/golden.h` | runs the golden input and checks every output byte |",
              "| `host/host_main.c` | host runner: raw int8 input in, raw int8 output out |",
              "| `CMakeLists.txt` | static library target, the example and the host runner |",
              f"| `Makefile` | {t['cc']} with this MCU's flags (`{' '.join(t['cflags'])}`), and `make host` |",
              f"| `arduino/TinyStudio_{n}/` | Arduino library layout with an example sketch |",
              "| `report.json`, `report.md` | the export report: memory, speed, verification, layers |"]
    if files.get("board"):
        lines.append(f"| `board/` | startup code, semihosting and a linker script for {files['board']} |")
    for f in files.get("onnx", []):
        lines.append(f"| `onnx/{f}` | {'the float model' if 'float' in f else 'the int8 model (QDQ)'} |")
    lines += ["", "## API", "", "```c", f'#include "{n}.h"', "",
              f"int {n}_init(void);                                  /* once; 0 on success */",
              f"int {n}_run(const int8_t *input, int8_t *output);    /* one inference; 0 on success */"]
    if multi:
        lines.append(f"int {n}_run_multi(const int8_t *const inputs[], int8_t *const outputs[]);")
    lines += [f"int8_t {n}_quantize_input(float x);                   /* float -> int8 with the input's scale */",
              f"float {n}_dequantize_output(int8_t q);                /* int8 -> float with the output's scale */",
              f"{N}_ARENA_SIZE  {N}_INPUT_SIZE  {N}_OUTPUT_SIZE  {N}_INPUT_SCALE  {N}_INPUT_ZERO_POINT  "
              f"{N}_OUTPUT_SCALE  {N}_OUTPUT_ZERO_POINT", "```", ""]
    lines += _io_rows(lib)
    lines += ["", "Quantize a float input with `q = round(x / scale) + zero_point` clamped to [-128, 127] "
              "(what the quantize helper does) and read outputs as `(q - zero_point) * scale`.", "",
              "## Integrate", "",
              f"- **Any build**: compile `src/*.c` (C99) and include `src/{n}.h`. Call `{n}_init()` once, then "
              f"`{n}_run(input, output)` per inference. The arena is a static array inside the library.",
              f"- **CMake**: `add_subdirectory({n})` and `target_link_libraries(app PRIVATE {n})`; on a PC: "
              "`cmake -S . -B build && cmake --build build && ctest --test-dir build` runs the golden check.",
              f"- **Make** ({t['cc']}): `make` builds `build/lib{n}.a`" +
              (f" and the golden example `build/{n}_example.elf`" if files.get("board") else "") +
              (f"; `make qemu` runs it on QEMU {files['qemu']}" if files.get("qemu") else "") + ".",
              f"- **Host runner**: `make host`, then `./build/{n}_host < input.bin > output.bin` (a file, or "
              f"any stream on stdin): raw int8 tensors, {N}_INPUT_SIZE bytes per inference in (all inputs back to "
              f"back), {N}_OUTPUT_SIZE bytes per inference out, as many inferences as the input holds.",
              f"- **Arduino**: copy `arduino/TinyStudio_{n}` into your `libraries` folder and open the example "
              f"`{n}_golden`; it prints PASS/FAIL and the measured inference time over Serial at 115200 baud.",
              "- The DSP kernels (SMLAD) are used automatically on cores with the DSP extension; "
              "`-DTINYSTUDIO_USE_DSP=0` selects the portable kernels (same bytes).", "",
              "## Memory and speed", ""]
    lines += memory_table(rep) + [""] + timing_lines(rep)
    lines += ["", "Estimates come from TinyStudio's hardware models; measured figures from building this library "
              "(arm-none-eabi-size) and running it (QEMU). Application code, I/O buffers and the rest of your "
              "firmware come on top.", "", f"Stamp: `{json.dumps(lib.get('stamp', {}), sort_keys=True)}`", ""]
    return "\n".join(lines)
