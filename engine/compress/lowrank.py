"""low-rank: factorize conv/FC weights into thinner layers, then fine-tune.

- Fully connected W (N, K) and 1x1 conv W (M, C): truncated SVD W ~ U_r S_r V_r^T becomes two layers,
  x -> V_r^T (r x K, no bias) -> U_r S_r (N x r, the original bias and activation). sqrt(S) is split
  between the two so both factors have the same scale (int8 per-channel quantization likes that).
- KxK conv W (M, C, kh, kw): Tucker-2 over the channel modes (Kim et al. 2016), computed by HOSVD
  (leading singular vectors of the mode-0 and mode-1 unfoldings) plus a few HOOI sweeps:
  W ~ core x0 U_out x1 U_in, i.e. 1x1 conv C -> r_in, the KxK core r_in -> r_out with the original
  stride, pads and dilation, and 1x1 conv r_out -> M with the bias and activation.
- Grouped and depthwise convs are left alone (nothing to factor across channels).

Ranks: target=energy keeps, per mode, the fewest singular values whose squared sum reaches `energy` of the
total; target=weights bisects one energy level for all layers until the conv/FC weight count is at most
`keep` x the original. A layer is only replaced when its factors have fewer weights than it had.
"""
from __future__ import annotations

import numpy as np

from engine.compress.base import Action, ActionContext, CompressError, Param, is_quantized_graph
from engine.compress.quantize import train_json
from engine.ir import Graph, Node, Tensor
from engine.ops import ops_where
from engine.passes.base import fresh_name

# The MAC layers (conv and fully connected cost kinds): their input 1 is the weight tensor.
MAC_LAYERS = ops_where(lambda op: op.cost_kind in ("conv", "fc"))


# ---- the factorizations (numpy only) ---------------------------------------------------------------------

def rank_for_energy(s: np.ndarray, energy: float) -> int:
    """Fewest leading singular values whose squares sum to at least `energy` of the total (at least 1)."""
    e = np.asarray(s, np.float64) ** 2
    total = e.sum()
    if total <= 0:
        return 1
    return int(min(len(s), max(1, np.searchsorted(np.cumsum(e) / total, energy - 1e-12) + 1)))


def svd_factors(w: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """W (N, K) ~ A (N, r) @ B (r, K), the best rank-r approximation (Eckart-Young)."""
    u, s, vt = np.linalg.svd(np.asarray(w, np.float64), full_matrices=False)
    r = max(1, min(rank, len(s)))
    root = np.sqrt(s[:r])
    return u[:, :r] * root, root[:, None] * vt[:r]


def _leading(mat: np.ndarray, r: int) -> np.ndarray:
    u, _, _ = np.linalg.svd(mat, full_matrices=False)
    return u[:, :r]


def tucker2(w: np.ndarray, r_out: int, r_in: int, sweeps: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """W (M, C, k...) ~ core (r_out, r_in, k...) x0 U_out (M, r_out) x1 U_in (C, r_in); HOSVD + HOOI sweeps."""
    w = np.asarray(w, np.float64)
    m, c = w.shape[:2]
    w3 = w.reshape(m, c, -1)  # (M, C, S): any number of spatial dims
    r_out, r_in = max(1, min(r_out, m)), max(1, min(r_in, c))
    u_in = _leading(np.moveaxis(w3, 1, 0).reshape(c, -1), r_in)
    u_out = _leading(w3.reshape(m, -1), r_out)
    for _ in range(sweeps):  # HOOI: each factor from W projected on the other
        u_out = _leading(np.einsum("mcs,cr->mrs", w3, u_in).reshape(m, -1), r_out)
        u_in = _leading(np.moveaxis(np.einsum("mcs,mq->qcs", w3, u_out), 1, 0).reshape(c, -1), r_in)
    core = np.einsum("mcs,mq,cr->qrs", w3, u_out, u_in)
    return core.reshape(r_out, r_in, *w.shape[2:]), u_out, u_in


def tucker2_reconstruct(core: np.ndarray, u_out: np.ndarray, u_in: np.ndarray) -> np.ndarray:
    q, r = core.shape[:2]
    w3 = np.einsum("qrs,mq,cr->mcs", core.reshape(q, r, -1), u_out, u_in)
    return w3.reshape(u_out.shape[0], u_in.shape[0], *core.shape[2:])


def mode_spectra(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Singular values of the output-channel and input-channel unfoldings of a conv weight (M, C, ...)."""
    m, c = w.shape[:2]
    s_out = np.linalg.svd(w.reshape(m, -1).astype(np.float64), compute_uv=False)
    s_in = np.linalg.svd(np.moveaxis(w, 1, 0).reshape(c, -1).astype(np.float64), compute_uv=False)
    return s_out, s_in


# ---- planning and surgery ------------------------------------------------------------------------------

def _nchw_weight(node: Node, w: np.ndarray) -> np.ndarray:
    """Conv weight as (M, C, k...) whatever the layout; Gemm as (N, K)."""
    if node.op == "Gemm":
        return w if node.attrs.get("transB", 0) else w.T
    return w if node.attrs.get("layout", "NCHW") == "NCHW" else np.moveaxis(w, -1, 1)


def candidates(g: Graph) -> list[Node]:
    """FC layers and group-1 convs (any spatial rank) with float constant weights."""
    out = []
    for n in g.nodes:
        w = g.tensors.get(n.inputs[1]) if len(n.inputs) > 1 else None
        if w is None or w.data is None or w.dtype != "float32":
            continue
        if n.op == "Gemm" and not n.attrs.get("transA", 0) and w.data.ndim == 2:
            out.append(n)
        elif n.op == "Conv" and int(n.attrs.get("group", 1)) == 1 and w.data.ndim >= 3:
            out.append(n)
    return out


def plan_layer(node: Node, w: np.ndarray, energy: float) -> dict | None:
    """Ranks and weight counts of the factorization at this energy; None when it would not save weights."""
    wn = _nchw_weight(node, w)
    spatial = int(np.prod(wn.shape[2:], dtype=np.int64)) if wn.ndim > 2 else 1
    m, c = wn.shape[:2]
    if node.op == "Gemm" or spatial == 1:
        mat = wn.reshape(m, c)
        r = rank_for_energy(np.linalg.svd(mat.astype(np.float64), compute_uv=False), energy)
        new = r * (m + c)
        kind = "svd"
        ranks = (r,)
    else:
        s_out, s_in = mode_spectra(wn)
        r_out, r_in = rank_for_energy(s_out, energy), rank_for_energy(s_in, energy)
        new = c * r_in + r_in * r_out * spatial + r_out * m
        kind = "tucker2"
        ranks = (r_out, r_in)
    if new >= w.size:
        return None
    return {"layer": node.name, "kind": kind, "ranks": ranks, "weights_before": int(w.size), "weights_after": int(new)}


def plan(g: Graph, energy: float, kxk: bool = True) -> list[dict]:
    """Layers that get smaller at this energy (KxK convs only with kxk), with their ranks."""
    pl = [p for p in (plan_layer(n, g.tensors[n.inputs[1]].data, energy) for n in candidates(g)) if p]
    return [p for p in pl if kxk or p["kind"] == "svd"]


def total_weights(g: Graph) -> int:
    return int(sum(g.tensors[n.inputs[1]].size for n in g.nodes if n.op in MAC_LAYERS
                   and len(n.inputs) > 1 and g.tensors.get(n.inputs[1]) is not None
                   and g.tensors[n.inputs[1]].data is not None))


def _const(g: Graph, base: str, data: np.ndarray) -> str:
    name = fresh_name(g, base)
    data = np.ascontiguousarray(data, dtype=np.float32)
    g.tensors[name] = Tensor(name, data.shape, "float32", None, data)
    return name


def _mid(g: Graph, base: str) -> str:
    name = fresh_name(g, base)
    g.tensors[name] = Tensor(name, (), "float32")  # shape set by infer_shapes
    return name


def factorize(g: Graph, p: dict) -> list[str]:
    """Replace layer p["layer"] of `g` (in place) by its factors; returns the new node names."""
    node = g.node(p["layer"])
    w = g.tensors[node.inputs[1]].data.astype(np.float64)
    bias = node.inputs[2:3]
    x, y = node.inputs[0], node.outputs[0]
    at = g.nodes.index(node)
    name = node.name
    if node.op == "Gemm":
        a, b = svd_factors(_nchw_weight(node, w), p["ranks"][0])  # (N, r), (r, K)
        h = _mid(g, f"{name}_lr")
        first = Node("Gemm", fresh_name(g, f"{name}_lr_v"), [x, _const(g, f"{name}_lr_V", b)], [h], {"transB": 1})
        second = Node("Gemm", name, [h, _const(g, f"{name}_lr_U", a), *bias], [y],
                      {k: v for k, v in node.attrs.items() if k not in ("transB", "alpha", "beta")} | {"transB": 1},
                      dict(node.meta))
        if node.attrs.get("alpha", 1.0) != 1.0 or node.attrs.get("beta", 1.0) != 1.0:
            raise CompressError(f"layer '{name}': Gemm with alpha/beta != 1; run fold-bn first")
        new = [first, second]
    else:
        layout = node.attrs.get("layout", "NCHW")
        wn = _nchw_weight(node, w)
        r = wn.ndim - 2
        to_layout = (lambda a: a) if layout == "NCHW" else (lambda a: np.moveaxis(a, 1, -1))
        geometry = {k: v for k, v in node.attrs.items() if k in ("strides", "pads", "dilations", "auto_pad")}
        keep = {k: v for k, v in node.attrs.items() if k not in ("strides", "pads", "dilations", "auto_pad",
                                                                  "kernel_shape", "group")}
        ones = [1] * r
        if p["kind"] == "svd":
            m, c = wn.shape[:2]
            a, b = svd_factors(wn.reshape(m, c), p["ranks"][0])
            h = _mid(g, f"{name}_lr")
            first = Node("Conv", fresh_name(g, f"{name}_lr_v"),
                         [x, _const(g, f"{name}_lr_V", to_layout(b.reshape(b.shape + (1,) * r)))], [h],
                         {"kernel_shape": ones, "layout": layout, **geometry})
            second = Node("Conv", name, [h, _const(g, f"{name}_lr_U", to_layout(a.reshape(a.shape + (1,) * r))),
                                         *bias], [y], {**keep, "kernel_shape": ones, "layout": layout},
                          dict(node.meta))
            new = [first, second]
        else:
            core, u_out, u_in = tucker2(wn, *p["ranks"])
            h1, h2 = _mid(g, f"{name}_t1"), _mid(g, f"{name}_t2")
            n1 = Node("Conv", fresh_name(g, f"{name}_tk_in"),
                      [x, _const(g, f"{name}_tk_Uin", to_layout(u_in.T.reshape(u_in.shape[1], -1, *ones)))], [h1],
                      {"kernel_shape": ones, "layout": layout})
            n2 = Node("Conv", fresh_name(g, f"{name}_tk_core"), [h1, _const(g, f"{name}_tk_G", to_layout(core))],
                      [h2], {"kernel_shape": list(core.shape[2:]), "layout": layout, **geometry})
            n3 = Node("Conv", name, [h2, _const(g, f"{name}_tk_Uout", to_layout(u_out.reshape(*u_out.shape, *ones))),
                                     *bias], [y], {**keep, "kernel_shape": ones, "layout": layout}, dict(node.meta))
            new = [n1, n2, n3]
    g.nodes[at:at + 1] = new
    return [n.name for n in new]


def choose_energy(g: Graph, params: dict) -> tuple[float, list[dict], dict]:
    """The energy level and plan that meet the target (bisection for target=weights)."""
    kxk = params["kxk"] != "none"
    if params["target"] == "energy":
        return params["energy"], plan(g, params["energy"], kxk), {"target": "energy", "energy": params["energy"]}
    base = total_weights(g)
    goal = params["keep"] * base

    def after(e: float) -> tuple[int, list[dict]]:
        pl = plan(g, e, kxk)
        return base - sum(p["weights_before"] - p["weights_after"] for p in pl), pl
    lo, hi = 0.0, 1.0
    n_lo, pl_lo = after(lo)
    if n_lo > goal:
        return lo, pl_lo, {"target": "weights", "keep": params["keep"], "reached": False,
                           "weights_fraction": n_lo / max(base, 1)}
    for _ in range(30):  # the highest energy that still meets the goal
        mid = (lo + hi) / 2
        if after(mid)[0] <= goal:
            lo = mid
        else:
            hi = mid
    n, pl = after(lo)
    return lo, pl, {"target": "weights", "keep": params["keep"], "reached": True, "energy": lo,
                    "weights_fraction": n / max(base, 1)}


def run_lowrank(graph: Graph, params: dict, ctx: ActionContext) -> tuple[Graph, dict]:
    if is_quantized_graph(graph) or any(t.quant is not None for t in graph.tensors.values() if t.data is not None):
        raise CompressError(f"graph '{graph.name}' has quantized tensors; factorize the float graph")
    g = graph.copy()
    energy, pl, sel = choose_energy(g, params)
    if not pl:
        raise CompressError(f"low-rank: no layer of '{graph.name}' gets smaller at this target "
                            f"({sel}); lower energy / keep")
    errors = []
    for i, p in enumerate(pl):
        ctx.say(0.1 * i / len(pl), f"factorizing {p['layer']}")
        node = g.node(p["layer"])
        w = _nchw_weight(node, g.tensors[node.inputs[1]].data.astype(np.float64))
        if p["kind"] == "svd":
            m, c = w.shape[:2]
            a, b = svd_factors(w.reshape(m, c), p["ranks"][0])
            approx = a @ b
            ref = w.reshape(m, c)
        else:
            approx, ref = tucker2_reconstruct(*tucker2(w, *p["ranks"])), w
        p["relative_error"] = float(np.linalg.norm(approx - ref) / max(np.linalg.norm(ref), 1e-30))
        p["new_layers"] = factorize(g, p)
        errors.append(p)
    from engine.validate import infer_shapes
    g = infer_shapes(g)
    report = {"selection": sel, "layers": errors, "weights_before": total_weights(graph),
              "weights_after": total_weights(g)}
    if params["epochs"] > 0:
        from engine.train import train
        ctx.say(0.1, "fine-tuning the factorized graph")
        g, tr = train(g, ctx.data, epochs=params["epochs"], lr=params["lr"], seed=ctx.seed,
                      progress=ctx.sub(0.1, 0.98))
        report["training"] = train_json(tr)
    ctx.say(1.0, f"{len(pl)} layers factorized")
    return g, report


ACTION = Action("low-rank", "low-rank factorization: SVD for FC and 1x1 conv, Tucker-2 (HOSVD) for KxK conv; "
                "rank by energy kept or a target weight count; then fine-tune", {
                    "target": Param("str", "energy", "energy: keep `energy` of each spectrum; weights: reach `keep` "
                                    "x the conv/FC weights", choices=("energy", "weights")),
                    "energy": Param("float", 0.9, "fraction of squared singular values kept", min=0.0, max=1.0,
                                    min_open=True),
                    "keep": Param("float", 0.5, "target=weights: fraction of conv/FC weights to keep", min=0.0,
                                  max=1.0, min_open=True),
                    "kxk": Param("str", "tucker2", "KxK convs: tucker2, or none (SVD of FC / 1x1 only)",
                                 choices=("tucker2", "none")),
                    "epochs": Param("int", 15, "fine-tuning epochs", min=0, max=1000),
                    "lr": Param("float", 2e-3, "learning rate (Adam)", min=0.0, max=1.0, min_open=True)},
                run_lowrank, trains=True)
