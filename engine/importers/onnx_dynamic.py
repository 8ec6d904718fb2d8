"""ONNX dynamic quantization (onnxruntime.quantization.quantize_dynamic) read as weight-only quantization.

    model = dynamic_as_weight_only(model)     # before the import's node pass (onnx_import.load_onnx)

Activations quantized at run time (DynamicQuantizeLinear) have no static grid, so such a file is the float
model with int8 weights, the form TFLite's dynamic-range files import to; export quantizes it statically.
"""
from __future__ import annotations

import numpy as np


def dynamic_as_weight_only(model):
    """A quantize_dynamic model (DynamicQuantizeLinear -> ConvInteger/MatMulInteger -> Cast -> Mul by
    x_scale * w_scale) rewritten as the float model with int8 weights it stands for, as TFLite's dynamic-range
    files import: x_scale becomes 1 and the activation goes in unquantized, the integer op becomes
    DequantizeLinear(w, 1, w_zero_point) and the float Conv / MatMul (the Mul by the weight scale that follows
    gives the real result); onnx_quant.int8_form then lets the Conv / MatMul read the int8 constant directly.
    Activations are not rounded to 8 bits at run time as onnxruntime does (no static grid exists); export
    quantizes the model statically (PTQ). Returns the model unchanged when the pattern does not hold exactly
    (the unsupported op is then reported)."""
    import onnx
    from onnx import helper, numpy_helper

    g = model.graph
    dql = [n for n in g.node if n.op_type == "DynamicQuantizeLinear" and n.domain in ("", "ai.onnx")]
    if not dql:
        return model
    inits = {t.name for t in g.initializer}
    alias = {n.output[0]: n.input[0] for n in dql}
    users: dict[str, list] = {}
    for n in g.node:
        for x in n.input:
            users.setdefault(x, []).append(n)
    outputs = {o.name for o in g.output}
    for n in dql:
        xq, xs, xz = n.output
        if outputs & set(n.output) or not users.get(xq):
            return model
        if any(u.op_type not in ("ConvInteger", "MatMulInteger") or list(u.input[:1]) != [xq] or len(u.input) < 4
               or u.input[2] != xz or u.input[1] not in inits or u.input[3] not in inits for u in users.get(xq, [])):
            return model
        if any(u.op_type != "Mul" for u in users.get(xs, [])) or any(
                u.op_type not in ("ConvInteger", "MatMulInteger") for u in users.get(xz, [])):
            return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    one = "tinystudio_dynamic_unit_scale"
    out.graph.initializer.append(numpy_helper.from_array(np.array(1.0, np.float32), one))
    emitted: set[str] = set()
    for n in g.node:
        if n.op_type == "DynamicQuantizeLinear" and n.domain in ("", "ai.onnx"):
            out.graph.initializer.append(numpy_helper.from_array(np.array(1.0, np.float32), n.output[1]))
            continue
        if n.op_type in ("ConvInteger", "MatMulInteger") and n.input[0] in alias:
            x, w, _, wz = n.input[:4]
            wd = f"{w}_dequantized"
            if wd not in emitted:  # weights shared by several ops are dequantized once
                emitted.add(wd)
                out.graph.node.append(helper.make_node("DequantizeLinear", [w, one, wz], [wd],
                                                       name=f"{n.name or w}_weights"))
            new = helper.make_node("Conv" if n.op_type == "ConvInteger" else "MatMul", [alias[x], wd],
                                   list(n.output), name=n.name)
            new.attribute.extend(n.attribute)
            out.graph.node.append(new)
            continue
        out.graph.node.append(n)
    return out
