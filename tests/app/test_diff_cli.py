"""`tinystudio diff MODEL OTHER`: the History page's account of a change, on the command line."""
from __future__ import annotations

import json

from app.cli import main


def test_diff_prints_the_changes(capsys):
    assert main(["diff", "zoo:kws_dscnn", "zoo:kws_dscnn?filters=32", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["changes"][0] == "64 → 32 output channels in 9 layers (conv1, block1_dw, block1_pw, ...)", doc
    assert "group 64 → 32 in 4 layers" in doc["changes"]
    assert main(["diff", "zoo:lenet5", "zoo:lenet5"]) == 0
    assert capsys.readouterr().out.strip() == "no change to the graph"


def test_diff_bad_input_is_one_line(capsys, tmp_path):
    assert main(["diff", "zoo:lenet5", str(tmp_path / "missing.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.onnx" in err and err.count("\n") == 1
