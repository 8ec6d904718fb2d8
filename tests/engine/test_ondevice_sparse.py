"""The sparse-update planner: probes, budget, selection."""
import pytest

from engine.data import load_dataset
from engine.errors import TinyStudioError
from engine.ondevice import parse_spec, resolve
from engine.ondevice.memory import training_profile
from engine.ondevice.sparse import plan_sparse
from engine.zoo import build_zoo_model


@pytest.fixture(autouse=True)
def _fresh_probe_cache(tmp_path, monkeypatch):
    """Every test runs its probes (the planner caches them on disk)."""
    import engine.ondevice.sparse as sparse

    monkeypatch.setattr(sparse, "cache_dir", lambda: tmp_path)


@pytest.fixture(scope="module")
def kws():
    return build_zoo_model("zoo:kws_dscnn"), load_dataset("keywords")


def test_plan_fits_the_budget_and_probes_are_priced_by_the_profile(kws):
    g, d = kws
    r = plan_sparse(g, 70_000, d, steps=4, candidates=2, fractions=(0.5, 1.0))
    assert len(r.probes) == 4 and {p.layer for p in r.probes} == {"block4_dw", "block4_pw"}
    assert r.plan.layers[-1] == "fc" and r.plan.channel_fraction["fc"] == 1.0
    assert r.peak_sram_bytes <= 70_000
    assert training_profile(g, r.plan).peak_sram_bytes == r.peak_sram_bytes
    base = training_profile(g, resolve(g, parse_spec("last:1"))).peak_sram_bytes
    for p in r.probes:
        from engine.ondevice.spec import UpdatePlan
        both = UpdatePlan((p.layer, "fc"), {p.layer: p.fraction, "fc": 1.0})
        assert p.extra_bytes == max(0, training_profile(g, both).peak_sram_bytes - base)
        assert 0.0 <= p.accuracy <= 1.0 and p.gain == pytest.approx(p.accuracy - r.baseline_accuracy)
    # smaller fraction, never more memory
    by = {(p.layer, p.fraction): p.extra_bytes for p in r.probes}
    assert by[("block4_pw", 0.5)] <= by[("block4_pw", 1.0)]


def test_budget_below_the_classifier_is_one_line(kws):
    g, d = kws
    with pytest.raises(TinyStudioError, match="below the .* classifier 'fc'"):
        plan_sparse(g, 1000, d, steps=1, candidates=1)
    with pytest.raises(TinyStudioError, match="needs a data set"):
        resolve(g, parse_spec("sparse:64K"))
