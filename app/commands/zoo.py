"""`tinystudio zoo`: the model zoo and its parameters."""
from __future__ import annotations

from app.commands.common import print_json


def cmd_zoo(args) -> int:
    from engine.zoo import list_zoo

    entries = list_zoo()
    if args.json:
        return print_json(entries)
    for e in entries:
        print(f"zoo:{e['name']:<14} {e['description']}")
        params = "  ".join(f"{p['name']}={p['default']}" for p in e["params"])
        if params:
            print(f"    {params}")
    return 0
