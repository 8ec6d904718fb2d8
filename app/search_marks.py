"""The Search page's table of marks: the current version's layer attributes a search can vary around the design
(output channels, kernel, stride: engine.search.version's knobs), and the choices the user typed for them, as
version_space's marks {"node.attr": [choices]}.

    rows = markable_rows(graph)     # [{"layer": "conv1", "op": "Conv", "attribute": "channels", "now": "16",
                                    #   "choices": ""}, ...]
    marks = marks_from_rows(rows)   # {"conv1.channels": [8, 16, 32]} for the rows with choices

The last layer's outputs (the classes) and a depthwise conv's channels are not offered: the data set and the
input fix them.
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
    """One row per knob engine.search.version_space accepts (valid_knobs), in execution order, with its value."""
    from app.canvas.layers import layer_params
    from engine.search.version import valid_knobs

    knobs = set(valid_knobs(graph))
    rows = []
    for n in topological_order(graph):
        p = layer_params(graph, n) or {}
        now = {"channels": p.get("out_channels", p.get("out_features")), "kernel": p.get("kernel"),
               "stride": n.attrs.get("strides")}
        for attr in ("channels", "kernel", "stride"):
            if f"{n.name}.{attr}" in knobs:
                rows.append({"layer": n.name, "op": n.op, "attribute": attr,
                             "now": "" if now[attr] is None else _text(now[attr]), "choices": ""})
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
