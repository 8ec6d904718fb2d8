"""`tinystudio grade --challenge FILE.toml MODEL [--json]`: the offline grader, the engine's grade() as a lab
server runs it. Exit 0 when graded (passed or not), 1 when the model could not be graded ("not graded: why"),
2 on bad input (a malformed challenge file, an unreadable model)."""
from __future__ import annotations

import sys

from app.commands.common import load_tsgraph, open_model, print_json
from app.labs import UNITS, fmt_value

EXIT_NOT_GRADED = 1


def add_parser(sub) -> None:
    """The `grade` subcommand (app/cli.py registers it)."""
    g = sub.add_parser("grade", help="Grade a model against a teaching-lab challenge (offline, as a lab server does).",
                       description="Grade MODEL against a challenge: RAM, flash, latency and energy as deployed "
                                   "(int8) on the challenge's MCU, accuracy on the data set's held-out test split, "
                                   "and export with bit-exact host verification of the C; each check with its "
                                   "value, limit and verdict.")
    g.add_argument("model", metavar="MODEL",
                   help="a .onnx, .tflite, .pt2 or .tsgraph file, or zoo:NAME[?k=v&...] (sized for the data set)")
    g.add_argument("--challenge", required=True, metavar="FILE.toml|builtin:NAME",
                   help="a challenge file, or a built-in lab: " + ", ".join(f"builtin:{n}" for n in _builtins()))
    g.add_argument("--json", action="store_true", help='print {"passed", "score", "checks": [...]} as JSON')
    g.set_defaults(fn=cmd_grade, input_shape=None)


def _builtins() -> list[str]:
    from engine.labs import list_builtin

    return list_builtin()


def cmd_grade(args) -> int:
    from engine.data import load_dataset
    from engine.labs import grade, load_challenge

    challenge = load_challenge(args.challenge)
    data = load_dataset(challenge.dataset)
    if args.model.strip().lower().startswith("zoo:"):
        from engine.train import adapt_zoo

        graph = adapt_zoo(args.model, data)
    elif args.model.lower().endswith(".tsgraph"):
        graph = load_tsgraph(args.model)
    else:
        graph = open_model(args)
    if not args.json:
        print(f"... grading {graph.name} against \"{challenge.title}\"", file=sys.stderr)
    res = grade(challenge, graph, data=data)
    if args.json:
        print_json(res.to_json())
    else:
        print("\n".join(text_lines(challenge, res)))
    return EXIT_NOT_GRADED if res.error else 0


def text_lines(challenge, res) -> list[str]:
    """The readable table: one row per check (value, limit, verdict), then the verdict and the score."""
    out = [f"challenge  {challenge.title}", f"target     {challenge.mcu} + {challenge.runtime}"]
    if res.error:
        return out + [res.error]
    out.append(f"model      {res.info['model']['name']}: {res.info['precision_note']}")
    rows = [("check", "value", "limit", "verdict")]
    for c in res.checks:
        if c.name == "export":
            value, limit = f"{c.value}/{c.limit} bit-exact", f"{c.limit}/{c.limit}"
        else:
            value, limit = fmt_value(c.name, c.value), fmt_value(c.name, c.limit)
            if c.limit is not None and (c.name in UNITS or c.name == "accuracy"):
                limit = (">= " if c.name == "accuracy" else "<= ") + limit
        rows.append((c.name, value, limit, "pass" if c.passed else "FAIL"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    out += ["  ".join(r[i].ljust(widths[i]) if i in (0, 3) else r[i].rjust(widths[i]) for i in range(4)).rstrip()
            for r in rows]
    out += [f"  {c.name}: {c.detail}" for c in res.checks]
    out.append(f"{'PASSED' if res.passed else 'NOT PASSED'}  score {res.score:g} ({challenge.method})")
    return out
