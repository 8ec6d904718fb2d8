"""Recurrent ops: LSTM, GRU and RNN with ONNX semantics (time-major layout, gate order as ONNX packs it).

    X (seq, batch, input)   W (dirs, G*H, input)   R (dirs, G*H, H)   B (dirs, 2*G*H)
    Y (seq, dirs, batch, H)  Y_h (dirs, batch, H)  [LSTM: Y_c (dirs, batch, H)]

G is 4 for LSTM (gates i, o, f, c), 3 for GRU (z, r, h), 1 for RNN. ONNX's batch-major `layout=1` and
TFLite's UNIDIRECTIONAL_SEQUENCE_LSTM (batch-major, one gate tensor each) are mapped onto this form by the
importers with Transpose / Reshape nodes and packed weights, so one reference serves every format.
"""
from __future__ import annotations

import numpy as np

from engine.ops.base import Attr, Cost, OpDef, register

# ONNX's recurrent activation functions: name -> (f(x, alpha, beta), default alpha, default beta).
# None for a parameter the function does not take (it consumes no value from activation_alpha/beta).
_FUNCS = {
    "Sigmoid": (lambda x, a, b: 1.0 / (1.0 + np.exp(-x)), None, None),
    "Tanh": (lambda x, a, b: np.tanh(x), None, None),
    "Relu": (lambda x, a, b: np.maximum(x, 0), None, None),
    "HardSigmoid": (lambda x, a, b: np.clip(a * x + b, 0, 1), 0.2, 0.5),
    "LeakyRelu": (lambda x, a, b: np.where(x >= 0, x, a * x), 0.01, None),
    "ThresholdedRelu": (lambda x, a, b: np.where(x > a, x, 0), 1.0, None),
    "ScaledTanh": (lambda x, a, b: a * np.tanh(b * x), 1.0, 1.0),
    "Affine": (lambda x, a, b: a * x + b, 1.0, 0.0),
    "Elu": (lambda x, a, b: np.where(x >= 0, x, a * (np.exp(x) - 1)), 1.0, None),
    "Softsign": (lambda x, a, b: x / (1 + np.abs(x)), None, None),
    "Softplus": (lambda x, a, b: np.log1p(np.exp(x)), None, None),
}
_DIRECTIONS = ("forward", "reverse", "bidirectional")


class _Recurrent(OpDef):
    gates = 1  # G: weight row blocks per direction
    n_funcs = 1  # activation functions per direction
    default_funcs: tuple[str, ...] = ("Tanh",)
    inputs = ("X", "W", "R", "B?", "sequence_lens?", "initial_h?")
    outputs = ("Y", "Y_h")
    param_inputs = (1, 2, 3)
    # Not `sets_channels`: hidden_size is the designer's choice, but channel pruning and low-rank factorization
    # read W as one (out, in) matrix, which the gate blocks are not.
    onnx_same = True
    cost_kind = "fc"
    float_only = ("no int8 lowering or C kernel (tflite-micro, the int8 oracle, has no GRU or RNN kernel; the LSTM "
                  "has both)")
    base_attrs = {"activation_alpha": Attr("floats", None), "activation_beta": Attr("floats", None),
                  "activations": Attr("strs", None), "clip": Attr("float", None),
                  "direction": Attr("str", "forward", _DIRECTIONS), "hidden_size": Attr("int", None)}

    # ---- shapes ----------------------------------------------------------------------------------
    def dims(self, ctx) -> tuple[int, int, int, int, int]:
        """(seq, batch, input, hidden, dirs), checked against W, R, B and the optional inputs."""
        x, w, r = ctx.shape(0), ctx.shape(1), ctx.shape(2)
        dirs = 2 if ctx.attr("direction") == "bidirectional" else 1
        if len(x) != 3:
            raise ctx.error(f"X {list(x)} must be 3-D (seq_length, batch, input_size)")
        seq, batch, inp = x
        if len(w) != 3 or w[0] != dirs or w[2] != inp or w[1] % self.gates:
            raise ctx.error(f"W {list(w)} must be ({dirs}, {self.gates}*hidden_size, {inp})")
        hidden = w[1] // self.gates
        hs = ctx.attr("hidden_size")
        if hs is not None and hs != hidden:
            raise ctx.error(f"attribute 'hidden_size' is {hs} but W {list(w)} holds {hidden}")
        want = {2: (dirs, self.gates * hidden, hidden), 3: (dirs, 2 * self.gates * hidden),
                4: (batch,), 5: (dirs, batch, hidden), 6: (dirs, batch, hidden), 7: (dirs, 3 * hidden)}
        for i, shape in want.items():
            if i < len(self.inputs) and ctx.has(i) and tuple(ctx.shape(i)) != shape:
                raise ctx.error(f"input '{self.inputs[i].rstrip('?')}' {list(ctx.shape(i))} must be {list(shape)}")
        if hidden == 0:
            raise ctx.error("hidden_size must be positive")
        self.funcs(ctx, dirs)
        return seq, batch, inp, hidden, dirs

    def funcs(self, ctx, dirs: int) -> list[tuple]:
        """The activation functions in use, per direction, as (name, alpha, beta), checked against ONNX's list."""
        names = ctx.attr("activations")
        names = list(self.default_funcs) * dirs if names is None else list(names)
        if len(names) == self.n_funcs and dirs == 2:
            names = names * 2  # onnxruntime reuses one direction's list for both
        if len(names) != self.n_funcs * dirs:
            raise ctx.error(f"attribute 'activations' needs {self.n_funcs * dirs} names, got {names}")
        alphas = list(ctx.attr("activation_alpha") or [])
        betas = list(ctx.attr("activation_beta") or [])
        out = []
        for name in names:
            key = next((k for k in _FUNCS if k.lower() == str(name).lower()), None)
            if key is None:
                raise ctx.error(f"attribute 'activations': {name!r} is not supported (supported: {', '.join(_FUNCS)})")
            _, da, db = _FUNCS[key]
            a = (alphas.pop(0) if alphas else da) if da is not None else 0.0
            b = (betas.pop(0) if betas else db) if db is not None else 0.0
            out.append((key, np.float32(a), np.float32(b)))
        return out

    def infer(self, ctx):
        seq, batch, _, hidden, dirs = self.dims(ctx)
        state = ((dirs, batch, hidden), "float32")
        outs = [((seq, dirs, batch, hidden), "float32")] + [state] * (len(self.outputs) - 1)
        return outs[:max(1, len(ctx.node.outputs))]  # a node may list only its leading outputs

    def cost(self, ctx):
        """MACs: the gate matrix products, G*H*(input + H) per time step, batch item and direction (plus
        LSTM's 3*H peephole products); FLOPs: 2 per MAC plus one per gate value for bias and activation."""
        seq, batch, inp, hidden, dirs = self.dims(ctx)
        steps = seq * batch * dirs
        macs = steps * (self.gates * hidden * (inp + hidden) + self.extra_macs(ctx, hidden))
        return Cost(macs, 2 * macs + steps * self.gates * hidden * 3, self.count_params(ctx))

    def extra_macs(self, ctx, hidden: int) -> int:
        return 0

    # ---- float reference ----------------------------------------------------------------------------
    def run(self, ctx, xs):
        seq, batch, inp, hidden, dirs = self.dims(ctx)
        x = xs[0].astype(np.float32)
        g = self.gates * hidden
        b = xs[3].astype(np.float32) if xs[3:4] and xs[3] is not None else np.zeros((dirs, 2 * g), np.float32)
        lens = (np.asarray(xs[4]).astype(np.int64) if len(xs) > 4 and xs[4] is not None
                else np.full(batch, seq, np.int64))
        if np.any(lens < 0) or np.any(lens > seq):
            raise ValueError(f"sequence_lens {lens.tolist()} must lie in [0, {seq}]")
        funcs = self.funcs(ctx, dirs)
        clip = ctx.attr("clip")
        ys, finals = [], []
        for d in range(dirs):
            reverse = ctx.attr("direction") == "reverse" or d == 1
            init = [xs[i][d].astype(np.float32) if len(xs) > i and xs[i] is not None
                    else np.zeros((batch, hidden), np.float32) for i in self.state_inputs]
            y, last = self.direction(ctx, x, xs, d, b[d, :g], b[d, g:], init, lens, reverse,
                                     funcs[d * self.n_funcs:(d + 1) * self.n_funcs], clip)
            ys.append(y)
            finals.append(last)
        out = [np.stack(ys, axis=1).astype(np.float32)]
        for k in range(len(self.outputs) - 1):
            out.append(np.stack([f[k] for f in finals]).astype(np.float32))
        return out[:max(1, len(ctx.node.outputs))] + self.new_state(ctx, xs, out[1:])

    # The initial states (initial_h [, initial_c]) are the op's state inputs (engine/state.py): after its
    # outputs, `run` returns their new values. Only a variable tensor (TFLite's LSTM state) takes the final
    # state; any other initial state (an ONNX input or constant) gets its own value back, so it stays as it is.
    state_inputs: tuple[int, ...] = (5,)

    def new_state(self, ctx, xs, finals) -> list:
        out = []
        for k, i in enumerate(self.state_inputs):
            t = ctx.ins[i] if i < len(ctx.ins) else None
            if t is not None and t.meta.get("variable"):
                out.append(finals[k].astype(np.float32))
            else:
                out.append(xs[i] if i < len(xs) else None)
        return out

    def direction(self, ctx, x, xs, d, wb, rb, init, lens, reverse, funcs, clip):
        """Runs one direction; returns Y (seq, batch, H), zero past each sequence's length, and its final
        states. Steps past a sequence's length leave its state untouched."""
        w, r = xs[1][d].astype(np.float32), xs[2][d].astype(np.float32)
        p = xs[7][d].astype(np.float32) if len(xs) > 7 and xs[7] is not None else None
        state = [s.copy() for s in init]
        y = np.zeros((x.shape[0], x.shape[1], r.shape[1]), np.float32)
        order = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
        for t in order:
            live = (t < lens)[:, None]
            new = self.step(ctx, x[t] @ w.T + wb, state, r, rb, p, funcs, clip)
            state = [np.where(live, n, s).astype(np.float32) for n, s in zip(new, state)]
            y[t] = np.where(live, state[0], 0)
        return y, state

    def step(self, ctx, xw, state, r, rb, p, funcs, clip):
        raise NotImplementedError


def _clip(v, clip):
    return v if clip is None else np.clip(v, -clip, clip)


def _act(fab, v):
    name, a, b = fab
    return _FUNCS[name][0](v, a, b).astype(np.float32)


@register
class RNN(_Recurrent):
    name = "RNN"
    attrs = dict(_Recurrent.base_attrs)
    doc = "Simple recurrence Ht = f(Xt*W' + Ht-1*R' + Wb + Rb), ONNX RNN (time-major)."

    def step(self, ctx, xw, state, r, rb, p, funcs, clip):
        return [_act(funcs[0], _clip(xw + state[0] @ r.T + rb, clip))]


@register
class GRU(_Recurrent):
    name = "GRU"
    gates, n_funcs, default_funcs = 3, 2, ("Sigmoid", "Tanh")
    attrs = {**_Recurrent.base_attrs, "linear_before_reset": Attr("int", 0, (0, 1))}
    doc = "Gated recurrent unit, ONNX GRU (gates z, r, h; time-major)."

    def step(self, ctx, xw, state, r, rb, p, funcs, clip):
        h = state[0]
        n = r.shape[1]
        hr = h @ r[:2 * n].T + rb[:2 * n]
        z = _act(funcs[0], _clip(xw[:, :n] + hr[:, :n], clip))
        rr = _act(funcs[0], _clip(xw[:, n:2 * n] + hr[:, n:], clip))
        if ctx.attr("linear_before_reset"):
            cand = xw[:, 2 * n:] + rr * (h @ r[2 * n:].T + rb[2 * n:])
        else:
            cand = xw[:, 2 * n:] + (rr * h) @ r[2 * n:].T + rb[2 * n:]
        ht = _act(funcs[1], _clip(cand, clip))
        return [(1 - z) * ht + z * h]


@register
class LSTM(_Recurrent):
    name = "LSTM"
    gates, n_funcs, default_funcs = 4, 3, ("Sigmoid", "Tanh", "Tanh")
    inputs = ("X", "W", "R", "B?", "sequence_lens?", "initial_h?", "initial_c?", "P?")
    outputs = ("Y", "Y_h", "Y_c")
    param_inputs = (1, 2, 3, 7)
    state_inputs = (5, 6)
    float_only = ""  # tflite-micro's int8 form: engine/int8/lstm.py, templates/ts_lstm_ref.c
    # cell_clip: TFLite's bound on the cell state after each update (0: none); not an ONNX attribute.
    attrs = {**_Recurrent.base_attrs, "input_forget": Attr("int", 0, (0, 1)), "cell_clip": Attr("float", 0.0)}
    doc = ("Long short-term memory, ONNX LSTM (gates i, o, f, c; peepholes P = [i, o, f]; time-major); "
           "TFLite UNIDIRECTIONAL_SEQUENCE_LSTM maps onto it.")

    def extra_macs(self, ctx, hidden):
        return 3 * hidden if len(ctx.ins) > 7 and ctx.has(7) else 0

    def kernel_buffer_bytes(self, ctx):
        """The int8 kernel's four int16 gate vectors of one step (a static buffer in its layer function,
        engine/codegen/emit_recurrent.py)."""
        x = ctx.ins[0]
        if x is None or x.dtype != "int8":
            return 0
        _, batch, _, hidden, _ = self.dims(ctx)
        return 4 * batch * hidden * 2

    def step(self, ctx, xw, state, r, rb, p, funcs, clip):
        h, c = state
        n = r.shape[1]
        v = xw + h @ r.T + rb
        pi, po, pf = (p[:n], p[n:2 * n], p[2 * n:]) if p is not None else (0, 0, 0)
        i = _act(funcs[0], _clip(v[:, :n] + pi * c, clip))
        # input_forget couples the gates as onnxruntime does: f = 1 - i
        f = 1 - i if ctx.attr("input_forget") else _act(funcs[0], _clip(v[:, 2 * n:3 * n] + pf * c, clip))
        g = _act(funcs[1], _clip(v[:, 3 * n:], clip))
        c_new = f * c + i * g
        cell_clip = ctx.attr("cell_clip")
        if cell_clip and cell_clip > 0:
            c_new = np.clip(c_new, -np.float32(cell_clip), np.float32(cell_clip))
        o = _act(funcs[0], _clip(v[:, n:2 * n] + po * c_new, clip))
        return [o * _act(funcs[2], c_new), c_new.astype(np.float32)]
