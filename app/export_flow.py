"""The Export page's work beside its layout: which verifications an MCU offers, the dataset record of a
version, the background export job that stores its bundle, and safe rendering data for stored reports.

    options = verify_choices(mcu)          # [("host", ""), ("qemu", "why not" or ""), ("none", "")]
    work = export_job(version_id, mcu, verify, n_inputs, calibration, name, dataset)   # for app.jobs.submit
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import store as db
from engine.errors import TinyStudioError

VERIFY_LABELS = {"host": "host (gcc, byte for byte)", "qemu": "QEMU (emulated Cortex-M core)", "none": "none"}
STEPS = ("quantizing", "generating C", "measuring", "verifying", "writing the bundle")


def verify_choices(mcu) -> tuple[list[str], dict[str, str]]:
    """(modes the MCU can be verified with here, mode -> why not for the others)."""
    from engine.export.targets import verify_options

    opts = verify_options(mcu)
    return [m for m, why in opts.items() if not why], {m: why for m, why in opts.items() if why}


def measure_note(mcu) -> str:
    """Why flash and RAM will not be measured for `mcu` here ('' when they will be)."""
    from engine.export.targets import ARM_GCC, core_target, have_tool

    target = core_target(mcu)
    if not target.arm:
        return target.note
    return "" if have_tool(ARM_GCC) else f"{ARM_GCC} is not installed on the studio's machine"


def version_dataset(store, version_id: int) -> dict | None:
    """The dataset record (source, normalization, class names) stored with the version or its nearest
    ancestor: compressed and trained versions keep it in their parameters."""
    seen = set()
    vid = version_id
    while vid is not None and vid not in seen:
        seen.add(vid)
        try:
            v = db.get_version(store, vid)
        except TinyStudioError:
            return None
        params = v.params if isinstance(v.params, dict) else {}
        for key in ("dataset", "data"):
            if isinstance(params.get(key), dict):
                return params[key]
        vid = v.parent_id
    return None


def dataset_calibration(graph, dataset: dict | None, n: int = 256):
    """Calibration feeds for a float graph from the built-in data set its version was trained on (the same
    split and normalization), so the bundle's int8 scales fit real inputs; None when there is no such data set
    (then the export calibrates on synthetic data and says so)."""
    from engine.compress.base import is_quantized_graph
    from engine.data import DataError, dataset_feeds, load_dataset

    source = (dataset or {}).get("source")
    if is_quantized_graph(graph) or not isinstance(source, str) or not source.startswith("builtin:"):
        return None
    seed = ((dataset.get("split") or {}).get("seed")) or 0
    try:
        data = load_dataset(source.removeprefix("builtin:"), seed=int(seed))
        return dataset_feeds(graph, data.x_train, limit=n)
    except DataError:  # the version no longer takes the data set's samples: synthetic data, with its warning
        return None


def build_bundle(graph, mcu: str, verify: str, n_inputs: int, calibration, name: str, dataset: dict | None,
                 progress=None) -> dict:
    """Export into a temporary zip (in a worker process: app.job_executor) -> report, warnings, bundle bytes."""
    from engine.export.pipeline import export_model

    def log(message: str) -> None:
        done = sum(any(message.startswith(step) for step in STEPS[: i + 1]) for i in range(len(STEPS)))
        if progress is not None:
            progress(min(0.95, 0.1 + 0.85 * done / len(STEPS)), message)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bundle.zip"
        calib = calibration if calibration is not None else dataset_calibration(graph, dataset)
        res = export_model(graph, mcu, out, verify=verify, n_inputs=int(n_inputs), calibration=calib, log=log,
                           name=name, dataset=dataset)
        return {"report": res.report, "warnings": res.warnings, "bundle": out.read_bytes(), "name": res.lib.name}


def export_job(get_graph, store_getter, version_id: int, mcu: str, verify: str, n_inputs: int, calibration,
               name: str, dataset: dict | None):
    """The work function for app.jobs.submit: the export runs on a worker (app.job_executor); this thread
    stores its report and bundle."""

    def work(progress):
        from app.job_executor import run_remote

        res = run_remote(build_bundle, get_graph(version_id), mcu, verify, int(n_inputs), calibration, name, dataset,
                         progress=progress)
        rec = db.add_export(store_getter(), version_id, mcu, res["report"], bundle=res["bundle"],
                            options={"verify": verify, "inputs": int(n_inputs), "name": res["name"]})
        return {"export_id": rec.id, "warnings": res["warnings"]}

    return work


def bundle_filename(report, mcu: str) -> str:
    lib = report.get("library") if isinstance(report, dict) else None
    name = lib.get("name") if isinstance(lib, dict) and isinstance(lib.get("name"), str) else "bundle"
    return f"tinystudio_{name}_{mcu}.zip"
