"""`tinystudio compress`: one compression action (app.workflows.compress, as the Compress page runs it)."""
from __future__ import annotations

from app.commands.common import (check_out, fmt_int, load_tsgraph, model_for_data, open_model, print_json,
                                 progress_log)
from app.workflows.files import write_model
from engine.compress.base import report_warnings
from engine.errors import TinyStudioError


def parse_params(items: list[str] | None) -> dict[str, str]:
    """--param KEY=VALUE (repeatable) -> {KEY: VALUE}; the action checks and converts the values."""
    params: dict[str, str] = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise TinyStudioError(f"--param {item!r}: expected KEY=VALUE")
        params[key.strip()] = value.strip()
    return params


def cmd_compress(args) -> int:
    """One compression action, headless: before/after MACs, weight bytes, peak SRAM and accuracy.

    A zoo: MODEL is built for the data set and, being randomly initialized (its accuracy means nothing),
    trained first for --train-epochs (reported under "pretrained"); --no-train skips that."""
    from app.workflows.compress import compress_version
    from engine.compress import get_action
    from engine.compress import parse_params as action_params

    action = get_action(args.action)  # unknown action / parameter: one line listing the valid ones
    params = action_params(action, parse_params(args.param))
    out = args.out
    check_out(out)
    data = None
    if args.dataset:
        from engine.data import load_dataset

        data = load_dataset(args.dataset, seed=args.seed)
    elif action.needs_data:
        raise TinyStudioError(f"action '{action.name}' needs --dataset NAME|PATH (see `tinystudio datasets`; "
                              "the real built-in is 'digits')")
    log = progress_log(args.json)
    is_zoo = args.model.strip().lower().startswith("zoo:")
    if data is not None:
        graph = model_for_data(args, data)
    elif args.model.lower().endswith(".tsgraph"):
        graph = load_tsgraph(args.model)
    else:
        graph = open_model(args)
    pretrain = (args.model, args.train_epochs) if is_zoo and not args.no_train else None
    outcome = compress_version(graph, action.name, params, data, progress=log, seed=args.seed, pretrain=pretrain)
    res, pretrained = outcome.result, outcome.pretrained
    write_model(res.graph, out)
    # "provenance" holds the same fields as the params of a version the studio's Compress page saves.
    doc = {"model": graph.name, "dataset": data.name if data is not None else None, **outcome.to_json(), "out": out}
    if args.json:
        return print_json(doc)
    if pretrained:
        print(f"note     {pretrained['note']} (accuracy {pretrained['accuracy']:.2%})")
    print(f"action   {res.action} {' '.join(f'{k}={v}' for k, v in doc['params'].items())}")
    rows = [("", "MACs", "weight bytes", "peak SRAM", "accuracy")]
    for name, m in (("before", res.before), ("after", res.after)):
        acc = "-" if m["accuracy"] is None else f"{m['accuracy']:.2%}"
        rows.append((name, fmt_int(m["macs"]), fmt_int(m["weight_bytes"]), fmt_int(m["activation_peak_bytes"]), acc))
    for r in rows:
        print(f"{r[0]:<8} " + "  ".join(c.rjust(13) for c in r[1:]))
    for n in res.notes:
        print(f"note     {n}")
    for w in report_warnings(res.report):
        print(f"warning  {w}")
    print(f"wrote    {out}")
    return 0
