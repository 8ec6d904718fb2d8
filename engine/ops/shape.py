"""Data movement: Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Concat, Split, Slice, Gather, Pad, Resize.

Shape-defining operands are attributes in the IR (importers fold ONNX's constant shape/starts/pads
inputs into them), so a graph's shapes never depend on runtime values and the canvas can edit them.
"""
from __future__ import annotations

import numpy as np

from engine.ops.base import Attr, Cost, OpDef, float_out, norm_axis, register
from engine.ops.conv import LAYOUT, from_channels_first, split_layout, to_channels_first


class _View(OpDef):
    """Ops whose output is the input's bytes reinterpreted: no compute, the planner may alias them."""

    is_view = True
    same_grid = moves_values = True

    def cost(self, ctx):
        return Cost(0, 0, 0)

    def run(self, ctx, xs):
        return [np.reshape(xs[0], ctx.outs[0].shape)]


@register
class Reshape(_View):
    name = "Reshape"
    attrs = {"shape": Attr("ints", None, required=True), "allowzero": Attr("int", 0, (0, 1))}
    doc = "New shape with the same element count; 0 copies the input dim, -1 is inferred."

    def infer(self, ctx):
        x = ctx.shape(0)
        target = list(ctx.attr("shape"))
        if not ctx.attr("allowzero"):
            for i, d in enumerate(target):
                if d == 0:
                    if i >= len(x):
                        raise ctx.error(f"shape {target}: 0 at position {i} has no input dim to copy")
                    target[i] = x[i]
        size = int(np.prod(x, dtype=np.int64))
        if target.count(-1) > 1 or any(d < -1 for d in target):
            raise ctx.error(f"shape {list(ctx.attr('shape'))} is invalid")
        if -1 in target:
            rest = int(np.prod([d for d in target if d != -1], dtype=np.int64))
            if rest == 0 or size % rest:
                raise ctx.error(f"cannot reshape {list(x)} ({size} elements) to {list(ctx.attr('shape'))}")
            target[target.index(-1)] = size // rest
        if int(np.prod(target, dtype=np.int64)) != size:
            raise ctx.error(f"cannot reshape {list(x)} ({size} elements) to {list(ctx.attr('shape'))}")
        return [(tuple(target), ctx.ins[0].dtype)]


@register
class Flatten(_View):
    name = "Flatten"
    onnx_same = True
    attrs = {"axis": Attr("int", 1)}
    doc = "2-D view: dims before `axis` and dims from `axis` multiplied together."

    def infer(self, ctx):
        x = ctx.shape(0)
        a = ctx.attr("axis")
        if not -len(x) <= a <= len(x):
            raise ctx.error(f"axis {a} out of range for rank {len(x)}")
        a = a + len(x) if a < 0 else a  # ONNX: a negative axis counts from the back (-r is 0)
        return [((int(np.prod(x[:a], dtype=np.int64)), int(np.prod(x[a:], dtype=np.int64))), ctx.ins[0].dtype)]


@register
class Squeeze(_View):
    name = "Squeeze"
    attrs = {"axes": Attr("ints", None)}
    doc = "Removes size-1 dims (all of them when `axes` is not given)."

    def infer(self, ctx):
        x = ctx.shape(0)
        axes = ctx.attr("axes")
        if axes is None:
            axes = [i for i, d in enumerate(x) if d == 1]
        axes = {norm_axis(a, len(x), ctx) for a in axes}
        for a in axes:
            if x[a] != 1:
                raise ctx.error(f"cannot squeeze axis {a} of size {x[a]} in {list(x)}")
        return [(tuple(d for i, d in enumerate(x) if i not in axes), ctx.ins[0].dtype)]


@register
class Unsqueeze(_View):
    name = "Unsqueeze"
    attrs = {"axes": Attr("ints", None, required=True)}
    doc = "Inserts size-1 dims at `axes` (positions in the output)."

    def infer(self, ctx):
        x = list(ctx.shape(0))
        rank = len(x) + len(ctx.attr("axes"))
        axes = sorted(norm_axis(a, rank, ctx) for a in ctx.attr("axes"))
        if len(set(axes)) != len(axes):
            raise ctx.error(f"axes {list(ctx.attr('axes'))} repeat")
        for a in axes:
            x.insert(a, 1)
        return [(tuple(x), ctx.ins[0].dtype)]


@register
class Transpose(OpDef):
    name = "Transpose"
    same_grid = moves_values = onnx_same = True
    attrs = {"perm": Attr("ints", None)}
    doc = "Permutes dims (reverses them when `perm` is not given)."

    def permutation(self, ctx):
        r = len(ctx.shape(0))
        perm = ctx.attr("perm")
        perm = list(range(r))[::-1] if perm is None else [norm_axis(p, r, ctx) for p in perm]
        if sorted(perm) != list(range(r)):
            raise ctx.error(f"perm {list(ctx.attr('perm'))} is not a permutation of {r} dims")
        return perm

    def infer(self, ctx):
        x = ctx.shape(0)
        return [(tuple(x[p] for p in self.permutation(ctx)), ctx.ins[0].dtype)]

    def cost(self, ctx):
        return Cost(0, 0, 0)

    def run(self, ctx, xs):
        return [np.ascontiguousarray(np.transpose(xs[0], self.permutation(ctx)))]


@register
class Concat(OpDef):
    name = "Concat"
    same_grid = onnx_same = True  # int8: inputs on another grid are requantized to the output's (own kernel)
    inputs = ("inputs*",)
    attrs = {"axis": Attr("int", 1)}
    doc = "Joins inputs along `axis`."

    def infer(self, ctx):
        shapes = [ctx.shape(i) for i in range(len(ctx.ins))]
        if not shapes:
            raise ctx.error("needs at least one input")
        r = len(shapes[0])
        axis = norm_axis(ctx.attr("axis"), r, ctx)
        for s in shapes[1:]:
            if len(s) != r or any(s[i] != shapes[0][i] for i in range(r) if i != axis):
                raise ctx.error(f"input shapes {[list(s) for s in shapes]} differ outside axis {axis}")
        out = list(shapes[0])
        out[axis] = sum(s[axis] for s in shapes)
        return [(tuple(out), float_out(ctx))]

    def cost(self, ctx):
        return Cost(0, 0, 0)

    def run(self, ctx, xs):
        return [np.concatenate(xs, axis=norm_axis(ctx.attr("axis"), xs[0].ndim))]


@register
class Split(OpDef):
    name = "Split"
    same_grid = moves_values = True
    outputs = ("outputs*",)
    attrs = {"axis": Attr("int", 0), "split": Attr("ints", None)}
    doc = "Splits along `axis` into the given sizes (equal parts, one per output, when not given)."

    def split_sizes(self, ctx):
        x = ctx.shape(0)
        axis = norm_axis(ctx.attr("axis"), len(x), ctx)
        n = len(ctx.node.outputs)
        split = ctx.attr("split")
        if split is None:
            if n < 1:
                raise ctx.error("needs at least one output")
            split = [-(-x[axis] // n)] * n
            split[-1] = x[axis] - split[0] * (n - 1)
        if len(split) != n or sum(split) != x[axis] or min(split) < 0:
            raise ctx.error(f"split {list(split)} does not divide dim {x[axis]} into {n} outputs")
        return axis, list(split)

    def infer(self, ctx):
        x = ctx.shape(0)
        axis, split = self.split_sizes(ctx)
        return [(tuple(s if i == axis else d for i, d in enumerate(x)), ctx.ins[0].dtype) for s in split]

    def cost(self, ctx):
        return Cost(0, 0, 0)

    def run(self, ctx, xs):
        axis, split = self.split_sizes(ctx)
        return list(np.split(xs[0], np.cumsum(split)[:-1], axis=axis))


@register
class Slice(OpDef):
    name = "Slice"
    same_grid = moves_values = True
    attrs = {"starts": Attr("ints", None, required=True), "ends": Attr("ints", None, required=True),
             "axes": Attr("ints", None), "steps": Attr("ints", None)}
    doc = "numpy slicing x[starts:ends:steps] on `axes` (ONNX clamping rules)."

    def slices(self, ctx):
        x = ctx.shape(0)
        starts, ends = ctx.attr("starts"), ctx.attr("ends")
        axes = ctx.attr("axes") or list(range(len(starts)))
        steps = ctx.attr("steps") or [1] * len(starts)
        if not len(starts) == len(ends) == len(axes) == len(steps):
            raise ctx.error("starts, ends, axes and steps must have the same length")
        sl = [slice(None)] * len(x)
        for s, e, a, st in zip(starts, ends, axes, steps):
            if st == 0:
                raise ctx.error("steps must not be 0")
            a = norm_axis(a, len(x), ctx)
            # Clamp huge sentinels (INT64_MAX / INT_MIN) the way numpy would.
            dim = x[a]
            s = max(-dim - 1, min(dim, s))
            e = max(-dim - 1, min(dim, e))
            sl[a] = slice(s, e, st) if not (st < 0 and e < -dim) else slice(s, None, st)
        return tuple(sl)

    def infer(self, ctx):
        sl = self.slices(ctx)
        shape = tuple(len(range(*s.indices(d))) for s, d in zip(sl, ctx.shape(0)))
        return [(shape, ctx.ins[0].dtype)]

    def cost(self, ctx):
        return Cost(0, 0, 0)

    def run(self, ctx, xs):
        return [np.ascontiguousarray(xs[0][self.slices(ctx)])]


@register
class Gather(OpDef):
    name = "Gather"
    same_grid = moves_values = onnx_same = True
    inputs = ("data", "indices")
    attrs = {"axis": Attr("int", 0)}
    doc = "Takes entries of `data` along `axis` at constant or computed `indices`."

    def infer(self, ctx):
        x, idx = ctx.shape(0), ctx.shape(1)
        axis = norm_axis(ctx.attr("axis"), len(x), ctx)
        return [(x[:axis] + idx + x[axis + 1:], ctx.ins[0].dtype)]

    def cost(self, ctx):
        return Cost(0, 0, ctx.ins[0].size if ctx.ins[0].data is not None and ctx.ins[0].dtype == "float32" else 0)

    def run(self, ctx, xs):
        x, idx = xs
        axis = norm_axis(ctx.attr("axis"), x.ndim)
        idx = np.where(idx < 0, idx + x.shape[axis], idx).astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= x.shape[axis]):
            raise ctx.error(f"index out of range for axis {axis} of size {x.shape[axis]}")
        return [np.take(x, idx, axis=axis)]


@register
class Pad(OpDef):
    name = "Pad"
    same_grid = True  # int8: fills with the value on the output grid (own kernel)
    attrs = {"pads": Attr("ints", None, required=True), "mode": Attr("str", "constant", ("constant", "reflect", "edge")),
             "value": Attr("float", 0.0)}
    doc = "Pads with [b1, b2, ..., e1, e2, ...] cells: constant value, reflection or edge copies."

    def infer(self, ctx):
        x = ctx.shape(0)
        pads = ctx.attr("pads")
        if len(pads) != 2 * len(x):
            raise ctx.error(f"pads {list(pads)} must have {2 * len(x)} values for input {list(x)}")
        out = tuple(d + pads[i] + pads[i + len(x)] for i, d in enumerate(x))
        if min(out, default=1) < 0:
            raise ctx.error(f"pads {list(pads)} crop more than the input {list(x)}")
        return [(out, ctx.ins[0].dtype)]

    def cost(self, ctx):
        return Cost(0, 0, 0)

    def run(self, ctx, xs):
        x = xs[0]
        pads, r = ctx.attr("pads"), x.ndim
        # Negative pads crop; apply them as a slice after padding the positive part.
        width = [(max(pads[i], 0), max(pads[i + r], 0)) for i in range(r)]
        mode = ctx.attr("mode")
        if mode == "constant":
            y = np.pad(x, width, mode="constant", constant_values=ctx.attr("value"))
        else:
            y = np.pad(x, width, mode=mode)
        crop = tuple(slice(-min(pads[i], 0), y.shape[i] + min(pads[i + r], 0)) for i in range(r))
        return [np.ascontiguousarray(y[crop])]


@register
class Resize(OpDef):
    name = "Resize"
    same_grid = moves_values = prunes_through = True  # int8: mode 'nearest' only
    attrs = {"scales": Attr("floats", None), "sizes": Attr("ints", None),
             "mode": Attr("str", "nearest", ("nearest", "linear")),
             "coordinate_transformation_mode": Attr("str", "half_pixel",
                                                    ("half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel")),
             "nearest_mode": Attr("str", "round_prefer_floor", ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")),
             **LAYOUT}
    doc = "Spatial up/down-sampling, nearest or (bi)linear; `scales` or `sizes` cover the spatial dims only."

    def geometry(self, ctx):
        x = ctx.shape(0)
        layout = ctx.attr("layout")
        n, c, spatial = split_layout(x, layout)
        scales, sizes = ctx.attr("scales"), ctx.attr("sizes")
        if (scales is None) == (sizes is None):
            raise ctx.error("give exactly one of 'scales' and 'sizes' (spatial dims only)")
        if sizes is not None:
            if len(sizes) != len(spatial):
                raise ctx.error(f"sizes {list(sizes)} must have {len(spatial)} values")
            out = tuple(int(s) for s in sizes)
            sc = [o / i for o, i in zip(out, spatial)]
        else:
            if len(scales) != len(spatial) or min(scales) <= 0:
                raise ctx.error(f"scales {list(scales)} must be {len(spatial)} positive values")
            out = tuple(int(np.floor(i * s)) for i, s in zip(spatial, scales))
            sc = list(scales)
        return n, c, spatial, out, sc, layout

    def infer(self, ctx):
        n, c, _, out, _, layout = self.geometry(ctx)
        shape = (n, c, *out) if layout == "NCHW" else (n, *out, c)
        return [(shape, float_out(ctx))]

    def cost(self, ctx):
        k = 4 if ctx.attr("mode") == "linear" else 1
        return Cost(0, k * ctx.outs[0].size, 0)

    def source_coords(self, ctx, o, i_size, o_size, scale):
        """Source coordinate of output index `o` along one axis."""
        mode = ctx.attr("coordinate_transformation_mode")
        o = np.arange(o_size, dtype=np.float64)
        if mode == "asymmetric":
            return o / scale
        if mode == "align_corners":
            # ONNX: length_resized is input length x scale, unrounded (== output size when sizes were given)
            length = i_size * float(scale)
            return o * (i_size - 1) / (length - 1) if o_size > 1 and length != 1 else np.zeros_like(o)
        if mode == "pytorch_half_pixel" and o_size == 1:
            return np.zeros_like(o)
        return (o + 0.5) / scale - 0.5

    def run(self, ctx, xs):
        n, c, spatial, out, sc, layout = self.geometry(ctx)
        y = to_channels_first(xs[0].astype(np.float32), layout)
        for ax, (i_size, o_size, s) in enumerate(zip(spatial, out, sc)):
            src = self.source_coords(ctx, None, i_size, o_size, s)
            axis = 2 + ax
            if ctx.attr("mode") == "nearest":
                nm = ctx.attr("nearest_mode")
                if nm == "floor":
                    idx = np.floor(src)
                elif nm == "ceil":
                    idx = np.ceil(src)
                elif nm == "round_prefer_ceil":
                    idx = np.floor(src + 0.5)
                else:
                    idx = np.ceil(src - 0.5)
                idx = np.clip(idx, 0, i_size - 1).astype(np.int64)
                y = np.take(y, idx, axis=axis)
            else:
                src = np.clip(src, 0, i_size - 1)
                lo = np.floor(src).astype(np.int64)
                hi = np.minimum(lo + 1, i_size - 1)
                w = (src - lo).astype(np.float32)
                shape = [1] * y.ndim
                shape[axis] = -1
                w = w.reshape(shape)
                y = np.take(y, lo, axis=axis) * (1 - w) + np.take(y, hi, axis=axis) * w
        return [from_channels_first(np.ascontiguousarray(y, dtype=np.float32), layout)]
