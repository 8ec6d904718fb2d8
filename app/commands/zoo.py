"""`tinystudio zoo`: the model zoo and its parameters."""
from __future__ import annotations

import json


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
