"""Each ONNX node checked against its operator schema before any op handler or constant folding sees it.

    check_node(path, node_name, proto, opset)               # attributes, input and output counts
    check_input_types(path, node_name, proto, opset, types)  # element types of the inputs known so far

What onnx.checker checks, as one-line ModelFormatErrors naming file, node and op: the number of inputs and
outputs, required attributes, each attribute's type (an INT where the schema wants one, not FLOATS), enum
values (Cast's `to` must be an element type), text that is valid UTF-8, and the element type of every input
against the schema's type constraints (Reshape's shape must be int64, both inputs of Add the same type).
Handlers can then rely on what the schema promises instead of each guarding against malformed files.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import onnx
from onnx import AttributeProto, TensorProto, defs

from engine.errors import ModelFormatError

_ATTR_TYPES = {v: k for k, v in AttributeProto.AttributeType.items()}
_ELEM_TYPES = set(TensorProto.DataType.values()) - {TensorProto.UNDEFINED}
# INT attributes whose value is an element type (TensorProto.DataType); 0 means "unset" where allowed.
_DTYPE_ATTRS = {"to": False, "dtype": True, "output_dtype": True}
_VARIADIC = defs.OpSchema.FormalParameterOption.Variadic


@dataclass(frozen=True)
class _Spec:
    """What the checks need from one OpSchema, read once (pybind property access is slow per node)."""
    since: int
    inputs: tuple[int, int]
    outputs: tuple[int, int]
    attrs: dict  # name -> (AttributeProto type, required)
    formals: tuple  # (name, type param, variadic, homogeneous) per formal input
    allowed: dict  # type param -> frozenset of type strings


@lru_cache(maxsize=None)
def _schema(op: str, opset: int) -> _Spec | None:
    try:
        s = defs.get_schema(op, opset, "")
    except defs.SchemaError:
        return None  # not an ONNX op at this opset: the handler table decides (unsupported op)
    return _Spec(s.since_version, (s.min_input, s.max_input), (s.min_output, s.max_output),
                 {k: (int(a.type), a.required) for k, a in s.attributes.items()},
                 tuple((f.name, f.type_str, f.option == _VARIADIC, f.is_homogeneous) for f in s.inputs),
                 {c.type_param_str: frozenset(c.allowed_type_strs) for c in s.type_constraints})


def _fail(path, name, op, s, msg) -> ModelFormatError:
    return ModelFormatError(path, f"node '{name}' ({op}): {msg} (ONNX schema {op}-{s.since})")


def _range(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo} or more" if hi >= 2 ** 31 - 1 else f"{lo} to {hi}"


def check_node(path: str, name: str, proto: onnx.NodeProto, opset: int) -> None:
    """Counts, attributes and enum values of one default-domain node; a no-op for ops ONNX lacks."""
    op = proto.op_type
    s = _schema(op, opset)
    if s is None:
        return
    n_in, n_out = len(proto.input), len(proto.output)
    if not s.inputs[0] <= n_in <= s.inputs[1]:
        raise _fail(path, name, op, s, f"has {n_in} inputs; it takes {_range(*s.inputs)}")
    if not s.outputs[0] <= n_out <= s.outputs[1]:
        raise _fail(path, name, op, s, f"has {n_out} outputs; it gives {_range(*s.outputs)}")
    seen = set()
    for a in proto.attribute:
        if a.name in seen:
            raise _fail(path, name, op, s, f"attribute '{a.name}' is given twice")
        seen.add(a.name)
        if a.type not in _ATTR_TYPES or a.type == AttributeProto.UNDEFINED:
            raise _fail(path, name, op, s, f"attribute '{a.name}' has no valid type ({a.type})")
        spec = s.attrs.get(a.name)
        if spec is not None and spec[0] != a.type:
            raise _fail(path, name, op, s, f"attribute '{a.name}' is {_ATTR_TYPES[a.type]}; the schema wants "
                                           f"{_ATTR_TYPES.get(spec[0], spec[0])}")
        if a.type == AttributeProto.STRING:
            _utf8(path, name, op, s, a.name, [a.s])
        elif a.type == AttributeProto.STRINGS:
            _utf8(path, name, op, s, a.name, a.strings)
        if a.name in _DTYPE_ATTRS and a.type == AttributeProto.INT:
            if a.i not in _ELEM_TYPES and not (a.i == 0 and _DTYPE_ATTRS[a.name]):
                raise _fail(path, name, op, s, f"attribute '{a.name}' = {a.i} is not an ONNX element type")
    missing = [k for k, (_, required) in s.attrs.items() if required and k not in seen]
    if missing:
        raise _fail(path, name, op, s, f"required attribute '{missing[0]}' is missing")


def _utf8(path, name, op, s, attr, values) -> None:
    for v in values:
        try:
            v.decode("utf-8")
        except UnicodeDecodeError:
            raise _fail(path, name, op, s, f"attribute '{attr}' holds text that is not valid UTF-8") from None


def check_tensor(path: str, t: TensorProto) -> None:
    """An initializer's element type and dims, before anything sizes or decodes it."""
    if t.data_type not in _ELEM_TYPES:
        raise ModelFormatError(path, f"tensor '{t.name}' has element type {t.data_type}, which is not an ONNX "
                                     "element type")
    if any(d < 0 for d in t.dims):
        raise ModelFormatError(path, f"tensor '{t.name}' has negative dims {list(t.dims)}")


def check_input_types(path: str, name: str, proto: onnx.NodeProto, opset: int, types: dict[str, str]) -> None:
    """`types`: ONNX type strings ('tensor(float)') of the inputs known before this node runs. Each must be
    allowed by its input's type constraint, and inputs sharing a type parameter must agree."""
    op = proto.op_type
    s = _schema(op, opset)
    if s is None or not s.formals:
        return
    bound: dict[str, tuple[str, str]] = {}
    formals = s.formals
    for i, x in enumerate(proto.input):
        if not x or x not in types:
            continue
        fname, param, variadic, homogeneous = formals[min(i, len(formals) - 1)]
        if i >= len(formals) and not variadic:
            continue
        t = types[x]
        ok = s.allowed.get(param, frozenset([param]))
        if t not in ok:
            raise _fail(path, name, op, s, f"input {i} ('{x}') is {t}; {fname} must be one of "
                                           f"{', '.join(sorted(ok))}")
        if param in s.allowed and (not variadic or homogeneous):
            first = bound.setdefault(param, (x, t))
            if first[1] != t:
                raise _fail(path, name, op, s, f"input {i} ('{x}') is {t} but '{first[0]}' is {first[1]}; "
                                               f"both are of type {param}")


def type_string(dtype) -> str | None:
    """ONNX type string of an IR dtype name or numpy dtype ('float32' -> 'tensor(float)'); None if unknown."""
    import numpy as np

    if isinstance(dtype, np.dtype):
        dtype = "string" if dtype.kind in "USO" else dtype.name
    t = f"tensor({_RENAMED.get(dtype, dtype)})"
    return t if t in _KNOWN else None


_RENAMED = {"float32": "float", "float64": "double"}
_KNOWN = {f"tensor({n.lower()})" for n in TensorProto.DataType.keys()}
