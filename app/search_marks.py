"""The Search page's table of marks: the current version's layer attributes a search can vary around the design
(output channels, kernel, stride), and the choices the user typed for them, as engine.search.version_space's
marks {"node.attr": [choices]}.

    rows = markable_rows(graph)     # [{"layer": "conv1", "op": "Conv", "attribute": "out_channels", "now": "16",
                                    #   "choices": ""}, ...]
    marks = marks_from_rows(rows)   # {"conv1.out_channels": [8, 16, 32]} for the rows with choices

The last layer's outputs (the classes) are not offered: the data set fixes them.
"""
from __future__ import annotations

import re

from engine.errors import TinyStudioError
from engine.ir import Graph
from engine.validate import topological_order

MAX_CHOICES = 16


def _text(v) -> str:
    return "x".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)


def markable_rows(graph: Graph) -> list[dict]:
    from app.canvas.layers import layer_params

    nodes = [n for n in topological_order(graph)]
    weighted = [n for n in nodes if layer_params(graph, n)]
    last = weighted[-1].name if weighted else None
    rows = []
    for n in weighted:
        p = layer_params(graph, n)
        attrs: list[tuple[str, object]] = []
        if n.op == "Conv":
            if not p.get("depthwise") and n.name != last:
                attrs.append(("out_channels", p["out_channels"]))
            attrs.append(("kernel", p["kernel"]))
            attrs.append(("strides", list(n.attrs.get("strides") or [1] * len(p["kernel"]))))
        elif n.op == "Gemm" and n.name != last:
            attrs.append(("out_features", p["out_features"]))
        rows += [{"layer": n.name, "op": n.op, "attribute": a, "now": _text(v), "choices": ""} for a, v in attrs]
    return rows


def _value(text: str, row: dict):
    """'16' -> 16; '3x3' -> [3, 3]."""
    parts = [p for p in re.split(r"[x×]", text.strip()) if p.strip()]
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise TinyStudioError(f"layer {row['layer']}, {row['attribute']}: '{text.strip()}' is not a whole number "
                              "(or NxM for a kernel or stride)") from None
    if not nums or min(nums) < 1:
        raise TinyStudioError(f"layer {row['layer']}, {row['attribute']}: choices must be positive whole numbers")
    return nums[0] if len(nums) == 1 else nums


def marks_from_rows(rows) -> dict[str, list]:
    """{"layer.attribute": [choices]} for every row whose choices are filled in; a one-line error naming the
    layer and attribute for a value that is not a number."""
    if hasattr(rows, "to_dict"):  # st.data_editor hands back what it was given; a DataFrame also works
        rows = rows.to_dict("records")
    marks = {}
    for r in rows or []:
        text = str(r.get("choices") or "").strip()
        if not text:
            continue
        choices = []
        for part in re.split(r"[,;\s]+", text):
            if part:
                v = _value(part, r)
                if v not in choices:
                    choices.append(v)
        if len(choices) > MAX_CHOICES:
            raise TinyStudioError(f"layer {r['layer']}, {r['attribute']}: at most {MAX_CHOICES} choices")
        marks[f"{r['layer']}.{r['attribute']}"] = choices
    return marks
