"""`tinystudio grade`: JSON and table output, exit codes (0 graded, 1 not graded, 2 bad input), one-line errors,
and a built-in lab by name."""
from __future__ import annotations

import json

import pytest

from app.cli import main

LAB = """title = "digits lab"
dataset = "digits"
mcu = "nrf52840"
accuracy_target = 0.5
[limits]
sram_bytes = {sram}
[grading]
test_samples = 40
verify_inputs = 1
"""


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from engine.data import load_dataset
    from engine.serialize import save
    from engine.train import adapt_zoo, train

    data = load_dataset("digits")
    g, _ = train(adapt_zoo("zoo:lenet5", data), data, epochs=2, seed=0)
    path = tmp_path_factory.mktemp("grade") / "lenet.tsgraph"
    save(g, str(path))
    return str(path)


def lab(tmp_path, sram=65536, text=None):
    p = tmp_path / "lab.toml"
    p.write_text(text if text is not None else LAB.format(sram=sram))
    return str(p)


def test_json_for_a_passing_and_a_failing_model(tmp_path, capsys, model_file):
    code, out, err = run_cli(capsys, "grade", "--challenge", lab(tmp_path), model_file, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["passed"] is True and doc["score"] == 1.0
    assert [c["name"] for c in doc["checks"]] == ["sram", "flash", "accuracy", "export"]
    assert all(set(c) >= {"name", "value", "limit", "passed"} for c in doc["checks"])
    code, out, err = run_cli(capsys, "grade", "--challenge", lab(tmp_path, sram=1024), model_file, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["passed"] is False and doc["score"] == 0.0  # graded: a verdict, not an error
    sram = doc["checks"][0]
    assert sram["name"] == "sram" and sram["passed"] is False and sram["limit"] == 1024 and sram["value"] > 1024


def test_the_table(tmp_path, capsys, model_file):
    code, out, err = run_cli(capsys, "grade", "--challenge", lab(tmp_path, sram=1024), model_file)
    assert code == 0, err
    rows = {ln.split()[0]: ln for ln in out.splitlines() if ln.strip()}
    assert rows["sram"].endswith("FAIL") and "<= 1,024 B" in rows["sram"]
    assert rows["accuracy"].endswith("pass") and ">= 50.00 %" in rows["accuracy"]
    assert "2/2 bit-exact" in rows["export"]
    assert out.strip().splitlines()[-1].startswith("NOT PASSED  score 0 (pass-fail)")


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, model_file):
    code, out, err = run_cli(capsys, "grade", "--challenge",
                             lab(tmp_path, text=LAB.format(sram='"64k"')), model_file)
    assert code == 2 and out == ""
    assert one_line_error(err) == 'error: lab.toml: limits.sram_bytes: must be a positive integer, got "64k"'
    code, out, err = run_cli(capsys, "grade", "--challenge", lab(tmp_path), str(tmp_path / "missing.tsgraph"))
    assert code == 2 and "missing.tsgraph: no such file" in one_line_error(err)
    code, out, err = run_cli(capsys, "grade", "--challenge", "builtin:kws32k", model_file)
    assert code == 2 and "no such built-in challenge" in one_line_error(err)


def test_a_model_the_grader_cannot_run(tmp_path, capsys):
    from engine.serialize import save
    from engine.zoo import build_zoo_model

    path = tmp_path / "sensor.tsgraph"
    save(build_zoo_model("zoo:sensor_cnn1d"), str(path))  # takes (3, 128) time series, not 8x8 images
    code, out, err = run_cli(capsys, "grade", "--challenge", lab(tmp_path), str(path), "--json")
    doc = json.loads(out)
    assert code == 1 and doc["passed"] is False and doc["checks"] == []
    assert doc["error"].startswith("not graded: graph ") and "data set 'digits' has [1, 8, 8]" in doc["error"]
    code, out, err = run_cli(capsys, "grade", "--challenge", lab(tmp_path), str(path))
    assert code == 1 and out.strip().splitlines()[-1].startswith("not graded: ")
    # a zoo spec that cannot be sized for the data set is refused before grading: bad input
    code, out, err = run_cli(capsys, "grade", "--challenge", lab(tmp_path), "zoo:sensor_cnn1d")
    assert code == 2 and "cannot take samples of shape [1, 8, 8]" in one_line_error(err)


def test_a_builtin_lab_by_name(capsys, model_file):
    code, out, err = run_cli(capsys, "grade", "--challenge", "builtin:prune", model_file, "--json")
    assert code == 0, err
    doc = json.loads(out)
    names = [c["name"] for c in doc["checks"]]
    assert names == ["sram", "flash", "latency", "accuracy", "export"]
    assert doc["checks"][1]["limit"] == 18432 and doc["challenge"] == "Prune and recover accuracy"
