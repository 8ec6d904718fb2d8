"""The bundle's README.md, written for the firmware developer who unzips it: what is inside, how to build it
for the chosen MCU, how to prepare an input and read an output, and what it costs (from the report dict)."""
from __future__ import annotations

import json

from engine import __version__
from engine.export.report import memory_table, timing_lines, verify_line


def _io_rows(lib: dict) -> list[str]:
    rows = ["| tensor | C buffer | shape | bytes | scale | zero point |", "|---|---|---|---:|---:|---:|"]
    for kind in ("inputs", "outputs"):
        for s in lib[kind]:
            rows.append(f"| {kind[:-1]} `{s['name']}` | `{s['c_name']}` | {s['shape']} | {s['size']} | "
                        f"{s['scale']:.9g} | {s['zero_point']} |")
    return rows


def preprocessing_lines(rep: dict) -> list[str]:
    """Input layout, normalization, quantization, the C helper, and the class labels."""
    p = rep.get("preprocessing")
    if not isinstance(p, dict):
        return ["Not recorded in this report."]
    n = rep["library"]["name"]
    N = n.upper()
    out = [f"Input 0 `{p['input']}`: **{p['layout']}**, shape {p['shape']}, int8 with scale {p['scale']:.9g} and "
           f"zero point {p['zero_point']}." + (f" Note: {p['layout_note']}." if p.get("layout_note") else ""), ""]
    norm = p.get("normalization")
    if norm:
        out += [f"1. **Normalize per channel** with the training split's statistics "
                f"({p.get('dataset') or 'dataset record'}): `x = (raw - mean[c]) / std[c]`.", "",
                "   | channel | mean | std |", "   |---:|---:|---:|"]
        out += [f"   | {c} | {m:.6g} | {s:.6g} |" for c, (m, s) in enumerate(zip(norm["mean"], norm["std"]))]
        out.append("")
    else:
        out += ["1. **Normalization: none recorded** for this model's dataset"
                + (f" ({p['normalization_note']})" if p.get("normalization_note") else "")
                + ": feed values on the scale the model was trained on.", ""]
    zp = p["zero_point"]
    out += [f"2. **Quantize**: `q = round(x / {p['scale']:.9g}) {'-' if zp < 0 else '+'} {abs(zp)}`, clamped to "
            "[-128, 127] "
            "(round half away from zero, as TFLite).", "",
            f"The library does both: `src/{n}_input.h` declares", "", "```c",
            f"void {n}_preprocess(const float *raw, int8_t *input);          /* normalize (if recorded) + quantize */",
            f"void {n}_quantize_input_buffer(const float *x, int8_t *input); /* quantize already-normalized values */",
            f"int  {n}_argmax(const int8_t *output);                          /* index of the predicted class */",
            "```", "", "```c",
            f"static float raw[{N}_INPUT0_SIZE];   /* your sensor data, {p['layout']} {p['shape']} */",
            f"static int8_t in[{N}_INPUT0_SIZE], out[{N}_OUTPUT0_SIZE];",
            f"{n}_preprocess(raw, in);", f"{n}_run(in, out);", f"int cls = {n}_argmax(out);", "```", ""]
    labels = p.get("class_labels")
    out += [f"**Outputs**: `{p['output']}` {p['output_shape']}, int8 with scale {p['output_scale']:.9g} and zero "
            f"point {p['output_zero_point']} (`{n}_dequantize_output` gives the float score).", ""]
    if labels:
        out += ["| output index | class |", "|---:|---|"] + [f"| {i} | {c} |" for i, c in enumerate(labels)]
    else:
        out.append(f"Class labels: none recorded; output index i is class i (0 to {p['classes'] - 1}).")
    return out


def build_lines(rep: dict, fw: dict, qemu: str | None) -> list[str]:
    lib, t = rep["library"], rep["target"]
    n = lib["name"]
    kind = fw.get("kind")
    out = []
    if kind == "cortex-m":
        (fo, fl), (so, sl) = fw["flash"], fw["ram"]
        out += [f"`make` builds `build/lib{n}.a` and `build/{n}_example.elf` for the {t['name']} with "
                f"`{t['cc']} {' '.join(t['cflags'])}`, linked with this MCU's own files:", "",
                f"- `{fw['startup']}`: vector table, `Reset_Handler` (FPU on, copies .data, zeroes .bss, calls "
                "`SystemInit()` if you define it, then `main()`), weak fault and system handlers.",
                f"- `{fw['ld']}`: FLASH {fl // 1024} KB at `{fo:#010x}`, RAM {sl // 1024} KB at `{so:#010x}` "
                "(from the MCU's datasheet memory map, sources in the file's header).",
                "- `mcu/syscalls.c`: newlib hooks; `printf` goes to `ts_board_write()`, which you define for your "
                "UART/RTT (it discards output by default). `main`'s return value is kept in `ts_main_result`.",
                "", "Flash `build/" + n + "_example.elf` with your probe (OpenOCD, pyOCD, J-Link, ...)."]
        if fw.get("boot_note"):
            out += ["", f"**Boot**: {fw['boot_note']}"]
        out += ["", "In your own firmware keep the vendor's startup and linker script and add `build/lib"
                f"{n}.a` (or `src/*.c`); the arena and weights go to .bss and .rodata."]
    elif kind == "esp-idf":
        out += [f"`esp-idf/` is an ESP-IDF project: `cd esp-idf && idf.py set-target {fw['idf_target']} && "
                "idf.py build flash monitor` runs the golden check and prints the measured inference time.", "",
                f"`esp-idf/components/{n}/` (CMakeLists.txt and idf_component.yml) is the library as a component: "
                f"copy it into your project's `components/` and add `{n}` to `REQUIRES`.", "",
                "This studio has no Xtensa/ESP toolchain, so flash and RAM are estimates, not measured."
                if t["core"].startswith("xtensa") else
                "This studio has no RISC-V toolchain, so flash and RAM are estimates, not measured."]
    elif kind == "riscv":
        out += [f"`make` builds `build/lib{n}.a` with `{fw['cc']} {fw['cflags']}`; link it into a project of "
                f"{fw['sdk']}, whose startup code and linker script fit the board. The kernels are portable C "
                "(no vendor SIMD extensions). This studio has no RISC-V toolchain, so flash and RAM are "
                "estimates, not measured."]
    else:
        out += [f"`make` builds `build/lib{n}.a`. {fw.get('why', '')}"]
    if qemu:
        out += ["", f"`qemu/` is the **emulator harness**, not for the MCU: `make qemu` links the same example "
                f"with QEMU {qemu}'s startup, semihosting and linker script and runs it (prints PASS/FAIL)."]
    return out


def readme(rep: dict, files: dict) -> str:
    """The bundle's README.md. `files`: qemu machine (or None), firmware info, onnx files."""
    lib, t = rep["library"], rep["target"]
    n, N = lib["name"], lib["name"].upper()
    fw = files.get("firmware") or {}
    model = rep["model"]
    origin = model.get("source") or model.get("name") or n
    est = rep.get("estimate") or {}
    lines = [f"# {n}: neural network library for {t['name']} ({t['core']})", "",
             f"Model: `{origin}` (content hash `{model.get('hash', '')[:16]}`).", "",
             f"Generated by TinyStudio {__version__}: a C99 inference library with a static "
             f"{rep['arena_bytes']:,}-byte tensor arena, const weights in flash, no malloc, no stdio and no "
             "floating point in the int8 path.", "", verify_line(rep), ""]
    if rep.get("warnings"):
        lines += ["**Warnings**", ""] + [f"- {w}" for w in rep["warnings"]] + [""]
    lines += ["## Contents", "", "| path | what |", "|---|---|",
              f"| `src/` | the library: sources and headers, with `{n}_input.[ch]` (input preprocessing); of the "
              "kernels only the files its layers call (`ts_<family>_ref.c` portable, `ts_<family>_dsp.c` Arm DSP, "
              "`ts_fixedpoint.*` helpers) |",
              "| `examples/main.c`, `examples/golden.h` | runs the golden input and checks every output byte |",
              "| `host/host_main.c` | host runner: raw int8 input in, raw int8 output out |",
              "| `CMakeLists.txt` | static library target, the example and the host runner (PC) |",
              f"| `Makefile` | {t['cc']} with this MCU's flags (`{' '.join(t['cflags'])}`), and `make host` |"]
    if fw.get("kind") == "cortex-m":
        lines.append(f"| `mcu/` | the {t['name']}'s startup code, linker script and newlib hooks |")
    if fw.get("kind") == "esp-idf":
        lines.append(f"| `esp-idf/` | ESP-IDF project and `components/{n}/` |")
    if files.get("qemu"):
        lines.append(f"| `qemu/` | emulator harness for QEMU {files['qemu']} (not for the MCU) |")
    lines += [f"| `arduino/TinyStudio_{n}/` | Arduino library layout with an example sketch |",
              "| `report.json`, `report.md` | the export report: memory, speed, verification, layers |"]
    for f in files.get("onnx", []):
        lines.append(f"| `onnx/{f}` | {'the float model' if 'float' in f else 'the int8 model (QDQ)'} |")
    lines += ["", f"## Build for the {t['name']}", ""] + build_lines(rep, fw, files.get("qemu"))
    lines += ["", "## Input preprocessing and outputs", ""] + preprocessing_lines(rep)
    multi = len(lib["inputs"]) > 1 or len(lib["outputs"]) > 1
    lines += ["", "## API", "", "```c", f'#include "{n}.h"', f'#include "{n}_input.h"', "",
              f"int {n}_init(void);                                  /* once; 0 on success */",
              f"int {n}_run(const int8_t *input, int8_t *output);    /* one inference; 0 on success */"]
    if multi:
        lines.append(f"int {n}_run_multi(const int8_t *const inputs[], int8_t *const outputs[]);")
    lines += [f"int8_t {n}_quantize_input(float x);                   /* float -> int8 with the input's scale */",
              f"float {n}_dequantize_output(int8_t q);                /* int8 -> float with the output's scale */",
              f"{N}_ARENA_SIZE  {N}_INPUT_SIZE  {N}_OUTPUT_SIZE  {N}_INPUT_SCALE  {N}_INPUT_ZERO_POINT  "
              f"{N}_OUTPUT_SCALE  {N}_OUTPUT_ZERO_POINT"]
    if all(s.get("float_name") for s in (*lib["inputs"], *lib["outputs"])):
        lines += ["", "/* The model takes and returns float32 (QUANTIZE first, DEQUANTIZE last): the same, converted",
                  " * in C exactly as tflite-micro's QUANTIZE and DEQUANTIZE kernels (verified bit for bit). */",
                  f"int {n}_run_float(const float *input, float *output);   /* {N}_FLOAT_INPUT_COUNT in, "
                  f"{N}_FLOAT_OUTPUT_COUNT out */"]
    lines += ["```", ""]
    lines += _io_rows(lib)
    lines += ["", "## Other builds", "",
              f"- **Any build**: compile `src/*.c` (C99) and include `src/{n}.h`. Call `{n}_init()` once, then "
              f"`{n}_run(input, output)` per inference. The arena is a static array inside the library.",
              f"- **CMake**: `add_subdirectory({n})` and `target_link_libraries(app PRIVATE {n})`; on a PC: "
              "`cmake -S . -B build && cmake --build build && ctest --test-dir build` runs the golden check.",
              f"- **Host runner**: `make host`, then `./build/{n}_host < input.bin > output.bin`: raw int8 tensors, "
              f"{N}_INPUT_SIZE bytes per inference in, {N}_OUTPUT_SIZE bytes per inference out.",
              f"- **Arduino**: copy `arduino/TinyStudio_{n}` into your `libraries` folder and open the example "
              f"`{n}_golden`; it prints PASS/FAIL and the measured inference time over Serial at 115200 baud.",
              "- The DSP kernels (SMLAD) are used automatically on Arm cores with the DSP extension; "
              "`-DTINYSTUDIO_USE_DSP=0` selects the portable kernels (same bytes).", "",
              "## Memory and speed", ""]
    lines += memory_table(rep) + [""] + timing_lines(rep)
    if est.get("runtime"):
        lines += ["", f"The estimates assume {est.get('runtime_note') or est['runtime']}."]
    lines += ["", "Measured figures come from building this library with arm-none-eabi-gcc (arm-none-eabi-size) "
              "and running it in QEMU; what could not be measured says why. Application code, I/O buffers and the "
              "rest of your firmware come on top.", "",
              f"Stamp: `{json.dumps(lib.get('stamp', {}), sort_keys=True)}`", ""]
    return "\n".join(lines)
