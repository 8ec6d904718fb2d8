"""Check the C training step (engine.codegen.train_step) against PyTorch, on the host and in QEMU.

    ref = reference_step(graph, tl, x, label, lr)      # PyTorch autograd on the int8 forward's activations
    got = run_train_host(tl, workdir, [(x, label, lr)])  # the C: losses, trained tensors, last gradients
    compare_step(ref, got)                              # max relative errors; TrainCheckError past TOLERANCE

The reference is independent of the C: engine.int8's executor gives the int8 activations, and torch's autograd
differentiates the float math on them (straight-through: each layer's value is its dequantized int8 output,
its gradient that of x W^T + b, masked by the fused ReLU), then applies SGD.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.codegen.hostbuild import CFLAGS, SANITIZE, HostBuildError
from engine.errors import TinyStudioError

# float32 in both, different summation orders: relative to the tensor's largest magnitude
TOLERANCE = 1e-5


class TrainCheckError(TinyStudioError):
    """The C training step and the PyTorch reference disagree."""


@dataclass
class StepResult:
    losses: list[float]
    params: list[np.ndarray]       # trained float32 tensors after the steps, in TrainingLibrary.params order
    grads: list[np.ndarray]        # gradients of the last step (same order)


def reference_step(graph, tl, x: np.ndarray, label: int, lr: float) -> StepResult:
    """One SGD step in PyTorch from the deployed weights: loss, updated tensors, gradients."""
    import torch

    from engine.int8 import prepare_int8

    g = graph
    feeds = {g.inputs[0]: np.asarray(x, np.int8).reshape(g.tensors[g.inputs[0]].shape)}
    want = [tl.head[0].x] + [h.y for h in tl.head]
    acts = prepare_int8(g).run(feeds, outputs=want)
    deq = {t: torch.tensor((acts[t].astype(np.float32) - g.tensors[t].quant.zero_point[0])
                           * np.float32(g.tensors[t].quant.scale[0]), dtype=torch.float32).reshape(-1)
           for t in want}
    params, leaves = [], []
    cur = deq[tl.head[0].x]
    for h in tl.head:
        if not hasattr(h, "wq"):  # global average pooling (NHWC): the mean over the pixels
            pre = cur.reshape(h.pixels, h.c).mean(0, keepdim=True)
            cur = pre + (deq[h.y].reshape(1, -1) - pre).detach()
            continue
        w = torch.tensor(h.dequantized())   # channel-major (n, k), as the C's float32 copies
        b = torch.tensor(h.bias_q.astype(np.float32) * h.bscale)
        if h.update_w:
            w = w.clone().requires_grad_(True)
            leaves.append((h, "w", w))
        if h.update_w or h.update_b:
            b = b.clone().requires_grad_(True)
            leaves.append((h, "b", b))
        pre = cur.reshape(h.batches, h.k) @ w.T + b if h.fc else _conv_pre(h, cur, w, b)
        out = pre + (deq[h.y].reshape(pre.shape) - pre).detach()
        if h.relu:
            out = out * torch.tensor(acts[h.y].reshape(pre.shape) > h.y_zp, dtype=torch.float32)
        cur = out
    loss = torch.nn.functional.cross_entropy(cur.reshape(1, -1), torch.tensor([int(label)]))
    loss.backward()
    grads = []
    for h, kind, t in leaves:
        rows = h.n_upd if kind == "w" else h.n_bias   # the C keeps the trained channels only
        gr = t.grad.detach()[:rows]
        grads.append(gr.numpy().reshape(-1))
        params.append((t.detach()[:rows] - np.float32(lr) * gr).numpy().reshape(-1))
    return StepResult([float(loss.detach())], params, grads)


def _conv_pre(h, cur, w, b):
    """torch's conv2d of a HeadLayer conv on the NHWC activations `cur`, NHWC out (1, out_h, out_w, M): the
    weights `w` channel-major (M, kH * kW * C/groups; a depthwise conv has C/groups = 1), explicit zero
    padding (the int8 kernel skips padded taps: the zero point, 0 once dequantized)."""
    import torch

    c = h.conv
    x = cur.reshape(1, c["in_h"], c["in_w"], c["in_c"]).permute(0, 3, 1, 2)
    wt = w.reshape(h.n, c["k_h"], c["k_w"], c["in_c"] // c["groups"]).permute(0, 3, 1, 2)
    span_h, span_w = (c["k_h"] - 1) * c["dil_h"] + 1, (c["k_w"] - 1) * c["dil_w"] + 1
    bottom = max(0, (c["out_h"] - 1) * c["stride_h"] + span_h - c["in_h"] - c["pad_top"])
    right = max(0, (c["out_w"] - 1) * c["stride_w"] + span_w - c["in_w"] - c["pad_left"])
    x = torch.nn.functional.pad(x, (c["pad_left"], right, c["pad_top"], bottom))
    y = torch.nn.functional.conv2d(x, wt, b, stride=(c["stride_h"], c["stride_w"]),
                                   dilation=(c["dil_h"], c["dil_w"]), groups=c["groups"])
    return y[:, :, :c["out_h"], :c["out_w"]].permute(0, 2, 3, 1)


def train_runner_source(tl) -> str:
    """Host program: records (input bytes, int32 label, float32 lr) on stdin -> float32 loss per step on
    stdout, then every trained tensor and the last step's gradients."""
    p = tl.name
    return f"""#include <stdio.h>
#include <string.h>
#include "{tl.header}"

static int8_t in[{tl.input_size}];

static int dump(const float *v, int32_t n)
{{
    return fwrite(v, sizeof(float), (size_t)n, stdout) == (size_t)n ? 0 : 5;
}}

int main(void)
{{
    int32_t label, i, n;
    float lr, loss;
    if ({p}_train_init() != 0) return 3;
    while (fread(in, 1, sizeof in, stdin) == sizeof in) {{
        if (fread(&label, 4, 1, stdin) != 1 || fread(&lr, 4, 1, stdin) != 1) return 2;
        if ({p}_train_step(in, label, lr) != 0) return 4;
        loss = {p}_train_loss();
        if (dump(&loss, 1)) return 5;
    }}
    for (i = 0; i < {p.upper()}_TRAIN_NUM_PARAMS; ++i) {{
        const float *v = {p}_train_param(i, &n);
        if (dump(v, n)) return 5;
    }}
    for (i = 0; i < {p.upper()}_TRAIN_NUM_PARAMS; ++i) {{
        const float *v = {p}_train_grad(i, &n);
        if (dump(v, n)) return 5;
    }}
    return 0;
}}
"""


def write_training(tl, directory) -> Path:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    for rel, text in tl.files.items():
        (d / rel).write_text(text)
    (d / "train_main.c").write_text(train_runner_source(tl))
    return d


def pack_records(records) -> bytes:
    out = bytearray()
    for x, label, lr in records:
        out += np.asarray(x, np.int8).reshape(-1).tobytes() + struct.pack("<if", int(label), float(lr))
    return bytes(out)


def unpack_result(tl, raw: bytes, steps: int, grads: bool = True) -> StepResult:
    v = np.frombuffer(raw, np.float32)
    sizes = [c for _, _, c in tl.params]
    want = steps + (1 + grads) * sum(sizes)
    if v.size != want:
        raise TrainCheckError(f"the training runner wrote {v.size} floats, expected {want}")
    if not grads:
        return StepResult(v[:steps].tolist(), np.split(v[steps:], np.cumsum(sizes)[:-1]), [])
    losses, rest = v[:steps].tolist(), v[steps:]
    cuts = np.cumsum(sizes)[:-1]
    return StepResult(losses, np.split(rest[:sum(sizes)], cuts), np.split(rest[sum(sizes):], cuts))


def compile_train_host(tl, workdir, sanitize: bool = False, cc: str | None = None) -> Path:
    cc = cc or os.environ.get("CC", "gcc")
    if shutil.which(cc) is None:
        raise HostBuildError(f"C compiler '{cc}' not found")
    d = write_training(tl, workdir)
    exe = d / f"{tl.name}_train{'_asan' if sanitize else ''}"
    cmd = [cc, *CFLAGS, *(SANITIZE if sanitize else ()), "-DTS_TRAIN_EXPOSE_GRADS", "-I", str(d),
           *(str(d / s) for s in tl.sources), str(d / "train_main.c"), "-o", str(exe), "-lm"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 or r.stderr.strip():
        raise HostBuildError(f"{cc} failed on the training library {tl.name}:\n{(r.stderr or r.stdout)[-4000:]}")
    return exe


def run_train_host(tl, workdir, records, sanitize: bool = False) -> StepResult:
    exe = compile_train_host(tl, workdir, sanitize)
    r = subprocess.run([str(exe)], input=pack_records(records), capture_output=True, timeout=600)
    if r.returncode != 0 or r.stderr:
        raise HostBuildError(f"{exe.name} exited with status {r.returncode}: {r.stderr.decode(errors='replace')[-2000:]}")
    return unpack_result(tl, r.stdout, len(records))


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30)) if b.size else 0.0


def compare_step(tl, ref: StepResult, got: StepResult, tol: float = TOLERANCE) -> dict:
    """Max relative error of the loss, each gradient and each updated tensor; TrainCheckError past `tol`."""
    errs = {"loss": abs(got.losses[0] - ref.losses[0]) / max(abs(ref.losses[0]), 1e-30)}
    for (layer, kind, _), rg, gg, rp, gp in zip(tl.params, ref.grads, got.grads, ref.params, got.params):
        errs[f"grad {layer}.{kind}"] = rel_error(gg, rg)
        errs[f"updated {layer}.{kind}"] = rel_error(gp, rp)
    bad = {k: v for k, v in errs.items() if not v <= tol}
    if bad:
        k = next(iter(bad))
        raise TrainCheckError(f"C training step differs from PyTorch: {k} relative error {bad[k]:.3g} > {tol:g}")
    return errs


def qemu_program_source(tl) -> str:
    """Bare-metal twin of train_runner_source: records.bin -> results.bin through semihosting."""
    p = tl.name
    return f"""#include <stdint.h>
#include <string.h>
#include "semihost.h"
#include "{tl.header}"

extern uint32_t __StackLimit[];
static int8_t in[{tl.input_size}];

int main(void)
{{
    int32_t label, i, n;
    float lr, loss;
    uint32_t deepest = 0;
    if ({p}_train_init() != 0) return 3;
    int fin = ts_sh_open("records.bin", TS_SH_READ_BINARY);
    int fout = ts_sh_open("results.bin", TS_SH_WRITE_BINARY);
    if (fin < 0 || fout < 0) return 4;
    while (ts_sh_read(fin, in, (int)sizeof in) == (int)sizeof in) {{
        if (ts_sh_read(fin, &label, 4) != 4 || ts_sh_read(fin, &lr, 4) != 4) return 5;
        /* Paint the free stack below this frame; no interrupts run, so only the step writes there. */
        uint32_t *sp;
        __asm__ volatile("mov %0, sp" : "=r"(sp));
        for (volatile uint32_t *p = __StackLimit; p < sp; p++) *p = 0xA5A5A5A5u;
        if ({p}_train_step(in, label, lr) != 0) return 6;
        const volatile uint32_t *q = __StackLimit;
        while (q < sp && *q == 0xA5A5A5A5u) q++;
        if ((uint32_t)(sp - q) * 4u > deepest) deepest = (uint32_t)(sp - q) * 4u;
        loss = {p}_train_loss();
        ts_sh_write(fout, &loss, 4);
    }}
    for (i = 0; i < {p.upper()}_TRAIN_NUM_PARAMS; ++i) {{
        const float *v = {p}_train_param(i, &n);
        ts_sh_write(fout, v, 4 * n);
    }}
#ifdef TS_TRAIN_EXPOSE_GRADS
    for (i = 0; i < {p.upper()}_TRAIN_NUM_PARAMS; ++i) {{
        const float *v = {p}_train_grad(i, &n);
        ts_sh_write(fout, v, 4 * n);
    }}
#endif
    ts_sh_close(fout);
    ts_sh_close(fin);
    ts_put_u32("stack_bytes", deepest);
    return 0;
}}
"""


def run_train_qemu(tl, mcu, records, workdir=None, timeout: float = 300.0, limits: tuple[int, int] | None = None,
                   info: dict | None = None, grads: bool = True) -> tuple[StepResult, str]:
    """Cross-compile the training library for `mcu`'s core, run the records in QEMU; (result, machine).
    limits=(flash, sram) links against a board cut to that much ROM and RAM (the link fails when the program
    does not fit); `info` gets the ELF's sections (arm-none-eabi-size) and the painted stack of the deepest step.
    grads=False builds the library as shipped (no gradient copies): the result has no gradients."""
    import tempfile

    from engine.export.crossbuild import (ARM_GCC, COMMON_CFLAGS, LDFLAGS, OPT, compile_board, compile_library,
                                          run_tool)
    from engine.export.qemu import run_elf
    from engine.export.targets import core_target, local_cflags
    from engine.export.verify_qemu import qemu_unavailable

    why = qemu_unavailable(mcu)
    if why:
        raise TinyStudioError(why)
    target = core_target(mcu)
    cflags = local_cflags(target.cflags)
    with tempfile.TemporaryDirectory(prefix="tinystudio-train-") as td:
        work = Path(workdir or td)
        work.mkdir(parents=True, exist_ok=True)
        expose = ("-DTS_TRAIN_EXPOSE_GRADS",) if grads else ()
        objs = compile_library(tl, cflags, work, (*expose, "-Werror", "-pedantic"))
        board = target.board if limits is None else dataclasses.replace(target.board, rom_length=int(limits[0]),
                                                                         ram_length=int(limits[1]))
        board_objs, ld = compile_board(board, cflags, work)
        main = work / "train.c"
        main.write_text(qemu_program_source(tl))
        elf = work / "train.elf"
        run_tool([ARM_GCC, *cflags, *OPT, *COMMON_CFLAGS, *expose, f"-I{work / 'src'}",
                  f"-I{work / 'board'}", "-T", str(ld), *LDFLAGS, str(main), *map(str, board_objs),
                  *map(str, objs), "-lm", "-o", str(elf)], work, "linking train.elf")
        (work / "records.bin").write_bytes(pack_records(records))
        run = run_elf(target.board.machine, elf, cwd=work, timeout=timeout)
        if run.timed_out or run.rc != 0:
            raise TrainCheckError(f"the training program on QEMU {target.board.machine} "
                                  f"{'timed out' if run.timed_out else f'exited with status {run.rc}'}")
        if info is not None:
            from engine.export.crossbuild import section_sizes

            info.update(section_sizes(elf))
            info["stack_bytes"] = next((int(line.split("=", 1)[1]) for line in run.stdout.splitlines()
                                        if line.startswith("stack_bytes=")), None)
        return unpack_result(tl, (work / "results.bin").read_bytes(), len(records), grads), target.board.machine


def forward_runner_source(tl) -> str:
    """Host program: int32 count, that many training records, then inputs until EOF -> the int8 logits of
    <name>_train_forward (the trained, requantized weights) per input."""
    p = tl.name
    return f"""#include <stdio.h>
#include "{tl.header}"

static int8_t in[{tl.input_size}];
static int8_t logits[{tl.classes}];

int main(void)
{{
    int32_t steps, label, i;
    float lr;
    if ({p}_train_init() != 0 || fread(&steps, 4, 1, stdin) != 1) return 3;
    for (i = 0; i < steps; ++i) {{
        if (fread(in, 1, sizeof in, stdin) != sizeof in || fread(&label, 4, 1, stdin) != 1
            || fread(&lr, 4, 1, stdin) != 1) return 2;
        if ({p}_train_step(in, label, lr) != 0) return 4;
    }}
    while (fread(in, 1, sizeof in, stdin) == sizeof in) {{
        if ({p}_train_forward(in, logits) != 0) return 4;
        if (fwrite(logits, 1, sizeof logits, stdout) != sizeof logits) return 5;
    }}
    return 0;
}}
"""


def run_forward_host(tl, workdir, records, xs) -> np.ndarray:
    """Train on `records`, then the int8 logits of each input of xs (N, input bytes) with the trained weights."""
    cc = os.environ.get("CC", "gcc")
    d = write_training(tl, workdir)
    (d / "forward_main.c").write_text(forward_runner_source(tl))
    exe = d / f"{tl.name}_forward"
    cmd = [cc, *CFLAGS, *SANITIZE, "-I", str(d), *(str(d / s) for s in tl.sources), str(d / "forward_main.c"),
           "-o", str(exe), "-lm"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 or r.stderr.strip():
        raise HostBuildError(f"{cc} failed on the forward runner of {tl.name}:\n{(r.stderr or r.stdout)[-4000:]}")
    data = struct.pack("<i", len(records)) + pack_records(records) + np.asarray(xs, np.int8).tobytes()
    r = subprocess.run([str(exe)], input=data, capture_output=True, timeout=600)
    if r.returncode != 0 or r.stderr:
        raise HostBuildError(f"{exe.name} exited with status {r.returncode}: {r.stderr.decode(errors='replace')[-2000:]}")
    return np.frombuffer(r.stdout, np.int8).reshape(len(xs), tl.classes)


def requantized_graph(graph, tl, params: list[np.ndarray]):
    """The graph with the trained layers' int8 weights and int32 biases replaced by the requantization rule
    applied (in numpy) to the float32 tensors `params` (TrainingLibrary.params order)."""
    g = graph.copy()
    nodes = {n.name: n for n in g.nodes}
    vals = dict(zip([(layer, kind) for layer, kind, _ in tl.params], params))

    def rnd(v):  # half away from zero, as ts_train_ref.c
        return np.where(v < 0, -np.floor(-v + np.float32(0.5)), np.floor(v + np.float32(0.5)))

    for h in tl.head:
        n = nodes[h.node]
        if not hasattr(h, "wq"):
            continue
        if (h.node, "w") in vals:   # channel-major, as the graph's (M, kH, kW, C/g) and (n, k) weights
            w = vals[(h.node, "w")].reshape(h.n_upd, h.k).astype(np.float32)
            s = h.wscale[:h.n_upd].reshape(-1, 1) if h.wscale.size > 1 else h.wscale[0]
            wq = h.channel_major(h.wq).copy()
            wq[:h.n_upd] = rnd(np.clip(w / s, -127, 127).astype(np.float32))
            t = g.tensors[n.inputs[1]]
            t.data = wq.astype(np.int8).reshape(t.data.shape)
        if (h.node, "b") in vals:
            bq = h.bias_q.astype(np.int64).copy()
            bq[:h.n_bias] = rnd(vals[(h.node, "b")].astype(np.float32) / h.bscale[:h.n_bias])
            g.tensors[n.inputs[2]].data = bq.astype(np.int32).reshape(g.tensors[n.inputs[2]].data.shape)
    return g
