"""ONNX op handlers for ops whose constant operands become IR attributes (shape, axes, split, starts/ends,
pads, scales/sizes, clip bounds, repeats), and the layout ops built from them (Expand, Tile, DepthToSpace).

Older opsets carry these operands as attributes (Reshape-1, Slice < 10, Pad < 11, Clip < 11, Split < 13,
Squeeze and ReduceSum < 13, other Reduce* < 18); both forms map to the same IR node. Upsample and Resize-10
map to Resize with asymmetric coordinates.
"""
from __future__ import annotations

import math

import numpy as np

from engine.importers.onnx_context import HandlerTable, f32
from engine.importers.onnx_fold import MAX_FOLD_ELEMENTS

HANDLERS = HandlerTable()
handles = HANDLERS.handles


@handles("Reshape")
def _reshape(imp, n, a):
    if imp.opset < 5:
        shape = a.pop("shape")
    else:
        shape = imp.cin(n, 1, "shape", True)
    imp.emit(n, "Reshape", n.ins[:1], n.outs, {"shape": [int(v) for v in np.ravel(shape)],
                                               **imp.attrs(n, a, ("allowzero",))})


def _axes_operand(imp, n, a, i, since):
    if imp.opset >= since:
        v = imp.cin(n, i, "axes")
        a = dict(a)
        return (None if v is None or v.size == 0 else [int(x) for x in np.ravel(v)]), a
    a = dict(a)
    axes = a.pop("axes", None)
    return (None if axes is None else list(axes)), a


@handles("Squeeze", "Unsqueeze")
def _squeeze(imp, n, a):
    axes, a = _axes_operand(imp, n, a, 1, 13)
    if n.op == "Unsqueeze" and axes is None:
        raise imp.fail(n, "needs axes")
    imp.emit(n, n.op, n.ins[:1], n.outs, {"axes": axes, **imp.attrs(n, a)})


@handles("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin")
def _reduce(imp, n, a):
    axes, a = _axes_operand(imp, n, a, 1, 13 if n.op == "ReduceSum" else 18)
    imp.emit(n, n.op, n.ins[:1], n.outs, {"axes": axes, **imp.attrs(n, a, ("keepdims", "noop_with_empty_axes"))})


@handles("Split")
def _split(imp, n, a):
    a = dict(a)
    if imp.opset < 13:
        split = a.pop("split", None)
    else:
        split = imp.cints(n, 1, "split") or None
    a.pop("num_outputs", None)  # the IR's default split (ceil-sized chunks) is opset 18's num_outputs rule
    attrs = imp.attrs(n, a, ("axis",))
    outs = [o if o else imp.fresh_tensor(f"{n.name}/unused{i}") for i, o in enumerate(n.outs)]
    imp.emit(n, "Split", n.ins[:1], outs, {"split": None if split is None else list(split), **attrs})


@handles("Slice")
def _slice(imp, n, a):
    if imp.opset < 10:
        attrs = imp.attrs(n, a, ("starts", "ends", "axes"))
    else:
        imp.attrs(n, a)
        attrs = {}
        for i, k in enumerate(("starts", "ends", "axes", "steps"), start=1):
            v = imp.cin(n, i, k, i <= 2)
            if v is not None:
                attrs[k] = [int(x) for x in np.ravel(v)]
    imp.emit(n, "Slice", n.ins[:1], n.outs, attrs)


@handles("Pad")
def _pad(imp, n, a):
    a = dict(a)
    if imp.opset < 11:
        pads = a.pop("pads", a.pop("paddings", None))
        value = a.pop("value", 0.0)
        axes = None
    else:
        pads = imp.cin(n, 1, "pads", True)
        v = imp.cin(n, 2, "constant_value")
        value = 0.0 if v is None or v.size == 0 else f32(np.ravel(v)[0])
        axes = imp.cin(n, 3, "axes")
    pads = [int(p) for p in np.ravel(pads)]
    r = imp.rank(n.ins[0])
    if axes is not None:  # opset 18: pads only for the listed axes
        full = [0] * (2 * r)
        k = len(axes)
        for j, ax in enumerate(np.ravel(axes)):
            full[int(ax) % r], full[int(ax) % r + r] = pads[j], pads[j + k]
        pads = full
    mode = a.pop("mode", "constant")
    if mode not in ("constant", "reflect", "edge"):
        raise imp.fail(n, f"mode '{mode}' is not supported (constant, reflect, edge)")
    imp.attrs(n, a)
    imp.emit(n, "Pad", n.ins[:1], n.outs, {"pads": pads, "mode": mode, "value": value})


@handles("Resize", "Upsample")
def _resize(imp, n, a):
    a = dict(a)
    x = n.ins[0]
    shape = imp.shape(x)
    r = len(shape)
    mode = a.pop("mode", "nearest")
    mode = "linear" if mode == "bilinear" else mode
    scales = sizes = None
    if n.op == "Upsample" or imp.opset < 11:
        # Upsample and Resize-10 use asymmetric coordinates; onnxruntime rounds nearest indices down on
        # axes it enlarges and up on axes it shrinks. The IR has one rounding for all axes, which is exact
        # for mixed scales only when every shrinking axis samples exact integer positions (1/scale = 2^k).
        scales = a.pop("scales") if "scales" in a else imp.cin(n, 1, "scales", True)
        scales = [f32(s) for s in np.ravel(scales)]
        ctm = "asymmetric"
        down = [s for s in scales if s < 1]
        nearest = "floor" if not down else "ceil" if all(s <= 1 for s in scales) else None
        if nearest is None and mode == "nearest":
            if not all(math.log2(1 / s).is_integer() for s in down):
                raise imp.fail(n, f"nearest resize that enlarges some axes and shrinks others by {down} is not "
                                  "supported before opset 11")
        nearest = nearest or "floor"
    else:
        ctm = a.pop("coordinate_transformation_mode", "half_pixel")
        nearest = a.pop("nearest_mode", "round_prefer_floor")
        s = imp.cin(n, 2, "scales")
        z = imp.cin(n, 3, "sizes")
        scales = None if s is None or s.size == 0 else [f32(v) for v in np.ravel(s)]
        sizes = None if z is None or z.size == 0 else [int(v) for v in np.ravel(z)]
        axes = a.pop("axes", None)
        if axes is not None:
            axes = [ax % r for ax in axes]
            if scales is not None:
                scales = [scales[axes.index(i)] if i in axes else 1.0 for i in range(r)]
            if sizes is not None:
                sizes = [sizes[axes.index(i)] if i in axes else shape[i] for i in range(r)]
        if sizes is not None and a.get("keep_aspect_ratio_policy", "stretch") != "stretch":
            raise imp.fail(n, f"keep_aspect_ratio_policy '{a['keep_aspect_ratio_policy']}' is not supported")
        a.pop("keep_aspect_ratio_policy", None)
        a.pop("cubic_coeff_a", None)  # cubic only
        a.pop("extrapolation_value", None)  # tf_crop_and_resize only
    imp.attrs(n, a, (), {"exclude_outside": 0, "antialias": 0})
    if mode not in ("nearest", "linear"):
        raise imp.fail(n, f"mode '{mode}' is not supported (nearest, linear)")
    if ctm not in ("half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel"):
        raise imp.fail(n, f"coordinate_transformation_mode '{ctm}' is not supported")
    if r < 3:
        raise imp.fail(n, f"input {list(shape)} must have batch, channel and spatial dims")
    if scales is not None and len(scales) != r or sizes is not None and len(sizes) != r:
        raise imp.fail(n, f"scales/sizes must have {r} values")
    if scales is not None and scales[:2] != [1.0, 1.0] or sizes is not None and list(sizes[:2]) != list(shape[:2]):
        raise imp.fail(n, "resizing the batch or channel dims is not supported (spatial dims only)")
    imp.emit(n, "Resize", [x], n.outs, {
        "scales": None if scales is None else scales[2:], "sizes": None if sizes is None else sizes[2:],
        "mode": mode, "coordinate_transformation_mode": ctm, "nearest_mode": nearest})


@handles("Clip")
def _clip(imp, n, a):
    if imp.opset < 11:
        attrs = imp.attrs(n, a, ("min", "max"))
    else:
        imp.attrs(n, a)
        attrs = {}
        for i, k in ((1, "min"), (2, "max")):
            v = imp.cin(n, i, k)
            if v is not None:
                attrs[k] = f32(np.ravel(v)[0])
    imp.emit(n, "Clip", n.ins[:1], n.outs, attrs)


@handles("Expand")
def _expand(imp, n, a):
    imp.attrs(n, a)
    shape = tuple(imp.cints(n, 1, "shape", True))
    if any(d < 0 for d in shape) or math.prod(shape) > MAX_FOLD_ELEMENTS:
        raise imp.fail(n, f"shape {list(shape)} is negative or larger than {MAX_FOLD_ELEMENTS:,} elements")
    x = n.ins[0]
    dt = imp.g.tensors[x].dtype
    # Expand is numpy broadcasting against `shape`: multiply by ones (add zeros for integers).
    if dt in ("float32", "float16", "float64"):
        k = imp.new_const(f"{n.name}/ones", np.ones(shape, dtype=dt))
        imp.emit(n, "Mul", [x, k], n.outs)
    else:
        k = imp.new_const(f"{n.name}/zeros", np.zeros(shape, dtype=dt))
        imp.emit(n, "Add", [x, k], n.outs)


@handles("Tile")
def _tile(imp, n, a):
    imp.attrs(n, a)
    reps = imp.cints(n, 1, "repeats", True)
    axes = [i for i, k in enumerate(reps) if k > 1]
    x = n.ins[0]
    if not axes:
        imp.emit(n, "Identity", [x], n.outs)
    for j, ax in enumerate(axes):
        last = j == len(axes) - 1
        x = imp.emit(n, "Concat", [x] * reps[ax], n.outs if last else None, {"axis": ax},
                     suffix=None if last else f"Concat{ax}")


@handles("DepthToSpace", "SpaceToDepth")
def _depth_space(imp, n, a):
    a = imp.attrs(n, a, ("blocksize", "mode"))
    b, c, h, w = imp.shape(n.ins[0])
    bs = a["blocksize"]
    if n.op == "SpaceToDepth":  # mode (opset 28): DCR puts the block offsets first, CRD the channels first
        perm = [0, 3, 5, 1, 2, 4] if a.get("mode", "DCR") == "DCR" else [0, 1, 3, 5, 2, 4]
        mid, out = [b, c, h // bs, bs, w // bs, bs], [b, c * bs * bs, h // bs, w // bs]
    elif a.get("mode", "DCR") == "DCR":
        mid, perm, out = [b, bs, bs, c // bs ** 2, h, w], [0, 3, 4, 1, 5, 2], [b, c // bs ** 2, h * bs, w * bs]
    else:
        mid, perm, out = [b, c // bs ** 2, bs, bs, h, w], [0, 1, 4, 2, 5, 3], [b, c // bs ** 2, h * bs, w * bs]
    y = imp.emit(n, "Reshape", n.ins[:1], attrs={"shape": mid}, suffix="Reshape")
    y = imp.emit(n, "Transpose", [y], attrs={"perm": perm}, suffix="Transpose")
    imp.emit(n, "Reshape", [y], n.outs, {"shape": out})

