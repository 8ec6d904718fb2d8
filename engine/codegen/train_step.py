"""The C training step of a deployed int8 model: `<name>_train_step(input, label, lr)`.

    tl = generate_training(graph, resolve(graph, parse_spec("last:2")), "kws")
    tl.files (added to the export bundle), tl.ram_bytes, tl.head (the trained layers, in order)

Structure. The layers before the first trained one (the frozen prefix) are an ordinary generated inference
library `<name>_fz` (engine.codegen.generate, its own static arena); the trained head, fully connected layers
to the graph's output (optionally a final Softmax, which the loss replaces), runs its int8 forward with the
same kernel as the inference library (ts_fully_connected_s8_ref) on RAM copies of its int8 weights and biases.
Backward (float32, on the dequantized int8 activations): softmax cross-entropy on the dequantized logits,
then per head layer, last to first, the fused ReLU's mask from its int8 output, dX = W^T dY with the weights
before the update, and the SGD update of the float32 copies applied at once (no dW buffer).

Requantization rule (per-step requantization on a fixed grid): after each update the trained rows are
requantized with the deployed model's own scales, wq = clamp(round(w / s_w), -127, 127) and
bq = round(b / s_b) (round half away from zero), so the forward's multipliers and shifts never change; the
float32 copies keep the small updates that the int8 grid cannot hold yet.

All buffers are static (no malloc): int8 head activations, their float32 dequantized copies, two float32
gradient vectors, and per trained layer float32 weights/biases plus their int8/int32 forward copies.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.codegen import CLibrary
from engine.codegen.cwrite import c_float, c_ident, c_struct, static_array
from engine.codegen.kernelfiles import kernel_files
from engine.errors import GraphError
from engine.int8.prepare import prepare_node
from engine.ir import Graph
from engine.validate import infer_shapes, topological_order

VIEW_OPS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity")


@dataclass(frozen=True)
class HeadLayer:
    node: str
    x: str                 # int8 input tensor
    y: str                 # int8 output tensor
    n: int                 # out features
    k: int                 # in features
    update_w: bool
    update_b: bool
    n_upd: int             # trained output channels (the first ones; channel fraction)
    relu: bool
    wq: np.ndarray         # (n, k) int8, centered
    wscale: np.ndarray     # per channel (or one) float32
    bscale: np.ndarray     # per channel float32
    bias_q: np.ndarray     # int32 (zeros when the layer has none)
    x_scale: float
    x_zp: int
    y_scale: float
    y_zp: int
    act_min: int
    act_max: int
    multiplier: np.ndarray
    shift: np.ndarray
    folded: np.ndarray     # the C kernel's bias (input zero point folded in)
    mode: int
    batches: int = 1       # a 1x1 conv: its pixels (NHWC), each a row of a fully connected layer
    conv: dict | None = None   # a KxK / strided / padded / depthwise conv: its ts_conv_params (NHWC, batch 1)
    depthwise: bool = False    # weights stored (kH, kW, M) as the depthwise kernel reads them, else (M, kH, kW, C/g)

    def dequantized(self) -> np.ndarray:
        """The float32 weights in the forward kernel's storage (per-channel scales on the output channel)."""
        w = self.wq.astype(np.float32)
        if self.wscale.size == 1:
            return (w * self.wscale[0]).astype(np.float32)
        if self.depthwise:  # (kH, kW, M)
            return (w * self.wscale.reshape(1, 1, -1)).astype(np.float32)
        return (w.reshape(self.n, -1) * self.wscale[:, None]).reshape(w.shape).astype(np.float32)

    @property
    def in_elems(self) -> int:
        c = self.conv
        return c["in_h"] * c["in_w"] * c["in_c"] if c else self.batches * self.k

    @property
    def out_elems(self) -> int:
        c = self.conv
        return c["out_h"] * c["out_w"] * c["out_c"] if c else self.batches * self.n


@dataclass(frozen=True)
class HeadPool:
    """A GlobalAveragePool in the trained part: forward by its own generated inference library `lib`."""
    node: str
    x: str
    y: str
    pixels: int
    c: int
    lib: CLibrary


@dataclass(frozen=True)
class TrainingLibrary:
    name: str
    files: dict[str, str]
    sources: tuple[str, ...]
    header: str
    head: tuple[HeadLayer, ...]
    frozen: CLibrary | None
    input_size: int
    classes: int
    ram_bytes: int          # every static buffer of the step: frozen arena + head buffers + RAM weights
    ram_parts: dict

    @property
    def params(self) -> list[tuple[str, str, int]]:
        """(layer, 'w' | 'b', count) in the order the C dumps them (<name>_train_param)."""
        out = []
        for h in self.head:
            if not isinstance(h, HeadLayer):
                continue
            if h.update_w:
                out.append((h.node, "w", h.n * h.k))
            if h.update_b:
                out.append((h.node, "b", h.n))
        return out


def _head(g: Graph, plan) -> list:
    order = topological_order(g)
    trained = set(plan.layers) | set(plan.bias_only)
    unknown = sorted(trained - {n.name for n in order})
    if unknown:
        raise GraphError(f"training plan names layer '{unknown[0]}', which the deployed int8 graph does not have")
    if not trained:
        raise GraphError("the training plan updates no layer")
    first = min(i for i, n in enumerate(order) if n.name in trained)
    head = order[first:]
    if head and head[-1].op == "Softmax":
        head = head[:-1]
    for n in head:
        if n.op not in ("Gemm", "Conv", "GlobalAveragePool", *VIEW_OPS):
            raise GraphError(f"node '{n.name}' ({n.op}) is in the trained part (from the first trained layer to "
                             "the output): the C training step trains chains of fully connected layers, convs "
                             "(KxK, depthwise) and global average pooling only; choose fewer layers")
    return order[:first], head


def _alias(g: Graph, head) -> dict:
    """Tensor -> the tensor whose bytes it shares (views do not move int8 data)."""
    alias = {}
    for n in head:
        if n.op in VIEW_OPS:
            alias[n.outputs[0]] = alias.get(n.inputs[0], n.inputs[0])
    return alias


def _layer(g: Graph, node, plan, alias) -> HeadLayer:
    r = prepare_node(g, node)
    x, y = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
    batches, conv, depthwise = 1, None, False
    if node.op == "Conv":
        if r.layout != "NHWC" or len(x.shape) != 4 or x.shape[0] != 1 or x.dtype != "int8" or y.dtype != "int8":
            raise GraphError(f"layer '{node.name}': the C training step trains NHWC int8 convs of batch 1; this one "
                             f"has layout {r.layout}, input {list(x.shape)} {x.dtype}")
        c_in = int(x.shape[3])
        depthwise = r.group > 1 and r.group == c_in and int(r.centered.shape[-1]) == 1
        if not (tuple(r.kernel) == (1, 1) and tuple(r.strides) == (1, 1) and not any(r.pads) and r.group == 1):
            conv = {"batches": 1, "in_h": int(x.shape[1]), "in_w": int(x.shape[2]), "in_c": c_in,
                    "out_h": int(r.out_hw[0]), "out_w": int(r.out_hw[1]), "out_c": int(r.centered.shape[0]),
                    "k_h": int(r.kernel[0]), "k_w": int(r.kernel[1]), "stride_h": int(r.strides[0]),
                    "stride_w": int(r.strides[1]), "dil_h": int(r.dilations[0]), "dil_w": int(r.dilations[1]),
                    "pad_top": int(r.pads[0]), "pad_left": int(r.pads[1]), "groups": int(r.group),
                    "input_offset": -int(x.quant.zero_point[0]), "output_offset": int(r.y_zp),
                    "act_min": int(r.act_min), "act_max": int(r.act_max)}
        batches = int(x.shape[1] * x.shape[2]) if conv is None else int(r.out_hw[0] * r.out_hw[1])
    elif len(x.shape) != 2 or x.shape[0] != 1 or x.dtype != "int8" or y.dtype != "int8":
        raise GraphError(f"layer '{node.name}': the C training step takes batch-1 int8 fully connected layers, "
                         f"got input {list(x.shape)} {x.dtype}")
    act = node.attrs.get("activation", "none") or "none"
    if act not in ("none", "relu"):
        raise GraphError(f"layer '{node.name}': fused activation '{act}' has no backward in the C training step "
                         "(relu or none)")
    w = g.tensors[node.inputs[1]]
    n = int(r.centered.shape[0])
    k = int(np.prod(r.centered.shape[1:])) if conv else int(x.shape[-1])
    wscale = np.asarray(w.quant.scale, np.float32).reshape(-1)
    xs, xz = float(x.quant.scale[0]), int(x.quant.zero_point[0])
    has_b = len(node.inputs) > 2 and bool(node.inputs[2])
    if has_b:
        bt = g.tensors[node.inputs[2]]
        bias_q = np.asarray(bt.data, np.int64).reshape(-1)
        bscale = np.broadcast_to(np.asarray(bt.quant.scale, np.float32).reshape(-1), (n,)).astype(np.float32)
    else:
        bias_q = np.zeros(n, np.int64)
        bscale = (np.float32(xs) * np.broadcast_to(wscale, (n,))).astype(np.float32)
    wq = np.asarray(r.centered, np.int64).reshape(n, k)
    folded = bias_q - xz * wq.sum(axis=1)
    # the FC kernel's bias has the input zero point folded in; the conv kernel's is the plain bias (it adds the
    # input offset itself): the head runs a 1x1 conv with the FC kernel, so it gets the folded form too; a KxK
    # conv runs the conv kernels, so it keeps the plain bias
    if conv:
        folded = bias_q
        if depthwise:  # the depthwise kernel's storage: (kH, kW, M)
            wq = np.asarray(r.centered, np.int64)[..., 0].transpose(1, 2, 0)
    if not np.array_equal(folded if node.op == "Gemm" else bias_q, np.asarray(r.dsp.bias, np.int64)) or np.abs(wq).max(initial=0) > 127:
        raise GraphError(f"layer '{node.name}': its int8 constants are not the plain symmetric-weight form the "
                         "training step requantizes (dead channels or asymmetric weights)")
    trained_w = node.name in plan.layers
    frac = plan.channel_fraction.get(node.name, 1.0) if trained_w else 1.0
    return HeadLayer(node.name, alias.get(x.name, x.name), y.name, n, k, trained_w,
                     trained_w or node.name in plan.bias_only, max(1, math.ceil(frac * n)) if trained_w else n,
                     act == "relu", wq.astype(np.int8), wscale, bscale, bias_q.astype(np.int32), xs, xz,
                     float(y.quant.scale[0]), int(y.quant.zero_point[0]), int(r.act_min), int(r.act_max),
                     np.asarray(r.dsp.multiplier, np.int32), np.asarray(r.dsp.shift, np.int8), folded.astype(np.int32),
                     int(r.dsp.mode), batches, conv, depthwise)


def _pool(g: Graph, node, alias, name: str) -> HeadPool:
    from engine.codegen.generate import generate

    x, y = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
    if node.attrs.get("layout") != "NHWC" or len(x.shape) != 4 or x.shape[0] != 1 or x.dtype != "int8":
        raise GraphError(f"node '{node.name}': the C training step takes NHWC int8 global average pooling")
    sub = Graph(f"{g.name}_{node.name}", [node], {t: g.tensors[t] for t in (*node.inputs, *node.outputs) if t},
                [node.inputs[0]], [node.outputs[0]], {})
    return HeadPool(node.name, alias.get(x.name, x.name), y.name, int(x.shape[1] * x.shape[2]), int(x.shape[3]),
                    generate(sub, name))


def _prefix_graph(g: Graph, nodes, out: str) -> Graph:
    used = {t for n in nodes for t in (*n.inputs, *n.outputs) if t}
    tensors = {k: v for k, v in g.tensors.items() if k in used}
    return Graph(f"{g.name}_frozen", list(nodes), tensors, list(g.inputs), [out], dict(g.meta))


def _first_trained(head) -> int:
    return min(i for i, h in enumerate(head) if isinstance(h, HeadLayer) and (h.update_w or h.update_b))


def _gradient_buffers(head, classes: int) -> tuple[int, int]:
    """Floats of the two gradient buffers the backward alternates between (dY in one, dX into the other, then
    swap), each sized by the largest gradient that lands in it; the first trained layer computes no dX."""
    sizes, cur = [classes, 0], 0
    first = _first_trained(head)
    for i in range(len(head) - 1, first - 1, -1):
        h = head[i]
        out_n, in_n = (h.c, h.pixels * h.c) if isinstance(h, HeadPool) else (h.out_elems, h.in_elems)
        sizes[cur] = max(sizes[cur], out_n)
        if i > first:
            sizes[1 - cur] = max(sizes[1 - cur], in_n)
            cur = 1 - cur
    return sizes[0], sizes[1]


def generate_training(graph: Graph, plan, name: str = "model") -> TrainingLibrary:
    """The training library of `graph` (int8 as deployed) for the UpdatePlan `plan`; GraphError names the layer
    or node the C training step cannot handle."""
    from engine.codegen.generate import generate, template
    from engine.int8.dsp_requant import REQUANT_FIELD

    g = graph if all(o in graph.tensors for n in graph.nodes for o in n.outputs) else infer_shapes(graph)
    prefix_nodes, head_nodes = _head(g, plan)
    alias = _alias(g, head_nodes)
    p = c_ident(name)
    head = [_layer(g, n, plan, alias) if n.op != "GlobalAveragePool" else _pool(g, n, alias, f"{p}_h{i}")
            for i, n in enumerate(head_nodes) if n.op not in VIEW_OPS]
    layers = [h for h in head if isinstance(h, HeadLayer)]
    if not isinstance(head[-1], HeadLayer):
        raise GraphError("the model's output is not a fully connected layer or 1x1 conv: nothing gives the logits")
    for a, b in zip(head, head[1:]):
        if b.x != a.y:
            raise GraphError(f"layer '{b.node}' does not take the output of '{a.node}': the head must be a chain")
    up = p.upper()
    x0 = head[0].x
    pools = [h for h in head if isinstance(h, HeadPool)]
    frozen = None
    if prefix_nodes:
        if g.tensors[x0].dtype != "int8":
            raise GraphError(f"tensor '{x0}' feeding the trained layers is {g.tensors[x0].dtype}, not int8")
        frozen = generate(_prefix_graph(g, prefix_nodes, x0), f"{p}_fz")
        in_size = frozen.inputs[0].size if len(frozen.inputs) == 1 else None
        if in_size is None:
            raise GraphError("the C training step takes models with one input")
    else:
        if g.inputs != [x0] or g.tensors[x0].dtype != "int8":
            raise GraphError("the C training step takes models with one int8 input")
        in_size = g.tensors[x0].size
    classes = head[-1].n
    grad_sizes = _gradient_buffers(head, classes)
    libs = ([frozen] if frozen else []) + [h.lib for h in pools]
    # the generated libraries' arenas, and their DSP conv scratch (the largest case: a core with the DSP extension)
    c, ram = [], {"frozen_arena": sum(x.arena_bytes + x.stamp.get("scratch_bytes", 0) for x in libs),
                  "activations_int8": 0,
                  "activations_float": 0, "gradients": 4 * sum(grad_sizes), "weights_float": 0, "weights_int8": 0}
    c += [f"/* {p}_train.c - on-device training step of '{graph.name}' (TinyStudio, engine.codegen.train_step);",
          " * do not edit. Trained: " + ", ".join(f"{h.node} ({'W+b' if h.update_w else 'b'}"
                                                  f"{'' if h.n_upd == h.n else f', {h.n_upd}/{h.n} channels'})"
                                                  for h in layers if h.update_w or h.update_b) + " */",
          "#include <string.h>", '#include "tinystudio_kernels.h"', '#include "ts_train.h"', f'#include "{p}_train.h"']
    if frozen:
        c.append(f'#include "{frozen.header}"')
    c += [f'#include "{h.lib.header}"' for h in pools]
    c += ["", "#ifdef TS_TRAIN_EXPOSE_GRADS", "#define TS_G(a) (a)", "#else", "#define TS_G(a) NULL", "#endif", ""]
    acts = [x0] + [h.y for h in head]
    for t in acts:
        c.append(f"static int8_t a_{c_ident(t)}[{g.tensors[t].size}];")
        ram["activations_int8"] += g.tensors[t].size
    c += [f"static float g_a[{grad_sizes[0]}];   /* ping-pong: gradients of the layers' outputs and inputs */",
          *([f"static float g_b[{grad_sizes[1]}];"] if grad_sizes[1] else []),
          f"static float z_f[{classes}];   /* dequantized logits */", f"static float loss_last;", ""]
    ram["activations_float"] += 4 * classes + 4   # the logits and the loss
    for i, h in enumerate(head):
        L = f"l{i}"
        if isinstance(h, HeadPool):
            continue
        pc = int(h.multiplier.size > 1 and not (np.all(h.multiplier == h.multiplier[0])
                                                and np.all(h.shift == h.shift[0])))
        mult, sh = (h.multiplier, h.shift) if pc else (h.multiplier[:1], h.shift[:1])
        if h.conv:
            prm, ptype = {**h.conv, "per_channel": pc, REQUANT_FIELD: h.mode}, "ts_conv_params"
            what = (f"{'depthwise ' if h.depthwise else ''}conv {h.conv['k_h']}x{h.conv['k_w']} stride "
                    f"{h.conv['stride_h']}x{h.conv['stride_w']} {h.conv['in_c']}->{h.n}")
        else:
            prm = {"batches": h.batches, "in_features": h.k, "out_features": h.n, "input_offset": 0,
                   "output_offset": h.y_zp, "act_min": h.act_min, "act_max": h.act_max, "per_channel": pc,
                   REQUANT_FIELD: h.mode}
            ptype, what = "ts_fc_params", f"{h.k}->{h.n}"
        c += [f"/* {h.node}: {what}{' relu' if h.relu else ''} */",
              f"static const {ptype} {L}_p = {c_struct(prm)};",
              static_array("int32_t", f"{L}_mult", mult, True), static_array("int8_t", f"{L}_shift", sh, True),
              static_array("float", f"{L}_ws", h.wscale, True), static_array("float", f"{L}_bs", h.bscale, True)]
        trained = h.update_w or h.update_b
        c.append(static_array("int8_t", f"{L}_wq", h.wq, not h.update_w))
        c.append(static_array("int32_t", f"{L}_bias", h.folded, not trained))
        if trained:
            ram["weights_int8"] += (h.n * h.k if h.update_w else 0) + 4 * h.n
            c.append(static_array("float", f"{L}_b", h.bias_q.astype(np.float32) * h.bscale, False))
            ram["weights_float"] += 4 * h.n
        if h.update_w:
            w0 = h.dequantized()
            c.append(static_array("float", f"{L}_w", w0.astype(np.float32), False))
            ram["weights_float"] += 4 * h.n * h.k
        c += ["#ifdef TS_TRAIN_EXPOSE_GRADS",
              *([f"static float {L}_gw[{h.n * h.k}];"] if h.update_w else []),
              *([f"static float {L}_gb[{h.n}];"] if trained else []), "#endif", ""]
    # forward
    c += [f"static int {p}_t_forward(const int8_t *input)", "{"]
    if frozen:
        c += ["    int rc;", f"    rc = {frozen.name}_run(input, a_{c_ident(x0)});", "    if (rc != 0) {",
              "        return rc;", "    }"]
    else:
        c += ["    int rc = 0;", f"    memcpy(a_{c_ident(x0)}, input, sizeof a_{c_ident(x0)});"]
    for i, h in enumerate(head):
        L = f"l{i}"
        if isinstance(h, HeadPool):
            c += [f"    rc = {h.lib.name}_run(a_{c_ident(h.x)}, a_{c_ident(h.y)});", "    if (rc != 0) {",
                  "        return rc;", "    }"]
            continue
        kern = ("ts_depthwise_conv_s8_ref" if h.depthwise else "ts_conv_s8_ref") if h.conv \
            else "ts_fully_connected_s8_ref"
        c.append(f"    {kern}(&{L}_p, a_{c_ident(h.x)}, {L}_wq, {L}_bias, {L}_mult, {L}_shift, a_{c_ident(h.y)});")
    c += ["    return rc;", "}", ""]
    # public API
    inits = [f"{x.name}_init()" for x in ([frozen] if frozen else []) + [h.lib for h in pools]]
    c += [f"int {p}_train_init(void)", "{", f"    return {' | '.join(inits) if inits else '0'};", "}", "",
          f"int {p}_train_forward(const int8_t *input, int8_t *logits)", "{",
          f"    int rc = {p}_t_forward(input);", "    if (rc == 0) {",
          f"        memcpy(logits, a_{c_ident(head[-1].y)}, {classes});", "    }", "    return rc;", "}", "",
          f"int {p}_train_step(const int8_t *input, int32_t label, float lr)", "{", f"    float *dy = g_a, *dx = {'g_b' if grad_sizes[1] else 'NULL'};", "    (void)dx;",
          f"    int rc;", f"    if (label < 0 || label >= {classes}) {{", "        return -1;", "    }",
          f"    rc = {p}_t_forward(input);", "    if (rc != 0) {", "        return rc;", "    }",
          f"    ts_train_dequant(a_{c_ident(head[-1].y)}, {classes}, {c_float(head[-1].y_scale)}, {head[-1].y_zp}, z_f);",
          f"    loss_last = ts_train_softmax_xent(z_f, {classes}, label, dy);"]
    first_needed = _first_trained(head)
    for i in range(len(head) - 1, first_needed - 1, -1):
        h, L = head[i], f"l{i}"
        if isinstance(h, HeadPool):
            c += [f"    ts_train_gap_backward({h.pixels}, {h.c}, dy, dx);", "    { float *t = dy; dy = dx; dx = t; }"]
            continue
        trained = h.update_w or h.update_b
        dxp = "dx" if i > first_needed else "NULL"
        pcw = int(h.wscale.size > 1)
        if h.conv:
            c.append(f"    ts_train_conv_backward(&{L}_p, {int(h.depthwise)}, dy, a_{c_ident(h.y)}, "
                     f"{h.y_zp if h.relu else -129}, 128, a_{c_ident(h.x)}, {c_float(h.x_scale)}, "
                     f"{L + '_w' if h.update_w else 'NULL'}, {L}_wq, {L}_ws, "
                     f"{pcw}, {L + '_b' if trained else 'NULL'}, {h.n_upd}, {int(h.update_w)}, lr, {dxp}, "
                     f"TS_G({L + '_gw' if h.update_w else 'NULL'}), TS_G({L + '_gb' if trained else 'NULL'}));")
            if trained:
                c.append(f"    ts_train_conv_requant(&{L}_p, {int(h.depthwise)}, {h.n_upd}, "
                         f"{L + '_w' if h.update_w else 'NULL'}, {L}_ws, {pcw}, {L}_b, {L}_bs, "
                         f"{L + '_wq' if h.update_w else 'NULL'}, {L}_bias);")
            if i > first_needed:
                c.append("    { float *t = dy; dy = dx; dx = t; }")
            continue
        c.append(f"    ts_train_fc_backward({h.batches}, {h.n}, {h.k}, dy, a_{c_ident(h.y)}, "
                 f"{h.y_zp if h.relu else -129}, a_{c_ident(h.x)}, {c_float(h.x_scale)}, {h.x_zp}, "
                 f"{L + '_w' if h.update_w else 'NULL'}, {L}_wq, {L}_ws, "
                 f"{pcw}, {L + '_b' if trained else 'NULL'}, {h.n_upd}, {int(h.update_w)}, lr, {dxp}, "
                 f"TS_G({L + '_gw' if h.update_w else 'NULL'}), TS_G({L + '_gb' if trained else 'NULL'}));")
        if trained:
            c.append(f"    ts_train_fc_requant({h.n_upd}, {h.k}, {L + '_w' if h.update_w else 'NULL'}, {L}_ws, {pcw}, "
                     f"{L}_b, {L}_bs, 1, {h.x_zp}, {L}_wq, {L + '_wq' if h.update_w else 'NULL'}, {L}_bias);")
        if i > first_needed:
            c.append("    { float *t = dy; dy = dx; dx = t; }")
    c += ["    return 0;", "}", "", f"float {p}_train_loss(void)", "{", "    return loss_last;", "}", ""]
    # parameter access (for checks and for saving what was learned)
    cases, gcases, j = [], [], 0
    for i, h in enumerate(head):
        L = f"l{i}"
        if isinstance(h, HeadPool):
            continue
        for kind, cnt in (("w", h.n * h.k if h.update_w else 0), ("b", h.n if h.update_w or h.update_b else 0)):
            if cnt:
                cases.append(f"    case {j}: *count = {cnt}; return {L}_{kind};")
                gcases.append(f"    case {j}: *count = {cnt}; return {L}_g{kind};")
                j += 1
    c += [f"float *{p}_train_param(int32_t index, int32_t *count)", "{", "    switch (index) {", *cases,
          "    default: *count = 0; return NULL;", "    }", "}", "",
          "#ifdef TS_TRAIN_EXPOSE_GRADS", f"const float *{p}_train_grad(int32_t index, int32_t *count)", "{",
          "    switch (index) {", *gcases, "    default: *count = 0; return NULL;", "    }", "}", "#endif", ""]
    ram_bytes = sum(ram.values())
    h_text = "\n".join([
        f"/* {p}_train.h - on-device training step (TinyStudio); do not edit. */", f"#ifndef {up}_TRAIN_H",
        f"#define {up}_TRAIN_H", "", "#include <stdint.h>", "",
        f"#define {up}_TRAIN_INPUT_SIZE {in_size}", f"#define {up}_TRAIN_CLASSES {classes}",
        f"#define {up}_TRAIN_NUM_PARAMS {j}",
        f"#define {up}_TRAIN_RAM_BYTES {ram_bytes}   /* every static buffer of the step, frozen arena included */",
        "", f"int {p}_train_init(void);   /* 0 on success */",
        "/* One SGD step on (input, label) with learning rate lr: int8 forward, float32 backward, update,",
        " * requantization. 0 on success, -1 for a label outside [0, CLASSES). */",
        f"int {p}_train_step(const int8_t *input, int32_t label, float lr);",
        f"float {p}_train_loss(void);   /* cross-entropy of the last step's forward */",
        f"int {p}_train_forward(const int8_t *input, int8_t *logits);   /* inference with the trained weights */",
        f"float *{p}_train_param(int32_t index, int32_t *count);   /* float32 copy of trained tensor index */",
        "#ifdef TS_TRAIN_EXPOSE_GRADS", f"const float *{p}_train_grad(int32_t index, int32_t *count);", "#endif",
        "", "#endif", ""])
    train_c = "\n".join(c)
    files = dict(frozen.files) if frozen else {}
    for h in pools:
        files.update(h.lib.files)
    kernels = kernel_files([train_c], p)
    for kf in kernels:
        if kf not in files:
            files[kf] = template(kf).replace("@USE_DSP_DEFAULT@", "1") if kf == "tinystudio_kernels.h" \
                else template(kf)
    files[f"{p}_train.c"] = train_c
    files[f"{p}_train.h"] = h_text
    sources = tuple(dict.fromkeys([*(frozen.sources if frozen else ()), *(s for h in pools for s in h.lib.sources),
                                   *(k for k in kernels if k.endswith(".c")),
                                   f"{p}_train.c"]))
    return TrainingLibrary(p, files, sources, f"{p}_train.h", tuple(head), frozen, in_size, classes, ram_bytes, ram)
