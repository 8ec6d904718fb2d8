"""Execution schedules: how the layers of a graph run, as data beside the graph.

    s = Schedule("patch", patch=PatchStage(("conv1", "dw1", "pw1"), (3, 3)))
    s.to_dict()                                  # stored with the version, printed in `--json`
    Schedule.from_dict(d, graph)                 # ScheduleError naming the field or node when it does not fit

Kinds (MCUNetV2, TinyEngine, StreamNet/msf-CNN):
- `layer`: every layer computes its whole output tensor, one after the other (TFLM's way; the default).
- `patch`: the nodes of `patch.nodes` (a chain from the graph input to `patch.split`, in execution order) run
  patch by patch: the output of the split node is computed as a grid of `patch.grid` (rows, cols) spatial
  patches, each from its receptive-field region of the stage input (halos recomputed); the rest of the graph
  runs layer by layer. `patch.overlap`: the split output shares one buffer with the stage input, written over
  the input rows the patches have already consumed (engine.memory.patch_overlap proves it patch by patch).
- `inplace`: the depthwise convolutions named in `inplace` write their output over their input, channel group
  by channel group through a one-group temporary buffer.
- `fused`: each FusedBlock (1x1 expand -> depthwise -> 1x1 project, and the residual Add that closes the block
  when it names one) runs row band by row band so its expanded tensors never exist whole.
A schedule may combine them (kind "patch+inplace", ...): the parts never name the same node.

Every consumer reads the same object: the memory planner (buffer sizes and lifetimes), the profiler (peak,
MACs with recomputation), the memory timeline, the int8 reference executor and the C generator.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from engine.errors import GraphError

KINDS = ("layer", "inplace", "patch", "fused")
# What a user may ask for: a kind, or `auto` (the lowest peak under the MAC-overhead limit, engine.memory.auto).
CHOICES = (*KINDS, "auto")
DEFAULT_MAX_MAC_OVERHEAD = 0.10


class ScheduleError(GraphError):
    """A schedule that does not fit its graph (unknown node, not a chain, bad grid ...): one line."""


@dataclass(frozen=True)
class PatchStage:
    nodes: tuple[str, ...]     # run patch by patch, in execution order; the last one is the split node
    grid: tuple[int, int]      # patches along H and along W of the split node's output
    # The split output written over the stage input the patches have consumed (engine.memory.patch_overlap):
    # one buffer for both, the input e bytes in; only where the proof over every patch holds.
    overlap: bool = False

    @property
    def split(self) -> str:
        return self.nodes[-1]


@dataclass(frozen=True)
class FusedBlock:
    # 1x1 expand Conv, depthwise Conv, 1x1 project Conv[, the residual Add of the project's output and the
    # expand's input]: with the Add, each band's project rows are added to the block input's rows band by band.
    nodes: tuple[str, ...]
    band_rows: int                # output rows of the project conv per band

    @property
    def add(self) -> str | None:
        """The residual Add node the block includes, None when it ends at the project conv."""
        return self.nodes[3] if len(self.nodes) > 3 else None


@dataclass(frozen=True)
class Schedule:
    kind: str = "layer"                       # "layer", one of KINDS, or parts joined by "+" ("patch+inplace")
    patch: PatchStage | None = None
    inplace: tuple[str, ...] = ()             # depthwise Conv nodes computed in place
    fused: tuple[FusedBlock, ...] = ()
    why: str = ""                             # one line: how this schedule was chosen (shown with the profile)
    extra: dict = field(default_factory=dict, compare=False)  # figures of the search (for reports only)

    @property
    def is_layer(self) -> bool:
        return self.patch is None and not self.inplace and not self.fused

    def scheduled_nodes(self) -> set[str]:
        out = set(self.inplace)
        if self.patch is not None:
            out |= set(self.patch.nodes)
        for b in self.fused:
            out |= set(b.nodes)
        return out

    def to_dict(self) -> dict:
        d: dict = {"kind": self.kind}
        if self.patch is not None:
            d["patch"] = {"nodes": list(self.patch.nodes), "split": self.patch.split, "grid": list(self.patch.grid)}
            if self.patch.overlap:   # absent when False: versions stored before the field read the same
                d["patch"]["overlap"] = True
        if self.inplace:
            d["inplace"] = list(self.inplace)
        if self.fused:
            d["fused"] = [{"nodes": list(b.nodes), "band_rows": b.band_rows} for b in self.fused]
        if self.why:
            d["why"] = self.why
        return d

    @staticmethod
    def from_dict(d: dict, graph=None) -> "Schedule":
        """The schedule a dict describes (as to_dict writes it); checked against `graph` when one is given."""
        if not isinstance(d, dict):
            raise ScheduleError(f"schedule: expected an object, got {type(d).__name__}")
        unknown = sorted(set(d) - {"kind", "patch", "inplace", "fused", "why"})
        if unknown:
            raise ScheduleError(f"schedule: unknown field '{unknown[0]}'")
        kind = d.get("kind", "layer")
        if not isinstance(kind, str) or any(k not in KINDS for k in kind.split("+")):
            raise ScheduleError(f"schedule.kind: {kind!r} is not one of {', '.join(KINDS)} (or parts joined by '+')")
        patch = None
        if d.get("patch") is not None:
            p = d["patch"]
            if not isinstance(p, dict):
                raise ScheduleError("schedule.patch: expected an object with nodes and grid")
            nodes, grid = p.get("nodes"), p.get("grid")
            if not isinstance(nodes, list) or not nodes or not all(isinstance(n, str) for n in nodes):
                raise ScheduleError("schedule.patch.nodes: expected a non-empty list of node names")
            if (not isinstance(grid, list) or len(grid) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 64 for v in grid)):
                raise ScheduleError("schedule.patch.grid: expected [rows, cols], each an integer in 1..64")
            overlap = p.get("overlap", False)
            if not isinstance(overlap, bool):
                raise ScheduleError("schedule.patch.overlap: expected true or false")
            patch = PatchStage(tuple(nodes), (grid[0], grid[1]), overlap)
        inplace = d.get("inplace", [])
        if not isinstance(inplace, list) or not all(isinstance(n, str) for n in inplace):
            raise ScheduleError("schedule.inplace: expected a list of node names")
        fused = []
        for i, b in enumerate(d.get("fused", []) or []):
            nodes = b.get("nodes") if isinstance(b, dict) else None
            rows = b.get("band_rows") if isinstance(b, dict) else None
            if not isinstance(nodes, list) or len(nodes) not in (3, 4) or not all(isinstance(n, str) for n in nodes):
                raise ScheduleError(f"schedule.fused[{i}].nodes: expected [expand, depthwise, project] or "
                                    "[expand, depthwise, project, residual add] node names")
            if not isinstance(rows, int) or isinstance(rows, bool) or rows < 1:
                raise ScheduleError(f"schedule.fused[{i}].band_rows: expected a positive integer")
            fused.append(FusedBlock(tuple(nodes), rows))
        why = d.get("why", "")
        s = Schedule(kind, patch, tuple(inplace), tuple(fused), why if isinstance(why, str) else "")
        if graph is not None:
            check_names(s, graph)
        return s


LAYER = Schedule("layer", why="layer by layer (TFLM's schedule)")


def check_names(s: Schedule, graph) -> None:
    """Every node a schedule names exists, and no node belongs to two parts. The kinds check the rest
    (shapes, chains, ops) where they plan the schedule."""
    names = {n.name for n in graph.nodes}
    seen: dict[str, str] = {}
    parts = [("patch", s.patch.nodes if s.patch else ()), ("inplace", s.inplace)]
    parts += [(f"fused[{i}]", b.nodes) for i, b in enumerate(s.fused)]
    for part, nodes in parts:
        for n in nodes:
            if n not in names:
                raise ScheduleError(f"schedule.{part}: no node '{n}' in the graph")
            if n in seen and seen[n] != part:
                raise ScheduleError(f"schedule: node '{n}' is in both {seen[n]} and {part}")
            seen[n] = part


@dataclass(frozen=True)
class Rewrite:
    """What one part of a schedule does to the layer-by-layer buffer table (engine.memory.lifetimes.Buffer):
    tensors that no longer exist whole are resized or dropped, in-place outputs are merged into their input's
    buffer, temporary buffers are added (named like "tile:<tensor>", "dwtmp:<node>", "band:<tensor>", and
    holding themselves, so plan.tensor_offset(name) finds them). Steps stay the execution order's steps: a
    patch stage or a band loop repeats its sub-steps with the same buffers."""

    buffers: tuple                       # lifetimes.Buffer, the whole table after this part
    extra_macs: int = 0                  # MACs recomputed (patch halos, band overlaps)
    # step -> per-patch/per-band detail for the memory timeline: [{"label": "patch (0,1)", "live_bytes": n}, ...]
    detail: dict = field(default_factory=dict)
    note: str = ""                       # one line for the profile ("3x3 patches up to conv5: +6.1 % MACs")
