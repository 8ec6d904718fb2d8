"""`tinystudio diff`: what changed from MODEL to OTHER, in the words of the studio's History."""
from __future__ import annotations

import argparse
import json

from app.commands.common import open_model


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
