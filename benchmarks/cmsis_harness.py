"""A CMSIS-NN implementation of a TinyStudio int8 graph, for the side-by-side benchmark (kernel_table.py).

    h = harness_library(graph, lib)            # a CLibrary: <name>_cmsis.c/.h calling arm_convolve_wrapper_s8, ...
    ar = cmsis_archive(cmsis_path, cflags, work)  # CMSIS-NN compiled with the same GCC flags, as a static library

The harness takes every parameter from the layer's frozen record (engine/int8/prepare.py: TFLite's per-channel
multipliers and shifts, zero points, clamps, ADD's rescaling, softmax's Q5.26 input scaling), the record the
int8 reference and our generated C read, and calls the CMSIS-NN kernels TFLite Micro's CMSIS-NN port calls for
those layers, on tensors at the same memory plan's offsets in one arena. The FC kernel sums that CMSIS-NN wants
on Helium are computed in <name>_init (TFLM computes them at Prepare, into its persistent arena).
CMSIS-NN itself is never part of the product: its path comes from the environment (CMSIS_NN_PATH).
"""
from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import numpy as np

from engine.codegen import CLibrary
from engine.codegen.cwrite import CArray, c_ident
from engine.codegen.float_edges import split_float_edges
from engine.codegen.layers import is_view
from engine.errors import GraphError
from engine.export.crossbuild import COMMON_CFLAGS, OPT, run_tool
from engine.export.targets import ARM_GCC
from engine.int8.prepare import prepare_node
from engine.memory import plan_memory
from engine.validate import infer_shapes

# The CMSIS-NN source folders the s8 kernels come from (compiled into one archive; --gc-sections keeps what
# the harness calls).
CMSIS_DIRS = ("ActivationFunctions", "BasicMathFunctions", "ConvolutionFunctions", "FullyConnectedFunctions",
              "NNSupportFunctions", "PoolingFunctions", "ReshapeFunctions", "SoftmaxFunctions", "TransposeFunctions")
LAYER_MARKERS = ("ts_layer_begin", "ts_layer_end")


def int8_core(graph):
    """The int8 graph the generated C computes (float edges split off), as engine.codegen.generate takes it."""
    g = graph if all(o in graph.tensors for n in graph.nodes for o in n.outputs) else infer_shapes(graph)
    return split_float_edges(g)[0]


class _Writer:
    def __init__(self, prefix: str):
        self.prefix = prefix
        self.arrays: list[CArray] = []
        self.body: list[str] = []      # the current layer function's lines
        self.funcs: list[str] = []     # finished layer functions
        self.sizes: list[str] = []     # buffer-size expressions (max taken in <name>_buffer_needed)
        self.init: list[str] = []
        self.statics: list[str] = []

    def array(self, layer: int, suffix: str, ctype: str, values) -> str:
        name = f"{self.prefix}_l{layer}_{suffix}"
        self.arrays.append(CArray(name, ctype, np.asarray(values).reshape(-1)))
        return name


def _dims(shape4) -> str:
    n, h, w, c = (int(v) for v in shape4)
    return f"{{.n = {n}, .h = {h}, .w = {w}, .c = {c}}}"


def _nhwc(shape) -> tuple[int, int, int, int]:
    s = tuple(int(v) for v in shape)
    if len(s) == 4:
        return s
    if len(s) == 3:
        return (s[0], 1, s[1], s[2])
    if len(s) == 2:
        return (s[0], 1, 1, s[1])
    raise ValueError(f"shape {list(s)}")


def _conv(w: _Writer, i: int, g, node, x, y) -> None:
    r = prepare_node(g, node)
    if x.dtype != "int8" or r.w_dtype not in ("int8",) or r.layout != "NHWC":
        raise GraphError("the CMSIS-NN harness takes int8 NHWC convolutions with int8 weights", node.name, node.op)
    n, h, wi, c = _nhwc(x.shape)
    _, oh, ow, m = _nhwc(y.shape)
    wq = np.asarray(r.centered)
    kh, kw = r.kernel
    bias = np.zeros(m, np.int64) if r.bias is None else np.asarray(r.bias)
    depthwise = r.group > 1 and wq.shape[-1] == 1 and r.group == c
    if r.group != 1 and not depthwise:
        raise GraphError("grouped convolution has no CMSIS-NN s8 kernel", node.name, node.op)
    wname = w.array(i, "w", "int8_t", wq[..., 0].transpose(1, 2, 0) if depthwise else wq)
    bname = w.array(i, "b", "int32_t", bias)
    mname = w.array(i, "mult", "int32_t", r.multiplier)
    sname = w.array(i, "shift", "int32_t", r.shift)
    common = (f".input_offset = {-r.x_zp}, .output_offset = {r.y_zp}, "
              f".stride = {{.w = {r.strides[1]}, .h = {r.strides[0]}}}, "
              f".padding = {{.w = {r.pads[1]}, .h = {r.pads[0]}}}, "
              f".dilation = {{.w = {r.dilations[1]}, .h = {r.dilations[0]}}}, "
              f".activation = {{.min = {r.act_min}, .max = {r.act_max}}}")
    if depthwise:
        params = f"static const cmsis_nn_dw_conv_params p{i} = {{{common}, .ch_mult = {m // c}}};"
        fdims = _dims((1, kh, kw, m))
        call, size = "arm_depthwise_conv_wrapper_s8", "arm_depthwise_conv_wrapper_s8_get_buffer_size"
    else:
        params = f"static const cmsis_nn_conv_params p{i} = {{{common}}};"
        fdims = _dims((m, kh, kw, c))
        call, size = "arm_convolve_wrapper_s8", "arm_convolve_wrapper_s8_get_buffer_size"
    w.statics += [params, f"static const cmsis_nn_dims in{i} = {_dims((n, h, wi, c))}, f{i} = {fdims}, "
                          f"b{i} = {_dims((1, 1, 1, m))}, out{i} = {_dims((n, oh, ow, m))};",
                  f"static const cmsis_nn_per_channel_quant_params q{i} = "
                  f"{{(int32_t *){mname}, (int32_t *){sname}}};"]
    w.sizes.append(f"{size}(&p{i}, &in{i}, &f{i}, &out{i})")
    w.body.append(f"    return {call}(&ctx, &p{i}, &q{i}, &in{i}, X, &f{i}, {wname}, &b{i}, {bname}, &out{i}, Y);")


def _fc(w: _Writer, i: int, g, node, x, y) -> None:
    r = prepare_node(g, node)
    if x.dtype != "int8" or r.w_dtype != "int8":
        raise GraphError("the CMSIS-NN harness takes int8 fully connected layers", node.name, node.op)
    batches, k = int(x.shape[0]), int(x.shape[1])
    units = r.units
    bias = np.zeros(units, np.int64) if r.bias is None else np.asarray(r.bias)
    wname = w.array(i, "w", "int8_t", r.centered)
    bname = w.array(i, "b", "int32_t", bias)
    w.statics += [f"static const cmsis_nn_fc_params p{i} = {{.input_offset = {-r.x_zp}, .filter_offset = 0, "
                  f".output_offset = {r.y_zp}, .activation = {{.min = {r.act_min}, .max = {r.act_max}}}}};",
                  f"static const cmsis_nn_dims in{i} = {_dims((batches, 1, 1, k))}, f{i} = {_dims((k, 1, 1, units))}, "
                  f"b{i} = {_dims((1, 1, 1, units))}, out{i} = {_dims((batches, 1, 1, units))};"]
    if r.per_channel:
        mname = w.array(i, "mult", "int32_t", r.multiplier)
        sname = w.array(i, "shift", "int32_t", r.shift)
        w.statics.append(f"static const cmsis_nn_per_channel_quant_params q{i} = "
                         f"{{(int32_t *){mname}, (int32_t *){sname}}};")
        call = "arm_fully_connected_per_channel_s8"
    else:
        w.statics.append(f"static const cmsis_nn_per_tensor_quant_params q{i} = "
                         f"{{{int(r.multiplier[0])}, {int(r.shift[0])}}};")
        call = "arm_fully_connected_s8"
    # TFLM's CMSIS-NN port: on Helium the kernel sums (bias + input offset x row sums) are made at Prepare.
    w.statics += ["#if defined(ARM_MATH_MVEI)", f"static int32_t ks{i}[{units}];", "#endif"]
    w.init += ["#if defined(ARM_MATH_MVEI)",
               f"    if (arm_vector_sum_s8(ks{i}, {k}, {units}, {wname}, {-r.x_zp}, 0, {bname}) "
               "!= ARM_CMSIS_NN_SUCCESS) return 2;", "#endif"]
    w.body += ["#if defined(ARM_MATH_MVEI)", f"    ctx.buf = ks{i};", f"    ctx.size = sizeof ks{i};", "#endif",
               f"    return {call}(&ctx, &p{i}, &q{i}, &in{i}, X, &f{i}, {wname}, &b{i}, {bname}, &out{i}, Y);"]


def _pool(w: _Writer, i: int, g, node, x, y) -> None:
    r = prepare_node(g, node)
    n, h, wi, c = _nhwc(x.shape)
    _, oh, ow, _ = _nhwc(y.shape)
    if r.layout != "NHWC" or r.dilations != (1, 1) or (not r.is_max and r.include_pad and any(r.pads)):
        raise GraphError("the CMSIS-NN harness takes NHWC pooling without dilation or counted padding",
                         node.name, node.op)
    w.statics += [f"static const cmsis_nn_pool_params p{i} = {{.stride = {{.w = {r.strides[1]}, .h = {r.strides[0]}}}, "
                  f".padding = {{.w = {r.pads[1]}, .h = {r.pads[0]}}}, "
                  f".activation = {{.min = {r.act_min}, .max = {r.act_max}}}}};",
                  f"static const cmsis_nn_dims in{i} = {_dims((n, h, wi, c))}, f{i} = {_dims((1, *r.kernel, 1))}, "
                  f"out{i} = {_dims((n, oh, ow, c))};"]
    if r.is_max:
        w.body.append(f"    return arm_max_pool_s8(&ctx, &p{i}, &in{i}, X, &f{i}, &out{i}, Y);")
    else:
        w.sizes.append(f"arm_avgpool_s8_get_buffer_size({ow}, {c})")
        w.body.append(f"    return arm_avgpool_s8(&ctx, &p{i}, &in{i}, X, &f{i}, &out{i}, Y);")


def _add(w: _Writer, i: int, g, node, x, y, b_ptr: str) -> None:
    r = prepare_node(g, node)
    if r.subtract or r.y_dtype != "int8" or tuple(g.tensors[node.inputs[1]].shape) != tuple(x.shape):
        raise GraphError("the CMSIS-NN harness takes int8 ADD of two same-shape tensors", node.name, node.op)
    w.body.append(f"    (void)ctx;\n    return arm_elementwise_add_s8(X, {b_ptr}, {-r.a_zp}, {r.m1}, {r.e1}, "
                  f"{-r.b_zp}, "
                  f"{r.m2}, {r.e2}, {r.left_shift}, Y, {r.y_zp}, {r.mo}, {r.eo}, {r.act_min}, {r.act_max}, "
                  f"{int(np.prod(y.shape))});")


def _softmax(w: _Writer, i: int, g, node, x, y) -> None:
    r = prepare_node(g, node)
    shape = [int(v) for v in x.shape]
    if r.axis not in (-1, len(shape) - 1):
        raise GraphError("the CMSIS-NN harness takes softmax over the last axis", node.name, node.op)
    rows = int(np.prod(shape[:-1]))
    w.body.append(f"    (void)ctx;\n    arm_softmax_s8(X, {rows}, {shape[-1]}, {r.multiplier}, {r.left_shift}, "
                  f"{r.diff_min}, Y);\n    return ARM_CMSIS_NN_SUCCESS;")


def harness_library(graph, lib: CLibrary, name: str | None = None) -> CLibrary:
    """The CMSIS-NN harness of `graph` (the graph `lib` was generated from), with `lib`'s API and I/O:
    <name>_init, <name>_run(input, output) and <name>_buffer_needed() (the largest kernel buffer)."""
    g = int8_core(graph)
    prefix = c_ident(name or f"{lib.name}_cmsis")
    upper = prefix.upper()
    plan = plan_memory(g)
    if plan.arena_bytes != lib.arena_bytes:  # the same planner on the same graph: the same offsets
        raise GraphError(f"the harness's memory plan ({plan.arena_bytes} B) is not the library's "
                         f"({lib.arena_bytes} B); generate both from the same graph")
    nodes = {n.name: n for n in g.nodes}
    w = _Writer(prefix)
    layers: list[tuple[str, str]] = []  # (node name, function)

    def ptr(tensor: str) -> str:
        t = g.tensors[tensor]
        if t.data is not None:
            raise GraphError(f"constant activation input '{tensor}' is not taken by the CMSIS-NN harness")
        return f"(arena + {plan.tensor_offset(tensor)[0]})"

    for node_name in plan.order:
        node = nodes[node_name]
        i = len(layers)
        x, y = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
        if is_view(node):
            if plan.tensor_offset(node.inputs[0])[0] == plan.tensor_offset(node.outputs[0])[0]:
                continue
            w.body.append(f"    (void)ctx;\n    memcpy(Y, X, {y.nbytes});\n    return ARM_CMSIS_NN_SUCCESS;")
        elif node.op == "Conv":
            _conv(w, i, g, node, x, y)
        elif node.op == "Gemm":
            _fc(w, i, g, node, x, y)
        elif node.op in ("AveragePool", "MaxPool"):
            _pool(w, i, g, node, x, y)
        elif node.op == "Add":
            _add(w, i, g, node, x, y, ptr(node.inputs[1]))
        elif node.op == "Softmax":
            _softmax(w, i, g, node, x, y)
        else:
            raise GraphError(f"no CMSIS-NN call for {node.op} in the benchmark harness", node.name, node.op)
        if node.op != "Add" and not is_view(node):
            (xo, xs), (yo, ys) = plan.tensor_offset(node.inputs[0]), plan.tensor_offset(node.outputs[0])
            if xo < yo + ys and yo < xo + xs:
                raise GraphError("the memory plan writes this layer's output over its input; CMSIS-NN's "
                                 "kernels need separate buffers", node.name, node.op)
        fn = f"layer_{i}"
        w.funcs.append(f"/* {node.name}: {node.op} */\nstatic arm_cmsis_nn_status {fn}(void)\n{{\n"
                       f"    cmsis_nn_context ctx = {{ctx_buf, TS_CMSIS_BUF}};\n"
                       f"    const int8_t *X = {ptr(node.inputs[0])};\n    int8_t *Y = {ptr(node.outputs[0])};\n"
                       + "\n".join(w.body) + "\n}\n")
        w.body = []
        layers.append((node.name, fn))

    ins = [plan.tensor_offset(s.name)[0] for s in lib.inputs]
    outs = [plan.tensor_offset(s.name)[0] for s in lib.outputs]
    calls = "\n".join(f"    TS_LAYER({fn}());" for _, fn in layers)
    copies_in = "\n".join(f"    memcpy(arena + {o}, input + {sum(s.size for s in lib.inputs[:k])}, {s.size});"
                          for k, (o, s) in enumerate(zip(ins, lib.inputs)))
    copies_out = "\n".join(f"    memcpy(output + {sum(s.size for s in lib.outputs[:k])}, arena + {o}, {s.size});"
                           for k, (o, s) in enumerate(zip(outs, lib.outputs)))
    sizes = "\n".join(f"    n = {e};\n    if (n > best) best = n;" for e in w.sizes)
    header = f"""/* {prefix}.h: CMSIS-NN implementation of {lib.name} (TinyStudio benchmark harness) */
#ifndef {upper}_H
#define {upper}_H
#include <stdint.h>
#define {upper}_INPUT_SIZE {sum(s.size for s in lib.inputs)}
#define {upper}_OUTPUT_SIZE {sum(s.size for s in lib.outputs)}
int {prefix}_init(void);
int {prefix}_run(const int8_t *input, int8_t *output);
int32_t {prefix}_buffer_needed(void);
#endif
"""
    source = f"""/* {prefix}.c: {lib.name} on CMSIS-NN, parameters from TinyStudio's int8 layer records (benchmark) */
#include <string.h>
#include "arm_nnfunctions.h"
#include "{prefix}.h"

#ifndef TS_CMSIS_BUF
#define TS_CMSIS_BUF 4   /* the build passes {prefix}_buffer_needed() (at least 4) */
#endif
#ifdef TS_LAYER_MARKS   /* per-layer instruction windows for the counter */
void ts_layer_begin(void);
void ts_layer_end(void);
#define TS_LAYER(call) do {{ arm_cmsis_nn_status rc_; ts_layer_begin(); rc_ = (call); ts_layer_end(); \\
    if (rc_ != ARM_CMSIS_NN_SUCCESS) return 1; }} while (0)
#else
#define TS_LAYER(call) do {{ if ((call) != ARM_CMSIS_NN_SUCCESS) return 1; }} while (0)
#endif

static int8_t arena[{plan.arena_bytes}] __attribute__((aligned(16)));
static int8_t ctx_buf[TS_CMSIS_BUF] __attribute__((aligned(16)));
{chr(10).join(a.declaration() for a in w.arrays)}
{chr(10).join(w.statics)}

int32_t {prefix}_buffer_needed(void)
{{
    int32_t n, best = 0;
{sizes}
    (void)n;
    return best;
}}

int {prefix}_init(void)
{{
    if ({prefix}_buffer_needed() > TS_CMSIS_BUF) return 1;
{chr(10).join(w.init)}
    return 0;
}}

{chr(10).join(w.funcs)}
int {prefix}_run(const int8_t *input, int8_t *output)
{{
{copies_in}
{calls}
{copies_out}
    return 0;
}}
"""
    weights = f'#include <stdint.h>\n\n' + "\n".join(a.render() for a in w.arrays)
    files = {f"{prefix}.h": header, f"{prefix}.c": source, f"{prefix}_weights.c": weights}
    return CLibrary(prefix, files, f"{prefix}.h", (f"{prefix}.c", f"{prefix}_weights.c"), plan.arena_bytes,
                    lib.inputs, lib.outputs, lib.macs, {"layers": [n for n, _ in layers]},
                    sum(a.nbytes for a in w.arrays))


def cmsis_sources(cmsis: Path) -> list[Path]:
    src = []
    for d in CMSIS_DIRS:
        src += sorted(p for p in (cmsis / "Source" / d).glob("*.c") if not p.name.endswith(("_f16.c", "_f32.c")))
    return src


def cmsis_archive(cmsis: Path, cflags: tuple[str, ...], cache: Path) -> Path:
    """CMSIS-NN compiled with our library's flags (-O2, the core's -mcpu/-mfpu) into cache/<key>/libcmsis-nn.a."""
    srcs = cmsis_sources(cmsis)
    if not srcs:
        raise FileNotFoundError(f"CMSIS_NN_PATH={cmsis}: no CMSIS-NN sources under Source/ (expected a checkout of "
                                "ARM-software/CMSIS-NN)")
    key = hashlib.sha256("\n".join([*cflags, *OPT, str(cmsis), *(f"{p}:{p.stat().st_mtime_ns}" for p in srcs)])
                         .encode()).hexdigest()[:16]
    out = cache / key / "libcmsis-nn.a"
    if out.is_file():
        return out
    obj = out.parent / "obj"
    obj.mkdir(parents=True, exist_ok=True)
    objs = []
    for s in srcs:
        o = obj / (s.stem + ".o")
        run_tool([ARM_GCC, *cflags, *OPT, "-ffunction-sections", "-fdata-sections", f"-I{cmsis / 'Include'}",
                  "-c", str(s), "-o", str(o)], obj, f"compiling CMSIS-NN {s.name}")
        objs.append(str(o))
    tmp = out.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    subprocess.run(["arm-none-eabi-ar", "rcs", str(tmp), *objs], check=True, capture_output=True, timeout=120)
    tmp.replace(out)
    return out


def harness_cflags(cmsis: Path, buf_size: int | None = None, layer_marks: bool = False) -> tuple[str, ...]:
    """Extra compile flags of the harness sources: CMSIS-NN's headers, the buffer size, the layer markers."""
    return (f"-I{cmsis / 'Include'}",) + ((f"-DTS_CMSIS_BUF={buf_size}",) if buf_size is not None else ()) \
        + (("-DTS_LAYER_MARKS=1",) if layer_marks else ())


__all__ = ["COMMON_CFLAGS", "LAYER_MARKERS", "cmsis_archive", "cmsis_sources", "harness_cflags", "harness_library",
           "int8_core"]
