"""Values of a canvas document as the graph wants them: positions, attribute values coerced to their schema's kind
(kept identical to the base graph's when equal), layer parameters, edge handles."""
from __future__ import annotations

import numpy as np

from app.canvas.layers import op_schema
from engine.ops import get_op
from engine.serialize import jsonable


def position_of(p) -> dict | None:
    if isinstance(p, dict) and "x" in p and "y" in p:
        return {"x": float(p["x"]), "y": float(p["y"])}
    if isinstance(p, (list, tuple)) and len(p) == 2:
        return {"x": float(p[0]), "y": float(p[1])}
    return None


_MISSING = object()


def coerce(value, kind: str):
    """Typed value from what the browser sent (JSON numbers lose int/float, forms may send text)."""
    def num(v, to):
        if isinstance(v, bool):
            return v
        if isinstance(v, str):
            try:
                v = float(v.strip())
            except ValueError:
                return v
        if isinstance(v, (int, float, np.integer, np.floating)):
            if to is int:
                return int(v) if float(v).is_integer() else v
            return float(v)
        return v

    if kind in ("int", "float"):
        return num(value, int if kind == "int" else float)
    if kind in ("ints", "floats"):
        if isinstance(value, str):
            value = [p for p in value.replace("x", ",").replace(" ", ",").split(",") if p]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if isinstance(value, (list, tuple)):
            return [num(v, int if kind == "ints" else float) for v in value]
    if kind == "strs":  # a form sends "Sigmoid, Tanh, Tanh" (recurrent activations)
        if isinstance(value, str):
            value = [p.strip() for p in value.split(",") if p.strip()]
        if isinstance(value, (list, tuple)):
            return [str(v) for v in value]
    if kind == "bool":
        return value if isinstance(value, bool) else (str(value).lower() in ("1", "true", "yes") if value is not None else False)
    return value


def same_value(a, b) -> bool:
    """Equal as IR values: 1 == 1.0 (JSON loses the difference), lists element-wise, bools only to bools."""
    a, b = jsonable(a), jsonable(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def doc_attrs(doc_attrs: dict, base_attrs: dict, op: str) -> dict:
    """Attributes as the IR stores them; a value equal to the base's keeps the base's exact object."""
    spec = get_op(op).attrs if get_op(op) else {}
    out = {}
    for k, v in (doc_attrs or {}).items():
        if v is None or v == "":
            if k in base_attrs and base_attrs[k] is None:
                out[k] = None  # an explicit None the graph already had
            continue
        cv = coerce(v, spec[k].kind) if k in spec else v
        old = base_attrs.get(k, _MISSING)
        out[k] = old if old is not _MISSING and same_value(old, cv) else cv
    return out


def doc_layer(doc_layer, op: str) -> dict | None:
    if not isinstance(doc_layer, dict):
        return None
    kinds = {f["name"]: f["kind"] for f in op_schema(op)["layer"]}
    return {k: coerce(v, kinds[k]) if k in kinds else v for k, v in doc_layer.items()}


def handle_index(h, prefix: str) -> int | None:
    if isinstance(h, str) and h.startswith(prefix) and h[len(prefix):].isdigit():
        return int(h[len(prefix):])
    return None
