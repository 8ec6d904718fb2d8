"""Messages in the studio's words. The engine's errors name the command line's flags (the CLI shows them as they
are); a page names its own fields instead, so a message read in the browser never sends a user to a flag.

    web_message("dynamic.onnx: input 'X' has dynamic dims [1,3,H,W]; give a fixed shape with --input-shape")
    # "... give a fixed shape in the Input shape field"
"""
from __future__ import annotations

import re

# (pattern, replacement): specific phrasings first, then each flag on its own, then any flag left.
_PHRASES: list[tuple[str, str]] = [
    (r"with --input-shape\b", "in the Input shape field"),
    (r"--input-shape is not used", "the Input shape field is not used"),
    (r"\(e\.g\. --dataset (\w[\w-]*)\)", r"(pick one in the Data panel, e.g. \1)"),
    (r"give --param (\w+)=(\w+)", r"set the parameter \1 to \2"),
    (r"\(`--verify host` or `--verify qemu` ", "(Verify: host or qemu "),
    (r"use --verify host\b", "choose Verify: host"),
    (r"--verify qemu: ", "Verify qemu: "),
    (r"--verify ('[^']*'|\S+): choose one of", r"Verify \1: choose one of"),
    (r"--inputs (-?\d+): must be 0 or more", r"Random test inputs \1: must be 0 or more"),
    (r"choose another file with --db", "start the studio with another database file"),
    (r"--calibration\b", "the calibration data upload"),
]
_FIELDS = {"input-shape": "Input shape", "dataset": "dataset", "verify": "Verify", "inputs": "Random test inputs",
           "mcu": "MCU", "runtime": "Runtime", "param": "parameter"}


def web_message(text: str) -> str:
    """`text` with every command-line flag replaced by the page's wording."""
    out = str(text)
    for pattern, repl in _PHRASES:
        out = re.sub(pattern, repl, out)
    return re.sub(r"(?<![\w-])--([a-z][a-z0-9-]*)", lambda m: _FIELDS.get(m.group(1), m.group(1).replace("-", " ")),
                  out)
