"""Pure helpers behind the pages: compact figures for metric tiles, the per-layer comparison rows of History,
the layer detail tables of Profile, and fresh page objects per run (shared ones race between sessions)."""
from __future__ import annotations

from app.charts import layer_detail_tables
from app.history_view import layer_delta_rows
from app.nav import make_pages
from app.widgets import short_bytes, short_count
from engine.profile import profile_graph
from engine.zoo import build_zoo_model
from store.compare import layer_deltas


def test_short_figures_fit_a_tile():
    assert [short_count(n) for n in (0, 24_332, 2_656_768, 299_509_824, 1_234_567_890)] == \
        ["0", "24,332", "2.657 M", "299.5 M", "1.235 G"]
    assert [short_bytes(n) for n in (1024, 97_328, 6_021_120)] == ["1.0 KB", "95.0 KB", "5.74 MB"]


def test_layer_delta_rows_are_flat():
    a = [{"name": "c", "op": "Conv", "macs": 10, "params": 2, "weight_bytes": 8, "output_shape": [1, 2],
          "output_dtype": "float32"}]
    b = [{**a[0], "macs": 20, "params": 4, "weight_bytes": 16, "output_shape": [1, 4]},
         {"name": "r", "op": "Relu", "macs": 0, "params": 0, "weight_bytes": 0, "output_shape": [1, 4],
          "output_dtype": "float32"}]
    rows = layer_delta_rows(layer_deltas(a, b))
    assert rows[0] == {"layer": "c", "op": "Conv", "status": "changed", "MACs A": 10, "MACs B": 20, "Δ MACs": 10,
                       "Parameters A": 2, "Parameters B": 4, "Δ Parameters": 2, "Weights (B) A": 8, "Weights (B) B": 16,
                       "Δ Weights (B)": 8, "output A": "1×2", "output B": "1×4"}
    assert rows[1]["status"] == "added" and rows[1]["MACs A"] is None and rows[1]["output A"] == ""
    assert all(not isinstance(v, (dict, list)) for r in rows for v in r.values())


def test_layer_detail_tables():
    prof = profile_graph(build_zoo_model("kws_dscnn"), [("stm32f746ng", "tflm-cmsis-nn"), ("nrf5340", "tflm-cmsis-nn")])
    props, estimates = layer_detail_tables(prof, 0)
    by = {p["property"]: p["value"] for p in props}
    assert by["name"] == "conv1" and by["output"] == "1×64×25×5" and by["MACs"] == "320,000"
    assert all(isinstance(p["value"], str) for p in props)  # one column type, so the table renders as text
    assert [e["target"] for e in estimates] == ["stm32f746ng (tflm-cmsis-nn)", "nrf5340 (tflm-cmsis-nn)"]
    assert all(e["cycles"] > 0 for e in estimates)


def test_pages_are_fresh_objects_each_run():
    first, second = make_pages(), make_pages()
    assert list(first) == ["sessions", "design", "train", "profile", "ondevice", "model", "compress", "search",
                           "history", "export", "labs", "instructor"]
    assert all(first[k] is not second[k] for k in first)
