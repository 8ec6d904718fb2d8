"""Training-free proxies (engine.search.proxies): NASWOT against a numpy computation of the same kernel from
engine.execute.run_graph's activations, synflow against its closed form on a two-layer network, determinism,
finiteness, sanity orderings (dead ReLUs, identical samples, width), speed and bad input."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest

from engine.errors import TinyStudioError
from engine.execute import run_graph
from engine.ir import Tensor
from engine.search.proxies import PROXIES, score
from engine.zoo import build_zoo_model
from engine.zoo.layers import Net, activation, linear


@pytest.fixture(scope="module")
def batch():
    return np.random.default_rng(0).normal(size=(32, 1, 49, 10)).astype(np.float32)


def dscnn(**params):
    q = "&".join(f"{k}={v}" for k, v in params.items())
    return build_zoo_model("zoo:kws_dscnn" + (f"?{q}" if q else ""))


def test_naswot_equals_the_hamming_kernel_of_the_relu_codes(batch):
    g = dscnn(filters=16, blocks=2, bn="false")  # no BN: batch and running statistics cannot differ
    relus = [n.outputs[0] for n in g.nodes if n.op == "Relu"]
    assert len(relus) == 5
    codes = []
    for x in batch:
        acts = run_graph(g, {g.inputs[0]: x[None]}, outputs=relus)
        codes.append(np.concatenate([(acts[r] > 0).ravel() for r in relus]))
    c = np.asarray(codes, np.int64)
    d = c.shape[1]
    hamming = (c[:, None, :] != c[None, :, :]).sum(-1)
    k = d - hamming  # Mellor et al.: K_H = N_A - d_H
    want = np.linalg.slogdet(k.astype(np.float64) + np.eye(len(c)))[1]
    got = score(g, batch, "naswot")
    assert got == pytest.approx(want, rel=1e-9, abs=1e-6), (got, want)


def test_synflow_equals_its_closed_form_on_a_two_layer_network():
    net = Net("mlp", 3)
    x = net.input((1, 6))
    # gain 100: hidden units of ~20 would saturate ReLU6 and stop fc1's gradient; synflow counts ReLU6 as ReLU
    y = linear(net, activation(net, linear(net, x, 5, name="fc1", gain=100.0), "relu6"), 4, name="fc2")
    g = net.build(y)
    w1, b1 = np.abs(g.tensors["fc1_W"].data.astype(np.float64)), np.abs(g.tensors["fc1_B"].data.astype(np.float64))
    w2 = np.abs(g.tensors["fc2_W"].data.astype(np.float64))  # (out, in): Gemm transB=1
    a = w1 @ np.ones(6) + b1  # hidden activations with all-positive weights and an all-ones input
    assert a.min() > 6
    c = np.ones(4) @ w2  # dR/dh
    want = float(np.ones(4) @ w2 @ a + c @ w1 @ np.ones(6))  # sum |W2 * dR/dW2| + sum |W1 * dR/dW1|
    got = score(g, np.zeros((2, 6), np.float32), "synflow")
    assert got == pytest.approx(math.log(want), rel=1e-9), (got, math.log(want))


def test_deterministic_and_finite(batch):
    g = dscnn(filters=16, blocks=2)
    for kind in PROXIES:
        a, b = score(g, batch, kind), score(g, batch.copy(), kind)
        assert a == b and math.isfinite(a), (kind, a, b)


def _dead(g):
    """conv1's bias pushed far below zero: every ReLU after it outputs 0 for these inputs."""
    g = g.copy()
    t = g.tensors["conv1_B"]
    g.tensors["conv1_B"] = Tensor(t.name, t.shape, t.dtype, None, np.full(t.shape, -1e4, np.float32))
    return g


def test_sanity_orderings(batch):
    healthy = dscnn(filters=16, blocks=2, bn="false")
    dead = _dead(healthy)
    h = score(healthy, batch, "naswot")
    # dead ReLUs: every sample has the same (all-zero) code, the kernel has rank 1
    assert score(dead, batch, "naswot") < h - 100
    # identical samples: identical codes, whatever the network
    same = np.repeat(batch[:1], len(batch), axis=0)
    assert score(healthy, same, "naswot") < h - 100
    # wider and deeper networks of the same family score higher on both proxies
    for kind in PROXIES:
        small, mid, big = (score(dscnn(filters=f, blocks=b), batch, kind) for f, b in ((8, 1), (16, 2), (64, 4)))
        assert small < mid < big, (kind, small, mid, big)
    # a layer of zeros cuts the paths through it: the layers before it no longer count; zeros in the last
    # layer cut every path and synflow hits its floor
    s = score(healthy, batch, "synflow")
    assert score(_zeroed(healthy, "block1_pw_W"), batch, "synflow") < s - 1
    assert score(_zeroed(healthy, "fc_W"), batch, "synflow") < -600


def _zeroed(g, name):
    g = g.copy()
    t = g.tensors[name]
    g.tensors[name] = Tensor(t.name, t.shape, t.dtype, None, np.zeros(t.shape, np.float32))
    return g


def test_cheap_on_cpu(batch):
    g = dscnn()  # the full MLPerf KWS DS-CNN, 2.7 M MACs
    score(g, batch[:8], "naswot")  # first call pays for torch's lazy initialisation
    for kind in PROXIES:
        t = time.perf_counter()
        score(g, batch, kind)
        assert time.perf_counter() - t < 1.0, kind


def test_bad_input_is_one_line(batch):
    g = dscnn(filters=8, blocks=1)
    cases = [(dict(kind="grad_norm"), "unknown proxy 'grad_norm'; proxies: naswot, synflow"),
             (dict(batch=batch[:1]), "2..256 samples"),
             (dict(batch=np.zeros((4, 1, 8, 8), np.float32)), "[1, 49, 10]"),
             (dict(batch=np.full((4, 1, 49, 10), np.nan, np.float32)), "NaN")]
    for over, words in cases:
        args = {"batch": batch, "kind": "naswot", **over}
        with pytest.raises(TinyStudioError) as e:
            score(g, **args)
        assert words in str(e.value) and "\n" not in str(e.value), str(e.value)
    lenet = build_zoo_model("zoo:lenet5?act=tanh")
    with pytest.raises(TinyStudioError, match="no ReLU activations"):
        score(lenet, np.zeros((4, 1, 32, 32), np.float32), "naswot")
