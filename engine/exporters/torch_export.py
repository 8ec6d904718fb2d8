"""IR -> PyTorch: a trainable nn.Module that computes exactly what engine.execute.run_graph computes.

    m = to_torch(graph)                 # float constants with a learned role become nn.Parameters
    y = m(torch.from_numpy(x))          # forward(*inputs) in graph.inputs order
    m.train(); ...SGD steps...          # BatchNormalization uses batch statistics, Dropout drops
    g2 = from_torch_weights(graph, m)   # the trained values written back into the graph's constants

Which constants are parameters follows the op library's own count (OpDef.param_inputs, a constant float
operand of a binary op, an embedding table under Gather), so the profiler's parameter count and what
training touches agree; BatchNormalization's running mean/var and everything else are buffers. Quantized
integer constants become their real values (scale * (q - zero_point)); writing back re-quantizes them on
their stored grid. Every op is planned once at construction (geometry, pads, index maps computed with the
op library's own helpers) so forward only calls torch functions.
The planners live by family in torch_ops_nn.py (spatial ops, matrix products) and torch_ops_tensor.py
(element-wise, quantization, data movement); torch_plan.py holds what they share.
"""
from __future__ import annotations

import re

import numpy as np
import torch
from torch import nn

from engine.errors import GraphError
from engine.exporters.torch_ops_nn import NN_PLANNERS
from engine.exporters.torch_ops_tensor import BINARY, TENSOR_PLANNERS
from engine.exporters.torch_plan import Step, fake_quant
from engine.ir import FLOAT_DTYPES, INT_DTYPES, Graph, Quant, Tensor
from engine.validate import infer_shapes, node_context, topological_order

# Which planner turns each op into torch calls: spatial ops and matrix products, then the rest.
assert not NN_PLANNERS.keys() & TENSOR_PLANNERS.keys(), "an op has two PyTorch planners"
PLANNERS = {**NN_PLANNERS, **TENSOR_PLANNERS}


def exported_ops() -> list[str]:
    return sorted(PLANNERS)


# ---- the module ------------------------------------------------------------------------------------

class GraphModule(nn.Module):
    """An IR graph as an nn.Module. `tensor_keys` maps graph tensor names to state_dict keys."""

    def __init__(self, graph: Graph, simulate_quant: bool = False):
        super().__init__()
        g = infer_shapes(graph)
        self.graph_name = g.name
        self.input_names = list(g.inputs)
        self.output_names = list(g.outputs)
        self.simulate_quant = simulate_quant
        self.params = nn.ParameterDict()
        self.consts = nn.Module()  # buffers live here so their names never clash with module attributes
        self.tensor_keys: dict[str, str] = {}
        self._inputs = {n: g.tensors[n] for n in g.inputs}
        roles = _constant_roles(g)
        used: set[str] = set()
        for name, role in roles.items():
            t = g.tensors[name]
            key = _key(name, used)
            value = _const_value(t)
            if role == "param" and value.is_floating_point():
                self.params[key] = nn.Parameter(value)
                self.tensor_keys[name] = "params." + key
            else:
                self.consts.register_buffer(key, value)
                self.tensor_keys[name] = "consts." + key
        self._const_attr = {name: key.split(".", 1) for name, key in self.tensor_keys.items()}
        self._steps: list[tuple[str, list[str], list[str], Step]] = []
        self._out_quant: dict[str, tuple[Quant, str]] = {}
        for node in topological_order(g):
            planner = PLANNERS.get(node.op)
            if planner is None:
                raise GraphError(f"no PyTorch equivalent for op '{node.op}' (exportable: "
                                 f"{', '.join(exported_ops())})", node.name, node.op)
            self._steps.append((node.name, list(node.inputs), list(node.outputs), planner(node_context(g, node))))
            for o in node.outputs:
                t = g.tensors[o]
                if t.quant is not None and t.dtype in INT_DTYPES:
                    self._out_quant[o] = (t.quant, t.dtype)

    @property
    def steps(self) -> list:
        """(node name, input names, output names, step) per node in execution order: for running part of the graph
        (engine.ondevice.finetune runs the layers after a frozen prefix on that prefix's cached outputs)."""
        return self._steps

    def tensor(self, name: str) -> torch.Tensor:
        """The parameter or buffer that holds graph constant `name`."""
        holder, key = self._const_attr[name]
        return self.params[key] if holder == "params" else getattr(self.consts, key)

    def run_steps(self, env: dict[str, torch.Tensor]) -> None:
        """Run every node on `env` (graph inputs and constants already in it), adding each output to it. No dtype
        cast: a caller that wants float64 (the synflow proxy) passes float64 tensors."""
        for _, ins, outs, step in self._steps:
            ys = step([env[i] if i else None for i in ins], self)
            for o, y in zip(outs, ys):
                if self.simulate_quant and o in self._out_quant:
                    y = fake_quant(y, *self._out_quant[o])
                env[o] = y

    def forward(self, *inputs):
        if len(inputs) != len(self.input_names):
            raise TypeError(f"graph '{self.graph_name}' takes {len(self.input_names)} inputs "
                            f"({', '.join(self.input_names)}), got {len(inputs)}")
        env: dict[str, torch.Tensor] = {}
        for name, x in zip(self.input_names, inputs):
            t = self._inputs[name]
            x = torch.as_tensor(x)
            if tuple(x.shape) != t.shape:
                raise ValueError(f"input '{name}' has shape {list(x.shape)}, the model expects {list(t.shape)}")
            if t.quant is not None and t.dtype in INT_DTYPES and not x.is_floating_point():
                x = _dequant(x, t.quant)
            elif t.dtype in FLOAT_DTYPES or t.quant is not None:
                x = x.float()
            env[name] = x
        for name in self._const_attr:
            env[name] = self.tensor(name)
        self.run_steps(env)
        res = tuple(env[o] for o in self.output_names)
        return res[0] if len(res) == 1 else res


def _dequant(q: torch.Tensor, quant: Quant) -> torch.Tensor:
    shape = [1] * q.dim()
    if quant.axis is not None:
        shape[quant.axis] = -1
    s = torch.as_tensor(quant.scale, dtype=torch.float64, device=q.device).reshape(shape)
    z = torch.as_tensor(quant.zero_point, dtype=torch.float64, device=q.device).reshape(shape)
    return ((q.double() - z) * s).float()


def _key(name: str, used: set[str]) -> str:
    base = re.sub(r"\W", "_", name) or "t"
    if base[0].isdigit():
        base = "t_" + base
    key, i = base, 1
    while key in used:
        key, i = f"{base}_{i}", i + 1
    used.add(key)
    return key


def _const_value(t: Tensor) -> torch.Tensor:
    if t.quant is not None or t.dtype in FLOAT_DTYPES:
        return torch.from_numpy(np.array(t.float_data(), dtype=np.float32))
    return torch.from_numpy(np.array(t.data))


def _constant_roles(g: Graph) -> dict[str, str]:
    """Constant tensor name -> "param" or "buffer" (see module docstring)."""
    roles: dict[str, str] = {}
    stats: set[str] = set()
    for node in g.nodes:
        ctx = node_context(g, node)
        learned: set[int] = set(ctx.op.param_inputs)
        if node.op in BINARY and node.op != "PRelu":  # a constant float operand (a bias, a scale)
            learned = {0, 1}
        if node.op == "Gather":
            learned = {0}
        if node.op == "BatchNormalization":
            learned = {1, 2}
            stats.update(n for n in node.inputs[3:5] if n)
        for i, name in enumerate(node.inputs):
            t = g.tensors.get(name) if name else None
            if t is None or t.data is None:
                continue
            if i in learned and roles.get(name) != "param":
                roles[name] = "param"
            roles.setdefault(name, "buffer")
    for name in g.outputs:
        if g.tensors[name].data is not None:
            roles.setdefault(name, "buffer")
    for name in stats:
        roles[name] = "buffer"  # running statistics are updated in place, never by gradients
    return roles


def to_torch(graph: Graph, simulate_quant: bool = False) -> GraphModule:
    """A trainable nn.Module equivalent to `graph` (see module docstring).

    With `simulate_quant`, every quantized activation is rounded to its grid with a straight-through
    estimator, as run_graph(simulate_quant=True) does (quantization-aware training).
    """
    return GraphModule(graph, simulate_quant)


def from_torch_weights(graph: Graph, module: GraphModule) -> Graph:
    """A copy of `graph` whose constants hold the module's current parameter and buffer values.

    Float constants keep their dtype; quantized integer constants are re-quantized on their own
    scale/zero point (values outside the grid clip; re-calibration is the quantization pass's job).
    """
    out = graph.copy()
    for name in module.tensor_keys:
        t = out.tensors.get(name)
        if t is None or t.data is None:
            raise GraphError(f"constant '{name}' of the trained module is not a constant of graph '{graph.name}'")
        if t.meta.get("variable"):  # a stateful op's state: the graph keeps its initial value
            continue
        value = module.tensor(name).detach().cpu().numpy()
        if tuple(value.shape) != t.shape:
            raise GraphError(f"constant '{name}' has shape {list(t.shape)} in the graph but "
                             f"{list(value.shape)} in the module")
        if t.quant is not None and t.dtype in INT_DTYPES:
            data = t.quant.quantize(value.astype(np.float32), t.dtype)
        else:
            data = value.astype(t.data.dtype)
        out.tensors[name] = Tensor(t.name, t.shape, t.dtype, t.quant, data, dict(t.meta))
    return out
