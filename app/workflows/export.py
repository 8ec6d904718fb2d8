"""Exporting a version: what the Export page and `tinystudio export` share, and the page's work beside its
layout (which verifications an MCU offers, the dataset record of a version, the background job that stores the
bundle, safe rendering data for stored reports).

    res = export_version(graph, "stm32f746ng", "bundle.zip", verify="host", calibration=feeds)  # the CLI's call
    options = verify_choices(mcu)          # [("host", ""), ("qemu", "why not" or ""), ("none", "")]
    work = export_job(version_id, mcu, verify, n_inputs, calibration, name, dataset)   # for app.jobs.submit

Calibration comes from the user (a .npy/.npz file, `calibration_file`, or an uploaded .npz, `calibration_npz`),
else from the built-in data set the version was trained on (`dataset_calibration`), else the export calibrates on
synthetic data and says so.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

import store as db
from app.workflows.files import load_array
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


def calibration_file(path: str, graph):
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


def calibration_npz(data: bytes, name: str):
    """Calibration samples from an uploaded .npz (never unpickled): one array (N, ...) for a single-input
    model, or one array per input name -> a list of per-sample feeds."""
    import io
    import zipfile

    from engine.data import MAX_BYTES
    from engine.errors import one_line
    from engine.serialize import npz_declared_bytes

    try:  # what numpy would allocate, from the .npy headers alone, before it inflates anything
        declared = npz_declared_bytes(data, name)
        if declared > MAX_BYTES:
            raise TinyStudioError(f"{name}: arrays declare {declared:,} bytes, more than the {MAX_BYTES:,} byte limit")
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise TinyStudioError(f"{name}: not a readable .npz file ({one_line(str(e))})") from None
    if not arrays:
        raise TinyStudioError(f"{name}: the .npz file holds no arrays")
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    counts = {len(a) for a in arrays.values()}
    if len(counts) != 1:
        raise TinyStudioError(f"{name}: the arrays hold different numbers of samples {sorted(counts)}")
    return [{k: a[i] for k, a in arrays.items()} for i in range(counts.pop())]


def export_version(graph, mcu: str, out, *, verify: str = "host", n_inputs: int = 20, calibration=None,
                   log=None, name: str | None = None, dataset: dict | None = None, wide_weights: bool = False,
                   training: str | None = None, schedule="layer", max_mac_overhead: float = 0.10,
                   training_data: str | None = None):
    """engine.export.pipeline.export_model, calibrating a float graph on `calibration` when given, else on the
    data set the version was trained on (`dataset`, see dataset_calibration). `training`: a SPEC (all, last:K,
    bias, sparse:BYTES) adds the on-device training library (engine.export.train_bundle) to the bundle;
    `training_data`: the data set of sparse:BYTES's probes (default keywords), run on the float graph."""
    from engine.export.pipeline import export_model

    plan = None
    if training:
        from engine.ondevice.spec import parse_spec
        spec = parse_spec(training)  # a bad SPEC fails before any work
        if training_data and spec.kind != "sparse":
            raise TinyStudioError("--data is only used with --training sparse:BYTES")
        if spec.kind == "sparse":
            from app.workflows.ondevice import DEFAULT_DATA
            from engine.data import load_dataset
            from engine.ondevice.spec import resolve

            plan = resolve(graph, spec, load_dataset(training_data or DEFAULT_DATA))
    calib = calibration if calibration is not None else dataset_calibration(graph, dataset)
    res = export_model(graph, mcu, out, verify=verify, n_inputs=n_inputs, calibration=calib, log=log, name=name,
                       dataset=dataset, wide_weights=wide_weights,
                       schedule=schedule, max_mac_overhead=max_mac_overhead)
    if training:
        from engine.export.train_bundle import add_training
        from hwmodels.mcu import get_mcu

        if log:
            log(f"generating and verifying the training step ({training})")
        res.report["training"] = add_training(res.bundle, res.graph, training, res.lib.name, verify, get_mcu(mcu),
                                              plan=plan)
    return res


def check_training(spec: str | None) -> None:
    """TinyStudioError (one line) for a bad training SPEC; nothing for an empty one."""
    if spec and spec.strip():
        from engine.ondevice.spec import parse_spec
        parse_spec(spec)


def training_line(report) -> str:
    """One line on the bundle's training library ('' without one), for the CLI and the Export page."""
    tr = report.get("training") if isinstance(report, dict) else None
    if not tr:
        return ""
    ver = tr.get("verify") or {}
    checked = ", ".join(f"{k} {ver[k]:.2g}" for k in ("host", "qemu") if k in ver)
    return (f"training: {tr['library']} ({tr['spec']}: {', '.join(t['layer'] for t in tr['trained'])}), "
            f"{tr['ram_bytes']:,} B RAM" + (f"; one step vs PyTorch, max relative error {checked}" if checked else ""))


def build_bundle(graph, mcu: str, verify: str, n_inputs: int, calibration, name: str, dataset: dict | None,
                 progress=None, schedule: dict | None = None, wide_weights: bool = False,
                 training: str | None = None) -> dict:
    """Export into a temporary zip (in a worker process: app.job_executor) -> report, warnings, bundle bytes."""

    def log(message: str) -> None:
        done = sum(any(message.startswith(step) for step in STEPS[: i + 1]) for i in range(len(STEPS)))
        if progress is not None:
            progress(min(0.95, 0.1 + 0.85 * done / len(STEPS)), message)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bundle.zip"
        res = export_version(graph, mcu, out, verify=verify, n_inputs=int(n_inputs), calibration=calibration,
                             log=log, name=name, dataset=dataset, schedule=schedule or "layer",
                             wide_weights=wide_weights, training=training)
        return {"report": res.report, "warnings": res.warnings, "bundle": out.read_bytes(), "name": res.lib.name}


def export_job(get_graph, store_getter, version_id: int, mcu: str, verify: str, n_inputs: int, calibration,
               name: str, dataset: dict | None, schedule: dict | None = None, wide_weights: bool = False,
               training: str | None = None):
    """The work function for app.jobs.submit: the export runs on a worker (app.job_executor); this thread
    stores its report and bundle. `schedule`: the version's record (store.version_schedule), None: layer."""

    def work(progress):
        from app.job_executor import run_remote

        res = run_remote(build_bundle, get_graph(version_id), mcu, verify, int(n_inputs), calibration, name, dataset,
                         progress=progress, schedule=schedule, wide_weights=bool(wide_weights),
                         training=training or None)
        options = {"verify": verify, "inputs": int(n_inputs), "name": res["name"], "wide_weights": bool(wide_weights)}
        if training:
            options["training"] = training
        if schedule:
            options["schedule"] = (res["report"].get("schedule") or {}).get("kind", schedule["requested"])
        rec = db.add_export(store_getter(), version_id, mcu, res["report"], bundle=res["bundle"], options=options)
        return {"export_id": rec.id, "warnings": res["warnings"]}

    return work


def bundle_filename(report, mcu: str) -> str:
    lib = report.get("library") if isinstance(report, dict) else None
    name = lib.get("name") if isinstance(lib, dict) and isinstance(lib.get("name"), str) else "bundle"
    return f"tinystudio_{name}_{mcu}.zip"
