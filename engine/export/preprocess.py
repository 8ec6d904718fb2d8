"""What a firmware developer must do to an input before `<name>_run`, and which output index is which class.

    prov = provenance(float_graph, version_dataset)     # dataset record: source, normalization, class names
    spec = input_spec(qgraph, lib, prov)                 # layout, shape, normalization, scale/zero point, labels
    files = helper_sources(lib, spec)                    # src/<name>_input.[ch]: <name>_preprocess() and friends
    q = reference_preprocess(qgraph, spec, raw)          # the same in Python (tests compare it with the C)

The normalization comes from the dataset record of the version (what `tinystudio train` and the studio's
actions store in graph.meta or the version's parameters); without one the README says "none recorded".
The C helper takes raw floats in the C input's own layout (shape `spec["shape"]`).
"""
from __future__ import annotations

import numpy as np

from engine.codegen.cwrite import c_comment, c_float


def provenance(graph, extra: dict | None = None) -> dict:
    """The dataset record a version was trained/compressed with: {source, normalization, class_names, classes}.
    `extra` (a version's stored "dataset" parameter) wins over what the graph carries."""
    found: dict = {}
    meta = graph.meta if graph is not None and isinstance(graph.meta, dict) else {}
    for rec in (meta.get("dataset"), (meta.get("training") or {}).get("dataset"), extra):
        if isinstance(rec, dict):
            found.update({k: v for k, v in rec.items() if v not in (None, "", [], {})})
    out = {"source": str(found.get("source") or found.get("name") or "")}
    norm = found.get("normalization")
    if isinstance(norm, dict) and isinstance(norm.get("mean"), list) and isinstance(norm.get("std"), list) \
            and len(norm["mean"]) == len(norm["std"]) and norm["mean"]:
        try:
            out["normalization"] = {"mean": [float(v) for v in norm["mean"]], "std": [float(v) for v in norm["std"]],
                                    "axis": str(norm.get("axis", "channel"))}
        except (TypeError, ValueError):
            pass
    names = found.get("class_names")
    if isinstance(names, list) and names:
        out["class_names"] = [str(n) for n in names]
    return out


def _layout(qgraph, name: str, rank: int) -> tuple[str, str]:
    """(layout of the C input, note on the original layout)."""
    lay = (qgraph.meta.get("input_layout") or {}).get(name) if isinstance(qgraph.meta, dict) else None
    if isinstance(lay, dict) and lay.get("to"):
        perm = lay.get("perm")
        return str(lay["to"]), (f"the float model and its dataset use {lay.get('from')}; transpose a "
                                f"{lay.get('from')} sample with axes {perm} to get this layout")
    if rank == 4:
        spatial = [n for n in qgraph.nodes if name in n.inputs]
        nhwc = any(str(n.attrs.get("layout", "")).upper() == "NHWC" for n in spatial)
        return ("NHWC" if nhwc else "NCHW"), ""
    if rank == 3:
        return "NWC" if any(str(n.attrs.get("layout", "")).upper() in ("NHWC", "NWC")
                            for n in qgraph.nodes if name in n.inputs) else "NCW", ""
    return ("NF" if rank == 2 else f"{rank}-D"), ""


def input_spec(qgraph, lib, prov: dict) -> dict:
    """Everything the README's preprocessing section and the C helper need about input 0 and output 0."""
    s = lib.inputs[0]
    layout, note = _layout(qgraph, s.name, len(s.shape))
    channels = s.shape[-1] if layout in ("NHWC", "NWC", "NF") else (s.shape[1] if len(s.shape) >= 2 else 1)
    norm = prov.get("normalization")
    if norm and len(norm["mean"]) != channels:
        note_n = (f"recorded normalization has {len(norm['mean'])} values but the input has {channels} channels; "
                  "not applied")
        norm = None
    else:
        note_n = ""
    out = lib.outputs[0]
    classes = int(np.prod(out.shape)) if out.shape else 1
    names = prov.get("class_names")
    labels = names if names and len(names) == classes else None
    return {"input": s.name, "shape": list(s.shape), "layout": layout, "layout_note": note, "channels": int(channels),
            "normalization": norm, "normalization_note": note_n, "scale": s.scale, "zero_point": s.zero_point,
            "dataset": prov.get("source", ""), "output": out.name, "output_shape": list(out.shape),
            "output_scale": out.scale, "output_zero_point": out.zero_point, "classes": classes,
            "class_labels": labels, "class_labels_source": "dataset record" if labels else "none recorded"}


def _channel_expr(spec: dict) -> str:
    """C expression for the channel of flat element i in the C input's layout."""
    shape, layout, c = spec["shape"], spec["layout"], spec["channels"]
    if layout in ("NHWC", "NWC", "NF") or len(shape) < 3:
        return f"i % {c}"
    inner = int(np.prod(shape[2:]))
    return f"(i / {inner}) % {c}"


def helper_sources(lib, spec: dict) -> dict[str, str]:
    """src/<name>_input.h and .c: the preprocessing of spec in C (float -> normalized -> int8)."""
    n, N = lib.name, lib.name.upper()
    norm = spec["normalization"]
    # element counts and C types of input 0 / output 0 (int8, or int16 for a 16x8 model)
    di, do = lib.inputs[0].dtype, lib.outputs[0].dtype
    it, ot = f"{di}_t", f"{do}_t"
    size = lib.inputs[0].size // np.dtype(di).itemsize
    header = f"""/* {n}_input.h: input preprocessing for {n} (generated by TinyStudio).
 * Input 0 '{c_comment(spec['input'])}' is {spec['layout']} {spec['shape']} {di} with scale {spec['scale']:.9g} and zero point {spec['zero_point']}. */
#ifndef {N}_INPUT_H
#define {N}_INPUT_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {{
#endif

#define {N}_INPUT_CHANNELS {spec['channels']}
#define {N}_INPUT_NORMALIZED {1 if norm else 0}   /* 1: {n}_preprocess subtracts the mean and divides by the std */

/* Raw float sample ({N}_INPUT0_SIZE values in the layout above) -> {di} input: per channel
 * (x - mean[c]) / std[c] (when recorded), then quantized like {n}_quantize_input. */
void {n}_preprocess(const float *raw, {it} *input);
/* Already-normalized float values ({N}_INPUT0_SIZE of them) -> {di} input (quantization only). */
void {n}_quantize_input_buffer(const float *x, {it} *input);
/* Index of the largest output value: the predicted class. */
int {n}_argmax(const {ot} *output);

#ifdef __cplusplus
}}
#endif
#endif /* {N}_INPUT_H */
"""
    if norm:
        mean = ", ".join(c_float(v) for v in norm["mean"])
        std = ", ".join(c_float(v) for v in norm["std"])
        where = c_comment(spec["dataset"]) or "dataset record"
        tables = (f"/* Per-channel statistics of the training split ({where}). */\n"
                  f"static const float {n}_mean[{spec['channels']}] = {{{mean}}};\n"
                  f"static const float {n}_std[{spec['channels']}] = {{{std}}};\n")
        body = (f"        unsigned c = {_channel_expr(spec)};\n"
                f"        input[i] = {n}_quantize_input((raw[i] - {n}_mean[c]) / {n}_std[c]);\n")
    else:
        tables = "/* No normalization was recorded for this model's dataset: raw values are quantized as they are. */\n"
        body = f"        input[i] = {n}_quantize_input(raw[i]);\n"
    out_size = lib.outputs[0].size // np.dtype(do).itemsize
    source = f"""/* {n}_input.c: input preprocessing for {n} (generated by TinyStudio); the only floating point
 * besides {n}_io.c, outside the int8 path. */
#include "{n}.h"
#include "{n}_input.h"

{tables}
void {n}_preprocess(const float *raw, {it} *input)
{{
    for (unsigned i = 0; i < {size}u; i++) {{
{body}    }}
}}

void {n}_quantize_input_buffer(const float *x, {it} *input)
{{
    for (unsigned i = 0; i < {size}u; i++) {{
        input[i] = {n}_quantize_input(x[i]);
    }}
}}

int {n}_argmax(const {ot} *output)
{{
    int best = 0;
    for (int i = 1; i < {out_size}; i++) {{
        if (output[i] > output[best]) {{
            best = i;
        }}
    }}
    return best;
}}
"""
    return {f"{n}_input.h": header, f"{n}_input.c": source}


def reference_preprocess(qgraph, spec: dict, raw: np.ndarray) -> np.ndarray:
    """Python twin of <name>_preprocess: raw sample(s) in the C input's layout -> int8 (the PTQ quantizer)."""
    x = np.asarray(raw, np.float32).reshape(spec["shape"])
    norm = spec["normalization"]
    if norm:
        c = spec["channels"]
        if spec["layout"] in ("NHWC", "NWC", "NF") or x.ndim < 3:
            bshape = (1,) * (x.ndim - 1) + (c,)
        else:
            bshape = (1, c) + (1,) * (x.ndim - 2)
        mean = np.asarray(norm["mean"], np.float32).reshape(bshape)
        std = np.asarray(norm["std"], np.float32).reshape(bshape)
        x = ((x - mean) / std).astype(np.float32)
    return qgraph.tensors[spec["input"]].quant.quantize(x, "int8")
