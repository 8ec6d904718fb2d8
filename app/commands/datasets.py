"""`tinystudio datasets`: the built-in data sets."""
from __future__ import annotations

import json


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
