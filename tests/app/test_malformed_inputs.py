"""Every malformed input gets one clear line on stderr and exit status 2 from the CLI — never a traceback."""
from __future__ import annotations

import subprocess
import sys

import pytest

from app.cli import main
from tests.fixtures.malformed import make_cases

CASES = make_cases(__import__("pathlib").Path(__import__("tempfile").mkdtemp(prefix="tinystudio-malformed-")))


def upload_error(case) -> str:
    """What the studio's upload shows: load_model_bytes on the file's bytes and name (no folder)."""
    from pathlib import Path

    from engine.errors import TinyStudioError
    from engine.importers import MAX_UPLOAD_BYTES, load_model_bytes

    p = Path(case["path"])
    try:
        load_model_bytes(p.read_bytes(), p.name, max_bytes=MAX_UPLOAD_BYTES)
    except TinyStudioError as e:
        return f"error: {e}"
    return "loaded"


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_malformed_input_gets_one_line_error(case, capsys):
    if case["via"] == "upload":
        err, code = upload_error(case), 2
    else:
        code = main(["inspect", case["path"], *case["args"]])
        err = capsys.readouterr().err.strip()
    assert code == 2, f"{case['case']}: exit {code}, stderr {err!r}"
    assert err.startswith("error: ") and "\n" not in err, f"{case['case']}: not one line: {err!r}"
    assert case["expect"] in err, f"{case['case']}: expected {case['expect']!r} in {err!r}"


def test_no_traceback_from_the_real_command():
    """The installed console entry point, as a user runs it, on a truncated file."""
    case = next(c for c in CASES if c["case"] == "truncated ONNX")
    p = subprocess.run([sys.executable, "-m", "app.cli", "inspect", case["path"]], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and p.stderr.count("\n") == 1, p.stderr
