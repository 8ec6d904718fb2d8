"""C for the int8 LSTM from its frozen record (engine/int8/lstm.py: LstmParams); the hidden and cell states are
the model's static state buffers (engine/codegen/state_vars.py), never arena tensors."""
from __future__ import annotations

from engine.codegen.emitter import EmitContext, emits, emit_error, int8_grid, layer_macs, shape_text, struct_call
from engine.codegen.state_vars import state_symbols
from engine.int8.prepare import prepare_node
from engine.int8.readers import tensor_of
from engine.ir import Node


@emits("LSTM")
def emit_lstm(ctx: EmitContext, node: Node) -> None:
    g = ctx.graph
    p = prepare_node(g, node)
    x, y = tensor_of(g, node, 0), tensor_of(g, node, 0, True)
    int8_grid(node, x)
    int8_grid(node, y)
    if len(node.outputs) > 1:
        raise emit_error(node, "the generated C writes Y only (Y_h and Y_c are the state buffers)")
    syms = state_symbols(g)
    h, c = syms.get(node.inputs[5]), syms.get(node.inputs[6])
    if h is None or c is None:
        raise emit_error(node, "the initial hidden and cell states must be variable tensors (the model's state)")
    seq, batch = x.shape[0], x.shape[1]
    wx = ctx.array("wx", "int8_t", p.w_x, f"{node.name}: input weights (gates i, f, c, o; hidden, input)")
    wh = ctx.array("wh", "int8_t", p.w_h, f"{node.name}: recurrent weights (gates i, f, c, o; hidden, hidden)")
    bias = ctx.array("b", "int32_t", p.bias, f"{node.name}: gate biases (i, f, c, o)")
    params = {"steps": seq, "batches": batch, "n_input": x.shape[2], "hidden": p.hidden,
              "input_offset": -p.x_zp, "hidden_offset": -p.h_zp, "hidden_zp": p.h_zp,
              "fc_x_mult": [int(v) for v in p.fc_x[:, 0]], "fc_x_shift": [int(v) for v in p.fc_x[:, 1]],
              "fc_h_mult": [int(v) for v in p.fc_h[:, 0]], "fc_h_shift": [int(v) for v in p.fc_h[:, 1]],
              "forget_mult": p.forget_mul[0], "forget_shift": p.forget_mul[1],
              "input_mult": p.input_mul[0], "input_shift": p.input_mul[1],
              "output_mult": p.output_mul[0], "output_shift": p.output_mul[1],
              "tanh_mult": p.cell_tanh[0], "tanh_shift": p.cell_tanh[1], "cell_clip": p.cell_clip}
    comment = (f"{node.name}: LSTM {x.shape[2]}->{p.hidden} over {seq} steps (int16 gates and cell state), out "
               f"{shape_text(y)}, {layer_macs(g, node):,} MACs")
    # The four int16 gate vectors of one step: layer-local RAM outside the arena.
    ctx.code.body.append(f"static int16_t gates[{4 * batch * p.hidden}];")
    struct_call(ctx, "ts_lstm_s8", "ts_lstm_params", params, comment, ctx.src(node, x.name), wx, wh, bias,
                h, f"(int16_t *){c}", ctx.dst(y.name), "gates")
