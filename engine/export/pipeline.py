"""Export a model for an MCU: quantize if float, generate C, estimate, measure, verify, write the bundle.

    res = export_model(graph, "stm32l4r5zi", "kws.zip", verify="host", n_inputs=20)
    res.report          # the `tinystudio export --json` document
    res.bundle, res.verify.bit_exact, res.warnings
    res = export_model(graph, "stm32l4r5zi", "vww.zip", schedule="auto", max_mac_overhead=0.10)   # see below

`schedule` (a kind, "auto", a Schedule, or its stored dict) is chosen on the int8 graph for the MCU
(engine.memory.auto), planned, generated (the C runs it at the planner's offsets) and verified like any
export: the C's outputs against the layer-by-layer int8 reference, byte for byte.

Every figure in the report says how it was obtained: "estimate" (hardware models), "measured" (built with
arm-none-eabi-gcc and sized with arm-none-eabi-size; stack painted in QEMU when it ran there).
"""
from __future__ import annotations

import dataclasses
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from engine.compress.base import dequantize_weights, is_quantized_graph
from engine.codegen.float_edges import has_float_api, split_float_edges
from engine.errors import TinyStudioError
from engine.export.bundle import build_bundle, onnx_models
from engine.export.crossbuild import BuildError, Footprint, measure_footprint
from engine.export.golden import make_cases
from engine.export.targets import core_target
from engine.export.report import base_report, model_info
from engine.export.verify import VerifyResult

VERIFY_MODES = ("none", "host", "qemu")


@dataclass
class ExportResult:
    bundle: Path
    report: dict
    lib: object  # engine.codegen.CLibrary
    graph: object  # the int8 graph the C was generated from
    verify: VerifyResult | None
    footprint: Footprint | None
    warnings: list[str]


def c_name(name: str) -> str:
    """A library prefix from a model name: lowercase C identifier, at most 32 characters. Zoo specs
    ("zoo:lenet5?resolution=32") give the zoo name."""
    if name and name.startswith("zoo:"):
        name = name[4:].split("?", 1)[0]
    elif name:  # a model file name: without its extension
        name = re.sub(r"\.(onnx|tflite|pt2|tsgraph)$", "", name, flags=re.I)
    s = re.sub(r"[^a-z0-9_]+", "_", (name or "").lower()).strip("_")
    s = re.sub(r"_+", "_", s)[:32].rstrip("_")
    if not s:
        return "model"
    return s if s[0].isalpha() else f"m_{s}"[:32]


def estimate_runtime(core: str) -> str:
    """The runtime profile the export's estimates assume: the default one (hwmodels.runtime.default_runtime),
    which is the generated C's own profile (tinystudio-c), the same as Profile's default."""
    from hwmodels.runtime import default_runtime

    return default_runtime(core)


def estimate_json(graph, mcu, schedule=None) -> tuple[dict, object]:
    from engine.profile import profile_graph

    prof = profile_graph(graph, [(mcu.id, estimate_runtime(mcu.core))],
                         schedule=schedule if schedule is not None else "layer")
    est = prof.targets[0]
    d = {"label": "estimate", "runtime": est.runtime,
         "runtime_note": f"the {est.runtime} runtime model, the default for {mcu.core} (as on the Profile page): "
                         "this generated C's own figures (static arena, no interpreter; derived from Cortex-M4 builds)",
         "latency_ms": round(est.latency_ms, 4),
         "energy_uj": round(est.energy_uj, 3), "cycles": est.cycles, "ram_bytes": est.ram_bytes,
         "flash_bytes": est.flash_bytes, "ram_parts": dict(est.ram_parts), "flash_parts": dict(est.flash_parts),
         "fits": est.fits, "fit": est.fit_message()}
    return d, prof


def fit_warnings(mcu, fp: Footprint | None, est: dict) -> list[str]:
    """'does not fit' lines with the amount missed, from measured figures when there are some."""
    out = []
    if fp is not None:
        ram, flash, how = fp.ram_bytes + fp.io_bytes, fp.flash_bytes, "measured"
    else:
        ram, flash, how = est["ram_bytes"], est["flash_bytes"], "estimate"
    for what, need, have in (("RAM", ram, mcu.sram_bytes), ("flash", flash, mcu.flash_bytes)):
        if need > have:
            out.append(f"does not fit {mcu.id}: {what} needs {need:,} B ({how}"
                       f"{', I/O buffers included' if what == 'RAM' and fp else ''}) of {have:,} B, "
                       f"over by {need - have:,} B ({(need - have) / 1024:.1f} KB)")
    return out


def quantize(graph, calibration, warnings: list[str]) -> tuple[object, dict]:
    try:
        from engine.passes.ptq import quantize_model
    except ImportError as e:
        raise TinyStudioError(f"the model is float and the quantization pass is not available ({e})") from None
    qgraph, qrep = quantize_model(graph, calibration=calibration)
    warnings.extend(getattr(qrep, "warnings", ()) or ())
    doc = qrep.to_json()
    info = {"method": doc.get("method"), "calibration": (doc.get("calibration") or {}).get("description"),
            "outputs": doc.get("outputs", [])}
    return qgraph, info


def not_measured(why: str) -> dict:
    return {"label": "not measured", "flash_bytes": None, "ram_bytes": None, "text": None, "rodata": None,
            "data": None, "bss": None, "stack": None, "note": why}


def with_input_helper(lib, spec: dict):
    """The library plus src/<name>_input.[ch] (preprocessing helper), so every build of it has the helper."""
    from engine.export.preprocess import helper_sources

    extra = helper_sources(lib, spec)
    src = next(k for k in extra if k.endswith(".c"))
    return dataclasses.replace(lib, files={**lib.files, **extra}, sources=tuple(lib.sources) + (src,))


def resolve_schedule(graph, schedule, max_mac_overhead, mcu):
    """The Schedule an export runs: a kind or "auto" chosen for `mcu` (engine.memory.auto), or a given one (a
    Schedule or its dict, checked against the graph's nodes), or a version's record {"requested", "schedule",
    "max_mac_overhead"} (its schedule while it fits the graph, else the kind it asked for, chosen again)."""
    from engine.memory.auto import check_overhead, choose_schedule
    from engine.memory.schedule import Schedule, ScheduleError

    check_overhead(max_mac_overhead)
    if isinstance(schedule, Schedule):
        return schedule
    if isinstance(schedule, dict) and "requested" in schedule:
        try:
            return Schedule.from_dict(schedule.get("schedule"), graph)
        except ScheduleError:
            schedule, max_mac_overhead = schedule["requested"], schedule.get("max_mac_overhead", max_mac_overhead)
    if isinstance(schedule, dict):
        return Schedule.from_dict(schedule, graph)
    return choose_schedule(graph, schedule or "layer", max_mac_overhead, sram_bytes=mcu.sram_bytes, mcu=mcu.id)


def channels_last_int8(graph):
    """An int8 graph whose spatial ops run channels first (an ONNX int8 model) moved to channels last, the C
    kernels' layout: exact for integers (Transposes only where the layout truly changes; the model's inputs
    and outputs keep their layout). Other graphs are returned as they are."""
    if any(n.attrs.get("layout") == "NCHW" or (n.op in ("Conv", "MaxPool", "AveragePool", "GlobalAveragePool")
                                               and "layout" not in n.attrs) for n in graph.nodes):
        from engine.passes.layout import to_nhwc
        return to_nhwc(graph)[0]
    return graph


def export_model(graph, mcu_id: str, out_zip: str | Path, verify: str = "host", n_inputs: int = 20,
                 calibration=None, name: str | None = None, seed: int = 0, log=None,
                 dataset: dict | None = None, wide_weights: bool = False, schedule="layer",
                 max_mac_overhead: float = 0.10) -> ExportResult:
    """The whole export. `graph` float or int8; `verify` none|host|qemu; `n_inputs` random inputs verified
    besides the golden one; `name` the library/bundle name (a session or model name, made a C identifier);
    `dataset` the version's dataset record (normalization, class names) when the graph does not carry it;
    `wide_weights` stores conv weights pre-widened to int16 (faster on Cortex-M4/M7/M33, more flash: the report's
    "wide_weights" says how much).
    User mistakes raise TinyStudioError before any work is done."""
    from engine.codegen import CodegenOptions, generate_library
    from engine.export.verify_float import verify_float_api
    from engine.export.verify_host import verify_host
    from engine.export.verify_qemu import qemu_unavailable, verify_qemu
    from hwmodels.mcu import get_mcu

    say = log or (lambda msg: None)
    if verify not in VERIFY_MODES:
        raise TinyStudioError(f"verification {verify!r}: choose one of {', '.join(VERIFY_MODES)}")
    if n_inputs < 0:
        raise TinyStudioError(f"random test inputs {n_inputs}: must be 0 or more")
    mcu = get_mcu(mcu_id)
    if verify == "qemu":
        why = qemu_unavailable(mcu)
        if why:
            raise TinyStudioError(f"QEMU verification is not available for {mcu.id}: {why}")
    out = Path(out_zip)
    if out.is_dir():
        raise TinyStudioError(f"{out}: is a folder; give a file name for the bundle (e.g. {out / 'bundle.zip'})")
    if not out.parent.is_dir():
        raise TinyStudioError(f"{out}: the folder {out.parent} does not exist")

    warnings: list[str] = []
    float_graph, quant_info = None, None
    if is_quantized_graph(graph):
        qgraph = channels_last_int8(graph)
        if calibration is not None:
            warnings.append("the model is already quantized; the calibration data is not used")
    else:
        say("quantizing the float model (post-training, per-channel int8)")
        if any(t.quant is not None for t in graph.initializers()):
            # weight-only (dynamic-range) quantized files: float activations, int8 weights. PTQ starts from
            # the float values the weights stand for (exact: scale x integer).
            warnings.append("the model has quantized weights but float activations (dynamic-range "
                            "quantization); it was quantized again as a float model with those weights")
            graph = dequantize_weights(graph)
        float_graph = graph
        qgraph, quant_info = quantize(graph, calibration, warnings)
    core = split_float_edges(qgraph)[0]
    sched = resolve_schedule(core, schedule, max_mac_overhead, mcu)
    if not sched.is_layer or sched.why.startswith("auto"):
        say(f"schedule {sched.kind}: {sched.why}")
    say("generating C")
    from engine.export.preprocess import input_spec, provenance

    lib = generate_library(qgraph, c_name(name or qgraph.name), options=CodegenOptions(wide_weights=wide_weights),
                           schedule=sched)
    prep = input_spec(qgraph, lib, provenance(float_graph if float_graph is not None else graph, dataset))
    lib = with_input_helper(lib, prep)
    sample = None
    if calibration is not None and float_graph is not None:
        from engine.passes.calibrate import as_feeds

        sample = as_feeds(float_graph, calibration)[0]  # the golden input: the first calibration sample
    # A model with float32 edges: the int8 API (and so every case) is its int8 core's; the float API is
    # checked on its own below, against the whole model.
    cases = make_cases(core, lib, n_inputs, seed, sample)
    est, prof = estimate_json(qgraph, mcu, sched)

    with tempfile.TemporaryDirectory(prefix="tinystudio-export-") as td:
        fp, measured_note = None, ""
        try:
            if core_target(mcu).arm:
                say(f"measuring flash and RAM for {mcu.core}")
            fp = measure_footprint(lib, mcu, Path(td) / "footprint")
        except BuildError as e:
            measured_note = str(e)
        result = None
        if verify == "host":
            say(f"verifying on the host ({len(cases)} inputs)")
            result = verify_host(core, lib, cases=cases, workdir=Path(td) / "host")
        elif verify == "qemu":
            say(f"verifying in QEMU ({len(cases)} inputs)")
            result = verify_qemu(core, lib, mcu, cases=cases, workdir=Path(td) / "qemu")
            if fp is not None and result.stack_bytes is not None:
                fp = dataclasses.replace(fp, stack=result.stack_bytes,
                                         stack_method=f"painted stack in QEMU {result.machine}")
        float_api = None
        if result is not None and has_float_api(lib.inputs, lib.outputs):
            say(f"verifying the float API on the host ({n_inputs} float inputs)")
            float_api = verify_float_api(qgraph, lib, n_random=max(n_inputs, 1), seed=seed,
                                         workdir=Path(td) / "float")

    report = base_report(qgraph, lib, mcu)
    report["model"] = model_info(float_graph if float_graph is not None else graph)
    report["bundle"] = str(out)
    report["planner"] = prof.plan.planner
    report["wide_weights"] = {"enabled": bool(wide_weights),
                              "extra_flash_bytes": int(lib.stamp.get("wide_weights_extra_bytes", 0))}
    report["estimate"] = est
    report["schedule"] = prof.schedule_json()
    if fp is not None:
        report["measured"] = fp.to_json()
    else:
        report["measured"] = not_measured(measured_note)
    report["preprocessing"] = prep
    if result is None:
        report["verify"] = {"mode": "none", "inputs": 0, "matched": 0, "bit_exact": None,
                            "instructions_per_inference": None, "instructions_per_mac": None}
    else:
        report["verify"] = result.to_json()
        if float_api is not None:
            report["verify"]["float_api"] = float_api
            if not float_api["bit_exact"]:
                bad = float_api["inputs"] - float_api["matched"]
                warnings.append(f"the float API differs from the int8 reference on {bad} of "
                                f"{float_api['inputs']} inputs: {float_api['first_mismatch']}")
    report["quantization"] = quant_info
    warnings += fit_warnings(mcu, fp, est)
    if measured_note and core_target(mcu).arm:
        warnings.append(f"flash and RAM not measured: {measured_note}")
    onnx, notes = onnx_models(qgraph, float_graph)
    warnings += notes
    report["warnings"] = warnings
    say("writing the bundle")
    path = build_bundle(qgraph, lib, mcu, out, report, float_graph=float_graph, golden=cases[0], onnx=onnx)
    return ExportResult(path, report, lib, qgraph, result, fp, warnings)
