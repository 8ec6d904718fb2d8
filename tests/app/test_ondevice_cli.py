import json

import pytest

from app.cli import main


def test_profile_training_json(capsys):
    assert main(["profile", "zoo:kws_dscnn", "--training", "last:2", "--mcu", "stm32f746ng", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    tr = doc["training"]
    assert tr["layers_updated"] == ["block4_pw", "fc"] and tr["channel_fraction"] == {"block4_pw": 1.0, "fc": 1.0}
    assert tr["peak_sram_bytes"] == (tr["arena_bytes"] + tr["ram_weight_bytes"] + tr["optimizer_bytes"]
                                  + sum(tr["fixed_bytes"].values())) > 0
    assert tr["flash_bytes"] > 0
    assert tr["targets"][0]["mcu"] == "stm32f746ng" and tr["targets"][0]["fits"] is True
    # the exported C's buffers outside the arena, as named rows (tests/engine/test_train_step.py: = .data + .bss)
    assert tr["fixed_bytes"] == {"logits_loss": 52, "weight_row": 64, "kernel_scratch": 1024}
    assert tr["peak_sram_bytes"] == 69_156 and all(r["step"] >= 0 and "wgrad" not in r for r in tr["timeline"])
    assert main(["profile", "zoo:kws_dscnn", "--training", "last:2"]) == 0
    out = capsys.readouterr().out
    assert "peak training SRAM 69,156 B" in out and "(kernel_scratch)" in out


def test_profile_training_bad_spec_is_one_line(capsys):
    assert main(["profile", "zoo:kws_dscnn", "--training", "last:zero"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "training spec" in err and "Traceback" not in err
    assert main(["profile", "zoo:kws_dscnn", "--training", "last:2", "--data", "digits"]) == 2


def test_profile_training_sparse_plans_under_the_budget(capsys, monkeypatch, tmp_path):
    """The planner's probes run (short fine-tunings on keywords: 3 steps, whole layers, to keep the suite fast; the
    benchmark runs the real probes) and the plan fits the budget; the JSON and the text show the probes (gain, z,
    extra SRAM, gain per KB) and the predicted gain, which is the sum of the chosen probes' gains."""
    import functools

    import engine.ondevice.sparse as sparse

    monkeypatch.setattr(sparse, "cache_dir", lambda: tmp_path)
    monkeypatch.setattr(sparse, "plan_sparse", functools.partial(sparse.plan_sparse, steps=3, fractions=(1.0,)))
    assert main(["profile", "zoo:kws_dscnn", "--training", "sparse:80K", "--data", "keywords", "--mcu",
                 "stm32f746ng", "--json"]) == 0
    tr = json.loads(capsys.readouterr().out)["training"]
    assert tr["peak_sram_bytes"] <= 80 * 1024 and tr["layers_updated"][-1] == "fc"
    assert all(0 < f <= 1 for f in tr["channel_fraction"].values())
    sp = tr["sparse"]
    assert sp["probe_steps"] == 3 and len(sp["probes"]) == 4 and sp["plan"]["layers"] == tr["layers_updated"]
    chosen = [p for p in sp["probes"] if p["layer"] in tr["layers_updated"]]
    assert all(p["significant"] for p in chosen)
    assert sp["predicted_gain"] == pytest.approx(sum(p["gain"] for p in chosen), abs=1e-5)
    for p in sp["probes"]:
        assert p["gain_per_kb"] == pytest.approx(p["gain"] / max(p["extra_bytes"], 1) * 1024, abs=1e-5)
    assert main(["profile", "zoo:kws_dscnn", "--training", "sparse:80K", "--data", "keywords"]) == 0  # cached probes
    out = capsys.readouterr().out
    assert "sparse-update probes" in out and f"predicted gain {sp['predicted_gain']:+.1%}" in out
    assert "(cached)" in out and out.count("gain/KB") == 4
    assert main(["profile", "zoo:kws_dscnn", "--training", "sparse:1K"]) == 2
    assert "below the" in capsys.readouterr().err
