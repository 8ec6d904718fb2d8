"""`tinystudio run`: the reference executor on inputs from files, or on a data set sample (Try it)."""
from __future__ import annotations

import json
import sys

import numpy as np

from app.commands.common import load_tsgraph, model_json, open_model
from app.workflows.files import load_array
from engine.errors import TinyStudioError


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
        arr = load_array(path)
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
    graph = load_tsgraph(args.model) if args.model.lower().endswith(".tsgraph") else open_model(args)
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
