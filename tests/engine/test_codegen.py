"""The C code generator: generated libraries compute exactly the int8 reference's bytes.

1. the DSP path's short requantization as an integer identity (numpy), and in C against the portable form;
2. the four MLPerf Tiny models: portable kernels and the DSP path (emulated on the host), 100 random inputs
   each against engine.int8.run_int8, one ASan/UBSan build, the arena, the layer pointers, the C contract;
3. one-op models for every kernel and edge case (test_int8.py's and more), built into shared host programs:
   portable, portable under the sanitizers, DSP path under the sanitizers;
4. cross-compilation with arm-none-eabi-gcc: Cortex-M4 (DSP path) and Cortex-M0+ (portable), -Werror;
5. errors, determinism and the static checks behind the arena layout.
"""
from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from engine.codegen import CodegenOptions, generate_library
from engine.codegen.generate import KERNEL_FILES
from engine.codegen.hostbuild import (HostBuildError, compile_host, compile_hosts, run_host, kernel_key,
                                       write_library)
from engine.codegen.kernelfiles import DSP_PATHS
from engine.errors import GraphError
from engine.importers.tflite_import import load_tflite
from engine.int8 import prepare_int8
from engine.int8.quant_math import multiply_by_quantized_multiplier
from engine.ir import Node, Quant, Tensor
from engine.memory import plan_memory
from tests.engine.test_int8 import CASES, MLPERF, Model, conv_model

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "mlperf-tiny"
ARM_GCC = "arm-none-eabi-gcc"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"MLPerf Tiny models not found in {DATA}")
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="no host gcc")
needs_arm = pytest.mark.skipif(shutil.which(ARM_GCC) is None, reason=f"no {ARM_GCC}")
DSP = ("-DTINYSTUDIO_EMULATE_DSP",)


def reference(g, xs: np.ndarray) -> np.ndarray:
    """run_int8 on each row of xs (all graph inputs back to back): (N, output bytes)."""
    plan = prepare_int8(g)
    sizes = [g.tensors[n].size for n in g.inputs]
    rows = []
    for x in xs:
        parts = np.split(x.reshape(-1), np.cumsum(sizes)[:-1])
        feeds = {n: p.reshape(g.tensors[n].shape) for n, p in zip(g.inputs, parts)}
        out = plan.run(feeds)
        rows.append(np.concatenate([out[n].reshape(-1) for n in g.outputs]))
    return np.stack(rows)


def first_diffs(ours: np.ndarray, ref: np.ndarray, k: int = 6) -> str:
    pos = np.flatnonzero(ours != ref)
    cells = ", ".join(f"[{int(i)}]: C {int(ours[i])} reference {int(ref[i])}" for i in pos[:k])
    return f"{pos.size} of {ref.size} bytes differ; first {cells}"


def assert_same(ours: np.ndarray, ref: np.ndarray, what: str) -> None:
    assert ours.shape == ref.shape, f"{what}: output shape {ours.shape}, reference {ref.shape}"
    bad = np.flatnonzero((ours != ref).any(axis=1))
    assert bad.size == 0, f"{what}: inference {int(bad[0])}: {first_diffs(ours[bad[0]], ref[bad[0]])}"


# ---- 1. the DSP requantization identity ---------------------------------------------------------------

def dsp_requant(x, m, shift, zo):
    """ts_rq_fast + offset in numpy: one rounded high multiply (SMMLAR) with the folded constant, one shift."""
    x, m, r = np.asarray(x, np.int64), np.asarray(m, np.int64), -np.asarray(shift, np.int64)
    fold = (2 * np.asarray(zo, np.int64) + 1) << (r - 1)
    high = (2 * x * m + (1 << 31)) >> 32
    return (high + fold - (x < 0)) >> r


def test_dsp_requantization_equals_double_rounding():
    rng = np.random.default_rng(3)
    n = 200_000
    x = rng.integers(-(1 << 30), 1 << 30, n)
    x[:3000] = rng.integers(-300, 300, 3000)  # small accumulators: ties are frequent
    m = rng.integers(1 << 30, 1 << 31, n)
    m[:500], m[500:1000] = 1 << 30, 0
    shift = rng.integers(-30, 0, n)
    zo = rng.integers(-128, 128, n)
    x[1000:1100], m[1000:1100] = -1, 1 << 30  # the one case where (x < 0) differs from (high < 0)
    # the generator's overflow condition: |high| + |fold| < 2**31
    keep = (np.abs(x) * m // (1 << 31) + 1 + np.abs((2 * zo + 1) << (-shift - 1))) < (1 << 31)
    x, m, shift, zo = x[keep], m[keep], shift[keep], zo[keep]
    want = multiply_by_quantized_multiplier(x, m, shift) + zo
    got = dsp_requant(x, m, shift, zo)
    bad = np.flatnonzero(got != want)
    assert keep.mean() > 0.5 and bad.size == 0, [(int(x[i]), int(m[i]), int(shift[i]), int(zo[i]), int(got[i]),
                                                  int(want[i])) for i in bad[:5]]


@needs_gcc
def test_dsp_requantization_in_c_matches_portable(tmp_path):
    """The C of both forms, the DSP instructions emulated: the same values on random and edge inputs."""
    lib = generate_library(small_graph(), "m")
    for name in ("tinystudio_kernels.h", "ts_fixedpoint.h", "ts_fixedpoint.c", "ts_dsp.h"):
        (tmp_path / name).write_text(lib.files[name])
    (tmp_path / "t.c").write_text('#include "ts_dsp.h"\n' + r'''
#include <stdio.h>
static uint32_t s = 12345u;
static uint32_t rnd(void) { s = s * 1664525u + 1013904223u; return s; }
int main(void)
{
    long i, bad = 0;
    for (i = 0; i < 2000000; ++i) {
        int32_t x = (int32_t)(rnd() >> 2) - (1 << 29), m = (int32_t)(rnd() >> 1);
        int8_t sh = (int8_t)(-1 - (int32_t)(rnd() % 20));
        int32_t off = (int32_t)(rnd() % 256) - 128;
        ts_rq q;
        if (i % 4 == 0) x = (int32_t)(rnd() % 600) - 300;
        if (i % 1000 == 0) { x = -1; m = 1 << 30; }
        if (m < (1 << 30)) m += 1 << 30;
        q = ts_rq_channel(&m, &sh, 0, 2 * off + 1);
        if (ts_rq_fast(x, &q) != ts_mbqm(x, m, sh) + off && bad++ < 5)
            printf("x %ld m %ld shift %ld off %ld\n", (long)x, (long)m, (long)sh, (long)off);
    }
    return bad != 0;
}
''')
    exe = tmp_path / "t"
    r = subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", *DSP, "-Wno-unused-function",
                        "-I", str(tmp_path), str(tmp_path / "t.c"), str(tmp_path / "ts_fixedpoint.c"), "-o", str(exe)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


# ---- 2. the MLPerf Tiny models ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mlperf():
    """name -> (graph, library, 100 random inputs, reference outputs)."""
    out = {}
    rng = np.random.default_rng(2024)
    for name, file in MLPERF.items():
        g = load_tflite(DATA / file)
        lib = generate_library(g, name)
        xs = rng.integers(-128, 128, (100, sum(s.size for s in lib.inputs))).astype(np.int8)
        out[name] = (g, lib, xs, reference(g, xs))
    return out


@needs_data
@needs_gcc
@pytest.mark.parametrize("model", list(MLPERF))
def test_mlperf_portable_dsp_and_sanitized_builds_are_bit_exact(model, mlperf, tmp_path):
    g, lib, xs, ref = mlperf[model]
    for variant, flags, sanitize, n in (("portable", (), False, 100), ("dsp", DSP, False, 100),
                                        ("dsp_asan_ubsan", DSP, True, 10)):
        exe = compile_host(lib, tmp_path / variant, sanitize=sanitize, extra_cflags=flags)
        assert_same(run_host(exe, xs[:n]), ref[:n], f"{model} {variant}")


@needs_data
@pytest.mark.parametrize("model", list(MLPERF))
def test_mlperf_arena_pointers_and_c_contract(model, mlperf):
    g, lib, _, _ = mlperf[model]
    plan = plan_memory(g)
    header, source = lib.files[f"{model}.h"], lib.files[f"{model}.c"]
    assert lib.arena_bytes == plan.arena_bytes
    assert re.search(rf"#define {model.upper()}_ARENA_SIZE {plan.arena_bytes}\b", header)
    assert f"int {model}_run(const int8_t *input, int8_t *output);" in header
    assert lib.inputs[0].size == g.tensors[g.inputs[0]].size and lib.outputs[0].dtype == "int8"
    # every arena pointer of every layer lies inside the arena, and every A(offset) in the C is one of them
    offsets = set()
    for layer in lib.layers:
        for tensor, off, nbytes, _ in layer["arena"]:
            assert 0 <= off and off + nbytes <= plan.arena_bytes, (layer["node"], tensor, off, nbytes)
            offsets.add(off)
    assert {int(v) for v in re.findall(r"\bA\((\d+)\)", source)} <= offsets
    # one commented function per layer, called in the plan's order; views generate nothing
    called = re.findall(r"^    layer_(\d+)\(\);", source, re.M)
    assert [int(c) for c in called] == list(range(len(lib.layers)))
    order = [n for n in plan.order if any(layer["node"] == n for layer in lib.layers)]
    assert [layer["node"] for layer in lib.layers] == order
    assert not any(layer["op"] in ("Reshape", "Flatten", "Squeeze", "Unsqueeze") for layer in lib.layers)
    for i, layer in enumerate(lib.layers):
        assert re.search(rf"/\* layer {i}: .*\*/\nstatic void layer_{i}\(void\)", source), layer["node"]
    # the stamp in every file; the MACs of the graph
    for text in lib.files.values():
        assert lib.stamp["graph_hash"] in text and f"TinyStudio {lib.stamp['version']}" in text
    assert lib.macs == sum(layer["macs"] for layer in lib.layers) > 0


# the switched DSP fast paths each MLPerf model's library links (kernelfiles.DSP_PATHS): KWS's convs are neither
# 3x3 over 3 channels nor small or stride-2 depthwise; VWW has all of those; IC only its 3x3 RGB stem; AD no conv
MLPERF_PATHS = {"kws": set(), "vww": {"TINYSTUDIO_CONV_RGB", "TINYSTUDIO_DW_SMALL", "TINYSTUDIO_DW_S2"},
                "ic": {"TINYSTUDIO_CONV_RGB"}, "ad": set()}


@needs_gcc
@pytest.mark.parametrize("model", list(MLPERF))
def test_mlperf_dsp_path_switches_and_switched_off_paths_stay_bit_exact(model, mlperf, tmp_path):
    """Which DSP_PATHS a model's library keeps, and that a switch at 0 only costs speed: with every path off (-D
    overrides the header), the emulated DSP build still gives the reference's bytes (the general loops run)."""
    g, lib, xs, ref = mlperf[model]
    header = lib.files["tinystudio_kernels.h"]
    on = {s for s in DSP_PATHS if f"#define {s} 1" in header}
    assert on == MLPERF_PATHS[model] and all(f"#define {s} 0" in header for s in set(DSP_PATHS) - on), on
    wide = generate_library(g, model, options=CodegenOptions(wide_weights=True)).files["tinystudio_kernels.h"]
    assert {s for s in DSP_PATHS if f"#define {s} 1" in wide} == on
    off = tuple(f"-D{s}=0" for s in DSP_PATHS)
    exe = compile_host(lib, tmp_path / "off", sanitize=False, extra_cflags=(*DSP, *off))
    assert_same(run_host(exe, xs[:20]), ref[:20], f"{model} DSP paths off")


def _code_only(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r'"(\\.|[^"\\])*"', '""', text)


@needs_data
@pytest.mark.parametrize("model", list(MLPERF))
def test_mlperf_library_has_no_malloc_stdio_or_float(model, mlperf):
    _, lib, _, _ = mlperf[model]
    for path, text in lib.files.items():
        if path == f"{model}_io.c" or path.endswith(".h") and path != "tinystudio_kernels.h":
            continue  # the float helpers, and the public header's scale literals
        code = _code_only(text)
        found = re.findall(r"\b(malloc|calloc|realloc|free|printf|fprintf|puts|stdio|FILE|float|double)\b", code)
        assert not found, f"{path}: {sorted(set(found))}"
        assert not re.search(r"\d\.\d*f?\b", code), f"{path}: a floating-point literal"


_CROSS_OBJECTS: dict[tuple, Path] = {}  # the kernel files are the same for the four models: built once per core


def _cross_compile(lib, flags: list[str], d: Path, src: str, obj: Path) -> None:
    """arm-none-eabi-gcc -c `src` of `lib` (written in `d`) into `obj`, -Werror and no output allowed; a kernel
    file whose text (less the model's stamp comment), kernel headers and flags were already compiled (another
    model) reuses that object."""
    key = None
    if src in KERNEL_FILES:
        key = (tuple(f for f in flags if not f.startswith(str(d))), src, kernel_key(src, lib.files))
        if key in _CROSS_OBJECTS:
            shutil.copyfile(_CROSS_OBJECTS[key], obj)
            return
    r = subprocess.run([ARM_GCC, *flags, "-c", str(d / src), "-o", str(obj)], capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr.strip(), f"{flags[:2]} {src}:\n{r.stderr[-3000:]}"
    if key is not None:
        _CROSS_OBJECTS[key] = obj


@needs_data
@needs_arm
@pytest.mark.parametrize("model", list(MLPERF))
def test_mlperf_cross_compiles_for_cortex_m(model, mlperf, tmp_path):
    _, lib, _, _ = mlperf[model]
    d = write_library(lib, tmp_path)
    common = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I", str(d))
    cores = {"m4": ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"),
             "m0plus": ("-mcpu=cortex-m0plus", "-mthumb")}
    for core, flags in cores.items():
        for src in lib.sources:
            _cross_compile(lib, [*flags, *common], d, src, tmp_path / f"{core}_{src}.o")
        # the DSP path is in the M4 objects (SMLAD) and absent from the M0+ ones
        kernels = [tmp_path / f"{core}_{src}.o" for src in lib.sources if src.startswith("ts_")]
        dis = subprocess.run(["arm-none-eabi-objdump", "-d", *map(str, kernels)], capture_output=True, text=True).stdout
        assert ("smlad" in dis) == (core == "m4"), core
    # dsp="off" keeps the portable kernels even where the DSP extension exists
    off = generate_library(mlperf[model][0], model, options=CodegenOptions(dsp="off"))
    d2 = write_library(off, tmp_path / "off")
    objs = []
    for src in (s for s in off.sources if s.startswith("ts_")):
        objs.append(str(tmp_path / f"off_{src}.o"))
        _cross_compile(off, [*cores["m4"], *common[:-2], "-I", str(d2)], d2, src, Path(objs[-1]))
    dis = subprocess.run(["arm-none-eabi-objdump", "-d", *objs], capture_output=True, text=True).stdout
    assert objs and "smlad" not in dis


# ---- 3. one-op models -------------------------------------------------------------------------------------

R = np.random.default_rng(11)


def conv_general(out_scale: float):
    """A conv whose multipliers exceed 1 (positive shifts): the DSP path requantizes portably."""
    m = Model()
    x = m.act("x", (1, 5, 5, 4), 0.05, 3)
    k = m.weights("k", (6, 3, 3, 4), R.uniform(0.002, 0.02, 6), axis=0)
    y = m.act("y", (1, 5, 5, 6), out_scale, 0, feed=False)
    m.w.op("CONV_2D", [x, k, m.bias("b", 6)], [y], "Conv2DOptions", Padding=0, StrideW=1, StrideH=1)
    return m, y


def conv_dead_channel():
    """A conv with an all-zero channel and a saturated bias (TFLite converters write such channels)."""
    m = Model()
    x = m.act("x", (1, 4, 4, 8), 0.05, -128)
    data = R.integers(-127, 128, (4, 1, 1, 8)).astype(np.int8)
    data[2] = 0
    k = m.w.tensor("k", (4, 1, 1, 8), "int8", data=data, scale=np.float32([0.01, 0.02, 1e-9, 0.01]),
                   zero_point=[0] * 4, axis=0)
    b = m.w.tensor("b", (4,), "int32", data=np.int32([100, -300, (1 << 31) - 1, 5]), scale=1e-3, zero_point=0)
    y = m.act("y", (1, 4, 4, 4), 0.1, -128, feed=False)
    m.w.op("CONV_2D", [x, k, b], [y], "Conv2DOptions", Padding=1, StrideW=1, StrideH=1, FusedActivationFunction=1)
    return m, y


def fc_tails():
    m = Model()
    x = m.act("x", (3, 23), 0.07, -9)
    k = m.weights("k", (9, 23), R.uniform(0.002, 0.02, 9))
    y = m.act("y", (3, 9), 0.05, 3, feed=False)
    m.w.op("FULLY_CONNECTED", [x, k, m.bias("b", 9)], [y], "FullyConnectedOptions", FusedActivationFunction=3)
    return m, y


def move_model(op, out_shape, consts, options=None, x_shape=(1, 5, 6, 4), n_out=1, **fields):
    """One data-movement op: x plus constant operands, 1..n outputs on x's grid."""
    m = Model()
    x = m.act("x", x_shape, 0.05, 7)
    ins = [x] + [m.const(f"c{i}", c) for i, c in enumerate(consts)]
    if op == "SPLIT":
        ins = [ins[1], ins[0]]
    outs = [m.act(f"y{i}", out_shape, 0.05, 7, feed=False) for i in range(n_out)]
    m.w.op(op, ins, outs, options, **fields)
    m.outs = outs
    return m, outs[0]


def binary_const(op, options):
    """A binary op with a constant operand broadcast over the other."""
    m = Model()
    a = m.act("a", (1, 3, 4, 5), 0.06, -3)
    b = m.w.tensor("b", (1, 1, 1, 5), "int8", data=R.integers(-128, 128, (1, 1, 1, 5)).astype(np.int8), scale=0.04,
                   zero_point=2)
    y = m.act("y", (1, 3, 4, 5), 0.07, 1, feed=False)
    m.w.op(op, [a, b], [y], options)
    return m, y


def reduce_model(op, axes, out_shape, keep=True, same_grid=False):
    m = Model()
    x = m.act("x", (1, 4, 5, 6), 0.03, -20)
    y = m.act("y", out_shape, 0.03 if same_grid else 0.011, -20 if same_grid else 4, feed=False)
    m.w.op(op, [x, m.const("axes", np.array(axes, np.int32))], [y], "ReducerOptions", KeepDims=keep)
    return m, y


def concat_grids():
    m = Model()
    a = m.act("a", (1, 3, 3, 2), 0.05, 1)
    b = m.act("b", (1, 3, 3, 5), 0.09, -6)
    c = m.act("c", (1, 3, 3, 7), 0.05, 1, feed=False)
    m.w.op("CONCATENATION", [a, b], [c], "ConcatenationOptions", Axis=3)
    return m, c


EXTRA = {
    # conv: C % 4 != 0 (int8 gather), K % 4 tails, odd channel counts, fewer than 4 output pixels, 1x1 fast path
    "conv_c3_k27_m5_s2": lambda: conv_model((1, 7, 9, 3), (5, 3, 3, 3), (1, 4, 5, 5), padding=0, stride=2),
    "conv_one_pixel": lambda: conv_model((1, 3, 3, 8), (6, 3, 3, 8), (1, 1, 1, 6), padding=1, stride=1),
    "conv_c1_5x3_s2": lambda: conv_model((1, 12, 6, 1), (8, 5, 3, 1), (1, 6, 3, 8), padding=0, stride=2, act=1),
    "conv_1x1_30_pixels": lambda: conv_model((1, 5, 6, 8), (12, 1, 1, 8), (1, 5, 6, 12), padding=1, stride=1),
    "conv_1x1_stride2_m3": lambda: conv_model((1, 6, 6, 8), (3, 1, 1, 8), (1, 3, 3, 3), padding=1, stride=2),
    "conv_dilated_c8": lambda: conv_model((1, 9, 9, 8), (4, 3, 3, 8), (1, 5, 5, 4), padding=1, stride=1, dilation=2),
    "conv_batch2": lambda: conv_model((2, 5, 6, 4), (6, 3, 3, 4), (2, 5, 6, 6), padding=0, stride=1, act=1),
    "depthwise_batch2": lambda: conv_model((2, 5, 6, 8), (1, 3, 3, 8), (2, 5, 6, 8), padding=0, stride=1,
                                           depthwise=True),
    "conv_multiplier_above_1": lambda: conv_general(2e-4),
    "conv_dead_channel": conv_dead_channel,
    # depthwise: channel tails, a 5x5 kernel, stride 2 with a clamped range, padding VALID
    "depthwise_c6_tail": lambda: conv_model((1, 6, 7, 6), (1, 3, 3, 6), (1, 6, 7, 6), padding=0, stride=1,
                                            depthwise=True),
    "depthwise_5x5": lambda: conv_model((1, 9, 9, 8), (1, 5, 5, 8), (1, 9, 9, 8), padding=0, stride=1,
                                        depthwise=True, act=1),
    "depthwise_s2_relu6_clamped": lambda: conv_model((1, 9, 9, 8), (1, 3, 3, 8), (1, 5, 5, 8), padding=0, stride=2,
                                                     act=3, depthwise=True),
    "depthwise_valid_c12": lambda: conv_model((1, 6, 5, 12), (1, 3, 3, 12), (1, 4, 3, 12), padding=1, stride=1,
                                              depthwise=True),
    "fc_tails_batch3_relu6": fc_tails,
    # data movement and the remaining element-wise / reduction kernels
    "transpose": lambda: move_model("TRANSPOSE", (1, 4, 5, 6), [np.array([0, 3, 1, 2], np.int32)]),
    "strided_slice": lambda: move_model("STRIDED_SLICE", (1, 2, 3, 4), [np.array([0, 1, 0, 0], np.int32),
                                        np.array([1, 5, 6, 4], np.int32), np.array([1, 2, 2, 1], np.int32)],
                                        "StridedSliceOptions"),
    "mirror_pad": lambda: move_model("MIRROR_PAD", (1, 7, 8, 4), [np.array([[0, 0], [1, 1], [2, 0], [0, 0]],
                                     np.int32)], "MirrorPadOptions", Mode=0),
    "gather": lambda: move_model("GATHER", (1, 5, 3, 4), [np.array([5, 0, 2], np.int32)], "GatherOptions", Axis=2),
    "resize_nearest": lambda: move_model("RESIZE_NEAREST_NEIGHBOR", (1, 10, 9, 4), [np.array([10, 9], np.int32)],
                                         "ResizeNearestNeighborOptions"),
    "split": lambda: move_model("SPLIT", (1, 5, 3, 4), [np.array(2, np.int32)], "SplitOptions", n_out=2,
                                NumSplits=2),
    "add_constant_broadcast": lambda: binary_const("ADD", "AddOptions"),
    "mul_constant_broadcast": lambda: binary_const("MUL", "MulOptions"),
    "maximum_broadcast": lambda: binary_same_grid("MAXIMUM"),
    "minimum_broadcast": lambda: binary_same_grid("MINIMUM"),
    "reduce_max": lambda: reduce_model("REDUCE_MAX", [1, 2], (1, 1, 1, 6), same_grid=True),
    "mean_last_axis": lambda: reduce_model("MEAN", [3], (1, 4, 5), keep=False),
    "concat_two_grids": concat_grids,
}


def binary_same_grid(op):
    m = Model()
    a = m.act("a", (2, 3, 4), 0.05, 7)
    b = m.act("b", (1, 3, 1), 0.05, 7)
    y = m.act("y", (2, 3, 4), 0.05, 7, feed=False)
    m.w.op(op, [a, b], [y])
    return m, y


ONE_OP = {**CASES, **EXTRA}
NOT_GENERATED = {"quantize_float": "float32"}  # a float input: the C library takes int8 tensors


@pytest.fixture(scope="module")
def one_op_libraries(tmp_path_factory):
    """name -> (graph, library, inputs, reference); the three host programs built over all of them."""
    libs, cases = [], {}
    rng = np.random.default_rng(5)
    for i, (name, build) in enumerate(ONE_OP.items()):
        m, y = build()
        data = m.w.finish([x for x, _, _ in m.inputs], getattr(m, "outs", [y]))
        g = load_tflite(f"{name}.tflite", data=data)
        if name in NOT_GENERATED:
            with pytest.raises(GraphError, match=NOT_GENERATED[name]):
                generate_library(g, f"op{i}")
            continue
        lib = generate_library(g, f"op{i}")
        feeds = m.feeds(6, rng)
        xs = np.stack([np.concatenate([np.asarray(v).reshape(-1) for v in f]) for f in feeds]).astype(np.int8)
        cases[name] = (g, lib, xs, reference(g, xs))
        libs.append(lib)
    d = tmp_path_factory.mktemp("one_op")
    exes = {"portable": compile_hosts(libs, d / "portable"),
            "portable_asan_ubsan": compile_hosts(libs, d / "pasan", sanitize=True),
            "dsp_asan_ubsan": compile_hosts(libs, d / "dasan", sanitize=True, extra_cflags=DSP)}
    return cases, exes


@needs_gcc
@pytest.mark.parametrize("case", [c for c in ONE_OP if c not in NOT_GENERATED])
def test_one_op_models_bit_exact(case, one_op_libraries):
    cases, exes = one_op_libraries
    g, lib, xs, ref = cases[case]
    for variant, exe in exes.items():
        assert_same(run_host(exe, xs, args=(lib.name,)), ref, f"{case} ({variant})")


def test_one_op_kernels_cover_every_emitter(one_op_libraries):
    """Each kernel family is exercised by some one-op case, and the DSP paths by their edge cases."""
    cases, _ = one_op_libraries
    kernels = {layer["kernel"] for _, lib, _, _ in cases.values() for layer in lib.layers}
    assert {"ts_conv_s8", "ts_depthwise_conv_s8", "ts_fully_connected_s8", "ts_add_s8", "ts_mul_s8",
            "ts_minmax_s8", "ts_avg_pool_s8", "ts_max_pool_s8", "ts_mean_s8", "ts_reduce_minmax_s8",
            "ts_softmax_s8", "ts_lut_s8", "ts_copy_s8", "ts_gather_s8"} <= kernels
    general = cases["conv_multiplier_above_1"][1].files[cases["conv_multiplier_above_1"][1].name + ".c"]
    assert ".general_requant = 1" in general
    dead = cases["conv_dead_channel"][1].files[cases["conv_dead_channel"][1].name + ".c"]
    assert ".general_requant = 0" in dead  # the saturated dead channel no longer forces the portable form


def _one_d(g):
    """A single-node NHWC 2-D graph with H = 1 as its 1-D NHWC form: x (N, W, C), weights (M, kW, C)."""
    t = g.copy()
    node = t.nodes[0]
    for key in ("strides", "dilations", "kernel_shape"):
        if key in node.attrs:
            node.attrs[key] = node.attrs[key][1:]
    for name in (node.inputs[0], *node.outputs):
        x = t.tensors[name]
        t.tensors[name] = Tensor(name, (x.shape[0], *x.shape[2:]), x.dtype, x.quant)
    if node.op == "Conv":
        w = t.tensors[node.inputs[1]]
        data = np.ascontiguousarray(w.data[:, 0])
        t.tensors[w.name] = Tensor(w.name, data.shape, w.dtype, w.quant, data)
    return t


def _ir_cases():
    """Graphs TFLite cannot express but TinyStudio's quantized graphs can hold, with their input rows."""
    rng = np.random.default_rng(9)
    out = {}
    m, y = conv_model((1, 1, 20, 4), (6, 1, 5, 4), (1, 1, 10, 6), padding=0, stride=2, act=1)
    out["conv1d"] = _one_d(load_tflite("c.tflite", data=m.finish(y)))
    m, y = conv_model((1, 1, 17, 8), (1, 1, 3, 8), (1, 1, 17, 8), padding=0, stride=1, depthwise=True)
    out["depthwise1d"] = _one_d(load_tflite("d.tflite", data=m.finish(y)))
    m, y = CASES["maxpool_same"]()
    g = load_tflite("p.tflite", data=m.finish(y))
    out["avgpool_count_include_pad"] = g.copy()
    node = out["avgpool_count_include_pad"].nodes[0]
    out["avgpool_count_include_pad"].nodes[0] = Node("AveragePool", node.name, node.inputs, node.outputs,
                                                      {**node.attrs, "count_include_pad": 1})
    m, y = CASES["mean_axes_1_2"]()
    g = load_tflite("m.tflite", data=m.finish(y))
    gap = g.copy()
    node = gap.nodes[0]
    gap.nodes[0] = Node("GlobalAveragePool", node.name, node.inputs[:1], node.outputs, {"layout": "NHWC"})
    out["global_average_pool_nhwc"] = gap
    return {k: (g, rng.integers(-128, 128, (5, g.tensors[g.inputs[0]].size)).astype(np.int8)) for k, g in out.items()}


@needs_gcc
def test_ir_only_layouts_bit_exact(tmp_path):
    cases = _ir_cases()
    libs = {k: generate_library(g, k) for k, (g, _) in cases.items()}
    assert any(layer["kernel"] == "ts_depthwise_conv_s8" for layer in libs["depthwise1d"].layers)
    for variant, kw in (("portable", {}), ("dsp_asan_ubsan", {"sanitize": True, "extra_cflags": DSP})):
        exe = compile_hosts(list(libs.values()), tmp_path / variant, **kw)
        for k, (g, xs) in cases.items():
            assert_same(run_host(exe, xs, args=(k,)), reference(g, xs), f"{k} ({variant})")


# ---- int4 weights, packed two per byte ----------------------------------------------------------------------

def test_pack_int4_low_nibble_first():
    from engine.codegen.cwrite import pack_int4
    assert pack_int4([1, -2, 7]).tolist() == [0xE1, 0x07]
    assert pack_int4([-8, 7, 0, -1]).tolist() == [0x78, 0xF0]
    v = np.arange(-8, 8).repeat(3)[:47]
    packed = pack_int4(v)
    nib = np.stack([packed & 0xF, packed >> 4], axis=1).reshape(-1)[:v.size].astype(np.int64)
    assert np.array_equal(np.where(nib > 7, nib - 16, nib), v)
    with pytest.raises(ValueError):
        pack_int4([8])


def _as_int4(g):
    """Conv/Gemm weights clipped to [-8, 7] and retyped int4 (quantization kept): a valid graph whose
    weights cover the whole int4 range, -8 included."""
    g = g.copy()
    for node in g.nodes:
        if node.op in ("Conv", "Gemm"):
            w = g.tensors[node.inputs[1]]
            g.tensors[w.name] = Tensor(w.name, w.shape, "int4", w.quant, np.clip(w.data, -8, 7).astype(np.int8))
    return g


def _int4_cases():
    """name -> (int8 graph, int4 graph): odd weight counts, depthwise with a multiplier, FC tails, and
    (with the data) KWS's DS-CNN requantized by mixed-precision's int4_weights on every layer."""
    from engine.compress.mixed import int4_weights
    out = {}
    m, y = conv_model((1, 5, 5, 3), (5, 3, 3, 3), (1, 5, 5, 5), padding=0, stride=1, act=1)
    out["s4_conv"] = load_tflite("c.tflite", data=m.finish(y))
    m, y = conv_model((1, 6, 6, 3), (1, 3, 3, 6), (1, 3, 3, 6), padding=0, stride=2, depthwise=True, mult=2)
    out["s4_depthwise"] = load_tflite("d.tflite", data=m.finish(y))
    m, y = fc_tails()
    out["s4_fc"] = load_tflite("f.tflite", data=m.finish(y))
    cases = {k: (g, _as_int4(g)) for k, g in out.items()}
    if DATA.is_dir():
        g = load_tflite(DATA / MLPERF["kws"])
        cases["s4_kws"] = (g, int4_weights(g, [n.name for n in g.nodes if n.op in ("Conv", "Gemm")]))
    return cases


@needs_gcc
def test_int4_weights_are_packed_and_bit_exact(tmp_path):
    rng = np.random.default_rng(44)
    cases = _int4_cases()
    libs, rows = {}, {}
    for k, (g8, g4) in cases.items():
        lib8, lib4 = generate_library(g8, k + "_8"), generate_library(g4, k)
        kernels = {layer["kernel"] for layer in lib4.layers}
        assert kernels & {"ts_conv_s4", "ts_depthwise_conv_s4", "ts_fully_connected_s4"}, (k, kernels)
        assert not kernels & {"ts_conv_s8", "ts_depthwise_conv_s8", "ts_fully_connected_s8"}, (k, kernels)
        # every weight array is packed: ceil(count / 2) bytes of uint8_t for count int8_t
        w8 = dict(re.findall(r"^const int8_t \w+_l(\d+)_w\[(\d+)\] = ", lib8.files[f"{k}_8_weights.c"], re.M))
        w4 = dict(re.findall(r"^const uint8_t \w+_l(\d+)_w\[(\d+)\] = ", lib4.files[f"{k}_weights.c"], re.M))
        assert w8 and w8.keys() == w4.keys(), (k, w8, w4)
        assert all(int(w4[i]) == (int(w8[i]) + 1) // 2 for i in w8), (k, w8, w4)
        print(f"{k}: C const bytes int8 {lib8.weights_bytes}, int4 packed {lib4.weights_bytes}")
        libs[k] = lib4
        rows[k] = rng.integers(-128, 128, (20, lib4.inputs[0].size)).astype(np.int8)
    assert re.search(r"const uint8_t s4_conv_l0_w\[68\] = ", libs["s4_conv"].files["s4_conv_weights.c"])
    for variant, flags in (("portable", ()), ("dsp", DSP)):
        exe = compile_hosts(list(libs.values()), tmp_path / variant, extra_cflags=flags)
        for k, (_, g4) in cases.items():
            assert_same(run_host(exe, rows[k], args=(k,)), reference(g4, rows[k]), f"{k} int4 ({variant})")


@needs_arm
def test_int4_library_cross_compiles_for_cortex_m4(tmp_path):
    g8, g4 = _int4_cases()["s4_depthwise"]
    lib = generate_library(g4, "s4_m4")
    d = write_library(lib, tmp_path)
    for src in lib.sources:
        r = subprocess.run([ARM_GCC, "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
                            "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I", str(d), "-c",
                            str(d / src), "-o", str(tmp_path / f"{src}.o")], capture_output=True, text=True)
        assert r.returncode == 0 and not r.stderr.strip(), f"{src}:\n{r.stderr[-3000:]}"


# ---- 5. errors, determinism, static checks -------------------------------------------------------------------

def small_graph():
    m, y = conv_model((1, 6, 6, 8), (8, 3, 3, 8), (1, 6, 6, 8), padding=0, stride=1, act=1)
    return load_tflite("small.tflite", data=m.finish(y))


def test_generation_is_deterministic_and_names_are_sanitized():
    g = small_graph()
    a, b = generate_library(g, "My-Model 2"), generate_library(g, "My-Model 2")
    assert a.name == "my_model_2" and a.files == b.files and a.header == "my_model_2.h"
    assert set(a.sources) <= set(a.files) and "tinystudio_kernels.h" in a.files
    assert a.stamp["arena_bytes"] == a.arena_bytes and a.weights_bytes > 8 * 9 * 8


def test_arena_layout_is_checked_statically():
    g = small_graph()
    plan = plan_memory(g)
    with pytest.raises(AssertionError, match="outside"):
        generate_library(g, "m", plan=dataclasses.replace(plan, arena_bytes=plan.arena_bytes - 16))
    overlapping = dataclasses.replace(plan, offsets=tuple(0 for _ in plan.offsets))
    with pytest.raises(AssertionError, match="cannot run in place"):
        generate_library(g, "m", plan=overlapping)


def test_unsupported_graphs_raise_graph_errors_naming_node_and_op():
    g = small_graph()
    node = g.nodes[0]
    nchw = dataclasses.replace(g, nodes=[dataclasses.replace(node, attrs={**node.attrs, "layout": "NCHW"})])
    with pytest.raises(GraphError, match=rf"node '{node.name}' \(Conv\).*NHWC"):
        generate_library(nchw, "m")
    x = g.tensors[g.inputs[0]]
    floats = dataclasses.replace(g, tensors={**g.tensors, x.name: dataclasses.replace(x, dtype="float32",
                                                                                      quant=None)})
    with pytest.raises(GraphError, match="int8"):
        generate_library(floats, "m")
    per_channel_in = dataclasses.replace(g, tensors={**g.tensors, x.name: dataclasses.replace(
        x, quant=Quant(np.float32([0.1, 0.2]), np.array([0, 0]), 3))})
    with pytest.raises(GraphError):
        generate_library(per_channel_in, "m")
    with pytest.raises(ValueError, match="dsp"):
        generate_library(g, "m", options=CodegenOptions(dsp="always"))


@needs_gcc
def test_host_runner_streams_and_rejects_truncated_input(tmp_path):
    g = small_graph()
    lib = generate_library(g, "small")
    exe = compile_host(lib, tmp_path)
    assert run_host(exe, np.zeros((0, lib.inputs[0].size), np.int8)).shape == (0, 0)
    xs = np.random.default_rng(1).integers(-128, 128, (3, lib.inputs[0].size)).astype(np.int8)
    assert_same(run_host(exe, xs), reference(g, xs), "small")
    with pytest.raises(HostBuildError, match="truncated"):
        run_host(exe, xs.reshape(-1)[:-5].reshape(1, -1))



@needs_gcc
def test_cached_kernel_objects_follow_the_kernel_text(tmp_path):
    """hostbuild reuses a kernel's object only for the same code (the stamp comment aside): a changed kernel
    or header is compiled again, and its errors still fail the build."""
    lib = generate_library(small_graph(), "small")
    kernel = next(s for s in lib.sources if s in KERNEL_FILES and s.endswith("_ref.c"))
    restamped = lib.files[kernel].replace("sha256", "sha-256", 1)
    assert restamped != lib.files[kernel]
    stamp_only = dataclasses.replace(lib, files={**lib.files, kernel: restamped})
    assert kernel_key(kernel, stamp_only.files) == kernel_key(kernel, lib.files)
    compile_host(lib, tmp_path / "a")
    compile_host(stamp_only, tmp_path / "b")
    header = next(h for h, _ in kernel_key(kernel, lib.files) if h.endswith(".h"))
    for name in (kernel, header):
        broken = dataclasses.replace(lib, files={**lib.files, name: lib.files[name] + "\n#error changed kernel\n"})
        assert kernel_key(kernel, broken.files) != kernel_key(kernel, lib.files)
        with pytest.raises(HostBuildError, match="changed kernel"):
            compile_host(broken, tmp_path / name)
