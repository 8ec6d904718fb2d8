"""The training library in an export bundle: `tinystudio export MODEL --training SPEC`.

    info = add_training(zip_path, int8_graph, "last:2", lib_name, verify="host")   # -> report["training"]

Generates `<name>_train_step` (engine.codegen.train_step) for the int8 graph the bundle was made from, checks one
step against PyTorch (engine.export.verify_train: on the host, and in QEMU for `verify="qemu"`), and rewrites the
zip with the library under training/ and the `training` object in report.json.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from engine.codegen.train_step import generate_training
from engine.export.verify_train import (TOLERANCE, compare_step, reference_step, run_train_host, run_train_qemu,
                                        train_runner_source)
from engine.ondevice.spec import parse_spec, resolve


def check_step(graph, tl, verify: str, mcu=None, seed: int = 0, workdir=None) -> dict:
    """One SGD step from the deployed weights on a random input: the C against PyTorch."""
    import tempfile

    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, tl.input_size).astype(np.int8)
    label, lr = int(rng.integers(0, tl.classes)), 0.05
    ref = reference_step(graph, tl, x, label, lr)
    out = {"tolerance": TOLERANCE}
    with tempfile.TemporaryDirectory(prefix="tinystudio-train-") as td:
        got = run_train_host(tl, Path(workdir or td) / "host", [(x, label, lr)])
        out["host"] = max(compare_step(tl, ref, got).values())
        if verify == "qemu":
            got, machine = run_train_qemu(tl, mcu, [(x, label, lr)], Path(workdir or td) / "qemu")
            out["qemu"] = max(compare_step(tl, ref, got).values())
            out["machine"] = machine
    return out


def add_training(zip_path, graph, spec_text: str, name: str, verify: str = "host", mcu=None, plan=None) -> dict:
    """`plan`: the UpdatePlan already resolved (sparse:BYTES: by the planner, on the float graph and a data set)."""
    plan = plan if plan is not None else resolve(graph, parse_spec(spec_text))
    tl = generate_training(graph, plan, name)
    info = {"spec": parse_spec(spec_text).text(), "plan": plan.to_json(), "library": f"{tl.name}_train",
            "ram_bytes": tl.ram_bytes, "ram_parts": dict(tl.ram_parts),
            "trained": [{"layer": h.node, "weights": h.update_w, "bias": h.update_b, "channels": h.n_upd,
                         "of": h.n} for h in tl.head if getattr(h, "update_w", False) or getattr(h, "update_b", False)],
            "planner_peak_bytes": tl.planner_peak_bytes,
            "requantization": "on the fly in the forward, on the deployed scales: wq = clamp(round(w / s_w), "
                              "-127, 127), bq = round(b / s_b)"}
    if verify in ("host", "qemu"):
        info["verify"] = check_step(graph, tl, verify, mcu)
    zp = Path(zip_path)
    with zipfile.ZipFile(zp) as z:
        entries = [(i, z.read(i.filename)) for i in z.infolist()]
    root = entries[0][0].filename.split("/")[0] + "/" if entries and "/" in entries[0][0].filename else ""
    tmp = zp.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for i, data in entries:
            if i.filename == f"{root}report.json":
                rep = json.loads(data)
                rep["training"] = info
                data = (json.dumps(rep, indent=1) + "\n").encode()
            z.writestr(i.filename, data)
        for rel, text in tl.files.items():
            z.writestr(f"{root}training/{rel}", text)
        z.writestr(f"{root}training/train_main.c", train_runner_source(tl))
    tmp.replace(zp)
    return info
