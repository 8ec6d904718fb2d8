"""Latency, energy, RAM and flash of a graph on an MCU with a runtime. Every figure is an estimate.

    est = estimate_target(graph, get_mcu("stm32l4r5zi"), get_runtime("vendor-optimized"),
                          arena_bytes=plan.arena_bytes, weight_bytes=weights_and_quant_bytes)
    est.latency_ms, est.energy_uj, est.ram_bytes, est.flash_bytes, est.fits, est.dominant, est.layers

Latency model, per layer in execution order (figures from the runtime profile of the MCU's core family):
    MAC layers   cycles = overhead + MACs / macs_per_cycle[kind] * (L + k) / L
                 kind: depthwise (Conv, group == Cin > 1), pointwise (1x1 Conv, group 1), conv (other Conv,
                 ConvTranspose), fc (Gemm, MatMul); L = reduction length per output (Cin/group * kH * kW,
                 or K of a matrix product), k = column_overhead (the few-input-channel penalty); depthwise
                 uses (C + k_dw) / C over its channel count C instead
    other layers cycles = overhead + elements * cycles_per_element[kind]  (elementwise, pool, softmax); a
                 windowed pool counts its window taps, LRN its MACs (squares summed over channel windows)
    views        Reshape/Flatten/Squeeze/Unsqueeze: overhead only; Identity/Dropout: nothing
Float layers run at max(int8 cost, the runtime's float MAC cost): a hardware FPU (fpu "sp"; float64 needs
"dp") costs `float_fpu_mac_cycles` per MAC, an MCU without one pays software floating point
(`float_soft_mac_cycles`: a libgcc __aeabi_fmul + __aeabi_fadd pair per MAC), so a float graph on a
Cortex-M0+ is flagged an order of magnitude slower than its int8 version. int16 layers cost
`int16_slowdown` times the int8 figure.
latency = cycles / clock; energy = latency x the MCU's run-mode power at that clock (core busy, one core).
RAM = arena (from the memory planner, passed in) + the runtime's persistent data (with the call stack where
the profile gives it) + the largest kernel scratch buffer + I/O buffers the caller provides. Flash = weights
and quantization data (passed in) + the runtime's code (fixed part + one kernel per distinct op type + per
layer where the profile gives it).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.ir import FLOAT_DTYPES, Graph
from engine.ops import ops_where
from engine.state import state_bytes
from engine.summary import layer_records
from engine.validate import infer_shapes, node_context
from hwmodels.mcu import MCU, get_mcu
from hwmodels.runtime import CoreProfile, Runtime, get_runtime

MAC_KINDS = ("conv", "pointwise", "depthwise", "fc")
_POOLS = ops_where(lambda op: op.cost_kind == "pool")
_SOFTMAX = ops_where(lambda op: op.cost_kind == "softmax")
_FC = ops_where(lambda op: op.cost_kind == "fc")


@dataclass(frozen=True)
class LayerWork:
    """What one layer asks of the hardware, independent of the target."""

    name: str
    op: str
    kind: str  # conv | pointwise | depthwise | fc | elementwise | pool | softmax | view | noop
    macs: int
    column: int  # reduction length per output (MAC kinds), 0 otherwise
    elements: int  # elements processed (non-MAC kinds)
    dtype: str  # compute dtype (first activation input)
    kernel_taps: int  # kH * kW of a conv, 1 otherwise
    quant_channels: int  # output channels whose requantization data the runtime keeps (quantized conv/FC)
    in_channels: int
    stride: int = 1  # of a conv (the larger of its two)
    out_width: int = 0  # output columns of a conv


@dataclass(frozen=True)
class LayerEstimate:
    name: str
    op: str
    kind: str
    macs: int
    cycles: int
    latency_ms: float
    energy_uj: float
    share: float  # of the total latency
    scratch_bytes: int = 0  # kernel scratch this layer needs from the runtime

    def to_json(self) -> dict:
        return {"name": self.name, "op": self.op, "kind": self.kind, "macs": self.macs, "cycles": self.cycles,
                "latency_ms": round(self.latency_ms, 6), "energy_uj": round(self.energy_uj, 6),
                "share": round(self.share, 6), "scratch_bytes": self.scratch_bytes}


@dataclass(frozen=True)
class TargetEstimate:
    mcu: str  # MCU id
    runtime: str  # runtime id
    latency_ms: float
    energy_uj: float
    ram_bytes: int
    flash_bytes: int
    fits: bool
    fits_ram: bool
    fits_flash: bool
    dominant: str  # "ram" or "flash": the resource with the larger share of the MCU's capacity used
    layers: tuple[LayerEstimate, ...]
    label: str = "estimate"
    cycles: int = 0
    sram_bytes: int = 0  # capacities of the MCU
    flash_capacity_bytes: int = 0
    ram_parts: tuple[tuple[str, int], ...] = ()  # arena, persistent, scratch, io
    flash_parts: tuple[tuple[str, int], ...] = ()  # weights, code
    calibrated: bool = False  # the runtime's figures for this core were fitted on published measurements

    @property
    def ram_use(self) -> float:
        return self.ram_bytes / self.sram_bytes if self.sram_bytes else float("inf")

    @property
    def flash_use(self) -> float:
        return self.flash_bytes / self.flash_capacity_bytes if self.flash_capacity_bytes else float("inf")

    @property
    def ram_miss_bytes(self) -> int:
        return max(0, self.ram_bytes - self.sram_bytes)

    @property
    def flash_miss_bytes(self) -> int:
        return max(0, self.flash_bytes - self.flash_capacity_bytes)

    def fit_message(self) -> str:
        """One line: fits / which resource misses and by how much."""
        use = f"RAM {self.ram_use:.0%} of {self.sram_bytes / 1024:g} KB, flash {self.flash_use:.0%} of " \
              f"{self.flash_capacity_bytes / 1024:g} KB"
        if self.fits:
            return f"fits ({use}; {self.dominant} dominates)"
        misses = []
        if not self.fits_ram:
            misses.append(f"RAM over by {self.ram_miss_bytes / 1024:.1f} KB")
        if not self.fits_flash:
            misses.append(f"flash over by {self.flash_miss_bytes / 1024:.1f} KB")
        return f"does not fit: {', '.join(misses)} ({use})"

    def to_json(self, layers: bool = True) -> dict:
        d = {"mcu": self.mcu, "runtime": self.runtime, "label": self.label, "latency_ms": round(self.latency_ms, 6),
             "energy_uj": round(self.energy_uj, 6), "cycles": self.cycles, "ram_bytes": self.ram_bytes,
             "flash_bytes": self.flash_bytes, "fits": self.fits, "fits_ram": self.fits_ram,
             "fits_flash": self.fits_flash, "dominant": self.dominant, "sram_bytes": self.sram_bytes,
             "flash_capacity_bytes": self.flash_capacity_bytes, "ram_parts": dict(self.ram_parts),
             "flash_parts": dict(self.flash_parts), "calibrated": self.calibrated}
        if layers:
            d["layers"] = [le.to_json() for le in self.layers]
        return d


# ---- what each layer asks for -------------------------------------------------------------------------

def _channels(shape: tuple[int, ...], layout: str) -> int:
    return shape[1] if layout == "NCHW" else shape[-1]


def layer_work(graph: Graph) -> list[LayerWork]:
    """One LayerWork per node, in execution order (the order and MACs of engine.summary.layer_records)."""
    g = graph if all(t in graph.tensors for n in graph.nodes for t in n.outputs) else infer_shapes(graph)
    records = layer_records(g)
    nodes = {n.name: n for n in g.nodes}
    out = []
    for r in records:
        node = nodes[r.name]
        ctx = node_context(g, node)
        acts = [t for t in ctx.ins if t is not None and t.data is None]
        dtype = (acts[0] if acts else ctx.outs[0]).dtype
        out_elems = sum(t.size for t in ctx.outs)
        kind, column, elements, taps, chans, cin = "elementwise", 0, out_elems, 1, 0, 0
        stride, out_width = 1, 0
        if ctx.op.is_noop:
            kind = "noop"
        elif ctx.op.is_view:
            kind = "view"
        elif ctx.op.cost_kind == "conv":
            layout = ctx.attr("layout")
            x, w = ctx.ins[0].shape, ctx.ins[1].shape
            cin, g_ = _channels(x, layout), int(ctx.attr("group"))
            kshape = w[2:] if layout == "NCHW" else w[1:-1]
            taps = int(np.prod(kshape)) if len(kshape) else 1
            chans = _channels(ctx.outs[0].shape, layout) if dtype not in FLOAT_DTYPES else 0
            kind = ctx.op.cost_kind_of(ctx)  # conv, or Conv's depthwise / pointwise
            column = taps if kind == "depthwise" else max(1, cin // g_) * taps
            stride = max([int(s) for s in (ctx.attr("strides") or [1])] or [1])
            out_width = int(ctx.outs[0].shape[-1 if layout == "NCHW" else -2]) if len(ctx.outs[0].shape) >= 3 else 1
        elif node.op in _FC:
            kind = "fc"
            a = ctx.ins[0].shape
            trans_a = node.op == "Gemm" and ctx.attr("transA")
            column = (a[0] if trans_a else a[-1]) if a else 1
            wq = ctx.ins[1].quant if len(ctx.ins) > 1 and ctx.ins[1] is not None else None
            chans = int(wq.scale.size) if wq is not None and wq.per_channel else 0  # per-tensor FC: no table
            cin = column
        elif node.op in _POOLS:
            kind = "pool"
            if ctx.op.windowed:
                elements = ctx.outs[0].size * int(np.prod(ctx.attr("kernel_shape")))
            elif r.macs:  # a sliding sum over channels (LRN): one element per window tap
                elements = int(r.macs)
            else:
                elements = ctx.ins[0].size
        elif node.op in _SOFTMAX:
            kind = "softmax"
        out.append(LayerWork(r.name, node.op, kind, int(r.macs), int(column), int(elements), dtype, taps, chans, cin,
                             stride, out_width))
    return out


# ---- cycles ------------------------------------------------------------------------------------------

def _has_fpu(mcu: MCU, dtype: str) -> bool:
    return mcu.fpu == "dp" or (mcu.fpu == "sp" and dtype != "float64")


def layer_cycles(w: LayerWork, prof: CoreProfile, runtime: Runtime, mcu: MCU) -> float:
    """Estimated cycles of one layer (see the module docstring for the model)."""
    if w.kind == "noop":
        return 0.0
    cycles = prof.layer_overhead_cycles
    is_float = w.dtype in FLOAT_DTYPES
    if w.kind in MAC_KINDS:
        per_mac = 1.0 / prof.macs_per_cycle(w.kind)
        if w.kind == "depthwise":
            per_mac *= (w.in_channels + prof.depthwise_channel_overhead) / max(w.in_channels, 1)
        elif w.column > 0:
            per_mac *= (w.column + prof.column_overhead) / w.column
        if is_float:
            fpu = _has_fpu(mcu, w.dtype)
            per_mac = max(per_mac, runtime.float_fpu_mac_cycles if fpu else runtime.float_soft_mac_cycles)
        elif w.dtype in ("int16", "int32", "int64"):
            per_mac *= runtime.int16_slowdown
        return cycles + w.macs * per_mac
    if w.kind == "view":
        return cycles
    per_elem = {"pool": prof.pool_cycles, "softmax": prof.softmax_cycles}.get(w.kind, prof.elementwise_cycles)
    if is_float:
        per_elem *= runtime.float_fpu_element_factor if _has_fpu(mcu, w.dtype) else runtime.float_soft_element_factor
    elif w.dtype in ("int16", "int32", "int64"):
        per_elem *= runtime.int16_slowdown
    return cycles + w.elements * per_elem


def _resolve(mcu: MCU | str, runtime: Runtime | str) -> tuple[MCU, Runtime]:
    return (get_mcu(mcu) if isinstance(mcu, str) else mcu,
            get_runtime(runtime) if isinstance(runtime, str) else runtime)


def estimate_layers(graph: Graph, mcu: MCU | str, runtime: Runtime | str,
                    work: list[LayerWork] | None = None) -> tuple[LayerEstimate, ...]:
    """Per-layer cycles, latency and energy in execution order; pass `work` to reuse layer_work(graph)."""
    mcu, runtime = _resolve(mcu, runtime)
    prof = runtime.core_profile(mcu.core)
    work = layer_work(graph) if work is None else work
    cycles = [layer_cycles(w, prof, runtime, mcu) for w in work]
    total = sum(cycles) or 1.0
    hz_per_ms = mcu.clock_mhz * 1e3
    out = []
    for w, c in zip(work, cycles):
        ms = c / hz_per_ms
        out.append(LayerEstimate(w.name, w.op, w.kind, w.macs, int(round(c)), ms, ms * mcu.active_power_mw, c / total,
                                 layer_scratch_bytes(w, runtime)))
    return tuple(out)


# ---- memory ------------------------------------------------------------------------------------------

def persistent_bytes(graph: Graph, runtime: Runtime, work: list[LayerWork] | None = None) -> int:
    """RAM the runtime keeps besides the arena: node/tensor structs, per-channel data, the variable tensors
    of stateful ops (engine.state), and the call stack of an inference where the profile gives it."""
    work = layer_work(graph) if work is None else work
    nodes = sum(1 for w in work if w.kind != "noop")
    channels = sum(w.quant_channels for w in work)
    return (runtime.ram_fixed_bytes + runtime.ram_per_node_bytes * nodes
            + runtime.ram_per_tensor_bytes * len(graph.tensors) + runtime.ram_per_channel_bytes * channels
            + stack_bytes(work, runtime) + state_bytes(graph) + kernel_buffer_bytes(graph))


def kernel_buffer_bytes(graph: Graph) -> int:
    """Static buffers the generated kernels keep outside the arena (each op says, OpDef.kernel_buffer_bytes:
    the int8 LSTM's gate vectors)."""
    g = graph if all(t in graph.tensors for n in graph.nodes for t in n.outputs) else infer_shapes(graph)
    contexts = (node_context(g, n) for n in g.nodes)
    return sum(ctx.op.kernel_buffer_bytes(ctx) for ctx in contexts)


def stack_bytes(work: list[LayerWork], runtime: Runtime) -> int:
    """Call stack of one inference where the runtime profile gives it (0 otherwise): the deepest kernel's."""
    kinds = {w.kind for w in work}
    return max([runtime.ram_stack_bytes, *(b for k, b in runtime.ram_stack_bytes_by_kind if k in kinds)])


def layer_scratch_bytes(w: LayerWork, runtime: Runtime) -> int:
    """Kernel scratch of one layer (im2col columns, depthwise buffers)."""
    if w.kind == "conv" and w.kernel_taps > 1:
        per = runtime.scratch_conv_bytes_per_column
    elif w.kind == "pointwise" and w.in_channels % 4 == 0 and w.column <= runtime.scratch_pointwise_wide_max_column:
        per = runtime.scratch_pointwise_wide_bytes_per_column
    elif w.kind == "pointwise" and runtime.scratch_pointwise_bytes_per_column:
        per = runtime.scratch_pointwise_bytes_per_column
    else:
        per = 0
    if per:
        extra = runtime.scratch_conv_unaligned_bytes_per_column if w.in_channels % 4 else 0
        need = per * w.column + extra * (w.column + w.column % 2)
        return max(need, runtime.scratch_conv_rgb_bytes) if (w.in_channels, w.kernel_taps) == (3, 9) else need
    if w.kind == "depthwise":
        return runtime.scratch_depthwise_bytes_per_tap_channel * w.kernel_taps * w.in_channels
    return 0


def scratch_bytes(work: list[LayerWork], runtime: Runtime) -> int:
    """Largest kernel scratch buffer; it lives only during its layer, so one buffer serves all."""
    return max((layer_scratch_bytes(w, runtime) for w in work), default=0)


# Kernel paths whose code a library links only when a layer takes them (tinystudio-c's DSP switches,
# engine.codegen.kernelfiles.dsp_paths), told apart by shape alone: a profile that sizes them counts them on
# top of their op type's kernel.
CODE_PATHS = {
    "ConvRGB": lambda w: w.kind == "conv" and w.in_channels == 3 and w.kernel_taps == 9,
    "ConvNarrow": lambda w: w.kind == "pointwise" and w.in_channels in (8, 16) and w.stride == 1,
    "DepthwiseSmall": lambda w: (w.kind == "depthwise" and w.kernel_taps == 9 and w.stride == 1
                                 and w.out_width in (3, 6, 12)),
    "DepthwiseS2": lambda w: w.kind == "depthwise" and w.kernel_taps == 9 and w.stride == 2,
}


def code_kernel_types(work: list[LayerWork], sized=None) -> set[str]:
    """The kernel types a library of these layers links: one per distinct op type (depthwise its own), plus the
    CODE_PATHS its layers take (only those in `sized`, the profile's op_type_bytes; all when None)."""
    types = {"depthwise" if w.kind == "depthwise" else w.op for w in work if w.kind != "noop"}
    return types | {p for p, takes in CODE_PATHS.items() if (sized is None or p in sized) and any(map(takes, work))}


def code_bytes(work: list[LayerWork], runtime: Runtime) -> int:
    """Runtime code in flash: fixed part + one kernel per distinct op type (depthwise is its own kernel; a
    profile may size some types and kernel paths apart) + per-layer code where the profile gives it."""
    sized = dict(runtime.code_op_type_bytes)
    types = code_kernel_types(work, sized)
    nodes = sum(1 for w in work if w.kind != "noop")
    return (runtime.code_fixed_bytes + sum(sized.get(t, runtime.code_per_op_type_bytes) for t in types)
            + runtime.code_per_node_bytes * nodes)


# ---- all together ------------------------------------------------------------------------------------

def estimate_target(graph: Graph, mcu: MCU | str, runtime: Runtime | str, arena_bytes: int, weight_bytes: int,
                    io_bytes: int = 0, work: list[LayerWork] | None = None) -> TargetEstimate:
    """Latency, energy, RAM, flash and fit of `graph` on `mcu` with `runtime`.

    arena_bytes: activation arena from the memory planner; weight_bytes: weights, biases and quantization
    data as stored in flash; io_bytes: input/output buffers the application keeps outside the arena.
    """
    mcu, runtime = _resolve(mcu, runtime)
    work = layer_work(graph) if work is None else work
    layers = estimate_layers(graph, mcu, runtime, work)
    cycles = sum(le.cycles for le in layers)
    latency = sum(le.latency_ms for le in layers)
    ram_parts = (("arena", int(arena_bytes)), ("persistent", persistent_bytes(graph, runtime, work)),
                 ("scratch", scratch_bytes(work, runtime)), ("io", int(io_bytes)))
    flash_parts = (("weights", int(weight_bytes)), ("code", code_bytes(work, runtime)))
    ram = sum(v for _, v in ram_parts)
    flash = sum(v for _, v in flash_parts)
    fits_ram, fits_flash = ram <= mcu.sram_bytes, flash <= mcu.flash_bytes
    dominant = "ram" if ram / mcu.sram_bytes >= flash / mcu.flash_bytes else "flash"
    return TargetEstimate(mcu.id, runtime.id, latency, latency * mcu.active_power_mw, ram, flash,
                          fits_ram and fits_flash, fits_ram, fits_flash, dominant, layers, cycles=cycles,
                          sram_bytes=mcu.sram_bytes, flash_capacity_bytes=mcu.flash_bytes, ram_parts=ram_parts,
                          flash_parts=flash_parts, calibrated=runtime.core_profile(mcu.core).calibrated)
