"""`tinystudio train`, `datasets` and `compress`: training and compression on data sets."""
from __future__ import annotations

import json
import os
import sys

from engine.errors import TinyStudioError
from app.commands.common import fmt_int, load_tsgraph, save_model, open_model


def _train_model(args, data):
    """MODEL for `train`: a zoo spec sized for the data set, a .tsgraph, or any importable model file."""
    from engine.train import adapt_zoo

    if args.model.strip().lower().startswith("zoo:"):
        return adapt_zoo(args.model, data, seed=args.seed)
    if args.model.lower().endswith(".tsgraph"):
        return load_tsgraph(args.model)
    return open_model(args)


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
    save_model(trained, out)
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
    """save_model, with ONNX opset 21 when the graph holds int4 weights (older opsets have no INT4)."""
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
    save_model(graph, out)


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
        graph = load_tsgraph(args.model)
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
        rows.append((name, fmt_int(m["macs"]), fmt_int(m["weight_bytes"]), fmt_int(m["activation_peak_bytes"]), acc))
    for r in rows:
        print(f"{r[0]:<8} " + "  ".join(c.rjust(13) for c in r[1:]))
    for n in res.notes + [w for w in (res.report.get("warnings") or []) if isinstance(w, str)]:
        print(f"note     {n}")
    print(f"wrote    {out}")
    return 0
