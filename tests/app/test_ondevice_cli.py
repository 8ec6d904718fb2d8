import json

from app.cli import main


def test_profile_training_json(capsys):
    assert main(["profile", "zoo:kws_dscnn", "--training", "last:2", "--mcu", "stm32f746ng", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    tr = doc["training"]
    assert tr["layers_updated"] == ["block4_pw", "fc"] and tr["channel_fraction"] == {"block4_pw": 1.0, "fc": 1.0}
    assert tr["peak_sram_bytes"] == tr["arena_bytes"] + tr["ram_weight_bytes"] + tr["optimizer_bytes"] > 0
    assert tr["flash_bytes"] > 0
    assert tr["targets"][0]["mcu"] == "stm32f746ng" and tr["targets"][0]["fits"] is True
    assert main(["profile", "zoo:kws_dscnn", "--training", "last:2"]) == 0
    assert "peak training SRAM" in capsys.readouterr().out


def test_profile_training_bad_spec_is_one_line(capsys):
    assert main(["profile", "zoo:kws_dscnn", "--training", "last:zero"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "training spec" in err and "Traceback" not in err
    assert main(["profile", "zoo:kws_dscnn", "--training", "last:2", "--data", "digits"]) == 2


def test_profile_training_sparse_plans_under_the_budget(capsys, monkeypatch):
    """The planner's probes run (short fine-tunings on keywords: 3 steps, whole layers, to keep the suite fast; the
    benchmark runs the real probes) and the plan fits the budget."""
    import functools

    import engine.ondevice.sparse as sparse

    monkeypatch.setattr(sparse, "plan_sparse", functools.partial(sparse.plan_sparse, steps=3, fractions=(1.0,)))
    assert main(["profile", "zoo:kws_dscnn", "--training", "sparse:80K", "--data", "keywords", "--mcu",
                 "stm32f746ng", "--json"]) == 0
    tr = json.loads(capsys.readouterr().out)["training"]
    assert tr["peak_sram_bytes"] <= 80 * 1024 and tr["layers_updated"][-1] == "fc"
    assert all(0 < f <= 1 for f in tr["channel_fraction"].values())
    assert main(["profile", "zoo:kws_dscnn", "--training", "sparse:1K"]) == 2
    assert "below the" in capsys.readouterr().err
