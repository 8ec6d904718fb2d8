"""Test-only glue for the in-place and fused schedules until the scheduled plan_memory/generate are merged
(issue 13, helper "sched"): a MemoryPlan built from a rewritten buffer table placed by the existing planners,
and generate() with the scheduled nodes emitted by engine.codegen.emit_fused."""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from engine.codegen import generate as gen
from engine.codegen.emit_fused import emit_fused_block, emit_inplace_depthwise
from engine.codegen.float_edges import split_float_edges
from engine.int8 import prepare_int8
from engine.int8.fused import run_fused_block, run_inplace_depthwise
from engine.memory import MemoryPlan
from engine.memory.fused import fused_rewrite, layer_table
from engine.memory.inplace import inplace_rewrite, shaped
from engine.memory.lifetimes import live_bytes
from engine.memory.planners import BestFit, GreedyBySize, arena_size, check_no_overlap


def int8_core(g):
    return split_float_edges(shaped(g))[0]


def scheduled_table(g, inplace=(), fused=(), alignment=16, groups=None):
    order, bufs = layer_table(g, alignment)
    if fused:
        bufs = fused_rewrite(g, tuple(fused), bufs, order, alignment).buffers
    if inplace:
        bufs = inplace_rewrite(g, tuple(inplace), bufs, order, alignment, groups).buffers
    return order, list(bufs)


def scheduled_plan(g, inplace=(), fused=(), alignment=16, groups=None) -> MemoryPlan:
    """The plan the C runs: the rewritten table placed by greedy_by_size and best_fit (the smaller kept)."""
    order, bufs = scheduled_table(g, inplace, fused, alignment, groups)
    best = None
    for name, planner in (("greedy_by_size", GreedyBySize()), ("best_fit", BestFit())):
        offsets = planner.plan(bufs)
        check_no_overlap(bufs, offsets)
        arena = arena_size(bufs, offsets)
        if best is None or arena < best[2]:
            best = (name, offsets, arena)
    live = live_bytes(bufs, len(order))
    lb = max(live, default=0)
    return MemoryPlan(tuple(order), tuple(bufs), tuple(best[1]), best[2], best[0], {best[0]: best[2]}, lb,
                      tuple(live), live.index(lb) if live else -1, (), best[2] == lb, False, None, True,
                      alignment, {})


@contextmanager
def scheduled_emit(inplace=(), fused=()):
    """generate() emitting each fused block at its first node's step (its other nodes: empty layer functions)
    and the in-place nodes with emit_inplace_depthwise."""
    first = {b.nodes[0]: b for b in fused}
    later = {n for b in fused for n in b.nodes[1:]}
    orig = gen.emit_layer

    def emit(ctx, node, index):
        ctx.index = index
        if node.name in first:
            return emit_fused_block(ctx, first[node.name])
        if node.name in later:
            return ctx.begin(index)
        if node.name in inplace:
            return emit_inplace_depthwise(ctx, node)
        return orig(ctx, node, index)

    gen.emit_layer = emit
    try:
        yield
    finally:
        gen.emit_layer = orig


def scheduled_library(g, name, inplace=(), fused=(), groups=None):
    plan = scheduled_plan(g, inplace, fused, groups=groups)
    with scheduled_emit(inplace, fused):
        return gen.generate(g, name, plan), plan


def run_scheduled_ref(plan, feeds, inplace=(), fused=(), groups=None, rolling=True):
    """The int8 reference with the schedule's nodes run by engine.int8.fused (the others layer by layer)."""
    g = plan.graph
    env = dict(feeds)
    first = {b.nodes[0]: b for b in fused}
    later = {n for b in fused for n in b.nodes[1:]}
    for node, kernel in plan.steps:
        if node.name in later:
            continue
        if node.name in first:
            run_fused_block(plan, first[node.name], env, rolling)
        elif node.name in inplace:
            run_inplace_depthwise(plan, node.name, env, (groups or {}).get(node.name))
        else:
            env.update(zip(node.outputs, kernel([env[n] if n in env else g.tensors[n].data for n in node.inputs])))
    return {o: env[o] for o in g.outputs}


def layer_reference(g, xs: np.ndarray) -> np.ndarray:
    plan = prepare_int8(g)
    name = g.inputs[0]
    rows = [plan.run({name: x.reshape(g.tensors[name].shape)}) for x in xs]
    return np.stack([np.concatenate([r[o].reshape(-1) for o in g.outputs]) for r in rows])
