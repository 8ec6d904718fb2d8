"""The C training step of a deployed int8 model: `<name>_train_step(input, label, lr)`.

    tl = generate_training(graph, resolve(graph, parse_spec("last:2")), "kws")
    tl.files (added to the export bundle), tl.ram_bytes, tl.ram_parts, tl.head (the trained part, in order)

Structure. The layers before the first trained one (the frozen prefix) are an ordinary generated inference
library `<name>_fz`; the trained part (engine.codegen.train_layers: fully connected layers, convs of any kernel,
stride, padding, groups or depthwise, global average pooling, views; a final Softmax, which the loss replaces)
runs its int8 forward layer by layer, then the float32 backward (on the dequantized int8 activations): softmax
cross-entropy on the dequantized logits, then per layer, last to first down to the first trained one, the
fused ReLU's mask from its int8 output, dX with the weights before the update, and the SGD update of the
float32 copies of the trained channels applied at once (no dW buffer).

One memory plan. Every activation (the prefix's included) and every activation gradient lives at its offset
in the planner's training memory plan (engine.ondevice.memory.training_profile over forward and backward): one
static arena `<name>_train_arena` that the prefix library and the pooling libraries share (generated with
that plan and the arena as an external symbol). Outside the arena: the float32 copies of the trained weights
and biases (exactly the planner's RAM weights) and a few small buffers: the dequantized logits, the loss, one
int8 weight row of the widest trained layer and the DSP conv kernels' scratch (ram_parts). The planner counts
every one of them (its `fixed` buffers) and reserves no dW, so the C's RAM equals the planner's peak.

Requantization rule: the forward of a trained layer requantizes the float32 weights on the fly onto the
deployed model's grid, wq = clamp(round(w / s_w), -127, 127), bq = round(b / s_b) (round half away from zero),
so the multipliers and shifts never change and no int8 copy of the trained weights is kept; the float32 copies
keep the small updates that the int8 grid cannot hold yet.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.codegen import CLibrary
from engine.codegen.cwrite import c_float, c_ident, c_struct, static_array
from engine.codegen.kernelfiles import kernel_files
from engine.codegen.train_layers import (VIEW_OPS, HeadLayer, HeadPool, head_layer, head_pool, split_head,
                                         sub_graph, view_alias)
from engine.errors import GraphError
from engine.ir import Graph
from engine.validate import infer_shapes, topological_order

__all__ = ["HeadLayer", "HeadPool", "TrainingLibrary", "generate_training"]


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
    ram_bytes: int          # every static buffer of the step: the arena, the RAM weights and the small buffers
    ram_parts: dict
    planner_peak_bytes: int  # the training plan's peak SRAM: equal to ram_bytes (tested)

    @property
    def params(self) -> list[tuple[str, str, int]]:
        """(layer, 'w' | 'b', count) in the order the C dumps them (<name>_train_param): the float32 copies,
        channel-major, of the trained channels."""
        out = []
        for h in self.head:
            if not isinstance(h, HeadLayer):
                continue
            if h.update_w:
                out.append((h.node, "w", h.n_upd * h.k))
            if h.update_b:
                out.append((h.node, "b", h.n_bias))
        return out


def arena_plan(prof, sub: Graph):
    """The MemoryPlan of `sub` (part of the training graph) at the training plan's offsets, in its arena."""
    from engine.memory import MemoryPlan

    names = set(sub.tensors)
    placed = [(b, o) for b, o in zip(prof.buffers, prof.offsets) if b.name.startswith("act:") and names & set(b.tensors)]
    order = tuple(n.name for n in topological_order(sub))
    return MemoryPlan(order, tuple(b for b, _ in placed), tuple(o for _, o in placed), prof.arena_bytes,
                      f"training plan, {prof.planner}", {prof.planner: prof.arena_bytes}, 0, (0,) * len(order), -1,
                      (), False, False, None, False, 16)


def _first_trained(head) -> int:
    return min(i for i, h in enumerate(head) if isinstance(h, HeadLayer) and (h.update_w or h.update_b))


def _layer_arrays(h: HeadLayer, L: str) -> list[str]:
    """The C constants (flash) and float32 copies (RAM) of one layer."""
    from engine.int8.dsp_requant import REQUANT_FIELD

    pc = int(h.multiplier.size > 1 and not (np.all(h.multiplier == h.multiplier[0]) and np.all(h.shift == h.shift[0])))
    mult, sh = (h.multiplier, h.shift) if pc else (h.multiplier[:1], h.shift[:1])
    cv = h.conv
    what = (f"{'depthwise ' if h.depthwise else ''}conv {cv['k_h']}x{cv['k_w']} stride {cv['stride_h']}x"
            f"{cv['stride_w']} {cv['in_c']}->{h.n}" if not h.fc else f"{h.k}->{h.n} x{h.batches}")
    out = [f"/* {h.node}: {what}{' relu' if h.relu else ''}"
           f"{f', trained channels {h.n_upd}/{h.n}' if h.update_w else ''} */",
           f"static const ts_conv_params {L}_p = {c_struct({**cv, 'per_channel': pc, REQUANT_FIELD: h.mode})};",
           static_array("int32_t", f"{L}_mult", mult, True), static_array("int8_t", f"{L}_shift", sh, True),
           static_array("float", f"{L}_ws", h.wscale, True),
           *([static_array("float", f"{L}_bs", h.bscale, True)] if h.update_w or h.update_b else []),
           static_array("int8_t", f"{L}_wq", h.wq, True), static_array("int32_t", f"{L}_bq", h.bias_q, True)]
    if h.update_w:
        out.append(static_array("float", f"{L}_w", h.dequantized()[:h.n_upd], False))
    if h.update_b:
        out.append(static_array("float", f"{L}_b", (h.bias_q.astype(np.float32) * h.bscale)[:h.n_bias], False))
    out += ["#ifdef TS_TRAIN_EXPOSE_GRADS", *([f"static float {L}_gw[{h.n_upd * h.k}];"] if h.update_w else []),
            *([f"static float {L}_gb[{h.n_bias}];"] if h.update_b else []), "#endif", ""]
    return out


def _backward(h: HeadLayer, L: str, x: str, y: str, dx: str) -> str:
    w, b = (f"{L}_w" if h.update_w else "NULL"), (f"{L}_b" if h.update_b else "NULL")
    gw, gb = (f"{L}_gw" if h.update_w else "NULL"), (f"{L}_gb" if h.update_b else "NULL")
    pcw, n_upd = int(h.wscale.size > 1), h.n_upd if h.update_w else h.n_bias
    tail = f"{pcw}, {b}, {n_upd}, {int(h.update_w)}, lr, {dx}, TS_G({gw}), TS_G({gb}));"
    if h.fc:
        return (f"    ts_train_fc_backward({h.batches}, {h.n}, {h.k}, dy, {y}, {h.y_zp if h.relu else -129}, {x}, "
                f"{c_float(h.x_scale)}, {h.x_zp}, {w}, {L}_wq, {L}_ws, {tail}")
    return (f"    ts_train_conv_backward(&{L}_p, {int(h.depthwise)}, dy, {y}, {h.y_zp if h.relu else -129}, 128, "
            f"{x}, {c_float(h.x_scale)}, {w}, {L}_wq, {L}_ws, {tail}")


def generate_training(graph: Graph, plan, name: str = "model") -> TrainingLibrary:
    """The training library of `graph` (int8 as deployed) for the UpdatePlan `plan`; GraphError names the layer
    or node the C training step cannot handle."""
    from engine.codegen.generate import generate, template
    from engine.ondevice.memory import training_profile

    g = graph if all(o in graph.tensors for n in graph.nodes for o in n.outputs) else infer_shapes(graph)
    prefix_nodes, head_nodes = split_head(g, plan)
    alias = view_alias(head_nodes)
    p = c_ident(name)
    prof = training_profile(g, plan, as_deployed=False)
    arena_sym = f"{p}_train_arena"
    head = [head_layer(g, n, plan, alias) if n.op != "GlobalAveragePool"
            else head_pool(g, n, alias, f"{p}_h{i}", lambda s: arena_plan(prof, s), arena_sym)
            for i, n in enumerate(head_nodes) if n.op not in VIEW_OPS]
    if not isinstance(head[-1], HeadLayer):
        raise GraphError("the model's output is not a fully connected layer or conv: nothing gives the logits")
    for a, b in zip(head, head[1:]):
        if b.x != a.y:
            raise GraphError(f"layer '{b.node}' does not take the output of '{a.node}': the head must be a chain")
    # where the training plan put each tensor and the gradient of its root (views share both)
    act, grad = {}, {}
    for b, o in zip(prof.buffers, prof.offsets):
        if b.name.startswith("act:"):
            act.update({t: (o, b.name[4:]) for t in b.tensors})
        elif b.name.startswith("grad:"):
            grad[b.name[5:]] = o
    A = lambda t: f"TA({act[t][0]})"  # noqa: E731
    G = lambda t: f"(float *)TA({grad[act[t][1]]})"  # noqa: E731
    up, x0 = p.upper(), head[0].x
    pools = [h for h in head if isinstance(h, HeadPool)]
    frozen = None
    if prefix_nodes:
        if g.tensors[x0].dtype != "int8":
            raise GraphError(f"tensor '{x0}' feeding the trained layers is {g.tensors[x0].dtype}, not int8")
        if len(g.inputs) != 1:
            raise GraphError("the C training step takes models with one input")
        sub = sub_graph(g, prefix_nodes, g.inputs, x0, f"{g.name}_frozen")
        frozen = generate(sub, f"{p}_fz", plan=arena_plan(prof, sub), arena_symbol=arena_sym)
        in_size = frozen.inputs[0].size
    else:
        if g.inputs != [x0] or g.tensors[x0].dtype != "int8":
            raise GraphError("the C training step takes models with one int8 input")
        in_size = g.tensors[x0].size
    classes, logits = head[-1].n, head[-1].y
    layers = [h for h in head if isinstance(h, HeadLayer)]
    row = max((h.k for h in layers if h.update_w or h.update_b), default=1)
    libs = ([frozen] if frozen else []) + [h.lib for h in pools]
    ram = {"arena": prof.arena_bytes, "weights_float": prof.ram_weight_bytes,
           "logits_loss": 4 * classes + 4, "weight_row": row,
           "kernel_scratch": max((x.stamp.get("scratch_bytes", 0) for x in libs), default=0)}
    c = [f"/* {p}_train.c - on-device training step of '{graph.name}' (TinyStudio, engine.codegen.train_step);",
         " * do not edit. Trained: " + ", ".join(f"{h.node} ({'W+b' if h.update_w else 'b'}"
                                                 f"{'' if h.n_upd == h.n else f', {h.n_upd}/{h.n} channels'})"
                                                 for h in layers if h.update_w or h.update_b) + " */",
         "#include <string.h>", '#include "tinystudio_kernels.h"', '#include "ts_train.h"', f'#include "{p}_train.h"',
         *([f'#include "{frozen.header}"'] if frozen else []), *(f'#include "{h.lib.header}"' for h in pools), "",
         "#ifdef TS_TRAIN_EXPOSE_GRADS", "#define TS_G(a) (a)", "#else", "#define TS_G(a) NULL", "#endif",
         "#if defined(__GNUC__)", "#define TS_ALIGN16 __attribute__((aligned(16)))", "#else", "#define TS_ALIGN16",
         "#endif", "",
         f"/* Activations and activation gradients at the training plan's offsets ({prof.planner}); the frozen",
         " * prefix's and the pooling libraries' arenas are this one. */",
         f"int8_t {arena_sym}[{up}_TRAIN_ARENA_BYTES] TS_ALIGN16;", f"#define TA(offset) ({arena_sym} + (offset))",
         f"static float z_f[{classes}];   /* dequantized logits */", "static float loss_last;",
         f"static int8_t w_row[{row}];   /* one output channel's int8 weights, requantized on the fly */", ""]
    for i, h in enumerate(head):
        if isinstance(h, HeadLayer):
            c += _layer_arrays(h, f"l{i}")
    c += [f"static int {p}_t_forward(const int8_t *input)", "{", "    int rc = 0;"]
    if frozen:
        c += [f"    rc = {frozen.name}_run(input, {A(x0)});", "    if (rc != 0) {", "        return rc;", "    }"]
    else:
        c.append(f"    memcpy({A(x0)}, input, {in_size});")
    for i, h in enumerate(head):
        L = f"l{i}"
        if isinstance(h, HeadPool):
            c += [f"    rc = {h.lib.name}_run({A(h.x)}, {A(h.y)});", "    if (rc != 0) {", "        return rc;", "    }"]
        elif h.update_w or h.update_b:
            c.append(f"    ts_train_forward(&{L}_p, {int(h.depthwise)}, {A(h.x)}, {L}_wq, {L}_bq, {L}_mult, {L}_shift, "
                     f"{L + '_w' if h.update_w else 'NULL'}, {L}_ws, {int(h.wscale.size > 1)}, "
                     f"{L + '_b' if h.update_b else 'NULL'}, {L}_bs, {h.n_upd if h.update_w else 0}, {h.n_bias}, "
                     f"w_row, {A(h.y)});")
        else:
            kern = "ts_depthwise_conv_s8_ref" if h.depthwise else "ts_conv_s8_ref"
            c.append(f"    {kern}(&{L}_p, {A(h.x)}, {L}_wq, {L}_bq, {L}_mult, {L}_shift, {A(h.y)});")
    c += ["    return rc;", "}", ""]
    inits = [f"{x.name}_init()" for x in libs]
    c += [f"int {p}_train_init(void)", "{", f"    memset({arena_sym}, 0, sizeof {arena_sym});",
          f"    return {' | '.join(inits) if inits else '0'};", "}", "",
          f"int {p}_train_forward(const int8_t *input, int8_t *logits)", "{",
          f"    int rc = {p}_t_forward(input);", "    if (rc == 0) {", f"        memcpy(logits, {A(logits)}, {classes});",
          "    }", "    return rc;", "}", "",
          f"int {p}_train_step(const int8_t *input, int32_t label, float lr)", "{", "    float *dy;", "    int rc;",
          f"    if (label < 0 || label >= {classes}) {{", "        return -1;", "    }",
          f"    rc = {p}_t_forward(input);", "    if (rc != 0) {", "        return rc;", "    }",
          f"    ts_train_dequant({A(logits)}, {classes}, {c_float(head[-1].y_scale)}, {head[-1].y_zp}, z_f);",
          f"    dy = {G(logits)};", f"    loss_last = ts_train_softmax_xent(z_f, {classes}, label, dy);"]
    first = _first_trained(head)
    for i in range(len(head) - 1, first - 1, -1):
        h = head[i]
        dx = G(h.x) if i > first else "NULL"
        if isinstance(h, HeadPool):
            c.append(f"    ts_train_gap_backward({h.pixels}, {h.c}, dy, {dx});")
        else:
            c.append(_backward(h, f"l{i}", A(h.x), A(h.y), dx))
        if i > first:
            c.append(f"    dy = {dx};")
    c += ["    return 0;", "}", "", f"float {p}_train_loss(void)", "{", "    return loss_last;", "}", ""]
    cases, gcases = [], []
    for j, (layer, kind, cnt) in enumerate(tl_params := [(f"l{i}", kd, n) for i, h in enumerate(head)
                                                          if isinstance(h, HeadLayer)
                                                          for kd, n in (("w", h.n_upd * h.k if h.update_w else 0),
                                                                        ("b", h.n_bias)) if n]):
        cases.append(f"    case {j}: *count = {cnt}; return {layer}_{kind};")
        gcases.append(f"    case {j}: *count = {cnt}; return {layer}_g{kind};")
    c += [f"float *{p}_train_param(int32_t index, int32_t *count)", "{", "    switch (index) {", *cases,
          "    default: *count = 0; return NULL;", "    }", "}", "",
          "#ifdef TS_TRAIN_EXPOSE_GRADS", f"const float *{p}_train_grad(int32_t index, int32_t *count)", "{",
          "    switch (index) {", *gcases, "    default: *count = 0; return NULL;", "    }", "}", "#endif", ""]
    ram_bytes = sum(ram.values())
    h_text = "\n".join([
        f"/* {p}_train.h - on-device training step (TinyStudio); do not edit. */", f"#ifndef {up}_TRAIN_H",
        f"#define {up}_TRAIN_H", "", "#include <stdint.h>", "",
        f"#define {up}_TRAIN_INPUT_SIZE {in_size}", f"#define {up}_TRAIN_CLASSES {classes}",
        f"#define {up}_TRAIN_NUM_PARAMS {len(tl_params)}",
        f"#define {up}_TRAIN_ARENA_BYTES {max(prof.arena_bytes, 1)}   /* the training plan's arena */",
        f"#define {up}_TRAIN_PLANNER_PEAK_BYTES {prof.peak_sram_bytes}   /* profile --training's peak */",
        f"#define {up}_TRAIN_RAM_BYTES {ram_bytes}   /* every static buffer of the step */",
        "", f"int {p}_train_init(void);   /* 0 on success */",
        "/* One SGD step on (input, label) with learning rate lr: int8 forward, float32 backward and update.",
        " * 0 on success, -1 for a label outside [0, CLASSES). */",
        f"int {p}_train_step(const int8_t *input, int32_t label, float lr);",
        f"float {p}_train_loss(void);   /* cross-entropy of the last step's forward */",
        f"int {p}_train_forward(const int8_t *input, int8_t *logits);   /* inference with the trained weights */",
        f"float *{p}_train_param(int32_t index, int32_t *count);   /* float32 copy of trained tensor index */",
        "#ifdef TS_TRAIN_EXPOSE_GRADS", f"const float *{p}_train_grad(int32_t index, int32_t *count);", "#endif",
        "", "#endif", ""])
    train_c = "\n".join(c)
    files = {}
    for x in libs:
        files.update(x.files)
    kernels = kernel_files([train_c], p)
    for kf in kernels:
        if kf not in files:
            files[kf] = template(kf).replace("@USE_DSP_DEFAULT@", "1") if kf == "tinystudio_kernels.h" \
                else template(kf)
    files[f"{p}_train.c"] = train_c
    files[f"{p}_train.h"] = h_text
    sources = tuple(dict.fromkeys([*(s for x in libs for s in x.sources), *(k for k in kernels if k.endswith(".c")),
                                   f"{p}_train.c"]))
    return TrainingLibrary(p, files, sources, f"{p}_train.h", tuple(head), frozen, in_size, classes, ram_bytes, ram,
                           prof.peak_sram_bytes)
