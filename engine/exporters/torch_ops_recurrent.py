"""PyTorch planners for the recurrent ops (LSTM, GRU, RNN; engine/ops/recurrent.py): the same time-major
recurrence as the numpy reference, written with torch calls so the weights train. Each call starts from the
given initial state (the module is a pure function; streaming state is the executors' business)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.exporters.torch_ops_nn import plans

_TORCH = {
    "Sigmoid": lambda x, a, b: torch.sigmoid(x), "Tanh": lambda x, a, b: torch.tanh(x),
    "Relu": lambda x, a, b: F.relu(x), "HardSigmoid": lambda x, a, b: torch.clamp(a * x + b, 0.0, 1.0),
    "LeakyRelu": lambda x, a, b: torch.where(x >= 0, x, a * x),
    "ThresholdedRelu": lambda x, a, b: torch.where(x > a, x, torch.zeros_like(x)),
    "ScaledTanh": lambda x, a, b: a * torch.tanh(b * x), "Affine": lambda x, a, b: a * x + b,
    "Elu": lambda x, a, b: torch.where(x >= 0, x, a * (torch.exp(x) - 1)),
    "Softsign": lambda x, a, b: x / (1 + torch.abs(x)), "Softplus": lambda x, a, b: F.softplus(x),
}


def _cell(op: str, ctx):
    """step(xw, states, r, rb, p, funcs) -> new states, for one time step of one direction."""
    clip = ctx.attr("clip")

    def act(fab, v):
        return _TORCH[fab[0]](v if clip is None else torch.clamp(v, -clip, clip), float(fab[1]), float(fab[2]))

    if op == "RNN":
        return lambda xw, st, r, rb, p, fs: [act(fs[0], xw + st[0] @ r.T + rb)]
    if op == "GRU":
        lbr = ctx.attr("linear_before_reset")

        def gru(xw, st, r, rb, p, fs):
            h, n = st[0], r.shape[1]
            hr = h @ r[:2 * n].T + rb[:2 * n]
            z, rr = act(fs[0], xw[:, :n] + hr[:, :n]), act(fs[0], xw[:, n:2 * n] + hr[:, n:])
            cand = (xw[:, 2 * n:] + rr * (h @ r[2 * n:].T + rb[2 * n:]) if lbr
                    else xw[:, 2 * n:] + (rr * h) @ r[2 * n:].T + rb[2 * n:])
            ht = act(fs[1], cand)
            return [(1 - z) * ht + z * h]
        return gru
    coupled, cell_clip = ctx.attr("input_forget"), ctx.attr("cell_clip")

    def lstm(xw, st, r, rb, p, fs):
        (h, c), n = st, r.shape[1]
        v = xw + h @ r.T + rb
        pi, po, pf = (p[:n], p[n:2 * n], p[2 * n:]) if p is not None else (0, 0, 0)
        i = act(fs[0], v[:, :n] + pi * c)
        f = 1 - i if coupled else act(fs[0], v[:, 2 * n:3 * n] + pf * c)
        c = f * c + i * act(fs[1], v[:, 3 * n:])
        if cell_clip and cell_clip > 0:
            c = torch.clamp(c, -cell_clip, cell_clip)
        o = act(fs[0], v[:, n:2 * n] + po * c)
        return [o * _TORCH[fs[2][0]](c, float(fs[2][1]), float(fs[2][2])), c]
    return lstm


def _recurrent(ctx):
    op = ctx.op
    seq, batch, _, hidden, dirs = op.dims(ctx)
    funcs, cell = op.funcs(ctx, dirs), _cell(op.name, ctx)
    reverse_all, n_out = ctx.attr("direction") == "reverse", max(1, len(ctx.node.outputs))
    g = op.gates * hidden

    def step(xs, mod):
        x = xs[0]
        lens = xs[4].long() if len(xs) > 4 and xs[4] is not None else torch.full((batch,), seq, dtype=torch.long)
        ys, finals = [], []
        for d in range(dirs):
            w, r = xs[1][d], xs[2][d]
            b = xs[3][d] if len(xs) > 3 and xs[3] is not None else torch.zeros(2 * g, dtype=x.dtype)
            p = xs[7][d] if len(xs) > 7 and xs[7] is not None else None
            st = [xs[i][d] if len(xs) > i and xs[i] is not None else torch.zeros(batch, hidden, dtype=x.dtype)
                  for i in op.state_inputs]
            out = [None] * seq
            order = range(seq - 1, -1, -1) if reverse_all or d == 1 else range(seq)
            for t in order:
                live = (t < lens).unsqueeze(1)
                new = cell(x[t] @ w.T + b[:g], st, r, b[g:], p, funcs[d * op.n_funcs:(d + 1) * op.n_funcs])
                st = [torch.where(live, a, s) for a, s in zip(new, st)]
                out[t] = torch.where(live, st[0], torch.zeros_like(st[0]))
            ys.append(torch.stack(out))
            finals.append(st)
        res = [torch.stack(ys, dim=1)] + [torch.stack([f[k] for f in finals]) for k in range(len(op.outputs) - 1)]
        return res[:n_out]
    return step


for _op in ("LSTM", "GRU", "RNN"):
    plans(_op)(_recurrent)
