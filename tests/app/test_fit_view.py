"""The fit answer at a glance (app.charts): card figures, the fit table, the memory timeline's lines."""
from __future__ import annotations

import pytest

from app.charts import fit_headline, fit_rows, fit_summary, memory_timeline
from app.workflows.profile import page_precisions, profile_targets
from engine.importers import load_model
from engine.profile import profile_graph
from engine.zoo import build_zoo_model
from tests.engine.test_deployed import MLPERF

MCUS = ["esp32s3", "nrf52840", "stm32f746ng"]


@pytest.fixture(scope="module")
def kws():
    return profile_graph(build_zoo_model("zoo:kws_dscnn"), profile_targets(MCUS, None), precision="int8")


def test_profile_targets_use_the_default_runtime_of_each_core():
    assert profile_targets(MCUS, None) == [("esp32s3", "tinystudio-c"), ("nrf52840", "tinystudio-c"),
                                           ("stm32f746ng", "tinystudio-c")]
    assert profile_targets(["nrf52840"], "tflm-reference") == [("nrf52840", "tflm-reference")]


def test_page_offers_as_deployed_first_for_float_versions_only():
    assert page_precisions(build_zoo_model("zoo:lenet5")) == ("int8", "float32")
    assert page_precisions(load_model(str(MLPERF / "kws_ref_model.tflite"))) == ("as-is",)


def test_card_figures(kws):
    assert fit_headline(kws) == "Fits on all 3 chosen MCUs."
    for t in kws.targets:
        f = fit_summary(t)
        parts = dict(t.ram_parts)
        assert f["fits"] and f["verdict"] == "fits"
        free = t.sram_bytes - t.ram_bytes
        assert f["ram"]["margin"].endswith(f"free ({100 * free / t.sram_bytes:.2f} %)")
        assert f["ram"]["dominant"].startswith("arena" if parts["arena"] == max(parts.values())
                                               else "runtime state")
        assert f["flash"]["text"].startswith(f"{t.flash_bytes / 1024:.4g} KB of ")
        assert f["latency"].endswith(" ms") and f["energy"][-2:] in ("µJ", "mJ")


def test_overflow_is_told_in_kb_and_percent():
    prof = profile_graph(build_zoo_model("zoo:mobilenetv2?width=0.35&resolution=144"),
                         profile_targets(["nrf52840"], None), precision="int8")
    t = prof.targets[0]
    f = fit_summary(t)
    over_ram, over_flash = t.ram_bytes - t.sram_bytes, t.flash_bytes - t.flash_capacity_bytes
    assert over_ram > 0 and over_flash > 0 and not f["fits"]
    ram_pct, flash_pct = 100 * over_ram / t.sram_bytes, 100 * over_flash / t.flash_capacity_bytes
    assert f["verdict"] == (f"does not fit: RAM over by {over_ram / 1024:.4g} KB ({ram_pct:.2f} %), "
                            f"flash over by {over_flash / 1024:.4g} KB ({flash_pct:.2f} %)")
    assert fit_headline(prof) == "Does not fit on nrf52840."
    row = fit_rows(prof)[0]
    assert list(row)[:2] == ["MCU", "verdict"] and row["verdict"] == "does not fit (RAM, flash)"
    assert row["RAM headroom"] == f"−{over_ram / 1024:.4g} KB (−{100 * over_ram / t.sram_bytes:.2f} %)"


def test_memory_timeline_lines_have_their_own_colour_and_legend(kws):
    sram = {"esp32s3": 384 * 1024, "nrf52840": 256 * 1024, "stm32f746ng": 320 * 1024}
    fig = memory_timeline(kws, sram)
    lines = [tr for tr in fig.data if "SRAM" in (tr.name or "")]
    assert [tr.name.split(" SRAM")[0] for tr in lines] == list(sram)
    assert len({tr.line.color for tr in lines}) == 3 and all(tr.showlegend is not False for tr in lines)
    assert [a.text for a in fig.layout.annotations] == ["peak 15.62 KB"]  # no labels on the lines
    # 15.6 KB of activations against 256-384 KB of SRAM: the axis follows the activations, the legend says so
    assert fig.layout.yaxis.range[1] < 30 and all("off the scale" in tr.name for tr in lines)


def test_memory_timeline_legend_sits_above_the_plot_clear_of_the_title(kws):
    """Under the plot it overlapped the rotated layer names of a 31-layer graph (their height varies)."""
    fig = memory_timeline(kws, {"esp32s3": 384 * 1024, "nrf52840": 256 * 1024, "rp2040": 264 * 1024,
                                "esp32c3": 320 * 1024})
    legend = fig.layout.legend
    assert legend.orientation == "h" and legend.y >= 1 and legend.yanchor == "bottom"
    rows = -(-len(fig.data) // 2)
    assert fig.layout.margin.t >= 40 + 20 * rows and fig.layout.title.yref == "container"


def test_layer_detail_gives_bytes_by_dtype_with_units_and_says_none():
    from app.charts import layer_detail_tables
    prof = profile_graph(load_model(str(MLPERF / "vww_96_int8.tflite")), [], precision="as-is")
    props = {r["property"]: r["value"] for r in layer_detail_tables(prof, 0)[0]}
    assert props["weight bytes by dtype"] == "int32: 32 B, int8: 216 B", props
    flat = next(i for i, lp in enumerate(prof.layers) if lp.record.op == "Reshape")
    props = {r["property"]: r["value"] for r in layer_detail_tables(prof, flat)[0]}
    assert props["weight bytes by dtype"] == "none", props
