"""The int8 reference of a scheduled graph: the graph run as its schedule says (patch by patch, band by band,
depthwise in place), with the kinds' own reference functions, so a test can hold it to run_int8 bit for bit.

    outs = run_scheduled(graph, schedule, {"input": x_int8})     # == run_int8(graph, {"input": x_int8})

The order is the planner's (engine.memory.patch.patch_order for a patch stage): the patch stage runs at its
first node (engine.int8.patched.run_patch_stage computes the split node's output patch by patch; with
`overlap`, through one simulated buffer holding the output over the input, as the memory plan has it), a fused
block at its expand node (engine.int8.fused.run_fused_block), an in-place depthwise node through
run_inplace_depthwise; every other node runs its layer kernel as in Int8Plan.run.
"""
from __future__ import annotations

import numpy as np

from engine.errors import GraphError, TinyStudioError
from engine.int8.execute import Int8Plan
from engine.memory.schedule import Schedule, ScheduleError, check_names
from engine.state import initial_state, save_state


def _kind(module: str, what: str):
    import importlib

    try:
        return importlib.import_module(f"engine.int8.{module}")
    except ImportError as e:
        raise ScheduleError(f"the {what} reference is not available in this build ({e})") from None


def scheduled_order(graph, schedule: Schedule) -> list[str]:
    """The execution order the schedule runs in: the graph's topological order, with the patch stage's
    nodes contiguous and first where they must be."""
    from engine.validate import topological_order

    order = [n.name for n in topological_order(graph)]
    if schedule.patch is not None:
        from engine.memory.rewrite import kind_module

        order = list(kind_module("patch", "patch").patch_order(graph, schedule.patch, order))
    return order


def run_scheduled(graph_or_plan, schedule: Schedule, feeds: dict, *, outputs: list[str] | None = None,
                  state: dict | None = None, alignment: int = 16) -> dict[str, np.ndarray]:
    """`alignment`: the memory plan's (where a patch stage with `overlap` starts its input in the shared
    buffer: the stage then runs through that simulated buffer and refuses a read of overwritten input)."""
    plan = graph_or_plan if isinstance(graph_or_plan, Int8Plan) else Int8Plan(graph_or_plan)
    g = plan.graph
    check_names(schedule, g)
    kernels = {node.name: (node, kernel) for node, kernel in plan.steps}
    env: dict[str, np.ndarray] = {}
    for name in g.inputs:
        if name not in feeds:
            raise TinyStudioError(f"missing input '{name}' (graph inputs: {', '.join(g.inputs)})")
        env[name] = plan.feed(name, feeds[name])
    for name, value in initial_state(g, state).items():
        env[name] = np.asarray(value).astype(g.tensors[name].data.dtype)
    # Which part runs at which node: the whole stage/block at its first node, nothing at the others.
    runs_at: dict[str, object] = {}
    skip: set[str] = set()
    if schedule.patch is not None:
        runs_at[schedule.patch.nodes[0]] = ("patch", schedule.patch)
        skip |= set(schedule.patch.nodes[1:])
    for b in schedule.fused:
        runs_at[b.nodes[0]] = ("fused", b)
        skip |= set(b.nodes[1:])
    for n in schedule.inplace:
        runs_at[n] = ("inplace", n)
    for name in scheduled_order(g, schedule):
        if name in skip:
            continue
        node, kernel = kernels[name]
        part = runs_at.get(name)
        if part is None:
            plan.step(node, kernel, env)
            continue
        what, item = part
        try:
            if what == "patch":
                at = None
                if item.overlap:
                    from engine.memory.patch_overlap import stage_input_at

                    at = stage_input_at(g, item, alignment)
                _kind("patched", "patch").run_patch_stage(plan, item, env, input_at=at)
            elif what == "fused":
                _kind("fused", "fused").run_fused_block(plan, item, env)
            else:
                _kind("fused", "in-place depthwise").run_inplace_depthwise(plan, item, env)
        except TinyStudioError:
            raise
        except (ValueError, IndexError) as e:  # a kernel rejecting its inputs is a graph problem
            raise GraphError(f"int8 execution failed: {e}", node.name, node.op) from e
    save_state(g, env, state)
    return {n: env[n] if n in env else g.tensors[n].data for n in (outputs or g.outputs)}
