"""A short seeded fuzz run (about a minute): no mutated file may crash, hang, exceed the memory limit or get
a multi-line error in any stage. The long run is benchmarks/fuzz.py."""
from __future__ import annotations

import pytest

from tests.fuzz.harness import fuzz, run_stages
from tests.fuzz.mutate import make_case
from tests.fuzz.seeds import load_seeds


def test_short_fuzz_run_has_no_crash_hang_or_multiline_error(tmp_path):
    s = fuzz(150, seed=7, workers=2, timeout_s=60, include_large=False, crash_dir=str(tmp_path / "repro"))
    print(s.report())
    assert s.cases == 150
    assert s.failures == 0, s.report()
    # the run must exercise more than the parser: some mutants load and pass every stage
    assert s.counts["ok"] >= 10 and s.stages["export"] >= 3, s.report()
    assert s.counts["clean"] >= 30, s.report()


def test_mutations_are_deterministic():
    seeds = load_seeds(include_large=False)
    a, b = make_case(seeds, 3, 17), make_case(seeds, 3, 17)
    assert a.data == b.data and a.description == b.description
    assert make_case(seeds, 3, 18).data != a.data or make_case(seeds, 3, 18).description != a.description


def test_harness_classifies_a_crash(tmp_path, monkeypatch):
    """The classification itself: an exception that is not an engine error is a crash, with a reproducer."""
    import tests.fuzz.harness as h

    def boom(*a, **k):
        raise KeyError("boom")

    monkeypatch.setattr(h, "run_stages", boom)  # inherited by the forked workers
    s = fuzz(4, seed=1, workers=1, timeout_s=60, include_large=False, crash_dir=str(tmp_path))
    assert s.counts["crash"] == 4 and "KeyError" in s.report()
    assert any(p.suffix in (".onnx", ".tflite") for p in tmp_path.rglob("*"))


@pytest.mark.parametrize("index", range(3))
def test_seeds_pass_every_stage_unmutated(tmp_path, index):
    """Seeds themselves must be ok, or the fuzzer would only ever mutate broken files."""
    from store.db import open_store
    from tests.fuzz.mutate import Case

    # The huge seeds exist to end in clean "over the limit" errors (the planner refuses a 4 TiB activation).
    seeds = [s for s in load_seeds(include_large=False) if s.name not in ("huge.onnx", "huge_input.onnx")]
    store = open_store(str(tmp_path / "s.duckdb"))
    for s in seeds[index::3]:
        run_stages(Case(s.name, s.data, "seed"), tmp_path / "case", store)
