"""POET-style rematerialization and paging of a training step under an SRAM budget, chosen by a MILP.

    prof = training_profile(graph, plan, mcu="stm32f746ng")
    p = poet_plan(prof, budget_bytes=120_000, objective="energy")   # PoetPlan: choice per kept activation
    p.choice["block3_pw_relu_out"]   # "keep" | "recompute" | "page"
    curve = poet_curve(prof, [80_000, 100_000, 120_000])              # extra time / energy vs budget
    verify_poet(graph, prof, p)      # replays the schedule in the float reference: every backward input equal

Every activation the backward needs (profile.kept) is either kept in SRAM from its forward to its backward,
recomputed (freed after its last forward read; its producer runs again at the backward step: costs that
node's forward time; its own activation inputs must then be kept), or paged out to flash after the forward
and read back (costs writing + reading its bytes; flash programming also draws power). The MILP
(scipy.optimize.milp with HiGHS, as engine/memory/exact.py) has per activation binaries keep/recompute/page
summing to 1, a live-bytes constraint at every step of the forward + backward timeline (arena part of the
budget: budget - RAM weights - optimizer state), and minimizes the added time or energy. The chosen schedule's
buffers are then placed by the planners; the plan is feasible when that arena fits the budget.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.errors import TinyStudioError
from engine.memory.lifetimes import Buffer

# Paging costs (POET's flash model, stated here as defaults): programming internal flash of a Cortex-M7
# (STM32F7: ~16 us per 32-bit word at x32 parallelism => ~4 us/B) and reading it back (~0.01 us/B); flash
# programming draws extra power on top of the running core.
PAGE_WRITE_US_PER_BYTE = 4.0
PAGE_READ_US_PER_BYTE = 0.01
FLASH_WRITE_EXTRA_MW = 30.0


@dataclass(frozen=True)
class PoetPlan:
    budget_bytes: int
    objective: str
    choice: dict            # root tensor -> "keep" | "recompute" | "page"
    extra_ms: float
    extra_uj: float
    arena_bytes: int        # planned arena of the chosen schedule
    peak_sram_bytes: int
    feasible: bool
    status: str
    buffers: tuple[Buffer, ...] = ()

    def to_json(self) -> dict:
        return {"budget_bytes": self.budget_bytes, "objective": self.objective, "choice": dict(self.choice),
                "extra_ms": round(self.extra_ms, 6), "extra_uj": round(self.extra_uj, 6),
                "arena_bytes": self.arena_bytes, "peak_sram_bytes": self.peak_sram_bytes, "feasible": self.feasible,
                "status": self.status}


def _costs(prof, r: str, info: dict, power_mw: float) -> tuple[float, float, float, float]:
    """(recompute ms, recompute uJ, page ms, page uJ) of activation `r`."""
    nbytes = next(b.nbytes for b in prof.buffers if b.name == "act:" + r)
    rec_ms = info["forward_ms"]
    page_ms = nbytes * (PAGE_WRITE_US_PER_BYTE + PAGE_READ_US_PER_BYTE) / 1000.0
    page_uj = page_ms * power_mw + nbytes * PAGE_WRITE_US_PER_BYTE / 1000.0 * FLASH_WRITE_EXTRA_MW
    return rec_ms, rec_ms * power_mw, page_ms, page_uj


def schedule_buffers(prof, choice: dict) -> list[Buffer]:
    """The profile's buffers with every dropped activation split into its forward and backward lives."""
    out = []
    for b in prof.buffers:
        r = b.name[4:] if b.name.startswith("act:") else None
        if r is not None and choice.get(r, "keep") != "keep":
            info = prof.kept[r]
            out.append(Buffer(b.name + "@fwd", b.size, b.first_use, info["forward_last"], b.tensors, b.nbytes))
            out.append(Buffer(b.name + "@bwd", b.size, info["backward_first"], b.last_use, b.tensors, b.nbytes))
        else:
            out.append(b)
    return out


def poet_plan(prof, budget_bytes: int, objective: str = "energy", time_limit: float = 10.0) -> PoetPlan:
    from scipy.optimize import Bounds, LinearConstraint, milp

    from engine.ondevice.memory import place_buffers

    if objective not in ("time", "energy"):
        raise TinyStudioError(f"POET objective '{objective}' is not one of time, energy")
    if not prof.targets:
        raise TinyStudioError("POET plans need an MCU for the costs of recomputing and paging (--mcu ID)")
    from hwmodels.mcu import get_mcu

    power = get_mcu(prof.targets[0]["mcu"]).active_power_mw
    cands = [r for r in prof.kept]
    n, steps = len(cands), len(prof.steps)
    arena_budget = budget_bytes - prof.outside_arena_bytes
    costs = [_costs(prof, r, prof.kept[r], power) for r in cands]
    c = np.zeros(3 * n)  # per candidate: keep, recompute, page
    for i, (rm, ru, pm, pu) in enumerate(costs):
        c[3 * i + 1], c[3 * i + 2] = (rm, pm) if objective == "time" else (ru, pu)
    rows, lo, hi = [], [], []
    for i in range(n):  # exactly one choice
        row = np.zeros(3 * n)
        row[3 * i:3 * i + 3] = 1
        rows.append(row), lo.append(1), hi.append(1)
    idx = {r: i for i, r in enumerate(cands)}
    ub = np.ones(3 * n)
    for i, r in enumerate(cands):  # recompute needs the producer's activation inputs kept in SRAM
        ins = prof.kept[r]["inputs"]
        if not ins or any(u not in idx for u in ins):
            ub[3 * i + 1] = 0
            continue
        for u in ins:
            row = np.zeros(3 * n)
            row[3 * i + 1], row[3 * idx[u]] = 1, -1
            rows.append(row), lo.append(-np.inf), hi.append(0)
    size = {b.name[4:]: b for b in prof.buffers if b.name.startswith("act:")}
    for s in range(steps):
        fixed, row = 0, np.zeros(3 * n)
        for b in prof.buffers:
            if not (b.first_use <= s <= b.last_use):
                continue
            r = b.name[4:] if b.name.startswith("act:") else None
            if r in idx:
                info = prof.kept[r]
                short = s <= info["forward_last"] or s >= info["backward_first"]
                row[3 * idx[r]] += b.size
                if short:
                    row[3 * idx[r] + 1] += b.size
                    row[3 * idx[r] + 2] += b.size
            else:
                fixed += b.size
        rows.append(row), lo.append(-np.inf), hi.append(arena_budget - fixed)
    status, choice = "", {}
    if n == 0:
        status = "nothing to decide"
    else:
        res = milp(c, constraints=LinearConstraint(np.array(rows), lo, hi), integrality=np.ones(3 * n),
                   bounds=Bounds(np.zeros(3 * n), ub), options={"time_limit": time_limit})
        status = res.message
        if res.x is None:
            return PoetPlan(budget_bytes, objective, {}, 0.0, 0.0, 0, 0, False, f"infeasible: {status}")
        for i, r in enumerate(cands):
            choice[r] = ("keep", "recompute", "page")[int(np.argmax(res.x[3 * i:3 * i + 3]))]
    bufs = schedule_buffers(prof, choice)
    _, arena, _ = place_buffers([b for b in bufs if b.size > 0])
    extra_ms = sum(costs[idx[r]][0 if k == "recompute" else 2] for r, k in choice.items() if k != "keep")
    extra_uj = sum(costs[idx[r]][1 if k == "recompute" else 3] for r, k in choice.items() if k != "keep")
    peak = arena + prof.outside_arena_bytes
    return PoetPlan(budget_bytes, objective, choice, extra_ms, extra_uj, arena, peak, peak <= budget_bytes, status,
                    tuple(bufs))


def poet_curve(prof, budgets, objective: str = "energy") -> list[dict]:
    """Step time and energy (base + added) against the budget; infeasible budgets are listed as such."""
    t = prof.targets[0]
    out = []
    for b in budgets:
        p = poet_plan(prof, int(b), objective)
        out.append({"budget_bytes": int(b), "feasible": p.feasible, "peak_sram_bytes": p.peak_sram_bytes,
                    "step_ms": round(t["step_ms"] + p.extra_ms, 6), "energy_uj": round(t["energy_uj"] + p.extra_uj, 6),
                    "recompute": sum(v == "recompute" for v in p.choice.values()),
                    "page": sum(v == "page" for v in p.choice.values())})
    return out


def verify_poet(graph, prof, plan: PoetPlan, seed: int = 0) -> dict:
    """Replay the schedule in the float reference (engine.execute's kernels on the deployed graph): free the
    dropped activations after their last forward read, page copies out, recompute from the producer at the
    backward step; every activation the backward reads must equal the keep-everything run bit for bit (so the
    gradients are the same). Returns {"checked": n, "recomputed": n, "paged": n}; raises AssertionError else."""
    from engine.execute import run_graph
    from engine.ondevice.memory import deployed
    from engine.validate import infer_shapes, node_context, topological_order

    g = infer_shapes(deployed(graph)[0])
    x = np.random.default_rng(seed).standard_normal(g.tensors[g.inputs[0]].shape).astype(np.float32)
    t0 = g.tensors[g.inputs[0]]
    feed = t0.quant.quantize(x, t0.dtype) if t0.quant is not None and t0.dtype != "float32" else x
    ref = run_graph(g, {g.inputs[0]: feed}, keep_all=True)
    nodes = {n.name: n for n in topological_order(g)}
    flash = {r: ref[r].copy() for r, k in plan.choice.items() if k == "page"}
    checked = 0
    for r, k in plan.choice.items():
        if k == "keep":
            continue
        if k == "page":
            got = flash[r]
        else:
            node = nodes[prof.kept[r]["node"]]
            for u in prof.kept[r]["inputs"]:
                assert plan.choice.get(u) == "keep", f"recompute of {r} needs {u} kept, plan says {plan.choice.get(u)}"
            ctx = node_context(g, node)
            xs = [None if not t else (ref[t] if t in ref else g.tensors[t].float_data()) for t in node.inputs]
            got = ctx.op.run(ctx, xs)[list(node.outputs).index(r)]
        assert np.array_equal(np.asarray(got), ref[r]), f"activation '{r}' differs after {k}"
        checked += 1
    return {"checked": checked, "recomputed": sum(v == "recompute" for v in plan.choice.values()),
            "paged": sum(v == "page" for v in plan.choice.values())}
