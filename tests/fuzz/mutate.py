"""Mutations of model files: byte level for any format, structure level for ONNX (through the onnx library).

    case = make_case(seeds, run_seed=1, index=42)   # deterministic: the same (seed, index) gives the same bytes
    case.name, case.data, case.files, case.description

Byte level: bit flips, truncation, chunk deletion/duplication, interesting bytes, protobuf length fields
(ONNX), flatbuffer offsets and vector lengths (TFLite). Structure level (ONNX): dropped or retyped attributes,
bad attribute values, wrong input/output counts, swapped op types, bad dims and element types, external-data
entries, odd opsets, float shape operands with NaN, names with newlines, control bytes and invalid UTF-8.
A case with `files` is loaded from disk (a folder holding the model and those files), which exercises the
external-data checks; every other case is loaded from bytes, as an upload is.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper, numpy_helper

INTERESTING_INTS = [0, 1, -1, 2, 3, 7, 255, 2 ** 15, 2 ** 31 - 1, 2 ** 31, -2 ** 31, 2 ** 40, 2 ** 62, -2 ** 62]
INTERESTING_U32 = [0, 1, 4, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFF0]
OPS = ["Relu", "Add", "Conv", "Gemm", "MatMul", "Reshape", "Split", "Concat", "Cast", "Slice", "Pad", "Resize",
       "Transpose", "Softmax", "Einsum", "Loop", "If", "ConstantOfShape", "Expand", "Tile", "Gather", "Squeeze",
       "QuantizeLinear", "DequantizeLinear", "NoSuchOp", "BatchNormalization", "MaxPool", "Flatten", "Range"]
BAD_NAMES = ["a\nb", "x\r\ny", "\x1b[31mred", "tab\there", "nul\x00byte", "\u2028sep", "'quote'", ""]
LOCATIONS = ["weights.bin", "link.bin", "../outside.bin", "/etc/passwd", "sub/../../outside.bin", "we\x00ights.bin",
             "C:\\x.bin", "missing.bin", "", "hard.bin", "."]
COUNTS = ["0", "4", "abc", "-1", "-8", "1e3", " 4", "99999999999", str(2 ** 40), str(2 ** 64), "0x10", ""]


@dataclass
class Case:
    name: str
    data: bytes
    description: str
    files: dict[str, bytes] = field(default_factory=dict)  # beside the model on disk (None: loaded from bytes)
    links: dict[str, str] = field(default_factory=dict)  # name -> target: "hard:" + file outside the folder


# ---- byte level --------------------------------------------------------------------------------------

def bit_flips(rng, data: bytes) -> tuple[bytes, str]:
    b = bytearray(data)
    k = rng.choice([1, 1, 2, 4, 8, 32])
    for _ in range(k):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b), f"flip {k} bits"


def truncate(rng, data: bytes) -> tuple[bytes, str]:
    n = rng.randrange(1, len(data))
    return data[:n], f"truncate to {n}"


def chunk(rng, data: bytes) -> tuple[bytes, str]:
    i = rng.randrange(len(data))
    n = rng.choice([1, 2, 4, 16, 256])
    if rng.random() < 0.5:
        return data[:i] + data[i + n:], f"delete {n} at {i}"
    return data[:i] + data[i:i + n] * rng.choice([2, 3, 100]) + data[i + n:], f"repeat {n} at {i}"


def interesting_bytes(rng, data: bytes) -> tuple[bytes, str]:
    b = bytearray(data)
    for _ in range(rng.choice([1, 4, 16])):
        b[rng.randrange(len(b))] = rng.choice([0, 0xFF, 0x7F, 0x80, 0x0A, 0x1B])
    return bytes(b), "interesting bytes"


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def protobuf_length(rng, data: bytes) -> tuple[bytes, str]:
    """Replace the varint after a length-delimited tag (wire type 2) with an interesting length."""
    for _ in range(64):
        i = rng.randrange(len(data) - 2)
        if data[i] & 7 == 2 and 0 < data[i] >> 3 < 32:
            j = i + 1
            while j < len(data) and data[j] & 0x80:
                j += 1
            v = rng.choice([0, 1, 2 ** 31 - 1, 2 ** 31, 2 ** 32 + 5, 2 ** 63, len(data), rng.randrange(1 << 20)])
            return data[:i + 1] + _varint(v) + data[j + 1:], f"protobuf length at {i} -> {v}"
    return bit_flips(rng, data)


def flatbuffer_u32(rng, data: bytes) -> tuple[bytes, str]:
    """Overwrite an aligned uint32 (flatbuffer offsets and vector lengths) with an interesting value."""
    b = bytearray(data)
    i = rng.randrange(0, len(b) - 4) & ~3
    old = int.from_bytes(b[i:i + 4], "little")
    v = rng.choice(INTERESTING_U32 + [old + 1, old - 1 & 0xFFFFFFFF, old * 2 & 0xFFFFFFFF, len(data), len(data) - i])
    b[i:i + 4] = (v & 0xFFFFFFFF).to_bytes(4, "little")
    return bytes(b), f"u32 at {i}: {old} -> {v}"


BYTE_MUTATORS = [bit_flips, truncate, chunk, interesting_bytes]


# ---- ONNX structure level ----------------------------------------------------------------------------

def _node(rng, m):
    return rng.choice(m.graph.node) if len(m.graph.node) else None


def drop_attribute(rng, m, case):
    n = _node(rng, m)
    if n is not None and len(n.attribute):
        a = n.attribute.pop(rng.randrange(len(n.attribute)))
        return f"drop attribute {a.name} of {n.op_type}"
    return "no-op"


def retype_attribute(rng, m, case):
    n = _node(rng, m)
    if n is None or not len(n.attribute):
        return "no-op"
    a = rng.choice(n.attribute)
    new = rng.choice([1.5, 3, [1, 2], [0.5], "text", b"\xff\xfe", float("nan"), [b"a\n", b"\x80"]])
    n.attribute.remove(a)
    n.attribute.append(helper.make_attribute(a.name, new))
    if rng.random() < 0.2:
        n.attribute[-1].type = rng.choice([0, 99, AttributeProto.GRAPH, AttributeProto.TENSOR])
    return f"attribute {a.name} of {n.op_type} -> {new!r}"


def bad_attribute_value(rng, m, case):
    n = _node(rng, m)
    if n is None:
        return "no-op"
    name = rng.choice([a.name for a in n.attribute] + ["to", "axis", "perm", "kernel_shape", "pads", "strides",
                                                         "group", "mode", "split", "axes", "shape"])
    v = rng.choice([rng.choice(INTERESTING_INTS), [rng.choice(INTERESTING_INTS)] * rng.choice([1, 2, 4, 9]),
                    99, -3, float("inf"), "\xff", "nearest", [], b"\xc3\x28"])
    keep = [a for a in n.attribute if a.name != name]
    del n.attribute[:]
    n.attribute.extend(keep)
    try:
        n.attribute.append(helper.make_attribute(name, v))
    except (ValueError, TypeError):
        return "no-op"
    return f"{n.op_type}.{name} = {v!r}"


def input_count(rng, m, case):
    n = _node(rng, m)
    if n is None:
        return "no-op"
    r = rng.random()
    if r < 0.4 and len(n.input):
        n.input.pop()
        return f"{n.op_type}: one input fewer"
    if r < 0.7:
        n.input.append(rng.choice(list(n.input) + ["", "nowhere"]) if len(n.input) else "")
        return f"{n.op_type}: one input more"
    if r < 0.85:
        n.output.append(f"extra{rng.randrange(9)}")
        return f"{n.op_type}: one output more"
    if len(n.output):
        n.output.pop()
    return f"{n.op_type}: one output fewer"


def swap_op(rng, m, case):
    n = _node(rng, m)
    if n is None:
        return "no-op"
    old, n.op_type = n.op_type, rng.choice(OPS)
    return f"{old} -> {n.op_type}"


def bad_dims(rng, m, case):
    g = m.graph
    if rng.random() < 0.5 and len(g.input):
        dims = g.input[rng.randrange(len(g.input))].type.tensor_type.shape.dim
        if len(dims):
            d = rng.choice(dims)
            v = rng.choice([0, -1, -7, 2 ** 31, 2 ** 40, 2 ** 62, None])
            if v is None:
                d.dim_param = rng.choice(["N", "a\nb", ""])
            else:
                d.dim_value = v
            return f"input dim -> {v}"
    if len(g.initializer):
        t = rng.choice(g.initializer)
        if len(t.dims):
            i = rng.randrange(len(t.dims))
            t.dims[i] = rng.choice([0, 1, -1, 2 ** 20, 2 ** 40, t.dims[i] + 1])
            return f"initializer {t.name} dim {i} -> {t.dims[i]}"
    return "no-op"


def bad_element_type(rng, m, case):
    v = rng.choice([0, 99, -1, 8, 16, 21, TensorProto.INT64, TensorProto.STRING, TensorProto.COMPLEX64])
    if rng.random() < 0.5 and len(m.graph.input):
        m.graph.input[0].type.tensor_type.elem_type = v
        return f"input elem_type -> {v}"
    if len(m.graph.initializer):
        t = rng.choice(m.graph.initializer)
        t.data_type = v
        return f"initializer {t.name} data_type -> {v}"
    return "no-op"


def float_shape_operand(rng, m, case):
    """An int64 operand (shape, axes, pads, split) replaced by a float tensor holding NaN, or huge ints."""
    ints = [t for t in m.graph.initializer if t.data_type == TensorProto.INT64]
    if not ints:
        return "no-op"
    t = rng.choice(ints)
    a = numpy_helper.to_array(t)
    if rng.random() < 0.5:
        new = numpy_helper.from_array(np.full(a.shape, np.nan, np.float32), t.name)
    else:
        new = numpy_helper.from_array(np.full(a.shape, rng.choice(INTERESTING_INTS), np.int64).reshape(
            rng.choice([a.shape, (1, -1) if a.size else a.shape])), t.name)
    t.CopyFrom(new)
    return f"operand {t.name} -> {new.data_type}"


def external_data(rng, m, case):
    """Move an initializer's bytes to external data, with a good or a crafted entry; on disk when the entry
    points at a file that exists beside the model (weights.bin, a symlink, a hard link)."""
    if not len(m.graph.initializer):
        return "no-op"
    t = rng.choice(m.graph.initializer)
    raw = t.raw_data or numpy_helper.to_array(t).tobytes()
    t.ClearField("raw_data")
    for f in ("float_data", "int32_data", "int64_data", "double_data", "uint64_data"):
        t.ClearField(f)
    t.data_location = TensorProto.EXTERNAL
    loc = rng.choice(LOCATIONS + [case.name])
    entries = [("location", loc)]
    if rng.random() < 0.7:
        entries.append(("offset", rng.choice(COUNTS[:2] + COUNTS)))
    if rng.random() < 0.5:
        entries.append(("length", rng.choice([str(len(raw))] * 3 + COUNTS)))
    if rng.random() < 0.1:
        entries.append(("location", "weights.bin"))
    for k, v in entries:
        e = t.external_data.add()
        e.key, e.value = k, v
    if rng.random() < 0.6:  # on disk, with files beside it; otherwise bytes, where any entry is refused
        case.files["weights.bin"] = raw
        case.files[case.name.replace(".onnx", ".bin")] = raw
        case.links["link.bin"] = "symlink:outside.bin"
        case.links["hard.bin"] = "hard:outside.bin"
    return f"external data of {t.name}: {entries}"


def odd_opset(rng, m, case):
    v = rng.choice([0, 1, 5, 7, 9, 11, 13, 100, -1])
    m.opset_import[0].version = v
    return f"opset -> {v}"


def node_order(rng, m, case):
    nodes = list(m.graph.node)
    if len(nodes) < 2:
        return "no-op"
    r = rng.random()
    if r < 0.4:
        i = rng.randrange(len(nodes))
        del m.graph.node[i]
        return f"delete node {i}"
    if r < 0.7:
        m.graph.node.append(rng.choice(nodes))
        return "duplicate a node"
    a, b = rng.sample(range(len(nodes)), 2)
    na, nb = m.graph.node[a], m.graph.node[b]
    if len(na.input) and len(nb.output):
        na.input[0] = nb.output[0]  # may form a cycle
    return f"rewire node {a} from {b}"


def strange_names(rng, m, case):
    """A tensor or node name with newlines/control bytes (kept consistent across every use)."""
    g = m.graph
    names = [o for n in g.node for o in n.output if o] + [i.name for i in g.input]
    if not names:
        return "no-op"
    old = rng.choice(names)
    new = rng.choice(BAD_NAMES) + old
    for n in g.node:
        n.input[:] = [new if x == old else x for x in n.input]
        n.output[:] = [new if x == old else x for x in n.output]
        if rng.random() < 0.1:
            n.name = rng.choice(BAD_NAMES)
    for v in list(g.input) + list(g.output):
        if v.name == old:
            v.name = new
    return f"rename {old!r} -> {new!r}"


STRUCTURE_MUTATORS = [drop_attribute, retype_attribute, bad_attribute_value, input_count, swap_op, bad_dims,
                      bad_element_type, float_shape_operand, external_data, odd_opset, node_order, strange_names]


def invalid_utf8_names(rng, data: bytes, m) -> tuple[bytes, str]:
    """A name replaced by bytes that are not UTF-8 (same length, every occurrence), which onnx cannot write."""
    names = sorted({o for n in m.graph.node for o in n.output if len(o.encode()) >= 2} |
                   {a.name for n in m.graph.node for a in n.attribute})
    if not names:
        return data, "no-op"
    old = rng.choice(names).encode()
    bad = bytes([0xFF, 0xC3]) + old[2:]
    return data.replace(old, bad), f"non-UTF-8 bytes for {old!r}"


def mutate_onnx(rng, seed_data: bytes, case: Case) -> tuple[bytes, str]:
    m = onnx.ModelProto()
    m.ParseFromString(seed_data)
    steps = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        mutator = rng.choice(STRUCTURE_MUTATORS)
        try:
            steps.append(mutator(rng, m, case))
        except Exception as e:  # noqa: BLE001 - an earlier step made this one impossible (e.g. bad dims)
            steps.append(f"{mutator.__name__} skipped ({type(e).__name__})")
    data = m.SerializeToString()
    if rng.random() < 0.1:
        data, what = invalid_utf8_names(rng, data, m)
        steps.append(what)
    return data, "; ".join(steps)


def make_case(seeds, run_seed: int, index: int) -> Case:
    rng = random.Random(f"{run_seed}:{index}")
    # large generated seeds (deep, wide, huge) cost seconds per stage; draw them less often
    weights = [0.25 if s.name in ("deep.onnx", "wide.onnx") else 1.0 for s in seeds]
    s = rng.choices(seeds, weights)[0]
    case = Case(s.name, s.data, "")
    r = rng.random()
    if s.fmt == "onnx" and r < 0.6:
        case.data, what = mutate_onnx(rng, s.data, case)
    else:
        mutators = BYTE_MUTATORS + ([protobuf_length] * 2 if s.fmt == "onnx" else [flatbuffer_u32] * 4)
        steps, data = [], s.data
        for _ in range(rng.choice([1, 1, 2, 3])):
            data, what = rng.choice(mutators)(rng, data) if len(data) > 8 else (data, "no-op")
            steps.append(what)
        case.data, what = data, "; ".join(steps)
    case.description = f"{s.name}: {what}"
    return case
