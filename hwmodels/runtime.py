"""Inference runtimes as data: how fast each runtime runs each kind of layer on each core family.

    rt = get_runtime("tflm-cmsis-nn")       # unknown id -> one-line error listing the valid ids
    prof = rt.core_profile("cortex-m33")    # CoreProfile: MACs/cycle per op kind, per-element cycles, overheads

One TOML file per runtime in hwmodels/runtimes/. A `[cores.<family>]` table either gives the figures
(calibrated on published measurements; its `source` says which) or derives them from another family with
`like = "<family>"` and `speed = <factor>` (MACs/cycle x speed, cycle costs / speed), plus any explicit
overrides. The latency model that uses these figures is in hwmodels/estimate.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.errors import TinyStudioError
from hwmodels.data import HardwareDataError, by_id, field, load_descriptions
from hwmodels.mcu import CORES

BUILTIN_DIR = Path(__file__).resolve().parent / "runtimes"

_MAC_KINDS = ("conv", "pointwise", "depthwise", "fc")
_CYCLE_FIELDS = ("elementwise_cycles", "pool_cycles", "softmax_cycles", "layer_overhead_cycles")
_OVERHEADS = ("column_overhead", "depthwise_channel_overhead")


@dataclass(frozen=True)
class CoreProfile:
    """Throughput of one runtime on one core family (int8 kernels).

    *_macs_per_cycle: asymptotic MACs per cycle of that layer kind (long reduction columns).
    column_overhead: k in the small-column penalty: a conv / pointwise / FC whose reduction length per
        output L = Cin/group x kH x kW is short runs at L / (L + k) of the asymptotic rate (im2col,
        requantization and loop set-up per output are paid over fewer MACs). With k = 30, a 3x3 conv with
        one input channel runs 4.3x slower, a 10x4 one 1.75x: the published per-layer anchors.
    elementwise_cycles: per output element of Add/Mul/activation/copy-like ops.
    pool_cycles: per input element read by a pooling or reduction. softmax_cycles: per element.
    layer_overhead_cycles: fixed cost of invoking one layer (interpreter dispatch, parameter set-up).
    """

    core: str
    conv_macs_per_cycle: float
    pointwise_macs_per_cycle: float
    depthwise_macs_per_cycle: float
    fc_macs_per_cycle: float
    column_overhead: float
    depthwise_channel_overhead: float
    elementwise_cycles: float
    pool_cycles: float
    softmax_cycles: float
    layer_overhead_cycles: float
    source: str
    calibrated: bool  # figures fitted on published measurements (False: derived, see `source`)
    derived_from: str = ""

    def macs_per_cycle(self, kind: str) -> float:
        return getattr(self, f"{kind}_macs_per_cycle")


@dataclass(frozen=True)
class Runtime:
    id: str
    name: str
    description: str
    calibration: str
    cores: tuple[tuple[str, CoreProfile], ...]
    # Persistent RAM besides the activation arena (TFLM's arena "tail"):
    ram_fixed_bytes: int
    ram_per_node_bytes: int
    ram_per_tensor_bytes: int
    ram_per_channel_bytes: int  # per output channel of a conv (per-channel requantization data)
    # Kernel scratch (the largest one counts: scratch lives only while its layer runs):
    scratch_conv_bytes_per_column: int  # x reduction length L of a non-1x1 conv (im2col buffers)
    scratch_depthwise_bytes_per_tap_channel: int  # x kH x kW x C of a depthwise conv
    # Code in flash: the runtime itself plus one kernel per distinct op type used.
    code_fixed_bytes: int
    code_per_op_type_bytes: int
    # Float and wider integer layers:
    float_fpu_mac_cycles: float  # cycles per float32 MAC with a hardware FPU
    float_soft_mac_cycles: float  # cycles per float32 MAC in software floating point (no FPU)
    float_fpu_element_factor: float  # slowdown of per-element float ops vs int8, FPU / soft float
    float_soft_element_factor: float
    int16_slowdown: float
    path: str = ""
    # Optional (0 / empty where a runtime's file leaves them out). The call stack of one inference: the
    # deepest kernel's frames, per layer kind where they differ (kind -> bytes; the largest used counts):
    ram_stack_bytes: int = 0
    ram_stack_bytes_by_kind: tuple[tuple[str, int], ...] = ()
    # Scratch of 1x1 convs (kernels that expand pointwise convs through the same im2col path), and the extra
    # gather buffer of a conv whose input channels are not a multiple of 4, per reduction element:
    scratch_pointwise_bytes_per_column: int = 0
    # ... and of 1x1 convs with in_channels % 4 == 0 and a reduction of at most scratch_pointwise_wide_max_column
    # elements, which kernels expand more pixels at a time (0: none):
    scratch_pointwise_wide_bytes_per_column: int = 0
    scratch_pointwise_wide_max_column: int = 0
    scratch_conv_unaligned_bytes_per_column: int = 0
    # at least this much for a conv of 9 taps over 3 input channels (a kernel for RGB first layers; 0: none)
    scratch_conv_rgb_bytes: int = 0
    # Flash per layer (parameter structs, the call) and per kind whose kernel size differs from the rest:
    code_per_node_bytes: int = 0
    code_op_type_bytes: tuple[tuple[str, int], ...] = ()

    @property
    def core_families(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.cores)

    def core_profile(self, core: str) -> CoreProfile:
        for c, prof in self.cores:
            if c == core:
                return prof
        raise TinyStudioError(f"runtime '{self.id}' has no profile for core '{core}'; it covers: "
                              f"{', '.join(self.core_families)}")

    def supports(self, core: str) -> bool:
        return core in self.core_families

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "description": self.description, "calibration": self.calibration,
                "cores": list(self.core_families)}


def _core_table(doc: dict, core: str, path, resolved: dict[str, CoreProfile], tables: dict, stack=()) -> CoreProfile:
    if core in resolved:
        return resolved[core]
    if core in stack:
        raise HardwareDataError(path, f"field 'cores.{core}.like' forms a cycle: {' -> '.join(stack + (core,))}")
    t = tables[core]
    where = f"cores.{core}"
    if not isinstance(t, dict):
        raise HardwareDataError(path, f"field '{where}' must be a table")
    like = field(t, "like", "str", path, default="", where=where)
    source = field(t, "source", "str", path, where=where)
    if like:
        if like not in tables:
            raise HardwareDataError(path, f"field '{where}.like' names '{like}', which has no [cores.{like}] table")
        base = _core_table(doc, like, path, resolved, tables, stack + (core,))
        speed = field(t, "speed", "number", path, default=1.0, positive=True, where=where)
        vals = {f"{k}_macs_per_cycle": base.macs_per_cycle(k) * speed for k in _MAC_KINDS}
        vals |= {k: getattr(base, k) / speed for k in _CYCLE_FIELDS}
        vals |= {k: getattr(base, k) for k in _OVERHEADS}
        for key in vals:  # explicit figures override the derived ones
            vals[key] = field(t, key, "number", path, default=vals[key], positive=key not in _OVERHEADS,
                              where=where)
        calibrated = field(t, "calibrated", "bool", path, default=False, where=where)
    else:
        vals = {f"{k}_macs_per_cycle": field(t, f"{k}_macs_per_cycle", "number", path, positive=True, where=where)
                for k in _MAC_KINDS}
        vals |= {k: field(t, k, "number", path, positive=True, where=where) for k in _CYCLE_FIELDS}
        vals |= {k: field(t, k, "number", path, where=where) for k in _OVERHEADS}
        calibrated = field(t, "calibrated", "bool", path, where=where)
    for k in _OVERHEADS:
        if vals[k] < 0:
            raise HardwareDataError(path, f"field '{where}.{k}' must not be negative")
    prof = CoreProfile(core=core, source=source, calibrated=calibrated, derived_from=like, **vals)
    resolved[core] = prof
    return prof


def parse_runtime(doc: dict, path: str | Path) -> Runtime:
    f = lambda d, key, kind, where, **kw: field(d, key, kind, path, where=where, **kw)  # noqa: E731
    tables = f(doc, "cores", "table", "")
    for core in tables:
        if core not in CORES:
            raise HardwareDataError(path, f"field 'cores.{core}': unknown core family; known: {', '.join(CORES)}")
    resolved: dict[str, CoreProfile] = {}
    cores = tuple((c, _core_table(doc, c, path, resolved, tables)) for c in tables)
    ram, scratch, code, flt = (f(doc, k, "table", "") for k in ("ram", "scratch", "code", "float"))
    return Runtime(
        id=f(doc, "id", "str", ""), name=f(doc, "name", "str", ""), description=f(doc, "description", "str", ""),
        calibration=f(doc, "calibration", "str", ""), cores=cores,
        ram_fixed_bytes=f(ram, "fixed_bytes", "int", "ram"), ram_per_node_bytes=f(ram, "per_node_bytes", "int", "ram"),
        ram_per_tensor_bytes=f(ram, "per_tensor_bytes", "int", "ram"),
        ram_per_channel_bytes=f(ram, "per_channel_bytes", "int", "ram"),
        scratch_conv_bytes_per_column=f(scratch, "conv_bytes_per_column", "int", "scratch"),
        scratch_depthwise_bytes_per_tap_channel=f(scratch, "depthwise_bytes_per_tap_channel", "int", "scratch"),
        code_fixed_bytes=f(code, "fixed_bytes", "int", "code"),
        code_per_op_type_bytes=f(code, "per_op_type_bytes", "int", "code"),
        float_fpu_mac_cycles=f(flt, "fpu_mac_cycles", "number", "float", positive=True),
        float_soft_mac_cycles=f(flt, "soft_mac_cycles", "number", "float", positive=True),
        float_fpu_element_factor=f(flt, "fpu_element_factor", "number", "float", positive=True),
        float_soft_element_factor=f(flt, "soft_element_factor", "number", "float", positive=True),
        int16_slowdown=f(doc, "int16_slowdown", "number", "", positive=True),
        path=str(path),
        ram_stack_bytes=f(ram, "stack_bytes", "int", "ram", default=0),
        ram_stack_bytes_by_kind=_int_table(ram, "stack_bytes_by_kind", "ram", path),
        scratch_pointwise_bytes_per_column=f(scratch, "pointwise_bytes_per_column", "int", "scratch", default=0),
        scratch_pointwise_wide_bytes_per_column=f(scratch, "pointwise_wide_bytes_per_column", "int", "scratch",
                                                  default=0),
        scratch_pointwise_wide_max_column=f(scratch, "pointwise_wide_max_column", "int", "scratch", default=0),
        scratch_conv_unaligned_bytes_per_column=f(scratch, "conv_unaligned_bytes_per_column", "int", "scratch",
                                                  default=0),
        scratch_conv_rgb_bytes=f(scratch, "conv_rgb_bytes", "int", "scratch", default=0),
        code_per_node_bytes=f(code, "per_node_bytes", "int", "code", default=0),
        code_op_type_bytes=_int_table(code, "op_type_bytes", "code", path))


def _int_table(doc: dict, key: str, where: str, path) -> tuple[tuple[str, int], ...]:
    """An optional table of name -> non-negative int (e.g. per layer kind)."""
    t = field(doc, key, "table", path, default={}, where=where)
    for k in t:
        if field(t, k, "int", path, where=f"{where}.{key}") < 0:
            raise HardwareDataError(path, f"field '{where}.{key}.{k}' must not be negative")
    return tuple(sorted((k, int(v)) for k, v in t.items()))


_CACHE: dict[tuple[str, int, int], Runtime] = {}


def load_runtimes(extra_dirs: list[str | Path] | None = None) -> dict[str, Runtime]:
    return load_descriptions([BUILTIN_DIR, *(Path(d) for d in extra_dirs or [])], "runtime", parse_runtime, _CACHE)


def get_runtime(runtime_id: str, extra_dirs: list[str | Path] | None = None) -> Runtime:
    return by_id(load_runtimes(extra_dirs), runtime_id, "runtime")


# What a user gets without choosing: what TinyStudio deploys (its generated C, every core), then the most
# common runtime that has a profile for the MCU's core.
DEFAULT_PREFERENCE = ("tinystudio-c", "tflm-cmsis-nn", "esp-nn", "tflm-reference")


def default_runtime(mcu) -> str:
    """The runtime a user gets without choosing, for an MCU (an MCU, an MCU id) or a core family: what Profile
    shows by default and what the export's estimates assume."""
    if isinstance(mcu, str) and mcu not in CORES:
        from hwmodels.mcu import get_mcu

        mcu = get_mcu(mcu)
    core = mcu if isinstance(mcu, str) else mcu.core
    supported = runtimes_for_core(core)
    for rid in DEFAULT_PREFERENCE:
        if rid in supported:
            return rid
    if not supported:
        raise TinyStudioError(f"no runtime profile covers core '{core}'")
    return supported[0]


def runtimes_for_core(core: str) -> list[str]:
    return [rid for rid, rt in load_runtimes().items() if rt.supports(core)]
