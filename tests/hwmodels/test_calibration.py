"""Regression test on the published measurements: the same computation benchmarks/latency_calibration.py prints."""
from __future__ import annotations

from pathlib import Path

import pytest

from hwmodels.calibration import calibration_rows, energy_rows, median_abs_error, tail_rows, workloads
from hwmodels.runtime import load_runtimes

MLPERF = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mlperf-tiny"


@pytest.fixture(scope="module")
def rows():
    return calibration_rows(MLPERF)


def test_median_error_per_runtime_profile_is_at_most_25_percent(rows):
    errs = median_abs_error(rows)
    # tinystudio-c (the generated C) has no published latency; it is checked against its own measurements
    # (calibration.toml [tinystudio_c], tests/hwmodels/test_tinystudio_c.py).
    assert set(errs) | {"tinystudio-c"} == set(load_runtimes()), "every runtime profile is checked"
    table = "\n".join(f"{r.board} {r.runtime} {r.model}: published {r.published_ms} ms, estimated "
                      f"{r.estimated_ms:.2f} ms ({r.error:+.1%})" for r in rows)
    bad = {rt: e for rt, e in errs.items() if e > 0.25}
    assert not bad, f"median |error| above 25 %: {bad}\n{table}"
    worst = max(rows, key=lambda r: abs(r.error))
    assert abs(worst.error) < 0.5, table


def test_rows_cover_the_published_mlperf_table(rows):
    boards = {(r.board, r.runtime) for r in rows if r.model in ("kws", "vww", "ic", "ad")}
    assert len(boards) == 5 and sum(1 for r in rows if r.model != "pd") == 20


def test_grayscale_person_detection_workload_has_a_one_channel_first_conv():
    wl = workloads(MLPERF)
    vww, pd = wl["vww"][1], wl["pd"][1]
    assert pd[0].in_channels == 1 and vww[0].in_channels == 3
    assert sum(w.macs for w in vww) - sum(w.macs for w in pd) == 48 * 48 * 8 * 9 * 2


def test_energy_and_persistent_ram_stay_close_to_the_measurements():
    for model, pub, est in energy_rows(MLPERF):
        assert 0.6 < est / pub < 1.5, (model, pub, est)
    for model, meas, est in tail_rows(MLPERF):
        assert abs(est / meas - 1) < 0.05, (model, meas, est)
