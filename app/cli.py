"""`tinystudio` command line: a thin layer over the engine. Speaks JSON with --json.

User errors (engine.errors.TinyStudioError) print one line on stderr and exit 2; never a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from app.profile_targets import profile_targets
from engine import __version__
from engine.deployed import PRECISIONS
from engine.errors import TinyStudioError

EXIT_USER_ERROR = 2


def parse_shape(text: str) -> tuple[str | None, tuple[int, ...]]:
    """'1,3,224,224' or 'input:1,3,224,224' -> (name or None, shape)."""
    name, _, dims = text.rpartition(":")
    try:
        shape = tuple(int(d) for d in dims.replace("x", ",").split(",") if d.strip())
    except ValueError:
        raise TinyStudioError(f"--input-shape '{text}': expected comma-separated integers like 1,3,224,224") from None
    if not shape or min(shape) < 1:
        raise TinyStudioError(f"--input-shape '{text}': every dimension must be a positive integer")
    return (name or None), shape


def input_shapes(args) -> dict[str, tuple[int, ...]] | None:
    if not args.input_shape:
        return None
    shapes: dict[str, tuple[int, ...]] = {}
    for text in args.input_shape:
        name, shape = parse_shape(text)
        key = name or "*"
        if key in shapes:
            raise TinyStudioError(f"--input-shape given twice for {'the input' if key == '*' else key!r}")
        shapes[key] = shape
    if "*" in shapes and len(shapes) > 1:
        raise TinyStudioError("--input-shape: name every input (NAME:1,3,224,224) when the model has several")
    return shapes


def open_model(args):
    from engine.importers import load_model

    return load_model(args.model, input_shape=input_shapes(args))


def model_json(graph) -> dict:
    from engine.serialize import content_hash

    src = graph.meta.get("source", {})
    return {"name": graph.name, "source": src.get("spec") or src.get("path") or "", "format": src.get("format", ""),
            "hash": content_hash(graph)}


def inspect_report(graph) -> dict:
    from engine.summary import layer_records, sum_records

    records = layer_records(graph)
    total = sum_records(records)
    return {
        "model": model_json(graph),
        "inputs": [{"name": n, "shape": list(graph.tensors[n].shape), "dtype": graph.tensors[n].dtype}
                   for n in graph.inputs],
        "outputs": [{"name": n, "shape": list(graph.tensors[n].shape), "dtype": graph.tensors[n].dtype}
                    for n in graph.outputs],
        "totals": {"macs": total.macs, "flops": total.flops, "params": total.params, "layers": len(records)},
        "layers": [r.to_json() for r in records],
    }


def _fmt(n: int) -> str:
    return f"{n:,}"


def print_inspect(rep: dict) -> None:
    m = rep["model"]
    print(f"model  {m['name']}  ({m['format']}{', ' + m['source'] if m['source'] and m['source'] != m['name'] else ''})")
    for io in rep["inputs"]:
        print(f"input  {io['name']}  {io['shape']}  {io['dtype']}")
    for io in rep["outputs"]:
        print(f"output {io['name']}  {io['shape']}  {io['dtype']}")
    rows = [("#", "layer", "op", "output shape", "MACs", "params")]
    for i, r in enumerate(rep["layers"]):
        rows.append((str(i), r["name"], r["op"], "x".join(map(str, r["output_shape"])) or "scalar",
                     _fmt(r["macs"]), _fmt(r["params"])))
    widths = [min(max(len(r[c]) for r in rows), 40) for c in range(len(rows[0]))]
    for r in rows:
        cells = [r[c][:40].ljust(widths[c]) if c < 4 else r[c].rjust(widths[c]) for c in range(len(r))]
        print("  ".join(cells))
    t = rep["totals"]
    print(f"total  {t['layers']} layers  {_fmt(t['macs'])} MACs  {_fmt(t['flops'])} FLOPs  {_fmt(t['params'])} params")


def cmd_inspect(args) -> int:
    rep = inspect_report(open_model(args))
    if args.json:
        print(json.dumps(rep, indent=1))
    else:
        print_inspect(rep)
    return 0


def _load_array(path: str) -> dict[str, np.ndarray] | np.ndarray:
    if not os.path.isfile(path):
        raise TinyStudioError(f"{path}: no such input file")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise TinyStudioError(f"{path}: not a readable .npy/.npz array file ({e})") from None
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            return {k: data[k] for k in data.files}
    return data


def cmd_run(args) -> int:
    from engine.execute import run_graph
    from engine.int8 import run_int8

    if args.dataset:
        return _run_sample(args)
    if not args.input:
        raise TinyStudioError("give --input X.npy (or --dataset NAME [--sample I] to try a data set sample)")
    graph = open_model(args)
    feeds: dict[str, np.ndarray] = {}
    for spec in args.input:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = "", spec
        arr = _load_array(path)
        if isinstance(arr, dict):
            feeds.update(arr)
        else:
            if not name:
                if len(graph.inputs) != 1:
                    raise TinyStudioError(f"the model has inputs {graph.inputs}; give --input NAME=FILE.npy for each")
                name = graph.inputs[0]
            feeds[name] = arr
    unknown = set(feeds) - set(graph.inputs)
    if unknown:
        raise TinyStudioError(f"unknown input(s) {sorted(unknown)}; the model's inputs are {graph.inputs}")
    for name in graph.inputs:
        t = graph.tensors[name]
        if name in feeds and t.quant is None and t.dtype == "float32":
            feeds[name] = feeds[name].astype(np.float32)
    quantized = any(t.quant is not None for t in graph.tensors.values())
    # Quantized graphs run the integer kernels (tflite-micro's bytes) unless --float asks for the float reference.
    integer = quantized and not args.float
    try:
        outs = run_int8(graph, feeds) if integer else run_graph(graph, feeds)
    except TinyStudioError as e:
        raise TinyStudioError(f"{e}; --float runs the float reference instead" if integer else str(e)) from None
    mode = "int8" if integer else ("float-dequantized" if quantized else "float")
    if args.output:
        if args.output.endswith(".npz"):
            np.savez(args.output, **outs)
        else:
            if len(outs) != 1:
                raise TinyStudioError(f"the model has {len(outs)} outputs; use an .npz file for --output")
            np.save(args.output, next(iter(outs.values())))
    if args.json:
        print(json.dumps({"model": model_json(graph), "mode": mode,
                          "outputs": {k: {"shape": list(v.shape), "dtype": str(v.dtype), "values": v.tolist()}
                                      for k, v in outs.items()}}))
        return 0
    if integer:
        print("note: quantized model run with the int8 reference kernels (bit-exact to tflite-micro); "
              "--float runs the float reference on dequantized values", file=sys.stderr)
    elif quantized:
        print("note: quantized model run with the float reference on dequantized values (--float)", file=sys.stderr)
    for k, v in outs.items():
        flat = v.reshape(-1)
        head = ", ".join(f"{x:.6g}" for x in flat[:10]) + (", ..." if flat.size > 10 else "")
        extra = f"  argmax {int(np.argmax(v))}" if v.ndim <= 2 and v.size > 1 else ""
        print(f"{k} {list(v.shape)} {v.dtype}: [{head}]{extra}")
    if args.output:
        print(f"saved {args.output}")
    return 0


def _run_sample(args) -> int:
    """`run MODEL --dataset NAME [--sample I]`: the Train page's "Try it" on the command line."""
    from engine.data import load_dataset
    from engine.tryit import dataset_sample, try_input

    if args.input:
        raise TinyStudioError("give either --input or --dataset, not both")
    graph = _load_tsgraph(args.model) if args.model.lower().endswith(".tsgraph") else open_model(args)
    data = load_dataset(args.dataset)
    x, label, index = dataset_sample(data, args.sample, seed=None if args.sample is None else 0)
    res = try_input(graph, x, data.class_names, label)
    if args.json:
        print(json.dumps({"model": model_json(graph), "dataset": data.name, "sample": index, **res}))
        return 0
    print(f"sample   {index} of {len(data.x_val)} ({data.name}, validation split), true class {res['label_class']}")
    for m in res["modes"]:
        top = ", ".join(f"{t['class']} {t['score']:.1%}" for t in m["top"][:3])
        print(f"{m['mode']:<8} predicts {m['class']} ({top})")
    return 0


def cmd_profile(args) -> int:
    from engine.profile import profile_graph

    targets = profile_targets(args.mcu or [], args.runtime)
    graph = open_model(args)
    prof = profile_graph(graph, targets, precision=args.precision)
    if args.json:
        rep = inspect_report(graph)
        doc = prof.to_json()
        rep["precision"], rep["precision_requested"] = doc["precision"], doc["precision_requested"]
        rep["precision_note"] = doc["precision_note"]
        rep["totals"].update(doc["totals"])
        rep["layers"] = doc["layers"]
        rep["memory"] = doc["memory"]
        rep["targets"] = doc["targets"]
        print(json.dumps(rep, indent=1))
        return 0
    print_profile(graph, prof)
    return 0


def print_profile(graph, prof) -> None:
    m = model_json(graph)
    print(f"model  {m['name']}  ({m['format']})")
    print(f"precision  {prof.precision}: {prof.precision_note}")
    head = ["#", "layer", "op", "output shape", "MACs", "weights B", "output B", "live B"]
    head += [f"{t.mcu} ms" for t in prof.targets]
    rows = [head]
    per = [{le.name: le for le in t.layers} for t in prof.targets]
    for lp in prof.layers:
        r = lp.record
        rows.append([str(lp.step), r.name, r.op, "x".join(map(str, r.output_shape)), _fmt(r.macs),
                     _fmt(r.weight_bytes), _fmt(r.output_bytes), _fmt(lp.live_bytes)]
                    + [f"{p[r.name].latency_ms:.3f}" for p in per])
    widths = [min(max(len(row[c]) for row in rows), 32) for c in range(len(head))]
    for row in rows:
        print("  ".join(row[c][:32].ljust(widths[c]) if c < 4 else row[c].rjust(widths[c]) for c in range(len(row))))
    t = prof.totals()
    print(f"total  {t['layers']} layers  {_fmt(t['macs'])} MACs  {_fmt(t['params'])} params  "
          f"weights {_fmt(t['weight_bytes'])} B + quantization data {_fmt(t['quant_bytes'])} B")
    planners = ", ".join(f"{k} {_fmt(v)}" for k, v in t["arena_by_planner"].items())
    print(f"memory activation arena {_fmt(t['activation_peak_bytes'])} B ({t['planner']}; layer-by-layer lower bound "
          f"{_fmt(t['activation_lower_bound_bytes'])} B; planners: {planners})")
    for est in prof.targets:
        print(f"target {est.mcu} + {est.runtime} (estimate): {est.latency_ms:.2f} ms, {est.energy_uj:.0f} uJ, "
              f"RAM {_fmt(est.ram_bytes)} B, flash {_fmt(est.flash_bytes)} B: {est.fit_message()}")
    if not prof.targets:
        print("add --mcu ID (repeatable) for latency, energy and fit estimates; `tinystudio mcus` lists the MCUs")


def _calibration_data(path: str, graph):
    """--calibration FILE.npz/.npy -> what quantize_model takes: an (N, ...) array for a one-input model, or one
    dict per sample keyed by input name."""
    data = _load_array(path)
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


def cmd_mcus(args) -> int:
    from hwmodels.mcu import load_mcus
    from hwmodels.runtime import load_runtimes

    mcus = load_mcus()
    runtimes = load_runtimes()
    if args.json:
        print(json.dumps({"mcus": [m.to_json() for m in mcus.values()],
                          "runtimes": [{"id": r.id, "name": r.name, "description": r.description,
                                        "cores": list(r.core_families)} for r in runtimes.values()]}, indent=1))
        return 0
    rows = [("id", "name", "core", "MHz", "SRAM KB", "flash KB", "FPU", "SIMD/DSP", "mW")]
    for m in mcus.values():
        rows.append((m.id, m.name, m.core, f"{m.clock_mhz:g}", f"{m.sram_kb:g}",
                     f"{m.flash_kb:g}{' ext' if m.flash_external else ''}", m.fpu,
                     m.simd if m.simd != "none" else ("dsp" if m.dsp else "-"), f"{m.active_power_mw:.0f}"))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        print("  ".join(r[c].ljust(widths[c]) if c < 3 else r[c].rjust(widths[c]) for c in range(len(r))))
    print("runtimes: " + ", ".join(runtimes))
    return 0


def cmd_zoo(args) -> int:
    from engine.zoo import list_zoo

    entries = list_zoo()
    if args.json:
        print(json.dumps(entries, indent=1))
        return 0
    for e in entries:
        print(f"zoo:{e['name']:<14} {e['description']}")
        params = "  ".join(f"{p['name']}={p['default']}" for p in e["params"])
        if params:
            print(f"    {params}")
    return 0


def _train_model(args, data):
    """MODEL for `train`: a zoo spec sized for the data set, a .tsgraph, or any importable model file."""
    from engine.train import adapt_zoo

    if args.model.strip().lower().startswith("zoo:"):
        return adapt_zoo(args.model, data, seed=args.seed)
    if args.model.lower().endswith(".tsgraph"):
        return _load_tsgraph(args.model)
    return open_model(args)


def _load_tsgraph(path: str):
    from engine.serialize import load

    if not os.path.isfile(path):
        raise TinyStudioError(f"{path}: no such file")
    return load(path)


def _save_model(graph, out: str) -> None:
    """Write .onnx or .tsgraph via a temporary file, so a failed write leaves nothing behind."""
    from engine.exporters.onnx_export import save_onnx
    from engine.serialize import save

    tmp = f"{out}.tmp-{os.getpid()}"
    try:
        (save_onnx if out.lower().endswith(".onnx") else save)(graph, tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def cmd_train(args) -> int:
    from app.workflows.train import TrainSettings, train_version
    from engine.data import load_dataset

    out = args.out
    if not out.lower().endswith((".onnx", ".tsgraph")):
        raise TinyStudioError(f"--out {out}: write a .onnx or .tsgraph file")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise TinyStudioError(f"--out {out}: folder {folder} does not exist")
    data = load_dataset(args.dataset, seed=args.seed)
    graph = _train_model(args, data)
    log = None if args.quiet else (lambda f, msg: print(f"[{f:4.0%}] {msg}", file=sys.stderr))
    settings = TrainSettings(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                             patience=args.patience)
    result = train_version(graph, data, settings, progress=log)
    trained, rep = result.graph, result.report
    _save_model(trained, out)
    # "provenance" holds the same fields as the params of a version the studio's Train page saves.
    res = {"model": graph.name, "dataset": data.name, "out": out, **rep.to_json(),
           "data": data.to_json(), "provenance": result.provenance}
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    stop = f", stopped early (best epoch {rep.best_epoch})" if rep.early_stopped else ""
    metric = "accuracy" if data.task == "classification" else "R^2"
    print(f"model    {graph.name}")
    print(f"data     {data.name}: {len(data.x_train)} train / {len(data.x_val)} validation samples, "
          f"{list(data.input_shape)} per sample, {data.classes} classes")
    print(f"trained  {rep.epochs_run} epochs in {rep.seconds:.1f} s{stop}")
    print(f"{metric:<8} {rep.accuracy:.2%} on the validation split (loss {rep.loss:.4f})")
    print(f"wrote    {out}")
    return 0


def cmd_datasets(args) -> int:
    from engine.data import list_datasets

    entries = list_datasets()
    if args.json:
        print(json.dumps(entries, indent=1))
        return 0
    for e in entries:
        shape = "x".join(str(d) for d in e["input_shape"])
        print(f"{e['name']:<17} {shape:<8} {e['classes']:>3} classes {e['samples']:>6,} samples  {e['description']}")
    print("or a file: .npz (arrays x, y), .csv (features..., label), .zip of class folders of images")
    return 0


def _compress_params(items: list[str] | None) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise TinyStudioError(f"--param {item!r}: expected KEY=VALUE")
        params[key.strip()] = value.strip()
    return params


def _save_compressed(graph, out: str) -> None:
    """_save_model, with ONNX opset 21 when the graph holds int4 weights (older opsets have no INT4)."""
    if out.lower().endswith(".onnx") and any(t.dtype == "int4" for t in graph.tensors.values()):
        from engine.exporters.onnx_export import save_onnx

        tmp = f"{out}.tmp-{os.getpid()}"
        try:
            save_onnx(graph, tmp, opset=21)
            os.replace(tmp, out)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return
    _save_model(graph, out)


def cmd_compress(args) -> int:
    """One compression action, headless: before/after MACs, weight bytes, peak SRAM and accuracy.

    A zoo: MODEL is built for the data set and, being randomly initialized (its accuracy means nothing),
    trained first for --train-epochs (reported under "pretrained"); --no-train skips that."""
    from engine.compress import compress, get_action, parse_params

    action = get_action(args.action)  # unknown action / parameter: one line listing the valid ones
    params = parse_params(action, _compress_params(args.param))
    out = args.out
    if not out.lower().endswith((".onnx", ".tsgraph")):
        raise TinyStudioError(f"--out {out}: write a .onnx or .tsgraph file")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise TinyStudioError(f"--out {out}: folder {folder} does not exist")
    data = None
    if args.dataset:
        from engine.data import load_dataset

        data = load_dataset(args.dataset, seed=args.seed)
    elif action.needs_data:
        raise TinyStudioError(f"action '{action.name}' needs --dataset NAME|PATH (see `tinystudio datasets`; "
                              "the real built-in is 'digits')")
    log = None if args.json else (lambda f, msg: print(f"[{f:4.0%}] {msg}", file=sys.stderr))
    is_zoo = args.model.strip().lower().startswith("zoo:")
    if data is not None:
        graph = _train_model(args, data)
    elif args.model.lower().endswith(".tsgraph"):
        graph = _load_tsgraph(args.model)
    else:
        graph = open_model(args)
    pretrained = None
    if is_zoo and data is not None and not args.no_train:
        from engine.train import train

        graph, rep = train(graph, data, epochs=args.train_epochs, lr=3e-3, batch_size=32, seed=args.seed,
                           patience=5, progress=log)
        pretrained = {"epochs_run": rep.epochs_run, "accuracy": rep.accuracy,
                      "note": f"{args.model} is randomly initialized: trained on {data.name} for {rep.epochs_run} "
                              "epochs before compressing (--no-train skips this)"}
    res = compress(graph, action.name, params, data, progress=log, seed=args.seed)
    _save_compressed(res.graph, out)
    doc = {"model": graph.name, "dataset": data.name if data is not None else None, "pretrained": pretrained,
           **res.to_json(), "out": out}
    if args.json:
        print(json.dumps(doc, indent=1))
        return 0
    if pretrained:
        print(f"note     {pretrained['note']} (accuracy {pretrained['accuracy']:.2%})")
    print(f"action   {res.action} {' '.join(f'{k}={v}' for k, v in doc['params'].items())}")
    rows = [("", "MACs", "weight bytes", "peak SRAM", "accuracy")]
    for name, m in (("before", res.before), ("after", res.after)):
        acc = "-" if m["accuracy"] is None else f"{m['accuracy']:.2%}"
        rows.append((name, _fmt(m["macs"]), _fmt(m["weight_bytes"]), _fmt(m["activation_peak_bytes"]), acc))
    for r in rows:
        print(f"{r[0]:<8} " + "  ".join(c.rjust(13) for c in r[1:]))
    for n in res.notes + [w for w in (res.report.get("warnings") or []) if isinstance(w, str)]:
        print(f"note     {n}")
    print(f"wrote    {out}")
    return 0


def studio_command(port: int, db_path: str, host: str = "127.0.0.1") -> tuple[list[str], dict]:
    """The streamlit command line and environment that start the studio."""
    from engine.importers import MAX_UPLOAD_BYTES

    main = os.path.join(os.path.dirname(os.path.abspath(__file__)), "main.py")
    # A fixed address also stops Streamlit from looking up the machine's external IP on the internet.
    cmd = [sys.executable, "-m", "streamlit", "run", main, "--server.port", str(port), "--server.address", host,
           "--server.headless", "true",
           "--browser.gatherUsageStats", "false", "--server.maxUploadSize", str(MAX_UPLOAD_BYTES // 10**6),
           "--server.fileWatcherType", "none", "--client.toolbarMode", "minimal"]
    env = dict(os.environ, TINYSTUDIO_DB=db_path)
    return cmd, env


def cmd_studio(args) -> int:
    from store import check_integrity, open_store

    db_path = os.path.abspath(args.db or default_db_path())
    store = open_store(db_path)  # create and migrate now: a bad --db path fails here, in one line
    try:  # versions added or changed since the last start are decoded and hashed (at most 100 per start)
        problems = check_integrity(store, deep="changed", limit=100)
    finally:
        store.close()
    for line in problems[:20]:
        print(f"warning: {db_path}: {line}", file=sys.stderr)
    cmd, env = studio_command(args.port, db_path, args.host)
    print(f"TinyStudio {__version__}: http://{args.host}:{args.port}  (database {db_path})", flush=True)
    os.execvpe(cmd[0], cmd, env)
    return 0


def default_db_path() -> str:
    from store import default_db_path as store_default

    return store_default()


def cmd_diff(args) -> int:
    """What changed from MODEL to OTHER, in the words the studio's History uses (engine.diff)."""
    from engine.diff import graph_changes

    a = open_model(args)
    b = open_model(argparse.Namespace(**{**vars(args), "model": args.other}))
    changes = graph_changes(a, b)
    if args.json:
        print(json.dumps({"a": args.model, "b": args.other, "changes": changes}, indent=1))
    else:
        print("\n".join(changes) if changes else "no change to the graph")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tinystudio", description="Design neural networks for microcontrollers.")
    p.add_argument("--version", action="version", version=f"tinystudio {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def model_cmd(name: str, help_: str):
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.add_argument("model", metavar="MODEL", help="a .onnx, .tflite or .pt2 file, or zoo:NAME[?k=v&...]")
        sp.add_argument("--input-shape", action="append", metavar="[NAME:]N,C,H,W",
                        help="fix dynamic input dims (repeat for several inputs)")
        sp.add_argument("--json", action="store_true", help="print JSON")
        return sp

    model_cmd("inspect", "Print the graph: layers, shapes, MACs, parameters.").set_defaults(fn=cmd_inspect)
    r = model_cmd("run", "Run the model with the reference executor on inputs from .npy/.npz files.")
    r.add_argument("--input", action="append", metavar="[NAME=]X.npy",
                   help="input array (.npy, or .npz with one array per input name)")
    r.add_argument("--dataset", metavar="NAME|PATH",
                   help="try the model on a sample of this data set (validation split): prediction, class scores "
                        "and true label, float and int8")
    r.add_argument("--sample", type=int, metavar="I", help="the validation sample to try (default: a random one)")
    r.add_argument("--output", metavar="Y.npy", help="save the output (.npy, or .npz for several outputs)")
    r.add_argument("--float", action="store_true",
                   help="run a quantized model with the float reference on dequantized values instead of the "
                        "int8 kernels")
    r.set_defaults(fn=cmd_run)
    pr = model_cmd("profile", "Per-layer profile: memory plan, and latency, energy and fit on MCUs (estimates).")
    pr.add_argument("--mcu", action="append", metavar="ID", help="target MCU (repeatable; see `tinystudio mcus`)")
    pr.add_argument("--runtime", metavar="ID",
                    help="runtime profile (default: tflm-cmsis-nn on Arm cores, esp-nn on ESP32 parts)")
    pr.add_argument("--precision", choices=PRECISIONS, default="as-is",
                    help="as-is (default): the model as given; int8: as deployed, the graph the export generates "
                         "C from (BN folded, activations fused, int8); float32: a float model as is, an int8 one "
                         "dequantized")
    pr.set_defaults(fn=cmd_profile)
    ex = model_cmd("export", "Quantize (if float), generate C, verify it and write a firmware bundle (zip).")
    ex.add_argument("--mcu", required=True, metavar="ID", help="target MCU (see `tinystudio mcus`)")
    ex.add_argument("--out", required=True, metavar="BUNDLE.zip", help="the zip file to write")
    ex.add_argument("--verify", choices=("none", "host", "qemu"), default="host",
                    help="compare the C with the int8 reference: host gcc (default) or QEMU for the MCU's core")
    ex.add_argument("--inputs", type=int, default=20, metavar="N",
                    help="random inputs to verify besides the golden one (default 20)")
    ex.add_argument("--name", metavar="NAME",
                    help="name of the bundle and its C library (made a C identifier; default: the model file's "
                         "or zoo model's name)")
    ex.add_argument("--calibration", metavar="FILE.npz",
                    help="calibration samples for quantizing a float model (.npy, or .npz with one array per input)")
    ex.set_defaults(fn=cmd_export)
    mc = sub.add_parser("mcus", help="List the MCUs and runtime profiles.")
    mc.add_argument("--json", action="store_true")
    mc.set_defaults(fn=cmd_mcus)
    z = sub.add_parser("zoo", help="List the model zoo and its parameters.")
    z.add_argument("--json", action="store_true")
    z.set_defaults(fn=cmd_zoo)
    df = model_cmd("diff", "What changed from MODEL to OTHER (layers added, removed, rewired; attributes, channels, "
                           "weight types), as the studio's History says it.")
    df.add_argument("other", metavar="OTHER", help="the second model (same forms as MODEL)")
    df.set_defaults(fn=cmd_diff)
    tr = model_cmd("train", "Train a model on a data set (CPU, deterministic with --seed); write .onnx or .tsgraph.")
    tr.add_argument("--dataset", required=True, metavar="NAME|PATH",
                    help="a built-in (see `tinystudio datasets`) or a .npz, .csv or .zip file")
    tr.add_argument("--epochs", type=int, default=20, help="most epochs to run (default 20)")
    tr.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 0.003)")
    tr.add_argument("--batch-size", type=int, default=32, help="default 32")
    tr.add_argument("--seed", type=int, default=0, help="split, initialization and shuffling seed (default 0)")
    tr.add_argument("--patience", type=int, default=5,
                    help="stop after this many epochs without a better validation loss (0: never; default 5)")
    tr.add_argument("--out", required=True, metavar="FILE", help="the trained model: .onnx or .tsgraph")
    tr.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    tr.set_defaults(fn=cmd_train)
    cp = model_cmd("compress", "Run one compression action and print what it buys and costs (before/after).")
    cp.add_argument("--action", required=True, metavar="NAME",
                    help="fold-bn, quantize-int8, qat-int8, mixed-precision, ternary, prune-magnitude, "
                         "prune-channels, low-rank, distill, early-exit")
    cp.add_argument("--param", action="append", metavar="KEY=VALUE", help="action parameter (repeatable)")
    cp.add_argument("--dataset", metavar="NAME|PATH",
                    help="a built-in (see `tinystudio datasets`) or a .npz, .csv or .zip file; every action but "
                         "fold-bn needs one")
    cp.add_argument("--out", required=True, metavar="FILE", help="the new model: .onnx or .tsgraph")
    cp.add_argument("--seed", type=int, default=0, help="split, training and sampling seed (default 0)")
    cp.add_argument("--train-epochs", type=int, default=20,
                    help="a zoo: MODEL is trained on the data set first for at most this many epochs (default 20)")
    cp.add_argument("--no-train", action="store_true", help="do not train a zoo: MODEL before compressing")
    cp.set_defaults(fn=cmd_compress)
    ds = sub.add_parser("datasets", help="List the built-in data sets.")
    ds.add_argument("--json", action="store_true")
    ds.set_defaults(fn=cmd_datasets)
    s = sub.add_parser("studio", help="Start the web studio.")
    s.add_argument("--port", type=int, default=8501)
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 to serve a lab network)")
    s.add_argument("--db", metavar="PATH", help="DuckDB file (default: in the user's data folder)")
    s.set_defaults(fn=cmd_studio)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except TinyStudioError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
