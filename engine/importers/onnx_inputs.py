"""The ONNX graph's inputs with every dim fixed, and ONNX's own shape inference as a cross-check.

A lone symbolic batch dim (position 0) is set to 1 and reported as assumed; any other unknown dim needs
`input_shapes` (CLI: --input-shape).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from engine.errors import ModelFormatError
from engine.importers.onnx_context import IR_DTYPE, dtype_name


def fix_inputs(path, graph, init_names, user):
    """{input name: (shape, dtype)} with every dim fixed, plus what had to be assumed."""
    real = [vi for vi in graph.input if vi.name not in init_names]
    names = [vi.name for vi in real]
    user = dict(user or {})
    if "*" in user:  # an unnamed shape (CLI: --input-shape 1,3,224,224) is for the only input
        if len(names) != 1:
            raise ModelFormatError(path, f"the model has inputs {', '.join(names)}; name each one in the input "
                                         "shape (NAME:1,3,224,224)")
        user[names[0]] = user.pop("*")
    unknown = sorted(set(user) - set(names))
    if unknown:
        raise ModelFormatError(path, f"input shape given for unknown input(s) {', '.join(unknown)}; "
                                     f"the model's inputs are {', '.join(names)}")
    fixed, assumed = {}, {}
    for vi in real:
        if not vi.type.HasField("tensor_type"):
            raise ModelFormatError(path, f"input '{vi.name}' is not a tensor; only tensor inputs are supported")
        tt = vi.type.tensor_type
        if tt.elem_type not in IR_DTYPE:
            raise ModelFormatError(path, f"input '{vi.name}' has element type "
                                         f"{dtype_name(tt.elem_type)}, which is not supported")
        declared = None
        if tt.HasField("shape"):
            declared = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or "?")
                        for d in tt.shape.dim]
        if vi.name in user:
            shape = tuple(int(d) for d in user[vi.name])
            if declared is not None and len(declared) != len(shape):
                raise ModelFormatError(path, f"input '{vi.name}' has rank {len(declared)} {_dims(declared)} but "
                                             f"the given shape {list(shape)} has rank {len(shape)}")
            if any(d < 1 for d in shape):
                raise ModelFormatError(path, f"input '{vi.name}': given shape {list(shape)} must be positive")
        else:
            if declared is None:
                raise ModelFormatError(path, f"input '{vi.name}' has no declared shape; give a fixed shape "
                                             "with --input-shape")
            dynamic = [i for i, d in enumerate(declared) if not isinstance(d, int)]
            if dynamic == [0] and len(declared) > 1:
                assumed[vi.name] = f"batch dim '{declared[0]}' of input '{vi.name}' set to 1"
                declared = [1] + declared[1:]
            elif dynamic:
                raise ModelFormatError(path, f"input '{vi.name}' has dynamic dims {_dims(declared)}; give a fixed "
                                             "shape with --input-shape")
            shape = tuple(declared)
        fixed[vi.name] = (shape, IR_DTYPE[tt.elem_type])
    return fixed, assumed


def _dims(dims) -> str:
    return "[" + ",".join(str(d) for d in dims) + "]"


def onnx_inferred_shapes(path, model, fixed) -> dict[str, tuple[int, ...]]:
    """Static shapes ONNX shape inference finds for every value (used to cross-check ours).

    Large non-integer initializers are passed as typed inputs instead of data: inference only needs their
    shapes, and copying megabytes of weights through it would dominate the import time.
    """
    g = onnx.GraphProto()
    g.node.extend(model.graph.node)
    inputs = {vi.name for vi in model.graph.input}
    for vi in model.graph.input:
        if vi.name in fixed:
            shape, _ = fixed[vi.name]
            g.input.append(helper.make_tensor_value_info(vi.name, vi.type.tensor_type.elem_type, list(shape)))
    for t in model.graph.initializer:
        n = int(np.prod(t.dims, dtype=np.int64))
        if n > 64 and t.data_type not in (TensorProto.INT64, TensorProto.INT32):
            g.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
        else:
            g.initializer.append(t)
            if t.name in inputs:
                g.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    g.output.extend(model.graph.output)
    m = helper.make_model(g, opset_imports=model.opset_import, ir_version=model.ir_version)
    m.functions.extend(model.functions)
    try:
        m = onnx.shape_inference.infer_shapes(m, check_type=False, strict_mode=False, data_prop=True)
    except Exception as e:
        raise ModelFormatError(path, f"ONNX shape inference failed: {str(e).splitlines()[0]}") from None
    out = {}
    for vi in list(m.graph.value_info) + list(m.graph.output):
        tt = vi.type.tensor_type
        if tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
            out[vi.name] = tuple(d.dim_value for d in tt.shape.dim)
    return out
