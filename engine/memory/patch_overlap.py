"""The split output of a patch stage written over the already-consumed part of the stage input.

    safe = output_over_input_safe(graph, stage)            # the proof, over every patch
    merged = merge_output_into_input(table, shape, s1)     # the buffer table with both in one buffer (or None)
    over = output_over_input(buffers, shape)               # does a table hold the merge? (reference, C)

Patches run in raster order and the split output is much smaller per row than the stage input (VWW: 384 bytes
per output row against 1,152 bytes of the 4 input rows it consumes), so the output can share one buffer with the
input, like the in-place element-wise merge: the output at the buffer's start, the input e bytes later (at the
buffer's end), so that each output row lands on input rows the patches have already consumed. The buffer holds
max(output, e + input) bytes instead of output + input (VWW 8x8: e = 1,104, 8,112 bytes saved).

Proof (`output_over_input_safe`), made with the very byte ranges the C generator declares per step (input bytes
shifted by e): for every byte b of the shared buffer, let first_write(b) be the first patch writing the output there and last_read(b)
the last patch reading the input there. Safe iff first_write(b) >= last_read(b) for every byte (a byte written
by patch p is never read by a later patch), strictly when the split node itself reads the input (its write and
its read are then one kernel call). A patch's other reads of the input come from earlier stage layers, which
run before its split node writes. Batches > 1 and inputs outside the arena are not merged.
"""
from __future__ import annotations

import numpy as np

from engine.memory.lifetimes import Buffer
from engine.memory.receptive import PatchGeometry, StageShape


def _row_bytes(shape: StageShape, t: str) -> int:
    return shape.hw[t][1] * shape.channels[t]


def input_reads(shape: StageShape, geo: PatchGeometry, i: int, j: int, exact: bool = False) -> list[tuple[int, int]]:
    """Byte ranges of the entry tensor patch (i, j) reads, as emit_patch declares them: a window op reads its
    input rows [r0, r1) at the full row stride; an element-wise op the span of its region. `exact`: a window op's
    row segments [c0, c1) only (what its kernel touches; emit_patch does not declare accesses this way yet)."""
    x, out = shape.entry, []
    for ng in shape.nodes:
        if x not in ng.inputs:
            continue
        if ng.is_window:
            r0, r1, c0, c1 = geo.region(x, i, j)
            if exact:
                c = shape.channels[x]
                out += [(r * _row_bytes(shape, x) + c0 * c, r * _row_bytes(shape, x) + c1 * c) for r in range(r0, r1)]
                continue
            out.append((r0 * _row_bytes(shape, x), r1 * _row_bytes(shape, x)))
        else:
            o0, o1, p0, p1 = geo.region(ng.output, i, j)
            w, c = shape.hw[x][1], shape.channels[x]
            out.append(((o0 * w + p0) * c, ((o1 - 1) * w + p1) * c))
    return out


def output_writes(shape: StageShape, geo: PatchGeometry, i: int, j: int) -> tuple[int, int]:
    """Byte span of the split output patch (i, j) writes (its rows at the output's row stride)."""
    y = shape.split_out
    o0, o1, p0, p1 = geo.region(y, i, j)
    w, c = shape.hw[y][1], shape.channels[y]
    return (o0 * w + p0) * c, ((o1 - 1) * w + p1) * c


def output_over_input_safe(shape: StageShape, geo: PatchGeometry, input_at: int = 0, exact: bool = False) -> bool:
    """True when the split output may start at byte 0 of the entry's buffer (the proof above). `input_at`: the
    entry placed that many bytes after the output's start (the output's tail over the input's consumed head);
    the buffer table and the generators take input_at 0 only, larger values are for the measurements."""
    if shape.batch != 1:
        return False
    x, y = shape.entry, shape.split_out
    size = max(input_at + shape.hw[x][0] * _row_bytes(shape, x), shape.hw[y][0] * _row_bytes(shape, y))
    n = len(geo.patches)
    first_write = np.full(size, n, dtype=np.int32)    # n: never written
    last_read = np.full(size, -1, dtype=np.int32)     # -1: never read
    for k, (i, j) in enumerate(geo.patches):
        for a, b in input_reads(shape, geo, i, j, exact):
            last_read[input_at + a:input_at + b] = k
        a, b = output_writes(shape, geo, i, j)
        seg = first_write[a:b]
        np.minimum(seg, k, out=seg)
    split_reads_entry = x in shape.nodes[-1].inputs
    bad = first_write <= last_read if split_reads_entry else first_write < last_read
    return not bool(bad.any())


OVER = "over:"   # name of a merged buffer: "over:<e>:<entry>", the entry starting e bytes into it
TAIL = "overtail:"   # the entry's bytes past the head buffer's end, pinned right after it


def merge_output_into_input(buffers: list[Buffer], shape: StageShape, geo: PatchGeometry, s1: int,
                            graph_inputs, alignment: int = 16) -> list[Buffer] | None:
    """`buffers` with the split output's and the entry's buffers made one: the output at its start, the entry at
    its end (e bytes in, the smallest aligned e the proof accepts), lifetime the union. None when the entry is not
    a graph input held alone in its buffer and read only inside the stage (a producer or a later reader would
    need the shift too), or when no e below the output's size is safe."""
    x, y = shape.entry, shape.split_out
    bx = next((b for b in buffers if x in b.tensors), None)
    by = next((b for b in buffers if y in b.tensors), None)
    if (bx is None or by is None or bx is by or bx.tensors != (x,) or by.tensors[0] != y or bx.last_use > s1
            or x not in graph_inputs):
        return None
    e = min_input_at(shape, geo, alignment)
    if e is None:
        return None
    if e >= by.size or not output_over_input_safe(shape, geo, e):
        return None
    # An L-shaped region as two rectangles: the head (the output's bytes, x from byte e on) lives from the
    # entry's first use to the output's last; the tail (the rest of the entry) only until the stage ends and
    # must sit right after the head (place_pinned does it; tensor_at checks it).
    head = Buffer(f"{OVER}{e}:{x}", by.size, min(bx.first_use, by.first_use), max(bx.last_use, by.last_use),
                  (*by.tensors, x), by.nbytes)
    out = [head if b is by else b for b in buffers if b is not bx]
    tail = e + bx.size - by.size
    if tail > 0:
        out.append(Buffer(f"{TAIL}{x}", tail, head.first_use, bx.last_use, (f"{TAIL}{x}",), tail))
    return out


def merged_entry(name: str) -> tuple[int, str] | None:
    """(e, entry) of a merged head buffer's name "over:<e>:<entry>" (None for any other buffer). The name, not the
    buffer's tensor list, says it: later rewrites (an in-place depthwise over the split output) append tensors."""
    if not name.startswith(OVER):
        return None
    e, entry = name[len(OVER):].split(":", 1)
    return int(e), entry


def tensor_shift(buffers, tensor: str) -> int:
    """Bytes from its buffer's start to `tensor` (non-zero only for the entry of a merged buffer)."""
    for b in buffers:
        m = merged_entry(b.name)
        if m is not None and m[1] == tensor and tensor in b.tensors:
            return m[0]
    return 0


def tensor_at(plan, tensor: str) -> int:
    """Arena offset of `tensor` in a placed plan (plan.tensor_offset plus its shift in a merged buffer). A
    ValueError when the plan did not pin the entry's tail right after the head (the entry would not be whole)."""
    off, size = plan.tensor_offset(tensor)
    shift = tensor_shift(getattr(plan, "buffers", ()), tensor)
    if shift:
        tails = [o for b, o in zip(plan.buffers, plan.offsets) if b.name == f"{TAIL}{tensor}"]
        if tails and tails[0] != off + size:
            raise ValueError(f"the plan puts '{TAIL}{tensor}' at {tails[0]}, not right after the head buffer "
                             f"({off + size}): place it with engine.memory.patch_overlap.place_pinned")
    return off + shift


def place_pinned(buffers) -> tuple[tuple[int, ...], int]:
    """Offsets and arena of `buffers` with each merged head's tail right after it (the L-shaped region: the
    tail's bytes are free again after the stage). The planners of engine.memory.planners place rectangles only,
    so this places units (a head with its tail, or one buffer) itself: for each ordering of
    planners.ORDERINGS (TFLM's largest-first among them), each unit at the lowest offset where every one of its
    rectangles is clear of every placed buffer whose lifetime overlaps it; the smallest arena wins."""
    from engine.memory.planners import ORDERINGS

    buffers = list(buffers)
    index = {b.name: i for i, b in enumerate(buffers)}
    units, taken = [], set()
    for i, b in enumerate(buffers):
        if b.name.startswith(OVER):
            t = index.get(f"{TAIL}{merged_entry(b.name)[1]}")
            units.append(((i, 0),) + (((t, b.size),) if t is not None else ()))
            taken |= {i, t}
    units += [((i, 0),) for i in range(len(buffers)) if i not in taken]
    best = None
    for key in ORDERINGS.values():
        order = sorted(units, key=lambda u: key(_unit_box(buffers, u)))
        offsets = _place_units(buffers, order)
        arena = max((o + b.size for o, b in zip(offsets, buffers)), default=0)
        if best is None or arena < best[1]:
            best = (offsets, arena)
    return best


def _unit_box(buffers, unit):
    """A unit as one Buffer-like box for the orderings: its bytes and its whole lifetime."""
    bs = [buffers[i] for i, _ in unit]
    return Buffer("unit", max(r + b.size for (_, r), b in zip(unit, bs)), min(b.first_use for b in bs),
                  max(b.last_use for b in bs), (), 0)


def _place_units(buffers, order) -> tuple[int, ...]:
    size = np.array([b.size for b in buffers], dtype=np.int64)
    first = np.array([b.first_use for b in buffers])
    last = np.array([b.last_use for b in buffers])
    off = np.full(len(buffers), -1, dtype=np.int64)
    for unit in order:
        rects = [(i, r) for i, r in unit if size[i] > 0]
        clash = []
        for i, r in rects:
            js = np.flatnonzero((off >= 0) & (size > 0) & (first <= last[i]) & (last >= first[i]))
            clash.append((r, size[i], off[js], off[js] + size[js]))
        cands = sorted({0, *(int(e) - r for r, _, _, ends in clash for e in ends if e - r >= 0)})
        at = 0
        for o in cands:
            if all(not np.any((lo < o + r + n) & (o + r < hi)) for r, n, lo, hi in clash):
                at = o
                break
        for i, r in unit:
            off[i] = at + r
    return tuple(int(o) for o in off)


def output_over_input(buffers, shape: StageShape) -> bool:
    """Does this buffer table hold the stage's split output in its entry's buffer?"""
    return any(shape.entry in b.tensors and shape.split_out in b.tensors for b in buffers)


def min_input_at(shape: StageShape, geo: PatchGeometry, alignment: int = 16, exact: bool = False) -> int | None:
    """The smallest aligned `input_at` the proof accepts below the output's size (None: separate buffers).
    A shift e is unsafe exactly when some patch k writes an output byte q and a patch j >= k (j > k when the
    split node does not read the entry) reads the entry byte q - e: the unsafe shifts are the differences of
    those write and read ranges, a union of intervals (one per pair), so the smallest safe e is found by one
    sweep over them instead of a proof per shift (MobileNetV2's stages: ~1,500 shifts)."""
    if shape.batch != 1:
        return None
    y = shape.hw[shape.split_out][0] * _row_bytes(shape, shape.split_out)
    patches = geo.patches
    writes = np.array([output_writes(shape, geo, i, j) for i, j in patches], dtype=np.int64).reshape(-1, 2)
    reads = [(k, a, b) for k, (i, j) in enumerate(patches) for a, b in input_reads(shape, geo, i, j, exact) if b > a]
    if not reads:
        return 0
    r = np.array(reads, dtype=np.int64)
    strict = shape.entry in shape.nodes[-1].inputs
    k = np.arange(len(patches))[:, None]
    pair = (r[None, :, 0] >= k) if strict else (r[None, :, 0] > k)
    pair &= (writes[:, 1] > writes[:, 0])[:, None]
    lo = (writes[:, 0:1] - r[None, :, 2] + 1)[pair]     # q - a over q in [p0, p1), a in [a0, a1)
    hi = (writes[:, 1:2] - 1 - r[None, :, 1])[pair]
    e = 0
    for a, b in sorted(zip(lo.tolist(), hi.tolist())):
        if a > e:
            break          # sorted by start: no later interval covers e either
        if b >= e:
            e = -(-(b + 1) // alignment) * alignment
    if e >= y or not output_over_input_safe(shape, geo, e, exact):
        return None
    return e


def stage_input_at(graph, stage, alignment: int = 16) -> int:
    """Bytes into the shared buffer where the entry of `stage` (PatchStage with overlap) starts, as
    merge_output_into_input places it; ScheduleError when no shift is proved safe."""
    from engine.memory.receptive import stage_shape
    from engine.memory.schedule import ScheduleError

    shape = stage_shape(graph, stage.nodes)
    e = min_input_at(shape, PatchGeometry(shape, stage.grid), alignment)
    if e is None:
        raise ScheduleError(f"schedule.patch.overlap: the output of '{stage.split}' cannot be proved safe over the "
                            f"stage input '{shape.entry}' for {stage.grid[0]}x{stage.grid[1]} patches")
    return e


def overlap_summary(buffers) -> dict | None:
    """What the profile JSON says of a merged stage: the output and entry sharing one buffer, where the entry
    starts in it and the bytes saved against separate buffers (None when the table has no merged buffer)."""
    for b in buffers:
        m = merged_entry(b.name)
        if m is not None:
            return {"output": b.tensors[0], "input": m[1], "input_at": m[0], "saved_bytes": b.size - m[0]}
    return None
