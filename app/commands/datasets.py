"""`tinystudio datasets`: the built-in data sets."""
from __future__ import annotations

from app.commands.common import print_json


def cmd_datasets(args) -> int:
    from engine.data import list_datasets

    entries = list_datasets()
    if args.json:
        return print_json(entries)
    for e in entries:
        shape = "x".join(str(d) for d in e["input_shape"])
        print(f"{e['name']:<17} {shape:<8} {e['classes']:>3} classes {e['samples']:>6,} samples  {e['description']}")
    print("or a file: .npz (arrays x, y), .csv (features..., label), .zip of class folders of images")
    return 0
