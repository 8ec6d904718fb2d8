"""ONNX importer: a .onnx file -> Graph (IR). Importers only convert (DESIGN.md, example 8).

    g = load_onnx("model.onnx")                                  # inputs with fixed dims
    g = load_onnx("m.onnx", input_shapes={"x": (1, 3, 96, 96)})  # fix symbolic dims
    sniff_onnx(open("m.onnx", "rb").read())                      # -> True

Steps: parse the protobuf (external weights are read only from files inside the model's folder) -> fix the
input shapes (onnx_inputs.py) -> ONNX shape inference (kept as a cross-check of our own inference) -> one
pass over the nodes in topological order that folds constant subgraphs (onnx_fold.py) and maps everything
else to IR ops (handlers in onnx_ops.py and onnx_shape_ops.py, sharing onnx_context.py). Constant operands
that define shapes (Reshape shape, Slice starts, Pad pads, Resize scales, Squeeze axes, Clip bounds ...)
become IR attributes.

Opsets 6 (the oldest the ONNX backend test files use) to the newest this onnx package knows are accepted;
legacy forms (attribute operands, Add/Mul `broadcast`+`axis`, Softmax's coerce-to-2-D, Upsample) are mapped
to the IR's single meaning. A lone symbolic batch dim (position 0) is set to 1 and recorded in
graph.meta["assumed"]; any other unknown dim needs `input_shapes`.
"""
from __future__ import annotations

import os

import onnx
from onnx import TensorProto

from engine.errors import GraphError, ModelFormatError, UnsupportedOpError
from engine.importers import onnx_ops, onnx_quant, onnx_recurrent, onnx_shape_ops
from engine.importers.onnx_dynamic import dynamic_as_weight_only
from engine.importers.onnx_context import Importer, OnnxNode, attr_dict, to_array
from engine.importers.formats import read_model_bytes
from engine.importers.onnx_external import load_external_data
from engine.importers.onnx_fold import try_fold
from engine.importers.onnx_inputs import fix_inputs, onnx_inferred_shapes
from engine.importers.onnx_schema import check_input_types, check_node, check_tensor, type_string
from engine.ir import Graph, Tensor
from engine.validate import check_structure, cycle_message, kahn_order

MIN_OPSET = 6
# ONNX op type -> handler: compute ops, then shape-defining ops (each module holds its own table).
HANDLERS = {**onnx_ops.HANDLERS, **onnx_shape_ops.HANDLERS, **onnx_quant.HANDLERS,
            **onnx_recurrent.HANDLERS}
# Other domains: op type -> handler (onnxruntime's quantizer writes com.microsoft QLinear* ops).
DOMAIN_HANDLERS = {"com.microsoft": onnx_quant.MS_HANDLERS}
# First tag bytes that may follow ir_version in a serialized ModelProto (fields 2..8, 14, 20, 25, 26).
_MODEL_TAGS = {0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72, 0xA2, 0xCA, 0xD2}


def supported_onnx_ops() -> list[str]:
    """ONNX op types this importer maps (any other op folds only when its inputs are constant)."""
    return sorted(HANDLERS) + sorted(f"{d}.{op}" for d, table in DOMAIN_HANDLERS.items() for op in table)


def sniff_onnx(data: bytes) -> bool:
    """True when `data` starts like a serialized ONNX ModelProto.

    Every protobuf writer emits fields in number order, so a model begins with field 1 (ir_version, a
    small varint: bytes 0x08 N) followed by the tag of a later ModelProto field.
    """
    return len(data) >= 3 and data[0] == 0x08 and 1 <= data[1] <= 30 and data[2] in _MODEL_TAGS


def _parse(path: str, data: bytes | None) -> onnx.ModelProto:
    if data is None:
        data = read_model_bytes(path, missing="cannot read the file: no such file")
    if len(data) == 0:
        raise ModelFormatError(path, "the file is empty (0 bytes)")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
        ok = model.ir_version > 0 and model.HasField("graph")
    except Exception:  # google.protobuf DecodeError; its type differs between protobuf backends
        ok = False
    if not ok:
        if not sniff_onnx(data):
            raise ModelFormatError(path, "not an ONNX model: the bytes do not start like an ONNX protobuf "
                                         "(wrong magic)")
        raise ModelFormatError(path, "corrupted or truncated ONNX file: the protobuf could not be parsed")
    return model


def _opset(path, model) -> int:
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise ModelFormatError(path, "the model declares no opset for the default ONNX domain (truncated file?)")
    v, newest = versions[0], onnx.defs.onnx_opset_version()
    if v < MIN_OPSET or v > newest:
        raise ModelFormatError(path, f"opset {v} is not supported (opsets {MIN_OPSET} to {newest})")
    return v


def _topological(path, nodes, known: set[str]) -> list:
    """ONNX requires sorted nodes, but some writers do not comply; sort (stably) when needed."""
    defined = set(known)
    ok = True
    for nd in nodes:
        if any(x and x not in defined for x in nd.input):
            ok = False
            break
        defined.update(nd.output)
    if ok:
        return list(nodes)
    producer = {o: i for i, nd in enumerate(nodes) for o in nd.output if o}
    sources = []
    for nd in nodes:
        srcs = set()
        for x in nd.input:
            if not x or x in known:
                continue
            if x not in producer:
                raise ModelFormatError(path, f"node '{nd.name or nd.op_type}' ({nd.op_type}) reads '{x}', which no "
                                             "node produces (corrupted or truncated file?)")
            srcs.add(producer[x])
        sources.append(srcs)
    order, stuck = kahn_order(sources)
    if stuck:
        raise ModelFormatError(path, cycle_message([nodes[i].name or nodes[i].op_type for i in stuck]))
    return [nodes[i] for i in order]


def _input_types(imp: Importer, n: OnnxNode) -> dict[str, str]:
    """ONNX type strings of the node's inputs (every one is defined by now)."""
    out = {}
    for x in n.ins:
        if not x:
            continue
        if x in imp.consts:
            t = "tensor(int4)" if x in imp.int4 else type_string(imp.consts[x].dtype)
        else:
            t = type_string(imp.g.tensors[x].dtype)
        if t is not None:
            out[x] = t
    return out


def load_onnx(path: str, data: bytes | None = None,
              input_shapes: dict[str, tuple[int, ...]] | None = None, folder: str | None = None) -> Graph:
    """Read an ONNX model (from `path`, or from `data` with `path` naming it) into a Graph.

    External data is read from `folder` only: the file's own folder when reading `path`, the folder the caller
    read `data` from when it says so, and never for bytes without a folder (uploads): see onnx_external.py.
    """
    path = str(path)
    if data is None:
        folder = os.path.dirname(os.path.abspath(path))
    model = _parse(path, data)
    opset = _opset(path, model)
    model = dynamic_as_weight_only(model)
    load_external_data(model, path, folder)
    graph = model.graph
    for i, proto in enumerate(graph.node):  # before ONNX's own inference, which trusts the schemas too
        if proto.domain in ("", "ai.onnx"):
            check_node(path, proto.name or f"{proto.op_type}_{i}", proto, opset)
    for t in graph.initializer:
        check_tensor(path, t)
    init_names = {t.name for t in graph.initializer}
    fixed, assumed = fix_inputs(path, graph, init_names, input_shapes)
    onnx_shapes = onnx_inferred_shapes(path, model, fixed)

    g = Graph(graph.name or os.path.splitext(os.path.basename(path))[0])
    used = {x for nd in graph.node for x in nd.input if x} | {o.name for o in graph.output}
    taken = set(used) | {o for nd in graph.node for o in nd.output} | set(fixed) | init_names
    onnx_names = [nd.name for nd in graph.node]
    imp = Importer(path, opset, g, used, taken, {x for x in onnx_names if x})
    imp.onnx_shapes = onnx_shapes
    for t in graph.initializer:
        imp.consts[t.name] = to_array(path, t)
        if t.data_type == TensorProto.INT4:
            imp.int4.add(t.name)
    for name, (shape, dtype) in fixed.items():
        g.tensors[name] = Tensor(name, shape, dtype)
        g.inputs.append(name)

    supported = imp.supported = supported_onnx_ops()
    nodes = _topological(path, graph.node, set(fixed) | init_names)
    first_use: set[str] = set()
    for i, proto in enumerate(nodes):
        # Keep ONNX names; a missing or repeated one gets a fresh name that no other node uses.
        if proto.name and proto.name not in first_use:
            name = proto.name
            first_use.add(name)
        else:
            name = imp.fresh_node(proto.name or f"{proto.op_type}_{i}")
        n = OnnxNode(name, proto.op_type, list(proto.input), list(proto.output), proto)
        table = HANDLERS if proto.domain in ("", "ai.onnx") else DOMAIN_HANDLERS.get(proto.domain, {})
        if proto.domain not in ("", "ai.onnx") and proto.op_type not in table:
            raise UnsupportedOpError(path, f"{proto.domain}.{proto.op_type}", n.name, supported)
        for x in n.ins:
            if x and x not in imp.consts and x not in g.tensors:
                raise ModelFormatError(path, f"node '{n.name}' ({n.op}) reads '{x}', which is not defined "
                                             "(corrupted or truncated file?)")
        check_input_types(path, n.name, proto, opset, _input_types(imp, n))
        a = attr_dict(proto)
        if table is not HANDLERS or not try_fold(imp, n, a):
            handler = table.get(n.op)
            if handler is None:
                raise UnsupportedOpError(path, n.op, n.name, supported)
            handler(imp, n, a)
        for o in n.outs:
            want = onnx_shapes.get(o)
            got = imp.shape(o) if (o in g.tensors or o in imp.consts) else None
            if want is not None and got is not None and tuple(want) != tuple(got):
                raise imp.fail(n, f"output '{o}' has shape {list(got)} here but ONNX shape inference gives "
                                  f"{list(want)}")

    for vo in graph.output:
        if vo.name not in g.tensors:
            if vo.name not in imp.consts:
                raise ModelFormatError(path, f"graph output '{vo.name}' is not produced by any node")
            imp.ir_tensor(vo.name)
        g.outputs.append(vo.name)
    g.meta["source"] = {"format": "onnx", "path": path, "opset": opset}
    if assumed:
        g.meta["assumed"] = assumed
    try:
        check_structure(g)
    except GraphError as e:
        raise ModelFormatError(path, str(e)) from None
    return onnx_quant.int8_form(g)
