"""Print the table of malformed inputs and the one-line error each gets from `tinystudio inspect`.

Run: .venv/bin/python benchmarks/malformed_inputs.py   (the same cases are asserted in tests/app)
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(root))

from tests.app.test_malformed_inputs import upload_error  # noqa: E402
from tests.fixtures.malformed import make_cases  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        print("| input | exit | message |")
        print("|---|---|---|")
        for c in make_cases(Path(d)):
            if c["via"] == "upload":  # the studio's uploader: bytes and a name, no CLI
                msg, code = upload_error(c), "upload"
            else:
                p = subprocess.run([sys.executable, "-m", "app.cli", "inspect", c["path"], *c["args"]], cwd=root,
                                   capture_output=True, text=True, timeout=120)
                msg, code = p.stderr.strip().replace(d + "/", ""), p.returncode
            if len(msg) > 160:
                msg = msg[:157] + "..."
            print(f"| {c['case']} | {code} | `{msg}` |")


if __name__ == "__main__":
    main()
