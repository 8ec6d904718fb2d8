"""Real published model files (tests/data/models/, see its README) as a new user meets them: import, our reference
vs the tflite-micro interpreter on 20 random inputs, export and the generated C vs the interpreter on the same
inputs (benchmarks/real_models.py `check_model`, the README's "Real model files" table).

- PASS: files every check must pass (int8: bit-exact reference and C; float: reference within float rounding of
  the interpreter, PTQ'd C bit-exact to our int8 reference).
- GAPS: files with a known gap (an op or dtype TinyStudio lacks today). They must fail with a one-line message
  naming what is missing — or, once the gap is closed, pass every check like the others. Never a crash.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.real_models import Check, cause, check_model, compare, one_line

DATA = Path(__file__).resolve().parents[1] / "data" / "models"

PASS = ["tflite-micro/hello_world_int8.tflite", "tflite-micro/hello_world_float.tflite",
        "tflite-micro/micro_speech_quantized.tflite", "tflite-micro/simple_add_model.tflite",
        "tflite-micro/person_detect.tflite", "mlcommons-tiny/str_ww_ref_model.tflite",
        "mlcommons-tiny/model_ToyCar_quant_fullint_micro.tflite",   # int8 with float edges: C through the edges
        "mlcommons-tiny/kws_ref_model_float32.tflite"]              # dynamic range: the interpreter refuses it
# file -> what the one-line import error must name while the gap is open
GAPS = {"tflite-micro/trained_lstm_int8.tflite": "UNIDIRECTIONAL_SEQUENCE_LSTM",
        "tflite-micro/audio_preprocessor_int8.tflite": "UINT32"}
# file -> what the one-line reference error must name: it imports (SVDF, QUANTIZE to int32) but an op has no
# kernel for its dtypes yet (keyword_scrambled_8bit ends in an int16 Softmax)
REFERENCE_GAPS = {"tflite-micro/keyword_scrambled_8bit.tflite": "'SOFTMAX_13' (Softmax)"}


def _check(rel: str) -> Check:
    path = DATA / rel
    return check_model(rel, path.read_bytes(), rel.split("/")[0], n=20)


def _assert_passes(c: Check) -> None:
    assert not c.crashes, c.crashes
    assert c.import_ok, c.imported
    if c.kind.startswith("int"):
        assert c.reference_exact, c.reference
        assert c.export_exact, c.export
        assert c.export.startswith("C bit-exact 20/20"), c.export      # the C against the interpreter itself
    elif c.reference.startswith("tflite-micro cannot run it"):
        # only a weight-only (hybrid) file, whose kernels tflite-micro does not have
        assert c.kind == "float, int8 weights", (c.kind, c.reference)
        assert c.export_exact and "21/21" in c.export, c.export
        assert cause(c) == "oracle cannot run it"
        return
    else:
        assert c.reference_max_diff is not None and c.reference_max_diff <= 1e-4, c.reference
        assert c.export_exact and "21/21" in c.export, c.export
    assert cause(c) is None, cause(c)


@pytest.mark.parametrize("rel", PASS)
def test_real_file_matches_tflite_micro(rel):
    _assert_passes(_check(rel))


@pytest.mark.parametrize("rel", sorted(GAPS))
def test_known_gap_fails_in_one_line_naming_it(rel):
    c = _check(rel)
    assert not c.crashes, c.crashes
    if c.import_ok:   # the gap was closed: the file must now pass like the others
        _assert_passes(c)
        return
    assert GAPS[rel] in c.imported and "\n" not in c.imported, c.imported
    assert Path(rel).name in c.imported                        # names the file
    assert cause(c) in (f"unsupported op: {GAPS[rel]}", f"unsupported dtype: {GAPS[rel]}"), cause(c)


def test_compare_counts_inputs_and_describes_the_first_difference():
    a = [[np.array([1, 2, 3], np.int8)], [np.array([1, 2, 3], np.int8)]]
    b = [[np.array([1, 2, 3], np.int8)], [np.array([1, 5, 3], np.int8)]]
    exact, worst, first = compare(a, b)
    assert (exact, worst) == (1, 3.0) and first.startswith("input 1, output 0: 1 of 3 differ")


def test_a_crash_is_reported_not_raised(monkeypatch):
    import engine.importers.tflite_import as ti

    def boom(*a, **k):
        raise KeyError("x")
    monkeypatch.setattr(ti, "load_tflite", boom)
    c = check_model("m.tflite", b"", "test", n=1)
    assert c.imported.startswith("CRASH KeyError") and c.crashes and cause(c) == "crash (a bug)"
    assert one_line(ValueError("a\n  b")) == "a b"


@pytest.mark.parametrize("rel", sorted(REFERENCE_GAPS))
def test_known_reference_gap_fails_in_one_line_naming_it(rel):
    c = _check(rel)
    assert not c.crashes, c.crashes
    assert c.import_ok, c.imported
    if c.reference_exact:   # the gap was closed: the file must now pass like the others
        _assert_passes(c)
        return
    assert REFERENCE_GAPS[rel] in c.reference and "\n" not in c.reference, c.reference
    assert cause(c) == "reference fails", cause(c)
