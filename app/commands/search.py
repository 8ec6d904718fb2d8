"""`tinystudio search`: architectures (and, with --search-training, training hyperparameters and the compression
policy) under MCU constraints, on local worker processes or a Dask cluster. A thin layer over engine.search."""
from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import replace

from engine.errors import TinyStudioError

_MODEL_EXT = (".onnx", ".tflite", ".pt2", ".tsgraph")


def parse_bytes(text: str, what: str) -> int:
    """'65536', '64K', '64KB', '64KiB', '1M' -> bytes (K = 1024, as MCU data sheets count SRAM)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)(?:i?[bB])?\s*", str(text))
    if not m:
        raise TinyStudioError(f"{what} {text!r}: expected bytes like 65536, 64K or 1M")
    value = float(m.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]
    if value < 1:
        raise TinyStudioError(f"{what} {text!r}: must be at least 1 byte")
    return int(value)


def parse_knobs(items: list[str] | None) -> tuple[tuple[str, tuple], ...]:
    """--knob NODE.ATTR=V1,V2,... -> (("NODE.ATTR", (V1, V2, ...)), ...); kernels as 3 or 3x3."""
    out = []
    for item in items or []:
        key, eq, values = item.partition("=")
        if not eq or "." not in key or not values.strip():
            raise TinyStudioError(f"--knob {item!r}: expected NODE.ATTR=V1,V2,... (e.g. conv1.channels=8,16,24)")
        try:
            vals = tuple(tuple(int(p) for p in v.split("x")) if "x" in v else int(v)
                         for v in values.split(",") if v.strip())
        except ValueError:
            raise TinyStudioError(f"--knob {item!r}: choices must be whole numbers (kernels as 3 or 3x3)") from None
        out.append((key.strip(), vals))
    return tuple(out)


def _is_model(space: str) -> bool:
    s = space.strip().lower()
    return s.startswith("zoo:") or s.endswith(_MODEL_EXT) or os.path.sep in space


def _base_graph(args, data_name: str, seed: int):
    """The model whose marked knobs `--space MODEL` searches, taking the data set's samples."""
    from app.commands.common import load_tsgraph

    path = args.space
    if path.strip().lower().startswith("zoo:"):
        from engine.data import load_dataset
        from engine.train import adapt_zoo

        return adapt_zoo(path, load_dataset(data_name, seed=seed), seed=seed)
    if not os.path.isfile(path):
        raise TinyStudioError(f"--space {path}: no such model file (or give a space: see --list-spaces)")
    if path.lower().endswith(".tsgraph"):
        return load_tsgraph(path)
    from engine.importers import load_model

    return load_model(path)


def _spec(args):
    from engine.search import StudySpec

    model = _is_model(args.space)
    if args.knob and not model:
        raise TinyStudioError("--knob marks a model's attributes: give --space MODEL (a model file or zoo:NAME)")
    if bool(args.study) != bool(args.db) and args.db and not args.study:
        raise TinyStudioError("--db FILE needs --study NAME (the study to create or resume in that file)")
    name = args.study or f"{'version' if model else args.space}-{os.path.basename(str(args.dataset))}-{args.mcu}"
    objectives = tuple(o.strip() for o in args.objectives.split(",") if o.strip())
    return StudySpec(name=name, space="version" if model else args.space.strip().lower(), dataset=args.dataset,
                     mcu=args.mcu, runtime=args.runtime,
                     max_sram=parse_bytes(args.max_sram, "--max-sram") if args.max_sram else None,
                     max_flash=parse_bytes(args.max_flash, "--max-flash") if args.max_flash else None,
                     max_latency_ms=args.max_latency_ms, objectives=objectives, strategy=args.strategy,
                     trials=args.trials, time_budget_s=args.time_budget, epochs=args.epochs, seed=args.seed,
                     search_training=args.search_training, marks=parse_knobs(args.knob), prune=not args.no_prune)


def cmd_list_spaces(args) -> int:
    from engine.search import SPACES
    from engine.search.spaces import COMPRESSION_KNOBS, TRAINING_KNOBS

    if args.json:
        print(json.dumps([s.to_json() for s in SPACES.values()], indent=1))
        return 0
    for name, s in SPACES.items():
        print(f"{name:<12} {s.description}")
        for k in s.knobs:
            shown = "factors 0.5-2 of the data's size" if not k.choices else \
                ", ".join("x".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in k.choices)
            print(f"  {k.name:<16} {shown}")
    print("or a model (file or zoo:NAME) with --knob NODE.ATTR=V1,V2,... (channels, kernel, stride); "
          "--search-training adds: " + ", ".join(k.name for k in TRAINING_KNOBS + COMPRESSION_KNOBS))
    return 0


def cmd_search(args) -> int:
    if args.list_spaces:
        return cmd_list_spaces(args)
    missing = [f for f, v in (("--space", args.space), ("--dataset", args.dataset), ("--mcu", args.mcu),
                              ("--out", args.out)) if not v]
    if missing:
        raise TinyStudioError(f"search needs {', '.join(missing)} (or --list-spaces)")
    from pathlib import Path

    from engine.search import run_study

    spec = _spec(args)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise TinyStudioError(f"--out {args.out}: exists and is not a folder")
    if args.dataset and os.path.exists(args.dataset):  # workers may run in another folder: an absolute path
        spec = replace(spec, dataset=os.path.abspath(args.dataset))
    base = _base_graph(args, spec.dataset, spec.seed) if spec.space == "version" else None
    storage = Path(args.db) if args.db else Path(args.out) / "study.journal"
    log = None if args.json else _progress
    res = run_study(spec, out_dir=Path(args.out), storage=storage, workers=args.workers, scheduler=args.scheduler,
                    base_graph=base, on_trial=log)
    doc = res.to_json()
    if args.json:
        print(json.dumps(doc, indent=1))
        return 0
    c = doc["trials"]
    print(f"study    {res.study} ({res.strategy}) in {storage}")
    print(f"trials   {c['total']}: {c['trained']} trained, {c['rejected']} rejected before training, "
          f"{c['pruned']} pruned, {c['failed']} failed")
    hv = "-" if res.hypervolume is None else f"{res.hypervolume:.4f}"
    print(f"pareto   {len(doc['pareto'])} points, hypervolume {hv} (objectives {', '.join(spec.objectives)}, "
          "normalized to the limits)")
    for p in doc["pareto"]:
        print(f"  #{p['trial']:<4} accuracy {p['accuracy']:.2%}  latency {p['latency_ms']:.2f} ms  RAM "
              f"{p['ram_bytes']:,} B  flash {p['flash_bytes']:,} B  {p['macs']:,} MACs  {p['model']}")
    return 0


def _progress(t) -> None:
    what = {"trained": f"accuracy {t.accuracy:.2%}" if t.accuracy is not None else "",
            "rejected": f"broke {t.broke}", "pruned": t.error or "", "failed": t.error or ""}[t.state]
    print(f"trial {t.number:>4} {t.state:<8} {what} ({t.seconds:.1f} s)", file=sys.stderr)


def add_parser(sub) -> None:
    """The `search` subcommand (app/cli.py registers it)."""
    from engine.search import OBJECTIVES, STRATEGIES

    s = sub.add_parser("search", help="Search architectures (and training settings) that fit an MCU.",
                       description="Search a space of architectures for the most accurate models that fit an MCU: "
                                   "every candidate is profiled as deployed (int8) before any training and rejected "
                                   "when it breaks a limit; the rest are trained and the Pareto front is reported.")
    s.add_argument("--list-spaces", action="store_true", help="list the search spaces and their knobs")
    s.add_argument("--space", metavar="NAME|MODEL",
                   help="a space (mobilenetv2, dscnn, resnet, cnn1d) or a model (file or zoo:NAME) whose --knob "
                        "marks are searched")
    s.add_argument("--knob", action="append", metavar="NODE.ATTR=V1,V2,...",
                   help="with --space MODEL: a marked choice (channels, kernel, stride; repeatable); without any, "
                        "every hidden layer's channels at 0.5-1.5x (with --search-training: the architecture as it "
                        "is, training and compression searched alone)")
    s.add_argument("--dataset", metavar="NAME|PATH", help="a built-in (see `tinystudio datasets`) or a data file")
    s.add_argument("--mcu", metavar="ID", help="target MCU (see `tinystudio mcus`)")
    s.add_argument("--runtime", metavar="ID", help="runtime profile (default: the MCU's default runtime)")
    s.add_argument("--max-sram", metavar="BYTES", help="RAM limit as deployed (arena + runtime), e.g. 65536 or 64K")
    s.add_argument("--max-flash", metavar="BYTES", help="flash limit as deployed (weights + code), e.g. 256K")
    s.add_argument("--max-latency-ms", type=float, metavar="MS", help="latency limit (estimate on the MCU)")
    s.add_argument("--objectives", default="accuracy,latency_ms", metavar="LIST",
                   help=f"comma-separated, from {', '.join(OBJECTIVES)} (default accuracy,latency_ms)")
    s.add_argument("--strategy", choices=STRATEGIES, default="tpe",
                   help="random (the baseline), tpe or nsga2 (optuna); default tpe")
    s.add_argument("--trials", type=int, default=20,
                   help="candidates to train (rejected ones cost no training and do not count; default 20)")
    s.add_argument("--time-budget", type=float, metavar="S", help="stop starting trials after S seconds")
    s.add_argument("--epochs", type=int, default=5, help="training epochs per candidate (default 5; successive "
                                                          "halving prunes weak ones early)")
    s.add_argument("--no-prune", action="store_true",
                   help="train every candidate all its epochs (no successive halving): equal-fidelity results")
    s.add_argument("--seed", type=int, default=0, help="sampler, split and initialization seed (default 0)")
    s.add_argument("--search-training", action="store_true",
                   help="also search the learning rate, batch size, epochs, weight decay, augmentation (noise, "
                        "time shift) and the compression policy (channel pruning, int8 or mixed int8/int4 "
                        "weights), jointly with the architecture")
    s.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    s.add_argument("--scheduler", metavar="ADDRESS", help="run on an existing Dask cluster, e.g. tcp://HOST:8786")
    s.add_argument("--study", metavar="NAME", help="study name (default from space, data set and MCU)")
    s.add_argument("--db", metavar="FILE", help="the study's journal file (default OUT/study.journal); the same "
                                                "--study and --db resume a study")
    s.add_argument("--out", metavar="DIR", help="folder for the trained models (and the journal by default)")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(fn=cmd_search)
