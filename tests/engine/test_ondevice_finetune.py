"""The on-device fine-tuning reference (engine/ondevice/finetune.py) against torch.optim.SGD, its int8-domain /
QAS scaling against the closed form, its frozen-prefix cache against a full forward, and the planner's probe
cache and noise test. A 64-32-16-10 MLP on digits keeps it to a few seconds."""
import math

import numpy as np
import pytest
import torch

from engine.ondevice import sparse
from engine.ondevice.finetune import FinetuneOptions, Finetuner


@pytest.fixture(scope="module")
def digits():
    import dataclasses

    from engine.data import load_dataset
    d = load_dataset("digits")  # as 64 features: the MLP's input
    return dataclasses.replace(d, x_train=d.x_train.reshape(-1, 64), x_val=d.x_val.reshape(-1, 64), input_shape=(64,))


@pytest.fixture(scope="module")
def mlp():
    from engine.zoo.layers import Net, activation, linear

    net = Net("mlp", seed=0)
    x = net.input((1, 64))
    h = activation(net, linear(net, x, 32, name="fc1", gain=2.0), "relu")
    h = activation(net, linear(net, h, 16, name="fc2", gain=2.0), "relu")
    return net.build(linear(net, h, 10, name="fc3"))


def _wb(ft, layer):
    n = ft.nodes[layer]
    return n.inputs[1], n.inputs[2]


def test_sgd_with_momentum_and_channel_fraction_equals_torch_optim(mlp, digits):
    from engine.exporters.torch_export import GraphModule
    from engine.train.graphs import to_layout

    opt = FinetuneOptions(steps=4, batch=8, lr=0.1, momentum=0.9)
    ft = Finetuner(mlp, digits, opt)
    ft.run({"fc2": 0.5, "fc3": 1.0})
    # the reference: the whole graph forward, torch's SGD, the first 8 of fc2's 16 output channels masked in
    ref = GraphModule(ft.view)
    ref.load_state_dict(ft.start)
    names = [*_wb(ft, "fc2"), *_wb(ft, "fc3")]
    params = [ref.tensor(t) for t in names]
    for p in ref.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    masks = []
    for t, p in zip(names[:2], params[:2]):
        m = torch.zeros_like(p)
        axis = list(p.shape).index(16)
        m.narrow(axis, 0, 8).fill_(1.0)
        masks.append(m)
    sgd = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    y = torch.from_numpy(digits.y_train).long()
    for s in range(4):
        idx = ft.order[s * 8:(s + 1) * 8]
        out = ref(to_layout(ft.view, torch.from_numpy(digits.x_train[idx])))
        out = out[0] if isinstance(out, (tuple, list)) else out
        sgd.zero_grad()
        torch.nn.functional.cross_entropy(out.reshape(8, -1), y[idx]).backward()
        for p, m in zip(params[:2], masks):
            p.grad.mul_(m)
        sgd.step()
    for t, p in zip(names, params):
        assert torch.allclose(ft.module.tensor(t), p, rtol=1e-5, atol=1e-6), t
    w2 = ft.module.tensor(names[0]).detach() - ft.start[ft.module.tensor_keys[names[0]]]
    changed = (w2.abs().sum(dim=[d for d in range(2) if w2.shape[d] != 16]) > 0).nonzero().flatten().tolist()
    assert len(changed) >= 4 and max(changed) < 8   # only the first half of the channels (a dead ReLU may not move)


def test_int8_domain_step_is_s_squared_smaller_without_qas_and_equal_with_it(mlp, digits):
    deltas = {}
    for name, o in (("float", FinetuneOptions(steps=1, batch=16, lr=0.5)),
                    ("noqas", FinetuneOptions(steps=1, batch=16, lr=0.5, weights="int8", qas=False)),
                    ("qas", FinetuneOptions(steps=1, batch=16, lr=0.5, weights="int8", qas=True))):
        ft = Finetuner(mlp, digits, o)
        ft.run({"fc3": 1.0})
        w, b = _wb(ft, "fc3")
        deltas[name] = [(ft.module.tensor(t) - ft.start[ft.module.tensor_keys[t]]).detach() for t in (w, b)]
        start_w, axis, s_x = ft.start[ft.module.tensor_keys[w]], ft.axes[w], ft.in_scale["fc3"]
    s_w = start_w.abs().amax(dim=1 - axis) / 127.0          # per output channel, as the deployed int8 weights
    shape = [1, 1]
    shape[axis] = -1
    (dw, db), (nw, nb), (qw, qb) = deltas["float"], deltas["noqas"], deltas["qas"]
    assert dw.abs().max() > 0 and 0 < s_x < 1
    # the float32 weights (|W| < 1) resolve about 6e-8: the stalled updates (~1e-6, ~1e-10) are checked to that
    assert torch.allclose(nw, dw * s_w.reshape(shape) ** 2, rtol=1e-3, atol=6e-8)
    assert nw.abs().max() < 1e-3 * dw.abs().max()
    assert torch.allclose(nb, db * (s_w * s_x) ** 2, rtol=1e-3, atol=6e-8)
    assert torch.allclose(qw, dw, rtol=1e-4, atol=1e-9) and torch.allclose(qb, db, rtol=1e-4, atol=1e-9)


def test_frozen_prefix_cache_gives_the_full_forward_accuracy(mlp, digits):
    ft = Finetuner(mlp, digits, FinetuneOptions(steps=20, batch=16, lr=0.2))
    acc = ft.run({"fc3": 1.0})                   # runs from fc3's input, computed once
    pred = ft.last_predictions.copy()
    assert ft.first_step(ft.trainable({"fc3": 1.0}, ())) > 0
    assert ft.accuracy() == pytest.approx(acc)   # the whole graph on the updated weights
    assert acc == pytest.approx(float((pred == ft.yv).mean()))
    ft.run({}, bias_only=("fc1", "fc2", "fc3"))     # biases change, weights do not
    for layer in ("fc1", "fc2", "fc3"):
        w, b = _wb(ft, layer)
        assert torch.equal(ft.module.tensor(w), ft.start[ft.module.tensor_keys[w]])
        assert not torch.equal(ft.module.tensor(b), ft.start[ft.module.tensor_keys[b]])


def test_mcnemar_z():
    y = np.zeros(10, dtype=int)
    a = np.array([0] * 5 + [1] * 5)
    b = np.array([0] * 8 + [1] * 2)              # 3 wins, 0 losses
    assert sparse.mcnemar_z(a, b, y) == pytest.approx(3 / math.sqrt(3))
    assert sparse.mcnemar_z(b, a, y) == pytest.approx(-3 / math.sqrt(3)) and sparse.mcnemar_z(a, a, y) == 0.0


def test_probes_are_cached_and_only_significant_gains_count(mlp, digits, tmp_path, monkeypatch):
    monkeypatch.setattr(sparse, "cache_dir", lambda: tmp_path)
    kw = dict(fractions=(0.5, 1.0), candidates=2, options=FinetuneOptions(steps=15, batch=16, lr=0.2))
    r = sparse.plan_sparse(mlp, 1 << 20, digits, **kw)
    assert not r.cached and len(r.probes) == 4 and len(list(tmp_path.glob("*.json"))) == 1
    for p in r.probes:
        assert p.significant == (p.gain > 0 and p.z >= 1.0)
    chosen = [p for p in r.probes if p.layer in r.plan.layers[:-1] and p.fraction == r.plan.fraction(p.layer)]
    assert all(p.significant for p in chosen)
    assert r.predicted_accuracy == pytest.approx(min(1.0, r.baseline_accuracy + sum(p.gain for p in chosen)))
    again = sparse.plan_sparse(mlp, 1 << 20, digits, **kw)
    assert again.cached and again.probes == r.probes and again.plan == r.plan
    # another probe budget is another entry; the stricter noise test chooses a subset
    strict = sparse.plan_sparse(mlp, 1 << 20, digits, min_z=99.0, **kw)
    assert strict.cached and strict.plan.layers == (r.plan.layers[-1],) and strict.predicted_gain == 0.0
