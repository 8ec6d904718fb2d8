"""`tinystudio export`: the C library and firmware bundle, verified."""
from __future__ import annotations

import json
import os
import sys

import numpy as np

from engine.errors import TinyStudioError
from app.commands.common import load_array, open_model


def _calibration_data(path: str, graph):
    """--calibration FILE.npz/.npy -> what quantize_model takes: an (N, ...) array for a one-input model, or one
    dict per sample keyed by input name."""
    data = load_array(path)
    if not isinstance(data, dict):
        data = {graph.inputs[0]: data} if len(graph.inputs) == 1 else data
    if not isinstance(data, dict):
        raise TinyStudioError(f"{path}: the model has inputs {graph.inputs}; save an .npz with one array per input")
    if len(graph.inputs) == 1 and len(data) == 1:
        return np.asarray(next(iter(data.values())), np.float32)
    missing = [n for n in graph.inputs if n not in data]
    if missing:
        raise TinyStudioError(f"{path}: no array for input(s) {missing}; the arrays are {sorted(data)}")
    counts = {len(data[n]) for n in graph.inputs}
    if len(counts) != 1:
        raise TinyStudioError(f"{path}: the inputs have different sample counts {sorted(counts)}")
    return [{n: np.asarray(data[n][i], np.float32) for n in graph.inputs} for i in range(counts.pop())]


def cmd_export(args) -> int:
    from engine.export.pipeline import export_model
    from engine.export.summary import text_lines

    if args.inputs < 0:
        raise TinyStudioError(f"--inputs {args.inputs}: must be 0 or more")
    graph = open_model(args)
    calibration = _calibration_data(args.calibration, graph) if args.calibration else None
    log = None if args.json else (lambda msg: print(f"... {msg}", file=sys.stderr))
    # The bundle and library are named by --name, else after the model file (or zoo model).
    name = args.name or (args.model if args.model.startswith("zoo:") else os.path.basename(args.model))
    res = export_model(graph, args.mcu, args.out, verify=args.verify, n_inputs=args.inputs,
                       calibration=calibration, log=log, name=name)
    for w in res.warnings:
        print(f"warning: {w}", file=sys.stderr)
    rep = res.report
    if args.json:
        print(json.dumps(rep, indent=1))
    else:
        print("\n".join(text_lines(rep)))
    v = res.verify
    if v is not None and not v.bit_exact:
        print(f"error: verification failed: {v.summary()}; the bundle was written for inspection", file=sys.stderr)
        return 1
    return 0
