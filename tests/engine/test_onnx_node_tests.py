"""The ONNX backend node tests of the onnx package (1,884 one-op models with inputs and expected outputs,
generated in memory by onnx.backend.test.case.node): every case imports and matches, or stops with a clear
TinyStudio error; never a crash, never a wrong result. benchmarks/onnx_node_tests.py prints the table by op;
the README lists the unsupported ops and the totals (this test checks that list against the run)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmarks.onnx_node_tests import Result, run_all, totals, unsupported_ops

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def results() -> list[Result]:
    return run_all()


def test_no_crash_and_no_wrong_result(results):
    bad = [f"{r.name}: {r.outcome}: {r.detail}" for r in results if r.outcome in ("crash", "differs")]
    assert not bad, "\n".join(bad[:20])
    for r in results:
        if r.outcome == "refused":  # one line, naming what is wrong
            assert r.detail and "\n" not in r.detail and "Traceback" not in r.detail, r


def test_counts_do_not_regress(results):
    tot = totals(results)
    assert len(results) >= 1800
    assert tot["match"] >= 391 and tot["match"] + tot["match_const"] >= 512, dict(tot)
    by_name = {r.name: r.outcome for r in results}
    for case in ("test_flatten_negative_axis4", "test_spacetodepth_crd_mode_example", "test_lrn",
                 "test_conv_with_strides_padding", "test_maxpool_2d_pads"):
        assert by_name[case] == "match", case
    assert by_name["test_resize_downsample_scales_linear_align_corners"] == "match_const"
    # ONNX int8 ops on the int8 kernels, bit-exact to onnx's reference (uint8 edges requantized exactly)
    for case in ("test_qlinearconv", "test_qlinearmatmul_2D_uint8_float32", "test_qlinearmatmul_2D_int8_float32"):
        assert by_name[case] == "match_const", case


def test_readme_lists_the_unsupported_ops(results):
    text = README.read_text()
    m = re.search(r"Unsupported ops in the node tests \((\d+)\): ([^\n]+)", text)
    assert m, "README: the 'Unsupported ops in the node tests (N): ...' line is missing"
    listed = {op.strip().rstrip(".") for op in m.group(2).split(",")}
    want = set(unsupported_ops(results))
    assert listed == want and int(m.group(1)) == len(want), (sorted(want - listed), sorted(listed - want))
