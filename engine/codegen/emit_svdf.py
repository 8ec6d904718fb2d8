"""C for SVDF from its frozen record (engine/int8/svdf.py: SvdfParams); the state is the model's static buffer
(engine/codegen/state_vars.py), never an arena tensor."""
from __future__ import annotations

from engine.codegen.cwrite import c_comment
from engine.codegen.emitter import EmitContext, emits, emit_error, int8_grid, layer_macs, shape_text, struct_call
from engine.codegen.state_vars import state_symbols
from engine.int8.prepare import prepare_node
from engine.int8.readers import tensor_of
from engine.ir import Node


@emits("SVDF")
def emit_svdf(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    p = prepare_node(g, node)
    x, y = tensor_of(g, node, 0), tensor_of(g, node, 0, True)
    int8_grid(node, x)
    int8_grid(node, y)
    sym = state_symbols(g).get(node.inputs[4])
    if sym is None:
        raise emit_error(node, f"the state '{node.inputs[4]}' is not a variable tensor")
    ctype = "int16_t" if p.state_dtype == "int16" else "int8_t"
    wf = ctx.array("wf", "int8_t", p.weights_feature, f"{node.name}: weights_feature (filters, input)")
    wt = ctx.array("wt", ctype, p.weights_time, f"{node.name}: weights_time (filters, memory)")
    bias = "NULL" if p.bias is None else ctx.array("b", "int32_t", p.bias, f"{node.name}: bias")
    params = {"batches": p.batch, "n_input": p.n_input, "filters": p.filters, "units": p.units, "memory": p.memory,
              "rank": p.rank, "input_offset": -p.x_zp, "output_offset": p.y_zp, "state_zero_point": p.state_zp,
              "state_bits": 16 if p.state_dtype == "int16" else 8, "multiplier1": p.mult1, "shift1": p.shift1,
              "multiplier2": p.mult2, "shift2": p.shift2,
              "act_min": p.act_min, "act_max": p.act_max}
    comment = (f"{node.name}: SVDF {p.n_input}->{p.units} (rank {p.rank}, memory {p.memory}, {p.state_dtype} state "
               f"'{c_comment(node.inputs[4])}'), out {shape_text(y)}, {layer_macs(g, node):,} MACs")
    struct_call(ctx, "ts_svdf_s8", "ts_svdf_params", params, comment, ctx.src(node, x.name), wf, wt, bias, sym,
                ctx.dst(y.name))
