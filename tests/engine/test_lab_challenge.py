"""Challenge files: every field read, one line naming the field for every mistake, unknown keys refused with
the valid ones, safe score formulas (no eval), and the built-in labs."""
from __future__ import annotations

import datetime as dt
import math

import pytest

from engine.labs import ChallengeError, list_builtin, load_challenge
from engine.labs.formula import Formula, FormulaError

GOOD = """
title = "Digits on a small part"
instructions = "Train **LeNet**."
dataset = "digits"
task = "classification"
start = "zoo:lenet5"
mcu = "nrf52840"
runtime = "tflm-cmsis-nn"
accuracy_target = 0.9
deadline = 2027-01-31T23:59:00Z
counts = "last"
[limits]
sram_bytes = 65536
flash_bytes = 131072
latency_ms = 50
energy_uj = 500.5
[scoring]
method = "formula"
formula = "fits * (accuracy * 100 - latency / 10)"
[grading]
test_samples = 40
verify_inputs = 2
"""


def write(tmp_path, text, name="lab.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_a_full_file_is_read(tmp_path):
    ch = load_challenge(write(tmp_path, GOOD))
    assert ch.title == "Digits on a small part" and ch.instructions == "Train **LeNet**."
    assert (ch.dataset, ch.task, ch.start, ch.mcu, ch.runtime) == ("digits", "classification", "zoo:lenet5",
                                                                   "nrf52840", "tflm-cmsis-nn")
    assert ch.limits == {"sram_bytes": 65536, "flash_bytes": 131072, "latency_ms": 50.0, "energy_uj": 500.5}
    assert ch.accuracy_target == 0.9 and ch.counts == "last" and ch.export and not ch.require_int8
    assert ch.deadline == dt.datetime(2027, 1, 31, 23, 59, tzinfo=dt.timezone.utc)
    assert ch.accepts(dt.datetime(2027, 1, 31, 23, 58, tzinfo=dt.timezone.utc))
    assert not ch.accepts(dt.datetime(2027, 2, 1, tzinfo=dt.timezone.utc))
    assert ch.check_names() == ("sram", "flash", "latency", "energy", "accuracy", "export")
    assert ch.method == "formula" and ch.formula.names == {"fits", "accuracy", "latency"}
    assert (ch.test_samples, ch.verify_inputs) == (40, 2)
    doc = ch.to_json()
    assert doc["deadline"] == "2027-01-31T23:59:00+00:00" and doc["scoring"]["formula"].startswith("fits")


def test_defaults_and_files_beside_the_challenge(tmp_path):
    (tmp_path / "lab.md").write_text("# Lab\nDo it.")
    ch = load_challenge(write(tmp_path, 'title = "t"\ndataset = "digits"\nmcu = "stm32f746ng"\n'
                                        'instructions_file = "lab.md"\ndeadline = "2027-03-01T12:00:00+01:00"\n'))
    assert ch.instructions == "# Lab\nDo it."
    assert ch.runtime == "tinystudio-c"  # the MCU's default runtime
    assert ch.counts == "best" and ch.method == "pass-fail" and ch.export and ch.limits == {}
    assert ch.check_names() == ("sram", "flash", "export")  # fit on the MCU is always checked
    assert ch.deadline.utcoffset() == dt.timedelta(hours=1)
    assert ch.accepts() is True


BAD = [
    ('[limits]\nsram_bytes = "64k"', 'lab.toml: limits.sram_bytes: must be a positive integer, got "64k"'),
    ("[limits]\nsram_bytes = 0", "lab.toml: limits.sram_bytes: must be a positive integer, got 0"),
    ("[limits]\nflash_bytes = 1.5", "lab.toml: limits.flash_bytes: must be a positive integer, got 1.5"),
    ("[limits]\nlatency_ms = -1", "lab.toml: limits.latency_ms: must be a positive number, got -1"),
    ("[limits]\nenergy_uj = true", "lab.toml: limits.energy_uj: must be a positive number, got True"),
    ("[limits]\nsram = 1", "lab.toml: limits.sram: unknown key; valid keys: sram_bytes, flash_bytes, latency_ms, "
                           "energy_uj"),
    ("colour = 1", "lab.toml: colour: unknown key; valid keys: title, instructions"),
    ("limits = 3", "lab.toml: limits: must be a table ([limits]), got 3"),
    ("accuracy_target = 90", "lab.toml: accuracy_target: must be a number in (0, 1], e.g. 0.85, got 90"),
    ('counts = "first"', 'lab.toml: counts: must be one of best, last, got "first"'),
    ('export = "yes"', 'lab.toml: export: must be true or false, got "yes"'),
    ("deadline = 2027-01-31T23:59:00", "lab.toml: deadline: give a time zone, e.g. 2027-01-31T23:59:00Z"),
    ("deadline = 2027-01-31", "lab.toml: deadline: must be a date and time with a time zone"),
    ('deadline = "next friday"', "lab.toml: deadline: must be an ISO 8601 date and time"),
    ('task = "regression"', 'lab.toml: task: "regression" does not match data set digits, a classification'),
    ('start = "zoo:lenet9"', "lab.toml: start: "),
    ('start = "nope.onnx"', "lab.toml: start: no such file 'nope.onnx'"),
    ('instructions_file = "../../etc/passwd"', "lab.toml: instructions_file: '../../etc/passwd' is outside the "
                                               "challenge's folder"),
    ('instructions = "a"\ninstructions_file = "x.md"', "lab.toml: instructions_file: give instructions or"),
    ('runtime = "esp-nn"', "lab.toml: runtime: esp-nn has no profile for nrf52840's core"),
    ('runtime = "tflm-fast"', "lab.toml: runtime: "),
    ('[scoring]\nmethod = "median"', 'lab.toml: scoring.method: must be one of pass-fail, accuracy-if-fits, '
                                     'formula, got "median"'),
    ('[scoring]\nmethod = "formula"', 'lab.toml: scoring.formula: method "formula" needs a formula'),
    ('[scoring]\nformula = "accuracy"', 'lab.toml: scoring.formula: is only read with method "formula"'),
    ('[scoring]\nmethod = "formula"\nformula = "speed * 2"', "lab.toml: scoring.formula: names 'speed', which is "
                                                             "not a value"),
    ('[scoring]\nmethod = "formula"\nformula = "__import__(\'os\').system(\'true\')"',
     "lab.toml: scoring.formula: calls something other than min"),
    ('[scoring]\nmethod = "formula"\nformula = "accuracy +"', "lab.toml: scoring.formula: is not a valid expression"),
    ('[grading]\ntest_samples = true', "lab.toml: grading.test_samples: must be an integer from 0 to 1000000"),
    ("[grading]\nseed = 1", "lab.toml: grading.seed: unknown key; valid keys: test_samples, verify_inputs"),
]


@pytest.mark.parametrize("extra,want", BAD, ids=[w.split(": ")[1] + str(i) for i, (_, w) in enumerate(BAD)])
def test_each_mistake_is_one_line_naming_the_field(tmp_path, extra, want):
    base = 'title = "t"\ndataset = "digits"\nmcu = "nrf52840"\n'
    if extra.startswith("["):
        text = base + extra + "\n"
    else:
        text = extra + "\n" + base
    with pytest.raises(ChallengeError) as e:
        load_challenge(write(tmp_path, text))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(want), msg


@pytest.mark.parametrize("text,want", [
    ('dataset = "digits"\nmcu = "nrf52840"', "lab.toml: title: missing; it is required"),
    ('title = "t"\nmcu = "nrf52840"', "lab.toml: dataset: missing; it is required"),
    ('title = "t"\ndataset = "digits"', "lab.toml: mcu: missing; it is required"),
    ('title = "t"\ndataset = "mnist"\nmcu = "nrf52840"', 'lab.toml: dataset: unknown data set "mnist"; built-ins: '),
    ('title = "t"\ndataset = "digits"\nmcu = "nrf99"', "lab.toml: mcu: "),
    ('title = "t"\ndataset = "/etc/x.csv"\nmcu = "nrf52840"', "lab.toml: dataset: '/etc/x.csv' is outside"),
    ('title = "t"\ndataset = "digits"\nmcu = "nrf52840"\ntitle = "u"', "lab.toml: not valid TOML"),
    ('title = t', "lab.toml: not valid TOML"),
])
def test_required_fields_and_broken_toml(tmp_path, text, want):
    with pytest.raises(ChallengeError) as e:
        load_challenge(write(tmp_path, text))
    assert str(e.value).startswith(want) and "\n" not in str(e.value), str(e.value)


def test_files_that_are_not_challenges(tmp_path):
    with pytest.raises(ChallengeError, match=r"nope\.toml: no such file"):
        load_challenge(tmp_path / "nope.toml")
    with pytest.raises(ChallengeError, match="is a folder"):
        load_challenge(tmp_path)
    p = tmp_path / "bin.toml"
    p.write_bytes(b"title = \"\xff\xfe\"")
    with pytest.raises(ChallengeError, match="bin.toml: not UTF-8 text"):
        load_challenge(p)
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * 300_000)
    with pytest.raises(ChallengeError, match="big.toml: 300,002 bytes"):
        load_challenge(big)
    with pytest.raises(ChallengeError, match="builtin:nope: no such built-in challenge; built-ins: builtin:kws64k"):
        load_challenge("builtin:nope")


def test_the_builtin_labs_parse():
    assert list_builtin() == ["kws64k", "patch16k", "prune", "quantize"]
    kws = load_challenge("builtin:kws64k")
    assert "64 KB" in kws.title and kws.dataset == "keywords" and kws.start.startswith("zoo:kws_dscnn")
    assert kws.mcu == "nrf52840" and kws.limits["sram_bytes"] == 65536 and kws.method == "accuracy-if-fits"
    q = load_challenge("builtin:quantize")
    assert q.require_int8 and "int8" in q.check_names() and q.counts == "last"
    p = load_challenge("builtin:prune")
    assert p.method == "formula" and p.limits["flash_bytes"] == 18432
    patch = load_challenge("builtin:patch16k")
    assert patch.schedule == "patch" and patch.dataset == "synthetic-shapes-64" and patch.start.startswith("zoo:lenet5")
    for ch in (kws, q, p, patch):
        assert ch.instructions.startswith("# ") and len(ch.instructions) > 300


NAMES = {"accuracy", "latency", "sram", "fits"}


@pytest.mark.parametrize("text,values,want", [
    ("accuracy * 100 - latency / 10", {"accuracy": 0.9, "latency": 80.0}, 0.9 * 100 - 80.0 / 10),
    ("-(sram / 1024) ** 2 + +3", {"sram": 2048.0}, -(2048.0 / 1024) ** 2 + 3),
    ("max(accuracy, 0.5) * min(1, fits) + abs(-2) + sqrt(16) + log(exp(1))", {"accuracy": 0.25, "fits": 1.0},
     0.5 + 2 + 4 + 1),
    ("2 ** 0.5", {}, math.sqrt(2)),
])
def test_formulas_compute_like_python_arithmetic(text, values, want):
    assert Formula.parse(text, NAMES).evaluate(values) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("text,want", [
    ("accuracy.real", "uses Attribute"),
    ("[accuracy]", "uses List"),
    ("accuracy if fits else 0", "uses IfExp"),
    ("accuracy > 0.5", "uses Compare"),
    ("accuracy and fits", "uses BoolOp"),
    ("lambda: 1", "uses Lambda"),
    ("'a' * 3", "holds 'a'"),
    ("True + 1", "holds True"),
    ("7 // 2", "uses the operator FloorDiv"),
    ("open('x')", "calls something other than min"),
    ("max(accuracy, key=abs)", "calls something other than min"),
    ("max()", "calls max() without arguments"),
    ("x" * 501, "is 501 characters long"),
    ("+".join(["1"] * 150), "parts; at most 200"),
    ("", "must be a non-empty expression"),
])
def test_formulas_outside_the_grammar_are_refused(text, want):
    with pytest.raises(FormulaError) as e:
        Formula.parse(text, NAMES)
    assert want in str(e.value), str(e.value)


@pytest.mark.parametrize("text,values", [
    ("accuracy / (fits - 1)", {"accuracy": 1.0, "fits": 1.0}),  # division by zero
    ("(0 - accuracy) ** 0.5", {"accuracy": 0.5}),  # complex
    ("10 ** 400", {}),  # overflow
    ("log(accuracy - accuracy)", {"accuracy": 0.5}),
    ("min(1)", {}),
    ("exp(1000)", {}),
])
def test_formulas_that_give_no_number_are_errors(text, values):
    with pytest.raises(FormulaError, match="cannot be computed|not a finite number"):
        Formula.parse(text, NAMES).evaluate(values)
