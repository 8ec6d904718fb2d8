"""torch.export graphs (ATen ops, as torch serializes them to JSON) -> IR.

    graph = aten_to_ir(program, weights, path="model.pt2", name="model")

`program` is the decoded `models/<name>.json` of a .pt2 archive (or torch._export.serde's JSON of an
in-memory ExportedProgram); `weights` maps state-dict / constant names to numpy arrays. Nothing here calls
back into torch's deserializer: that path can unpickle (sample inputs, pickled payloads) and resolves
node targets with getattr over the whole `torch` module and sympify (eval) on shape expressions, so a
crafted file could run code. This module only reads the JSON, and touches torch solely to look up the
argument defaults of the fixed set of aten overloads in HANDLERS (engine/importers/pt2_aten_ops.py).

Both flavours torch produces are covered: the default export IR (conv2d, linear, batch_norm, ...) and
core ATen after run_decompositions() (convolution, addmm, _native_batch_norm_legit_no_training, ...).
Shapes must be static; a node whose inputs are all constants is folded with the op library's reference.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np

from engine.errors import GraphError, ModelFormatError, UnsupportedOpError
from engine.importers.pt2_aten_ops import HANDLERS, Ref
from engine.ir import Graph, Node, Tensor, dtype_of
from engine.ops import OpContext, get_op
from engine.validate import infer_shapes

MAX_FOLD_ELEMENTS = 1 << 24  # largest constant computed at import time (64 MiB of float32)

# torch._export.serde.schema.ScalarType -> IR dtype (bfloat16 weights are widened to float32 on read).
SCALAR_TYPES = {1: "uint8", 2: "int8", 3: "int16", 4: "int32", 5: "int64", 6: "float16", 7: "float32",
                8: "float64", 12: "bool", 13: "float32"}


def supported_targets() -> list[str]:
    return sorted(f"aten.{t}" for t in HANDLERS)


class Converter:
    def __init__(self, path: str, program: dict, weights: dict[str, np.ndarray], name: str):
        self.path = path
        self.g = Graph(name)
        self.node_name = "graph"
        gm = _get(program, "graph_module", dict, path)
        self.graph = _get(gm, "graph", dict, path)
        self.signature = _get(gm, "signature", dict, path)
        self.declared = {k: self._meta(k, v) for k, v in _get(self.graph, "tensor_values", dict, path).items()}
        self.alias: dict[str, str] = {}
        self.transposed_of: dict[str, str] = {}  # constant name -> constant it is the 2-D transpose of
        self.weights = weights
        self.used: set[str] = set()
        self.node_names: set[str] = set()
        self.current_target = ""
        self.conditions: dict[str, tuple[str, str, float]] = {}  # x > c / x >= c, consumed by where()

    # ---- errors and bookkeeping ------------------------------------------------------------------
    def fail(self, message: str) -> ModelFormatError:
        return ModelFormatError(self.path, f"node '{self.node_name}': {message}")

    def _meta(self, name: str, meta: Any) -> tuple[tuple[int, ...], str]:
        if not isinstance(meta, dict):
            raise ModelFormatError(self.path, f"tensor '{name}' has no metadata")
        dims = []
        for d in meta.get("sizes", []):
            if not isinstance(d, dict) or not isinstance(d.get("as_int"), int):
                raise ModelFormatError(self.path, f"tensor '{name}' has a dynamic shape; export with static shapes "
                                                  "(no dynamic_shapes) for TinyStudio")
            dims.append(d["as_int"])
        dtype = SCALAR_TYPES.get(meta.get("dtype"))
        if dtype is None:
            raise ModelFormatError(self.path, f"tensor '{name}' has unsupported dtype code {meta.get('dtype')}")
        return tuple(dims), dtype

    def shape(self, ref: str) -> tuple[int, ...]:
        name = self.t(ref)
        if name in self.g.tensors:
            return self.g.tensors[name].shape
        return self.declared[ref][0]

    def t(self, ref: str) -> str:
        """IR tensor name for a serialized tensor name."""
        name = self.alias.get(ref, ref)
        if name not in self.g.tensors:
            raise self.fail(f"uses tensor '{ref}' that no supported node produces")
        return name

    def fresh(self, base: str) -> str:
        """An unused tensor name. Names this module invents contain '/', which torch's never do."""
        name, i = base, 1
        while name in self.g.tensors or name in self.used:
            name, i = f"{base}_{i}", i + 1
        self.used.add(name)
        return name

    def node_id(self) -> str:
        name, i = self.node_name, 1
        while name in self.node_names:
            name, i = f"{self.node_name}_{i}", i + 1
        self.node_names.add(name)
        return name

    def const(self, base: str, value: np.ndarray, dtype: str | None = None) -> str:
        value = np.asarray(value)
        name = self.fresh(base)
        self.g.tensors[name] = Tensor(name, value.shape, dtype or dtype_of(value), None, value)
        return name

    def is_const(self, name: str) -> bool:
        return self.g.tensors[name].data is not None

    def operand(self, v: Any, like: str) -> str:
        """A tensor operand or a Python scalar turned into a constant of the tensor's dtype."""
        if isinstance(v, Ref):
            return self.t(v)
        dtype = self.g.tensors[self.t(like)].dtype
        if isinstance(v, float) and dtype not in ("float32", "float16", "float64"):
            dtype = "float32"
        return self.const(f"{self.node_name}/scalar", np.array(v, dtype=np.dtype(dtype)), dtype)

    # ---- emitting --------------------------------------------------------------------------------
    def emit(self, op: str, inputs: list[str], out: str | list[str], **attrs) -> str | list[str]:
        """Add an IR node (or fold it into constants); `out` are serialized output names."""
        outs = [out] if isinstance(out, str) else list(out)
        names = [self.fresh(o) for o in outs]
        for o, n in zip(outs, names):
            self.alias[o] = n
        attrs = {k: v for k, v in attrs.items() if v is not None}
        node = Node(op, self.node_id(), list(inputs), names, attrs)
        ins = [self.g.tensors[i] if i else None for i in inputs]
        # A node reading only constants (weight views, index arithmetic after decompositions) is
        # computed now with the op library's reference, so the graph holds its result as a constant.
        if inputs and all(t is not None and t.data is not None for t in ins):
            self._fold(node, ins)
        else:
            self.g.nodes.append(node)
            for o, n in zip(outs, names):
                shape, dtype = self.declared[o] if o in self.declared else self._infer(node, ins)[names.index(n)]
                self.g.tensors[n] = Tensor(n, shape, dtype)
        return names[0] if isinstance(out, str) else names

    def _infer(self, node: Node, ins):
        op = get_op(node.op)
        try:
            op.check(node)
            return op.infer(OpContext(op, node, ins))
        except GraphError as e:
            raise self.fail(str(e))

    def check_size(self, shape) -> None:
        """Refuse to materialize huge constants at import time (a crafted file could ask for terabytes)."""
        n = int(np.prod([int(d) for d in shape], dtype=np.float64))
        if n > MAX_FOLD_ELEMENTS:
            raise self.fail(f"would create a constant of {n} elements at import time (limit {MAX_FOLD_ELEMENTS})")

    def _fold(self, node: Node, ins) -> None:
        op = get_op(node.op)
        results = self._infer(node, ins)
        for shape, _ in results:
            self.check_size(shape)
        outs = [Tensor(n, s, d) for n, (s, d) in zip(node.outputs, results)]
        try:
            values = op.run(OpContext(op, node, ins, outs), [t.data for t in ins])
        except GraphError as e:
            raise self.fail(str(e))
        for t, v in zip(outs, values):
            self.g.tensors[t.name] = Tensor(t.name, t.shape, t.dtype, None, np.asarray(v).astype(t.dtype))

    def identity(self, src: str, out: str) -> None:
        self.alias[out] = self.t(src)


# ---- argument decoding -----------------------------------------------------------------------------

def _get(d: dict, key: str, kind: type, path: str):
    v = d.get(key) if isinstance(d, dict) else None
    if not isinstance(v, kind):
        raise ModelFormatError(path, f"malformed program: '{key}' is missing or not a {kind.__name__}")
    return v


def decode_arg(arg: dict, fail) -> Any:
    if not isinstance(arg, dict) or len(arg) != 1:
        raise fail(f"malformed argument {str(arg)[:80]}")
    kind, v = next(iter(arg.items()))
    if kind == "as_none":
        return None
    if kind in ("as_tensor", "as_optional_tensor"):
        if isinstance(v, dict) and "as_none" in v:
            return None
        v = v.get("as_tensor", v) if isinstance(v, dict) else v
        return Ref(v["name"])
    if kind == "as_tensors":
        return [Ref(x["name"]) for x in v]
    if kind == "as_optional_tensors":
        return [None if "as_none" in x else Ref(x["as_tensor"]["name"]) for x in v]
    if kind in ("as_int", "as_float", "as_bool", "as_string", "as_ints", "as_floats", "as_bools", "as_strings",
                "as_scalar_type", "as_memory_format", "as_layout"):
        return v
    if kind == "as_device":
        return v.get("type") if isinstance(v, dict) else v
    if kind in ("as_sym_int", "as_sym_ints", "as_sym_float", "as_sym_bool"):
        vals = v if isinstance(v, list) else [v]
        if all(isinstance(x, dict) and set(x) == {"as_int"} for x in vals):
            ints = [x["as_int"] for x in vals]
            return ints if isinstance(v, list) else ints[0]
        raise fail("has a symbolic (dynamic) size argument; export with static shapes")
    raise fail(f"has an argument of kind '{kind}' that TinyStudio cannot import")


def _schema_args(target: str) -> list:
    import torch  # only ever for the fixed overloads in HANDLERS

    name, overload = target.split(".")
    return getattr(getattr(torch.ops.aten, name), overload)._schema.arguments


def node_args(cx: Converter, target: str, node: dict) -> dict:
    args: dict[str, Any] = {}
    for a in _schema_args(target):
        args[a.name] = a.default_value if a.has_default_value() else None
    for na in node.get("inputs", []):
        if not isinstance(na, dict) or "name" not in na:
            raise cx.fail("malformed node input")
        args[na["name"]] = decode_arg(na.get("arg"), cx.fail)
    return args


def node_outputs(cx: Converter, node: dict) -> list:
    return [decode_arg(o, cx.fail) for o in node.get("outputs", [])]


# ---- the conversion --------------------------------------------------------------------------------

_TARGET = re.compile(r"^torch\.ops\.aten\.(\w+)\.(\w+)$")


def aten_to_ir(program: dict, weights: dict[str, np.ndarray], path: str, name: str = "model") -> Graph:
    cx = None
    try:
        cx = Converter(path, program, weights, name)
        _convert(cx)
    except (KeyError, TypeError, AttributeError, IndexError, ValueError, RecursionError) as e:
        # The program JSON comes from a user file: a missing field or wrong type is a format error.
        where = cx.node_name if cx is not None else "graph"
        raise ModelFormatError(path, f"malformed program at node '{where}' ({type(e).__name__}: "
                                     f"{str(e)[:120]})") from e
    try:
        return infer_shapes(cx.g, check_declared=True)
    except GraphError as e:  # the mapping computed a shape torch did not record: never import silently
        raise ModelFormatError(path, f"imported graph is inconsistent: {e}") from e


def _convert(cx: Converter) -> None:
    path = cx.path
    _inputs(cx)
    for node in _get(cx.graph, "nodes", list, path):
        target = node.get("target", "") if isinstance(node, dict) else ""
        cx.node_name = str(node.get("name") or target)
        outs = node_outputs(cx, node)
        m = _TARGET.match(target)
        key = f"{m.group(1)}.{m.group(2)}" if m else None
        if key is None and target.startswith("torch.ops.aten._assert"):
            continue
        if m and m.group(1).startswith("_assert"):
            continue
        if key not in HANDLERS:
            raise UnsupportedOpError(path, target, cx.node_name, supported_targets())
        cx.current_target = key
        HANDLERS[key](cx, node_args(cx, key, node), outs)
    _outputs(cx)
    _prune(cx.g)


def _prune(g: Graph) -> None:
    """Drop nodes whose results nothing reads (a Mul a where() was fused away from), then constants
    nothing reads (folded-away views, unused buffers such as num_batches_tracked)."""
    while True:
        used = {i for n in g.nodes for i in n.inputs} | set(g.outputs)
        dead = [n for n in g.nodes if not any(o in used for o in n.outputs)]
        if not dead:
            break
        for n in dead:
            g.nodes.remove(n)
            for o in n.outputs:
                g.tensors.pop(o, None)
    for name in [n for n, t in g.tensors.items() if t.data is not None and n not in used]:
        del g.tensors[name]


def _inputs(cx: Converter) -> None:
    specs = _get(cx.signature, "input_specs", list, cx.path)
    for spec in specs:
        kind, body = next(iter(spec.items())) if isinstance(spec, dict) and spec else (None, None)
        if kind in ("parameter", "buffer", "tensor_constant"):
            arg = body["arg"]["name"]
            fqn = body.get({"parameter": "parameter_name", "buffer": "buffer_name",
                            "tensor_constant": "tensor_constant_name"}[kind])
            if fqn not in cx.weights:
                raise ModelFormatError(cx.path, f"{kind} '{fqn}' has no stored data")
            data = cx.weights[fqn]
            name = cx.fresh(fqn)
            cx.g.tensors[name] = Tensor(name, data.shape, dtype_of(data), None, data, {"source_name": fqn})
            cx.alias[arg] = name
        elif kind == "user_input":
            arg = body["arg"]
            if "as_tensor" not in arg:
                raise ModelFormatError(cx.path, f"graph input {str(arg)[:60]} is not a tensor; TinyStudio imports "
                                                "models whose inputs are all tensors")
            ref = arg["as_tensor"]["name"]
            shape, dtype = cx.declared[ref]
            name = cx.fresh(ref)
            cx.g.tensors[name] = Tensor(name, shape, dtype)
            cx.g.inputs.append(name)
            cx.alias[ref] = name
        else:
            raise ModelFormatError(cx.path, f"graph input of kind '{kind}' (custom objects, tokens) is not supported")


def _outputs(cx: Converter) -> None:
    for spec in _get(cx.signature, "output_specs", list, cx.path):
        kind, body = next(iter(spec.items())) if isinstance(spec, dict) and spec else (None, None)
        if kind == "buffer_mutation":
            continue  # running-stat updates of a model exported in training mode; inference ignores them
        if kind != "user_output" or "as_tensor" not in body.get("arg", {}):
            raise ModelFormatError(cx.path, f"graph output of kind '{kind}' is not supported (tensors only)")
        cx.node_name = "output"
        cx.g.outputs.append(cx.t(body["arg"]["as_tensor"]["name"]))
