"""The kernel library's layout and the choice of files per bundle (engine/codegen/kernelfiles.py).

1. the layout: every public function of tinystudio_kernels.h defined in exactly one template, files of at most
   400 lines, no function-generating macros (no continuation lines), a reference file beside every DSP one;
2. the selection: the files of a kernel's closure link on their own (portable and DSP builds), the DSP file
   travels with its reference file, unknown calls are refused;
3. bundles: an FC-only model gets no conv, depthwise, pooling or softmax file, and still builds and verifies.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import zipfile

import pytest

from engine.codegen import generate_library
from engine.codegen.generate import KERNEL_FILES, template
from engine.codegen.hostbuild import CFLAGS
from engine.codegen.kernelfiles import PUBLIC_HEADER, calls, kernel_files, kernel_table, library_files
from engine.errors import GraphError
from engine.export.pipeline import export_model
from engine.importers.tflite_import import load_tflite
from tests.engine.test_int8 import conv_model, fc_model

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="no host gcc")
needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                                reason="no QEMU or Arm toolchain")
CONV_FAMILIES = ("ts_conv_", "ts_depthwise_", "ts_pool_", "ts_softmax_")


def _public_functions() -> set[str]:
    header = re.sub(r"/\*.*?\*/", " ", template(PUBLIC_HEADER), flags=re.S)
    return set(re.findall(r"^\w[\w ]*?\b(ts_\w+)\(", header, re.M))


# ---- 1. layout ---------------------------------------------------------------------------------------------

def test_every_public_function_is_defined_in_one_template():
    public = _public_functions()
    table = kernel_table()
    assert len(public) >= 23, public
    missing = public - set(table)
    assert not missing, f"declared in {PUBLIC_HEADER} but defined in no template: {sorted(missing)}"
    # the emitter's kernels are among them
    assert {"ts_conv_s8", "ts_depthwise_conv_s8", "ts_fully_connected_s8", "ts_add_s8", "ts_softmax_s8",
            "ts_lut_s8", "ts_copy_s8", "ts_gather_s8", "ts_conv_s4"} <= public


_ASM_TEXT = re.compile(r'__asm__|\\n\\t"')


def _continued_macros(lines):
    """(first line index, text) of each macro whose definition goes on over continuation lines."""
    out, i = [], 0
    while i < len(lines):
        if lines[i].rstrip().endswith("\\"):
            start = i
            while i < len(lines) and lines[i].rstrip().endswith("\\"):
                i += 1
            out.append((start, "\n".join(lines[start:i + 1])))
        i += 1
    return out


def test_library_files_are_short_and_free_of_generator_macros():
    assert KERNEL_FILES == library_files() and PUBLIC_HEADER in KERNEL_FILES
    assert "tinystudio_kernels.c" not in KERNEL_FILES and len(KERNEL_FILES) >= 12
    for name in KERNEL_FILES:
        lines = template(name).splitlines()
        assert len(lines) <= 400, f"{name}: {len(lines)} lines"
        # no multi-line macros that generate C; the one kind allowed is inline assembly text (a channel loop's
        # asm written once for both weight storages), each such macro naming asm in its body
        bad = [start + 1 for start, body in _continued_macros(lines) if not _ASM_TEXT.search(body)]
        assert not bad, f"{name}: multi-line macros that are not inline assembly at lines {bad[:5]}"
        # C99 and the library contract: no malloc or stdio anywhere in the library
        code = re.sub(r"/\*.*?\*/", " ", template(name), flags=re.S)
        assert not re.search(r"\b(malloc|calloc|free|printf|stdio|FILE)\b", code), name


def test_every_dsp_file_has_its_reference_file():
    for name in KERNEL_FILES:
        if name.endswith("_dsp.c"):
            assert name.replace("_dsp.c", "_ref.c") in KERNEL_FILES, name


# ---- 2. selection ------------------------------------------------------------------------------------------

def test_selection_follows_calls_and_includes():
    fc = kernel_files(["    ts_fully_connected_s8(&p, A(0), w, b, m, s, A(64));"])
    assert fc == ("tinystudio_kernels.h", "ts_dsp.h", "ts_fixedpoint.h", "ts_mve.h", "ts_fc_dsp.c", "ts_fc_mve.c",
                  "ts_fc_ref.c", "ts_fixedpoint.c")
    # a DSP file comes with its portable entry point and vice versa
    for fn in ("ts_conv_s8", "ts_depthwise_conv_s8", "ts_add_s8"):
        files = kernel_files([f"{fn}(&p);"])
        assert any(f.endswith("_ref.c") for f in files) and any(f.endswith("_dsp.c") for f in files), files
    # families without a DSP version need no DSP header
    assert "ts_dsp.h" not in kernel_files(["ts_softmax_s8(&p, x, y);"])
    assert kernel_files(["ts_lut_s8(x, y, 4, t);"]) == ("tinystudio_kernels.h", "ts_movement_ref.c")
    # comments and prototypes are not calls; the model's own functions are not kernels
    assert calls("/* ts_conv_s8(x) */\nvoid ts_mul_s8(const ts_mul_params *p,\n               int8_t *y);\n"
                 "    return ts_lut_s8(x);") == {"ts_lut_s8"}
    assert kernel_files(["m_run(in, out); ts_m_init(); ts_lut_s8(x);"], "ts_m")[-1] == "ts_movement_ref.c"
    assert kernel_files(["ts_run(in, out); ts_lut_s8(x);"], "ts")[-1] == "ts_movement_ref.c"  # a model named "ts"
    with pytest.raises(ValueError, match="ts_no_such_kernel"):
        kernel_files(["ts_no_such_kernel(x);"])


@needs_gcc
@pytest.mark.parametrize("dsp", [False, True], ids=["portable", "dsp_emulated"])
def test_each_kernels_files_link_on_their_own(dsp, tmp_path):
    """For every public kernel: exactly the selected files compile warning-free and link a program using it."""
    lib = generate_library(_graph(*fc_model(False, 0)), "m")
    (tmp_path / PUBLIC_HEADER).write_text(lib.files[PUBLIC_HEADER])
    for name in KERNEL_FILES:
        if name != PUBLIC_HEADER:
            (tmp_path / name).write_text(template(name))
    flags = [*CFLAGS, *(["-DTINYSTUDIO_EMULATE_DSP"] if dsp else []), "-I", str(tmp_path)]
    objs = {}
    for name in KERNEL_FILES:
        if name.endswith(".c"):
            objs[name] = tmp_path / f"{name}.o"
            r = subprocess.run(["gcc", *flags, "-c", str(tmp_path / name), "-o", str(objs[name])],
                               capture_output=True, text=True)
            assert r.returncode == 0 and not r.stderr.strip(), f"{name}:\n{r.stderr[-2000:]}"
    for fn in sorted(_public_functions()):
        main = tmp_path / f"main_{fn}.c"
        main.write_text(f'#include "{PUBLIC_HEADER}"\nint main(void)\n{{\n'
                        f"    void (*volatile f)(void) = (void (*)(void)){fn};\n    return f == 0;\n}}\n")
        files = kernel_files([f"{fn}(x);"])
        r = subprocess.run(["gcc", *flags, str(main), *(str(objs[f]) for f in files if f.endswith(".c")),
                            "-o", str(tmp_path / f"main_{fn}")], capture_output=True, text=True)
        assert r.returncode == 0 and not r.stderr.strip(), f"{fn} with {files}:\n{r.stderr[-2000:]}"


# ---- 3. bundles ------------------------------------------------------------------------------------------------

def _graph(m, y):
    return load_tflite("one_op.tflite", data=m.finish(y))


def test_generated_library_lists_only_the_files_its_layers_call():
    fc = generate_library(_graph(*fc_model(True, 1)), "fc_only")
    kernels = [f for f in fc.files if f in KERNEL_FILES]
    assert kernels == ["tinystudio_kernels.h", "ts_dsp.h", "ts_fixedpoint.h", "ts_mve.h", "ts_fc_dsp.c",
                       "ts_fc_mve.c", "ts_fc_ref.c", "ts_fixedpoint.c"]
    assert [s for s in fc.sources if s in KERNEL_FILES] == ["ts_fc_dsp.c", "ts_fc_mve.c", "ts_fc_ref.c",
                                                            "ts_fixedpoint.c"]
    conv = generate_library(_graph(*conv_model((1, 6, 6, 8), (8, 3, 3, 8), (1, 6, 6, 8), padding=0, stride=1)),
                            "conv")
    assert {"ts_conv_ref.c", "ts_conv_dsp.c"} <= set(conv.sources) and "ts_fc_ref.c" not in conv.files
    # every file a library lists is one it has, every kernel its layers name is defined in one of them
    for lib in (fc, conv):
        assert set(lib.sources) <= set(lib.files)
        defined = {fn for fn, f in kernel_table().items() if f in lib.files}
        assert {layer["kernel"] for layer in lib.layers} <= defined


def test_library_names_that_would_overwrite_a_kernel_file_are_refused():
    g = _graph(*fc_model(False, 0))
    for name in ("ts_fc_ref", "ts-fixedpoint", "ts_movement_ref"):
        with pytest.raises(GraphError, match="kernel library"):
            generate_library(g, name)
    assert "ts_softmax.c" in generate_library(g, "ts_softmax").files  # ts_softmax_ref.c is another file


@needs_gcc
def test_fc_only_bundle_has_no_conv_files_and_builds_and_verifies(tmp_path):
    g = _graph(*fc_model(True, 1))
    res = export_model(g, "stm32l4r5zi", tmp_path / "fc.zip", verify="host", n_inputs=3, name="fc_only")
    assert res.report["verify"]["bit_exact"] is True
    with zipfile.ZipFile(res.bundle) as z:
        names = z.namelist()
        z.extractall(tmp_path / "x")
    src = sorted(n.split("/src/", 1)[1] for n in names if n.startswith("tinystudio_fc_only/src/"))
    assert "ts_fc_ref.c" in src and "ts_fc_dsp.c" in src
    assert not [n for n in src if n.startswith(CONV_FAMILIES)], src
    assert not [n for n in names if "tinystudio_kernels.c" in n]
    root = tmp_path / "x" / "tinystudio_fc_only"
    makefile = (root / "Makefile").read_text()
    assert "src/ts_fc_ref.c" in makefile and "ts_conv" not in makefile
    assert "ts_conv" not in (root / "CMakeLists.txt").read_text()
    if shutil.which("make"):
        r = subprocess.run(["make", "host"], cwd=root, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]


@needs_qemu
def test_fc_only_bundle_verifies_in_qemu(tmp_path):
    g = _graph(*fc_model(False, 0))
    res = export_model(g, "stm32l4r5zi", tmp_path / "fc.zip", verify="qemu", n_inputs=3, name="fc_q")
    assert res.report["verify"]["bit_exact"] is True and res.report["verify"]["mode"] == "qemu"
    assert not [s for s in res.lib.sources if s.startswith(CONV_FAMILIES)]


# ---- 4. the switched DSP paths: the generator's prediction is the C's own test ------------------------------

_PATH_PROBE = """#include <stdio.h>
#include "ts_depthwise_dsp.c"
#include "ts_conv_rgb_dsp.h"
int main(void)
{
    ts_conv_params p;
    while (scanf("%d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d", &p.in_h, &p.in_w, &p.in_c, &p.out_h,
                 &p.out_w, &p.out_c, &p.k_h, &p.k_w, &p.stride_h, &p.stride_w, &p.dil_h, &p.dil_w, &p.pad_top,
                 &p.pad_left, &p.act_min, &p.act_max, &p.per_channel, &p.general_requant) == 18) {
        const int mode = p.general_requant ? 0 : (p.act_min == -128 && p.act_max == 127 ? 1 : 2);
        const int small = ts_dw_small_fits(&p, mode), s2 = !small && ts_dw_s2_ok(&p, mode);
        printf("%d %d %d %d\\n", ts_conv_rgb_ok(&p), small, s2, !small && !s2 && !ts_dw_planar(&p, mode) &&
               p.in_c >= 4);
    }
    return 0;
}
"""
_PROBE_FIELDS = ("in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "k_h", "k_w", "stride_h", "stride_w", "dil_h",
                 "dil_w", "pad_top", "pad_left", "act_min", "act_max", "per_channel", "general_requant")


@needs_gcc
def test_dsp_paths_mirror_the_c_tests(tmp_path):
    """kernelfiles.dsp_paths against ts_conv_rgb_ok, ts_dw_small_fits, ts_dw_s2_ok and ts_dw_planar themselves
    (emulated DSP build), over shapes around every bound of their conditions: a path the generator misses would be switched off
    (slower), one it invents would only cost code, but either is a mirror gone stale."""
    import numpy as np

    from engine.codegen.kernelfiles import DSP_PATHS, dsp_paths

    for name in KERNEL_FILES:
        (tmp_path / name).write_text(template(name))
    (tmp_path / "probe.c").write_text(_PATH_PROBE)
    on = ["-DTINYSTUDIO_USE_DSP=1", *(f"-D{s}=1" for s in DSP_PATHS)]
    r = subprocess.run(["gcc", "-std=c99", "-O1", "-w", "-DTINYSTUDIO_EMULATE_DSP", *on, "-I", str(tmp_path),
                        str(tmp_path / "probe.c"), str(tmp_path / "ts_fixedpoint.c"), "-o", str(tmp_path / "probe")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    rng = np.random.default_rng(7)
    pick = {"in_h": [1, 2, 3, 3, 4, 5, 6, 6, 7, 12, 12, 13], "in_c": [1, 3, 4, 6], "out_c": [1, 2, 8],
            "k_h": [1, 3, 3, 3, 5], "stride_h": [1, 2], "dil_h": [1, 1, 1, 2], "pad_top": [-1, 0, 1, 1, 1, 2],
            "act": [(-128, 127)] * 3 + [(-128, 90), (0, 127)], "per_channel": [0, 1], "general_requant": [0, 0, 0, 1]}
    cases = []
    for _ in range(4000):
        p = {k: int(rng.choice(v)) for k, v in pick.items() if k != "act"}
        p["act_min"], p["act_max"] = pick["act"][rng.integers(len(pick["act"]))]
        for f in ("in_w", "k_w", "stride_w", "dil_w", "pad_left"):  # mostly square, sometimes not
            p[f] = p[f.replace("_w", "_h").replace("_left", "_top")]
            if rng.random() < 0.3:
                p[f] = int(rng.choice(pick[f.replace("_w", "_h").replace("_left", "_top")]))
        for o, i, k, s, d, pad in (("out_h", "in_h", "k_h", "stride_h", "dil_h", "pad_top"),
                                   ("out_w", "in_w", "k_w", "stride_w", "dil_w", "pad_left")):
            same = (p[i] + 2 * p[pad] - p[d] * (p[k] - 1) - 1) // p[s] + 1   # the size the padding gives
            p[o] = max(1, same + int(rng.choice([0, 0, 0, 0, 0, -1, 1])))
        p["groups"] = 1
        cases.append(p)
    text = "".join(" ".join(str(p[f]) for f in _PROBE_FIELDS) + "\n" for p in cases)
    r = subprocess.run([str(tmp_path / "probe")], input=text, capture_output=True, text=True, check=True)
    hits = np.zeros(4, int)
    for p, line in zip(cases, r.stdout.splitlines(), strict=True):
        rgb, small, s2, group = (int(v) for v in line.split())
        conv, dw = dsp_paths(p, "ts_conv_s8"), dsp_paths(p, "ts_depthwise_conv_s8")
        assert ("TINYSTUDIO_CONV_RGB" in conv) == bool(rgb), p
        assert [s in dw for s in DSP_PATHS[2:]] == [bool(small), bool(s2), bool(group)], p
        hits += (rgb, small, s2, group)
    assert hits.min() >= 20, hits   # every path taken often enough to mean something
