"""`tinystudio export`: the C library and firmware bundle, verified (app.workflows.export, as the Export page)."""
from __future__ import annotations

import json
import os
import sys

from app.commands.common import open_model
from engine.errors import TinyStudioError


def cmd_export(args) -> int:
    from app.workflows.export import calibration_file, export_version, training_line
    from app.workflows.profile import schedule_args
    from engine.export.summary import text_lines

    if args.inputs < 0:
        raise TinyStudioError(f"--inputs {args.inputs}: must be 0 or more")
    kind, limit = schedule_args(args.schedule, args.max_mac_overhead)
    graph = open_model(args)
    calibration = calibration_file(args.calibration, graph) if args.calibration else None
    log = None if args.json else (lambda msg: print(f"... {msg}", file=sys.stderr))
    # The bundle and library are named by --name, else after the model file (or zoo model).
    name = args.name or (args.model if args.model.startswith("zoo:") else os.path.basename(args.model))
    res = export_version(graph, args.mcu, args.out, verify=args.verify, n_inputs=args.inputs,
                         calibration=calibration, log=log, name=name, wide_weights=args.wide_weights,
                         training=getattr(args, "training", None), schedule=kind, max_mac_overhead=limit,
                         training_data=getattr(args, "data", None))
    for w in res.warnings:
        print(f"warning: {w}", file=sys.stderr)
    rep = res.report
    if args.json:
        print(json.dumps(rep, indent=1))
    else:
        print("\n".join(text_lines(rep)))
        if training_line(rep):
            print(training_line(rep))
    v = res.verify
    if v is not None and not v.bit_exact:
        print(f"error: verification failed: {v.summary()}; the bundle was written for inspection", file=sys.stderr)
        return 1
    return 0
