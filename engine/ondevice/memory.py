"""Training memory of one SGD step on the device: what the forward keeps for the backward, the gradients, the
optimizer state and the weights that must live in RAM, planned in one arena over forward + backward.

    prof = training_profile(graph, resolve(graph, parse_spec("last:2")), mcu="stm32f746ng")
    prof.peak_sram_bytes, prof.flash_bytes, prof.layers[i].kept_bytes, prof.to_json()

The step runs the (int8, as deployed) forward in execution order, then the backward in reverse order down to
the first updated layer only (MIT's sparse update: nothing before it needs a gradient). Steps 0..N-1 are the
forward nodes, step N + (N-1-i) the backward of node i. Buffers on that timeline:
- activations (as stored: int8): alive from their producer to their last forward reader, extended to the
  backward step of a node that needs them: an updated layer needs its input X for dW; a node with a
  non-linearity (fused `activation`, Relu, Sigmoid, ...) needs its output for the mask / derivative; MaxPool
  and Mul need their inputs; linear ops (Add, pools, views, passing a gradient through W^T) need none.
- activation gradients (float32): dY of a tensor from the backward of its first consumer to the backward of
  its producer (views share their input's gradient).
- weight gradients: none stored. The update is fused into the backward (the paper's operator reordering, and
  what the exported C does: each gradient element is applied to its weight as it is computed), so a layer's
  `weight_grad_bytes` is the size its dW would have (what PyTorch materializes), never an arena buffer. With
  momentum the optimizer state keeps one float32 per updated weight, outside the arena.
- updated weights in RAM (float32 copies of the trained channels, as the exported C keeps them; int8 with
  quantization-aware scaling with `weights="int8"`, a reference option the export does not implement),
  biases float32 (4 B), outside the arena.
- the exported C's fixed buffers (`fixed`, engine.codegen.train_step): the dequantized logits and the loss
  (4 x classes + 4 B), one int8 weight row of the widest trained layer, and the DSP conv kernels' im2col
  scratch of the frozen prefix (the shipped build has DSP on).
Peak SRAM = arena + RAM weights + optimizer state + fixed buffers: with the default sgd/float32 it equals the
.data + .bss of the exported training library (tests/engine/test_train_step.py, arm-none-eabi-size).
Offsets come from engine.memory's planners (the best of greedy_by_size / best_fit, checked for overlaps).
Time per step: forward as engine's estimator says, backward from the same estimator on float32 work:
an updated layer costs dW (its MACs x channel fraction) + dX (its MACs, unless it is the first updated layer),
a layer passing the gradient through 1x, nothing before the first updated layer.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from engine.errors import TinyStudioError
from engine.ir import Graph
from engine.memory.lifetimes import Buffer, align, live_bytes, tensor_bytes
from engine.memory.planners import BestFit, GreedyBySize, arena_size, check_no_overlap
from engine.ondevice.spec import UpdatePlan, has_bias
from engine.ops import get_op
from engine.validate import infer_shapes, topological_order

ALIGN = 16
F32 = 4
NONLINEAR = {"Relu", "Relu6", "Clip", "Sigmoid", "Tanh", "HardSwish", "HardSigmoid", "LeakyRelu", "Elu", "Gelu",
             "Softmax", "LogSoftmax", "Swish", "PRelu"}
NEEDS_INPUTS = {"MaxPool", "Mul", "Div", "LayerNormalization", "BatchNormalization", "MatMul"}


@dataclass(frozen=True)
class LayerTraining:
    name: str
    op: str
    updated: bool
    channel_fraction: float  # of the output channels updated (0: frozen; bias-only layers 0 too)
    bias_only: bool
    kept_bytes: int          # activations this layer's backward keeps from the forward
    grad_bytes: int          # float32 gradient of its output activation (0 before the first updated layer)
    weight_grad_bytes: int   # float32 dW (+ dB) of the updated part, transient in its backward step
    optimizer_bytes: int     # momentum: one float32 per updated weight
    ram_weight_bytes: int    # updated weights (and bias) that live in RAM
    forward_ms: float = 0.0
    backward_ms: float = 0.0

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["forward_ms"], d["backward_ms"] = round(self.forward_ms, 6), round(self.backward_ms, 6)
        return d


@dataclass(frozen=True)
class TrainingProfile:
    graph_name: str
    plan: UpdatePlan
    layers: tuple[LayerTraining, ...]
    buffers: tuple[Buffer, ...]
    offsets: tuple[int, ...]
    steps: tuple[str, ...]        # "fwd:<node>" / "bwd:<node>" per timeline step
    arena_bytes: int
    planner: str
    ram_weight_bytes: int
    optimizer_bytes: int
    flash_bytes: int
    inference_arena_bytes: int    # the same forward alone (no backward), same planners
    targets: tuple[dict, ...] = ()
    # per activation buffer kept into the backward (key: root tensor): its last forward read, first backward
    # need, producing node and that node's activation inputs (roots): what engine.ondevice.poet decides on
    kept: dict = dataclasses.field(default_factory=dict)
    optimizer: str = "sgd"
    weights: str = "float32"
    precision_note: str = ""
    fixed: tuple[tuple[str, int, str], ...] = ()  # (name, bytes, what): the exported C's buffers outside the arena

    @property
    def fixed_bytes(self) -> int:
        return sum(b for _, b, _ in self.fixed)

    @property
    def outside_arena_bytes(self) -> int:
        """Everything of the peak that is not in the planned arena."""
        return self.ram_weight_bytes + self.optimizer_bytes + self.fixed_bytes

    @property
    def kept_activation_bytes(self) -> int:
        """Activations alive into the backward (each buffer once)."""
        n = len(self.layers)
        return sum(b.nbytes for b in self.buffers if b.name.startswith("act:") and b.last_use >= n)

    @property
    def peak_sram_bytes(self) -> int:
        return self.arena_bytes + self.outside_arena_bytes

    def timeline(self) -> list[dict]:
        """Bytes live per step in the arena, split into activations and activation gradients."""
        kinds = ("act", "grad")
        out = []
        for s, step in enumerate(self.steps):
            row = {"step": s, "what": step}
            for k in kinds:
                row[k] = sum(b.size for b in self.buffers if b.name.startswith(k + ":") and b.first_use <= s <= b.last_use)
            out.append(row)
        return out

    def to_json(self) -> dict:
        return {"plan": self.plan.to_json(), "optimizer": self.optimizer, "weights": self.weights,
                "peak_sram_bytes": self.peak_sram_bytes, "arena_bytes": self.arena_bytes, "planner": self.planner,
                "ram_weight_bytes": self.ram_weight_bytes, "optimizer_bytes": self.optimizer_bytes,
                "fixed_bytes": {k: b for k, b, _ in self.fixed},
                "flash_bytes": self.flash_bytes, "inference_arena_bytes": self.inference_arena_bytes,
                "kept_activation_bytes": self.kept_activation_bytes,
                "layers_updated": list(self.plan.layers),
                "channel_fraction": {k: self.plan.fraction(k) for k in self.plan.layers},
                "bias_only": list(self.plan.bias_only), "precision_note": self.precision_note,
                "layers": [lt.to_json() for lt in self.layers], "timeline": self.timeline(),
                "targets": list(self.targets)}


def deployed(graph: Graph) -> tuple[Graph, str]:
    """The int8 graph the export generates C from (the forward of the training step), or the graph as it is
    when it has no int8 form."""
    from engine.deployed import graph_at_precision

    try:
        return graph_at_precision(graph, "int8")
    except TinyStudioError as e:
        g, note = graph_at_precision(graph, "as-is")
        return g, f"{note} (int8 not available: {e})"


def _buf(name: str, nbytes: int, first: int, last: int, tensors=()) -> Buffer:
    return Buffer(name, align(int(nbytes), ALIGN), first, last, tuple(tensors) or (name,), int(nbytes))


def place_buffers(buffers: list[Buffer]) -> tuple[list[int], int, str]:
    best = None
    for planner in (GreedyBySize(), BestFit()):
        offs = planner.plan(buffers)
        a = arena_size(buffers, offs)
        if best is None or a < best[1]:
            best = (list(offs), a, type(planner).__name__)
    check_no_overlap(buffers, best[0])
    names = {"GreedyBySize": "greedy_by_size", "BestFit": "best_fit"}
    return best[0], best[1], names[best[2]]


def _const(g: Graph, name: str) -> bool:
    t = g.tensors.get(name)
    return t is not None and t.data is not None


def training_profile(graph: Graph, plan: UpdatePlan, mcu=None, *, optimizer: str = "sgd", weights: str = "float32",
                     as_deployed: bool = True) -> TrainingProfile:
    """Per-layer training memory and the peak SRAM of one training step (see the module docstring)."""
    if optimizer not in ("sgd", "momentum"):
        raise TinyStudioError(f"optimizer '{optimizer}' is not one of sgd, momentum")
    if weights not in ("float32", "int8"):
        raise TinyStudioError(f"weights '{weights}' is not one of float32, int8")
    g, note = deployed(graph) if as_deployed else (graph, "as the version is")
    g = infer_shapes(g)
    order = topological_order(g)
    names = [n.name for n in order]
    unknown = [k for k in (*plan.layers, *plan.bias_only) if k not in names]
    if unknown:
        raise TinyStudioError(f"update plan names layer '{unknown[0]}' that is not in model '{graph.name}'")
    N = len(order)
    idx = {n: i for i, n in enumerate(names)}
    touched = [idx[k] for k in (*plan.layers, *plan.bias_only)]
    first = min(touched) if touched else N  # nodes >= first run a backward step
    bstep = lambda i: N + (N - 1 - i)  # noqa: E731
    producer = {t: i for i, n in enumerate(order) for t in n.outputs}
    readers: dict[str, list[int]] = {}
    for i, n in enumerate(order):
        for t in n.inputs:
            if t and not _const(g, t):
                readers.setdefault(t, []).append(i)
    updated = set(plan.layers)
    # Views share storage: a tensor's root is the first non-view tensor up its chain.
    root: dict[str, str] = {}
    for n in order:
        for t in n.inputs:
            root.setdefault(t, t)
        op = get_op(n.op)
        for t in n.outputs:
            root[t] = root.get(n.inputs[0], n.inputs[0]) if (op.is_view or op.is_noop) and n.inputs else t
    acts: dict[str, list] = {}  # root -> [bytes, first, last, tensors, keeper]
    for t in [*g.inputs, *(o for n in order for o in n.outputs)]:
        r = root.get(t, t)
        first_use = producer.get(t, 0) if t not in g.inputs else 0
        last = max(readers.get(t, [first_use]))
        if t in g.outputs:
            last = max(last, N - 1)
        if r not in acts:
            acts[r] = [tensor_bytes(g.tensors[r], None), first_use, last, [t], None]
        else:
            a = acts[r]
            a[1], a[2] = min(a[1], first_use), max(a[2], last)
            a[3].append(t)
    kept_by: dict[str, int] = {k: 0 for k in names}

    fwd_last = {r: a[2] for r, a in acts.items()}
    bwd_first: dict[str, int] = {}

    def keep(t: str, i: int):
        r = root.get(t, t)
        a = acts[r]
        bwd_first[r] = min(bwd_first.get(r, bstep(i)), bstep(i))
        if a[2] < bstep(i):
            a[2] = bstep(i)
        kept_by[names[i]] += tensor_bytes(g.tensors[t], None)

    for i in range(first, N):
        n = order[i]
        ins = [t for t in n.inputs if t and not _const(g, t)]
        if n.name in updated and ins:
            keep(ins[0], i)
        if n.op in NONLINEAR or n.attrs.get("activation") not in (None, "", "none"):
            keep(n.outputs[0], i)
        if n.op in NEEDS_INPUTS:
            for t in ins:
                keep(t, i)
    buffers = [_buf("act:" + r, a[0], a[1], a[2], a[3]) for r, a in acts.items()]
    # Activation gradients: for every tensor produced at or after `first` (a gradient flows into it).
    grads: dict[str, list] = {}
    grad_by: dict[str, int] = {k: 0 for k in names}
    for i in range(first, N):
        for t in order[i].outputs:
            r = root.get(t, t)
            rd = [j for j in readers.get(t, []) if j >= first]
            start = min([bstep(j) for j in rd] + ([N] if t in g.outputs else []) + [bstep(i)])
            if r not in grads:
                grads[r] = [g.tensors[t].size * F32, start, bstep(i)]
                grad_by[order[i].name] += g.tensors[t].size * F32
            else:
                grads[r][1], grads[r][2] = min(grads[r][1], start), max(grads[r][2], bstep(i))
    buffers += [_buf("grad:" + r, b, s, e) for r, (b, s, e) in grads.items()]
    rows, ram_w, opt_total = [], 0, 0
    for i, n in enumerate(order):
        frac = plan.fraction(n.name) if n.name in updated else 0.0
        bias_only = n.name in plan.bias_only
        w_el = b_el = 0
        if frac or bias_only:  # whole output channels: the first ceil(fraction x channels) (as the C trains)
            w_t, b_on = g.tensors[n.inputs[1]], has_bias(g, n.name)
            ch = g.tensors[n.inputs[2]].size if b_on else _out_channels(n, w_t)
            upd = max(1, int(np.ceil(ch * (frac or 1.0))))
            w_el = upd * (w_t.size // ch) if frac else 0
            b_el = upd if b_on else 0
        wg = (w_el + b_el) * F32  # applied as computed: no buffer
        ram = w_el * (F32 if weights == "float32" else 1) + b_el * F32
        opt = (w_el + b_el) * F32 if optimizer == "momentum" else 0
        ram_w, opt_total = ram_w + ram, opt_total + opt
        rows.append([n.name, n.op, bool(frac), frac, bias_only, kept_by[n.name] if i >= first else 0,
                     grad_by[n.name], wg, opt, ram])
    steps = [f"fwd:{k}" for k in names] + [f"bwd:{names[i]}" for i in range(N - 1, first - 1, -1)]
    buffers = [b for b in buffers if b.size > 0]
    offsets, arena, planner = place_buffers(buffers)
    inf = [_buf(b.name, b.nbytes, b.first_use, min(b.last_use, N - 1)) for b in buffers
           if b.name.startswith("act:")]
    inf_arena = place_buffers(inf)[1] if inf else 0
    flash = sum(t.nbytes for t in g.tensors.values() if t.data is not None)
    fixed = c_fixed_buffers(g, order, first, (*plan.layers, *plan.bias_only))
    fwd_ms, bwd_ms, targets = [0.0] * N, [0.0] * N, []
    if mcu is not None:
        fwd_ms, bwd_ms, targets = _estimates(g, order, first, updated, plan, mcu, flash,
                                             arena + ram_w + opt_total + sum(b for _, b, _ in fixed))
    layers = tuple(LayerTraining(*r, forward_ms=fwd_ms[i], backward_ms=bwd_ms[i]) for i, r in enumerate(rows))
    kept = {}
    for r, bf in bwd_first.items():
        if r in g.inputs or r not in producer:
            continue
        node = order[producer[r]]
        ins = tuple(root.get(t, t) for t in node.inputs if t and not _const(g, t))
        if bf > fwd_last[r] + 1:  # a gap to free
            kept[r] = {"forward_last": fwd_last[r], "backward_first": bf, "node": node.name, "inputs": ins,
                       "forward_ms": fwd_ms[producer[r]]}
    return TrainingProfile(graph.name, plan, layers, tuple(buffers), tuple(offsets), tuple(steps), arena, planner,
                           ram_w, opt_total, flash, inf_arena, tuple(targets), kept, optimizer, weights, note, fixed)


def c_fixed_buffers(g: Graph, order, first: int, trained) -> tuple[tuple[str, int, str], ...]:
    """The exported C training step's static buffers besides the arena and the float32 weights, as
    engine.codegen.train_step declares them: logits + loss, one weight row, the frozen prefix's conv scratch."""
    from engine.codegen.emit_conv import im2col_scratch_bytes
    from engine.ondevice.spec import weighted_layers

    by_name = {n.name: n for n in order}
    weighted = weighted_layers(g)
    out = []
    if weighted:
        last = by_name[weighted[-1]]
        classes = _out_channels(last, g.tensors[last.inputs[1]])
        out.append(("logits_loss", F32 * classes + F32, f"{classes} float32 logits + loss"))
    row = max((g.tensors[by_name[k].inputs[1]].size // _out_channels(by_name[k], g.tensors[by_name[k].inputs[1]])
               for k in trained), default=1)
    out.append(("weight_row", row, "int8 weight row (requantized)"))
    scratch = 0
    for n in order[:first]:  # the frozen prefix's library: ts_conv_s8 (groups 1) takes an im2col scratch
        w = g.tensors.get(n.inputs[1]) if n.op == "Conv" and len(n.inputs) > 1 else None
        x = g.tensors.get(n.inputs[0]) if n.inputs else None
        if w is None or x is None or x.dtype != "int8" or w.dtype != "int8" or int(n.attrs.get("group", 1)) != 1:
            continue
        kk, c = w.size // int(w.shape[0]), int(x.shape[-1])
        scratch = max(scratch, im2col_scratch_bytes(kk, c, kk // c))
    if scratch:
        out.append(("kernel_scratch", scratch, "frozen convs' DSP im2col scratch"))
    return tuple(out)


def _out_channels(n, w) -> int:
    """Output channels of a weighted layer without a bias: a conv's weight (M, ...), a Gemm's (N, K) unless
    transB = 0 (K, N)."""
    if n.op == "Gemm" and not n.attrs.get("transB", 1):
        return int(w.shape[-1])
    return int(w.shape[0])


def _estimates(g, order, first, updated, plan, mcu, weight_flash, peak) -> tuple[list, list, list]:
    """Per-layer forward/backward ms and one target record (time, energy, fit) per MCU given."""
    from hwmodels.estimate import code_bytes, layer_cycles, layer_work
    from hwmodels.mcu import get_mcu
    from hwmodels.runtime import default_runtime, get_runtime

    mcus = [mcu] if isinstance(mcu, str) or not isinstance(mcu, (list, tuple)) else list(mcu)
    work = {w.name: w for w in layer_work(g)}
    fwd_out, bwd_out, targets = None, None, []
    for m_id in mcus:
        m = get_mcu(m_id) if isinstance(m_id, str) else m_id
        rt = get_runtime(default_runtime(m.id))
        prof = rt.core_profile(m.core)
        ms = lambda w: layer_cycles(w, prof, rt, m) / (m.clock_mhz * 1e3)  # noqa: E731
        fwd, bwd = [], []
        for i, n in enumerate(order):
            w = work.get(n.name)
            f = ms(w) if w else 0.0
            b = 0.0
            if w and i >= first:
                wf = dataclasses.replace(w, dtype="float32")
                one = ms(wf)
                if n.name in updated:
                    b = one * plan.fraction(n.name) + (one if i > first else 0.0)
                else:
                    b = one
            fwd.append(f)
            bwd.append(b)
        if fwd_out is None:
            fwd_out, bwd_out = fwd, bwd
        step_ms = sum(fwd) + sum(bwd)
        flash = weight_flash + code_bytes(list(work.values()), rt)
        targets.append({"mcu": m.id, "runtime": rt.id, "step_ms": round(step_ms, 6),
                        "forward_ms": round(sum(fwd), 6), "backward_ms": round(sum(bwd), 6),
                        "energy_uj": round(step_ms * m.active_power_mw, 6), "sram_bytes": m.sram_bytes,
                        "flash_capacity_bytes": m.flash_bytes, "peak_sram_bytes": peak, "flash_bytes": flash,
                        "fits_ram": peak <= m.sram_bytes, "fits_flash": flash <= m.flash_bytes,
                        "fits": peak <= m.sram_bytes and flash <= m.flash_bytes})
    return fwd_out, bwd_out, targets
