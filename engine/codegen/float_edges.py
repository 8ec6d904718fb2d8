"""Float at the edges of an int8 model: QUANTIZE first, DEQUANTIZE last.

The TFLite converter makes such files unless told `inference_input_type=int8`: the model takes and returns
float32 and converts at its edges. The generated C keeps its int8 core (the arena, the kernels and the int8
API stay as for any model) and adds a float API in `<name>_io.c` that converts exactly as tflite-micro's
QUANTIZE and DEQUANTIZE kernels do, so the library takes and returns what the model takes and returns.

    core, ins, outs = split_float_edges(graph)   # the int8 core graph; one FloatEdge per converted input/output
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from engine.ir import Graph


@dataclass(frozen=True)
class FloatEdge:
    float_name: str        # the model's float32 input or output
    int_name: str          # the int8 tensor the core takes or gives instead
    shape: tuple[int, ...]
    scale: float
    zero_point: int


def _per_tensor_int8(t) -> bool:
    return t.dtype == "int8" and t.quant is not None and t.quant.scale.size == 1 and t.data is None


def _consumers(g: Graph, name: str) -> list:
    return [n for n in g.nodes if name in n.inputs]


def _edge(float_name: str, t) -> FloatEdge:
    return FloatEdge(float_name, t.name, tuple(t.shape), float(t.quant.scale[0]), int(t.quant.zero_point[0]))


def split_float_edges(graph: Graph) -> tuple[Graph, tuple[FloatEdge, ...], tuple[FloatEdge, ...]]:
    """`graph` without the QuantizeLinear that converts a float32 graph input to per-tensor int8 (when it is
    the input's only reader) and without the DequantizeLinear that gives a float32 graph output from a
    per-tensor int8 tensor (when nothing else reads that output). Returns the graph itself, unchanged, when
    there is nothing to split."""
    g = graph
    ins: list[FloatEdge] = []
    outs: list[FloatEdge] = []
    drop: set[str] = set()
    new_inputs, new_outputs = list(graph.inputs), list(graph.outputs)
    for i, name in enumerate(graph.inputs):
        t = g.tensors.get(name)
        readers = _consumers(g, name)
        if t is None or t.dtype != "float32" or len(readers) != 1 or readers[0].op != "QuantizeLinear":
            continue
        q = g.tensors.get(readers[0].outputs[0])
        if q is None or not _per_tensor_int8(q) or q.name in graph.inputs or q.name in graph.outputs:
            continue
        ins.append(_edge(name, q))
        drop.add(readers[0].name)
        new_inputs[i] = q.name
    for i, name in enumerate(graph.outputs):
        t = g.tensors.get(name)
        producer = next((n for n in g.nodes if name in n.outputs), None)
        if t is None or t.dtype != "float32" or producer is None or producer.op != "DequantizeLinear" \
                or _consumers(g, name) or graph.outputs.count(name) != 1:
            continue
        x = g.tensors.get(producer.inputs[0])
        if x is None or not _per_tensor_int8(x) or x.name in graph.outputs or x.name in graph.inputs:
            continue
        outs.append(_edge(name, x))
        drop.add(producer.name)
        new_outputs[i] = x.name
    if not drop:
        return graph, (), ()
    core = graph.copy()
    core.nodes = [n for n in core.nodes if n.name not in drop]
    core.inputs, core.outputs = new_inputs, new_outputs
    for e in ins + outs:
        core.tensors.pop(e.float_name, None)
    return core, tuple(ins), tuple(outs)


def has_float_api(inputs, outputs) -> bool:
    """The library gets `<name>_run_float` when every input and output of the model is float32 at its edge."""
    return bool(inputs) and bool(outputs) and all(s.float_name for s in (*inputs, *outputs))


def float_api_header(prefix: str, upper: str, inputs, outputs) -> list[str]:
    n_in = sum(math.prod(s.shape) for s in inputs)
    n_out = sum(math.prod(s.shape) for s in outputs)
    return ["/* The model takes and returns float32 (QUANTIZE first, DEQUANTIZE last): these convert as",
            " * tflite-micro's QUANTIZE and DEQUANTIZE kernels do and run the int8 core; they use",
            f" * {upper}_INPUT_SIZE + {upper}_OUTPUT_SIZE bytes of static int8 buffers in {prefix}_io.c. */",
            f"#define {upper}_FLOAT_IO 1",
            f"#define {upper}_FLOAT_INPUT_COUNT {n_in}   /* float32 elements, all inputs back to back */",
            f"#define {upper}_FLOAT_OUTPUT_COUNT {n_out}",
            f"int {prefix}_run_float(const float *input, float *output);",
            f"int {prefix}_run_float_multi(const float *const inputs[], float *const outputs[]);", ""]


def float_api_source(prefix: str, inputs, outputs) -> str:
    from engine.codegen.cwrite import c_float, one_buffer_wrapper

    lines = ["", "/* QUANTIZE (AffineQuantize): round(x / scale) half away from zero in float32, + zero point,",
             " * clamped to int8. */",
             "static int8_t ts_quantize(float x, float scale, int32_t zero_point)", "{",
             "    float q = x / scale;", "    int32_t r;", "    if (!(q == q)) {", "        return (int8_t)zero_point;",
             "    }", "    q = q > 1000.0f ? 1000.0f : (q < -1000.0f ? -1000.0f : q);", "    r = (int32_t)q;",
             "    if (q - (float)r >= 0.5f) {", "        ++r;", "    } else if ((float)r - q >= 0.5f) {",
             "        --r;", "    }", "    r += zero_point;", "    return (int8_t)(r < -128 ? -128 : (r > 127 ? 127 : r));",
             "}", "",
             "/* DEQUANTIZE: scale * (q - zero point); the float32 product equals tflite-micro's double product",
             " * rounded to float (both are the correctly rounded exact product). */",
             "static float ts_dequantize(int8_t q, float scale, int32_t zero_point)", "{",
             "    return scale * (float)((int32_t)q - zero_point);", "}", ""]
    for role, specs in (("in", inputs), ("out", outputs)):
        for i, s in enumerate(specs):
            lines.append(f"static int8_t ts_{role}{i}[{s.size}];")
    lines += ["", f"int {prefix}_run_float_multi(const float *const inputs[], float *const outputs[])", "{",
              f"    const int8_t *ins[{len(inputs)}];", f"    int8_t *outs[{len(outputs)}];", "    int32_t i;"]
    for i, s in enumerate(inputs):
        lines += [f"    for (i = 0; i < {s.size}; ++i) {{",
                  f"        ts_in{i}[i] = ts_quantize(inputs[{i}][i], {c_float(s.scale)}, {s.zero_point});",
                  "    }", f"    ins[{i}] = ts_in{i};"]
    for i in range(len(outputs)):
        lines.append(f"    outs[{i}] = ts_out{i};")
    lines += [f"    if ({prefix}_run_multi(ins, outs) != 0) {{", "        return 1;", "    }"]
    for i, s in enumerate(outputs):
        lines += [f"    for (i = 0; i < {s.size}; ++i) {{",
                  f"        outputs[{i}][i] = ts_dequantize(ts_out{i}[i], {c_float(s.scale)}, {s.zero_point});",
                  "    }"]
    lines += ["    return 0;", "}", ""]
    # int8 edges: one float per byte of the core's tensor
    lines += one_buffer_wrapper(f"{prefix}_run_float", f"{prefix}_run_float_multi", "float",
                                [s.size for s in inputs], [s.size for s in outputs])
    return "\n".join(lines)
