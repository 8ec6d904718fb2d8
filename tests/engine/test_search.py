"""Search without a cluster: spaces, the pre-filter as deployed, Pareto front and hypervolume (against a
hand-computed case and optuna's own implementation), successive halving, the version space, one trial run
in-process, and the `tinystudio search` command's errors."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from app.cli import main as cli
from engine.data import load_dataset
from engine.errors import TinyStudioError
from engine.search import SPACES, StudyResult, StudySpec, TrialRecord, list_spaces, run_study, version_space
from engine.search.objectives import broken_constraint, deployed_figures, hypervolume, pareto_front
from engine.search.pruning import rungs, should_prune
from engine.search.spaces import get_space

SHAPES = {"mobilenetv2": (1, 8, 8), "dscnn": (1, 49, 10), "resnet": (3, 16, 16), "cnn1d": (3, 128)}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def test_list_spaces_names_the_four_families():
    assert [n for n, _ in list_spaces()] == ["mobilenetv2", "dscnn", "resnet", "cnn1d"]
    assert all(d for _, d in list_spaces())


@pytest.mark.parametrize("name", list(SHAPES))
def test_every_family_builds_its_smallest_and_largest_point_for_the_data(name):
    shape = SHAPES[name]
    space = SPACES[name].for_data(shape)
    assert all(k.choices for k in space.knobs)
    for pick in (0, -1):
        params = {k.name: k.choices[pick] for k in space.knobs}
        g = space.build(params, shape, 7, seed=0)
        assert g.tensors[g.inputs[0]].shape[1:] == shape  # takes the data's samples (resize inside if needed)
        assert g.tensors[g.outputs[0]].shape[-1] == 7
    small = deployed_figures(space.build(space.smallest(), shape, 7), "nrf52840", "tflm-cmsis-nn")
    big = deployed_figures(space.build({k.name: k.choices[-1] for k in space.knobs}, shape, 7), "nrf52840",
                           "tflm-cmsis-nn")
    assert small["macs"] < big["macs"] and small["ram_bytes"] <= big["ram_bytes"]


def test_resolution_is_a_knob_resolved_from_the_data_and_changes_the_arena():
    space = SPACES["resnet"].for_data((3, 16, 16))
    assert space.knob("resolution").choices == (8, 12, 16, 24, 32)
    p = {**space.smallest(), "filters": 8}
    lo = deployed_figures(space.build({**p, "resolution": 8}, (3, 16, 16), 10), "nrf52840", "tflm-cmsis-nn")
    hi = deployed_figures(space.build({**p, "resolution": 32}, (3, 16, 16), 10), "nrf52840", "tflm-cmsis-nn")
    assert hi["arena_bytes"] > lo["arena_bytes"] and hi["macs"] > 4 * lo["macs"] // 2


def test_wrong_data_shape_and_unknown_names_are_one_line_errors():
    with pytest.raises(TinyStudioError, match="takes time series"):
        SPACES["cnn1d"].for_data((1, 8, 8))
    with pytest.raises(TinyStudioError, match="unknown space 'nope'; spaces: mobilenetv2, dscnn, resnet, cnn1d"):
        get_space("nope")
    with pytest.raises(TinyStudioError, match="has no knob 'depth'; knobs: filters, blocks"):
        SPACES["dscnn"].knob("depth")


def test_pre_filter_figures_are_the_int8_profile(digits):
    """The figures a candidate is judged by are exactly what `tinystudio profile --precision int8` reports."""
    from engine.profile import profile_graph

    space = SPACES["dscnn"].for_data(digits.input_shape)
    g = space.build({"filters": 24, "blocks": 2, "first_kernel": (5, 3), "first_stride": 1}, digits.input_shape, 10)
    m = deployed_figures(g, "nrf52840", "tflm-cmsis-nn")
    t = profile_graph(g, [("nrf52840", "tflm-cmsis-nn")], precision="int8").targets[0]
    assert (m["ram_bytes"], m["flash_bytes"], m["latency_ms"]) == (t.ram_bytes, t.flash_bytes, t.latency_ms)
    assert broken_constraint(m, None, None, None) is None
    assert broken_constraint(m, m["ram_bytes"] - 1, None, None).startswith("ram_bytes")
    assert broken_constraint(m, None, m["flash_bytes"] - 1, None).startswith("flash_bytes")
    assert broken_constraint(m, None, None, m["latency_ms"] / 2).startswith("latency_ms")


def test_hypervolume_hand_computed_and_against_optuna():
    # Staircase (1,3), (2,2), (3,1) under reference (4,4): 1x1 + 1x2 + 1x3 = 6.
    assert hypervolume([(1, 3), (2, 2), (3, 1)], (4, 4)) == pytest.approx(6.0)
    # A dominated point and one outside the reference change nothing.
    assert hypervolume([(1, 3), (2, 2), (3, 1), (3, 3), (5, 0)], (4, 4)) == pytest.approx(6.0)
    # 3-D: two boxes [0,2]x[0,1]x[0,1] (vol 2) and [0,1]x[0,2]x[0,1] (vol 2), overlap 1 -> 3.
    assert hypervolume([(0, 1, 0), (1, 0, 0)], (2, 2, 1)) == pytest.approx(3.0)
    from optuna._hypervolume import compute_hypervolume  # independent implementation (WFG)

    rng = np.random.default_rng(1)
    for d in (2, 3, 4):
        pts = rng.random((15, d))
        assert hypervolume(pts.tolist(), [1.1] * d) == pytest.approx(compute_hypervolume(pts, np.full(d, 1.1)))


def test_pareto_front_keeps_non_dominated_points_once():
    pts = [(0.1, 5), (0.2, 3), (0.3, 4), (0.1, 5), (0.05, 9)]
    assert pareto_front(pts) == [0, 1, 4]


def test_successive_halving_rungs_and_rule():
    assert rungs(9) == (1, 3) and rungs(1) == () and rungs(5) == (1, 3)
    assert not should_prune((0.1, ()), [(0.9, ())])  # fewer than eta trials: no evidence
    assert should_prune((0.1, ()), [(0.9, ()), (0.8, ()), (0.7, ())])
    assert not should_prune((0.95, ()), [(0.9, ()), (0.8, ()), (0.7, ())])
    # Multi-objective: a weak but cheap candidate is on the rung's front and continues; a dominated one stops.
    peers = [(0.9, (10.0,)), (0.8, (8.0,)), (0.7, (9.0,))]
    assert not should_prune((0.3, (1.0,)), peers)
    assert should_prune((0.6, (9.5,)), peers)


def test_version_space_knobs_and_errors(digits):
    from engine.train import adapt_zoo

    g = adapt_zoo("zoo:lenet5?act=relu", digits)
    space = version_space(g, {"c1.channels": [8, 4, 6], "c1.kernel": [3, 5]})
    assert space.knob("c1.channels").choices == (4, 6, 8)
    cand = space.build({"c1.channels": 8, "c1.kernel": 3}, digits.input_shape, 10, seed=0)
    w1, w3 = cand.tensors[cand.node("c1").inputs[1]], cand.tensors[cand.node("c3").inputs[1]]
    assert w1.shape == (8, 1, 3, 3) and w3.shape[1] == 8
    # Untouched layers keep the version's weights.
    f6 = g.node("f6").inputs[1]
    assert np.array_equal(cand.tensors[f6].data, g.tensors[f6].data)
    with pytest.raises(TinyStudioError, match=r"unknown knob 'zz.channels'.*knobs: c1.channels, c1.kernel"):
        version_space(g, {"zz.channels": [1]})
    with pytest.raises(TinyStudioError, match="unknown knob .output.channels."):  # the classes layer: no knob
        version_space(g, {"output.channels": [5]})
    with pytest.raises(TinyStudioError, match="c3.stride' = 2"):
        version_space(g, {"c3.stride": [1, 2]})


def test_one_trial_in_process_rejects_then_trains(tmp_path, digits):
    """run_trial without Dask: over the limit -> rejected (no model written); within -> trained and saved."""
    from engine.search import setup
    from engine.search.study import _open_study, trial_id
    from engine.search.trial import TrialTask, open_storage, run_trial

    spec = setup.check_spec(StudySpec(name="one", space="dscnn", dataset="digits", mcu="nrf52840", epochs=1))
    space = SPACES["dscnn"].for_data(digits.input_shape)
    storage = tmp_path / "s.journal"
    journal = open_storage(str(storage))
    study = _open_study(spec, storage, space, {"latency_ms": 100.0, "ram_bytes": 1e5, "flash_bytes": 1e6}, journal)
    params = {"filters": 8, "blocks": 1, "first_kernel": (3, 3), "first_stride": 2}
    recs, trials = [], []
    for limit in (100, None):
        trial = study.ask()
        trials.append(trial)
        task = TrialTask("one", str(storage), trial_id(journal, study, trial.number), trial.number, params, space,
                         "digits", 0, "nrf52840",
                         "tflm-cmsis-nn", limit, None, None, 1, str(tmp_path / "out"), "random")
        recs.append(run_trial(task))
    rej, ok = recs
    assert rej["state"] == "rejected" and rej["broke"].startswith("ram_bytes") and rej["model"] is None
    assert rej["ram_bytes"] == ok["ram_bytes"] > 100
    assert ok["state"] == "trained" and 0.0 <= ok["accuracy"] <= 1.0 and os.path.isfile(ok["model"])
    assert study.trials[1].intermediate_values == {1: pytest.approx(ok["accuracy"])}  # reported per epoch
    # The driver tells optuna: the rejected one complete but infeasible, the trained one feasible.
    from engine.search.study import _result, _tell

    for trial, rec in zip(trials, recs):
        _tell(study, journal, trial.number, rec, spec.objectives, (100, None, None), trial)
    rej_t, ok_t = study.get_trials()
    assert rej_t.state.name == ok_t.state.name == "COMPLETE"
    assert rej_t.values[0] == 0.0 and rej_t.system_attrs["constraints:max_sram"] > 0
    assert all(v <= 0 for k, v in ok_t.system_attrs.items() if k.startswith("constraints:"))
    res = _result(spec, study, {"latency_ms": 100.0})
    assert res.counts() == {"total": 2, "trained": 1, "rejected": 1, "pruned": 0, "failed": 0}
    assert res.pareto == [ok["trial"]] and res.trials[0].broke == rej["broke"]


def test_study_result_json_shape():
    t = TrialRecord(3, "trained", {"filters": 8}, 0.5, 1.0, 100, 200, 3.0, 1000, None, None, "/m.onnx", 1.0, "tpe")
    r = StudyResult("s", "tpe", [t, TrialRecord(4, "rejected", {}, None, 1, 10**6, 1, 1, 1, "ram", None, None, 0,
                                                "tpe")], [3], 0.25)
    doc = r.to_json()
    assert list(doc) == ["study", "strategy", "trials", "pareto", "hypervolume"]
    assert doc["trials"] == {"total": 2, "trained": 1, "rejected": 1, "pruned": 0, "failed": 0}
    assert list(doc["pareto"][0]) == ["trial", "params", "accuracy", "latency_ms", "ram_bytes", "flash_bytes", "macs",
                                      "model"]


def test_impossible_constraints_fail_before_any_work(tmp_path):
    spec = StudySpec(name="x", space="dscnn", dataset="digits", mcu="nrf52840", max_sram=200)
    with pytest.raises(TinyStudioError, match="impossible constraints: the smallest candidate of space 'dscnn'"):
        run_study(spec, out_dir=tmp_path / "out", storage=tmp_path / "s.journal")
    assert not (tmp_path / "out").exists() and not (tmp_path / "s.journal").exists()


@pytest.mark.parametrize("argv,msg", [
    (["--space", "nope"], "unknown space 'nope'; spaces: mobilenetv2, dscnn, resnet, cnn1d"),
    (["--space", "dscnn", "--max-sram", "300"], "impossible constraints"),
    (["--space", "dscnn", "--max-sram", "lots"], "--max-sram 'lots': expected bytes"),
    (["--space", "dscnn", "--objectives", "accuracy,speed"], "objective 'speed': choose from accuracy"),
    (["--space", "dscnn", "--knob", "conv1.channels=8"], "--knob marks a model's attributes"),
    (["--space", "zoo:lenet5?act=relu", "--knob", "nope.channels=8,16"], "unknown knob 'nope.channels'"),
    (["--space", "dscnn", "--mcu", "nrf99"], "nrf99"),
])
def test_cli_bad_input_is_one_line_and_stores_nothing(tmp_path, capsys, argv, msg):
    out = tmp_path / "out"
    args = ["search", "--dataset", "digits", "--mcu", "nrf52840", "--out", str(out), *argv]
    assert cli(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and msg in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_cli_scheduler_that_does_not_answer(tmp_path, capsys, monkeypatch):
    import engine.executor as ex

    monkeypatch.setattr(ex, "CONNECT_TIMEOUT_S", 2)
    out = tmp_path / "out"
    rc = cli(["search", "--space", "dscnn", "--dataset", "digits", "--mcu", "nrf52840", "--out", str(out),
              "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert rc == 2 and err == "error: scheduler tcp://127.0.0.1:9: no answer within 2 s\n"
    assert not out.exists()


def test_cli_list_spaces(capsys):
    assert cli(["search", "--list-spaces", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in doc] == ["mobilenetv2", "dscnn", "resnet", "cnn1d"]
    knobs = {k["name"] for k in doc[0]["knobs"]}
    assert {"resolution", "width", "stage3.depth", "stage3.expand", "stage3.kernel"} <= knobs
    assert cli(["search", "--list-spaces"]) == 0
    assert "first_kernel" in capsys.readouterr().out


def test_training_and_compression_knobs_alone_and_applied(tmp_path, digits):
    """--search-training on a model without marks: only train.* and compress.* knobs; a trial with channel
    pruning and mixed int4 weights is measured again after compression (smaller than the plain int8 figures)."""
    from engine.search import setup
    from engine.search.study import _open_study, trial_id
    from engine.search.trial import TrialTask, open_storage, run_trial

    base = SPACES["dscnn"].build({"filters": 16, "blocks": 1, "first_kernel": (3, 3), "first_stride": 2},
                                 digits.input_shape, 10)
    spec = setup.check_spec(StudySpec(name="tune", space="version", dataset="digits", mcu="nrf52840", epochs=1,
                                      search_training=True))
    space = setup.resolve_space(spec, base, digits.input_shape)
    assert all(n.startswith(("train.", "compress.")) for n in space.knob_names)
    assert {"train.lr", "train.batch_size", "compress.prune", "compress.weights"} <= set(space.knob_names)
    storage = tmp_path / "s.journal"
    journal = open_storage(str(storage))
    study = _open_study(spec, storage, space, {"latency_ms": 100.0, "ram_bytes": 1e5, "flash_bytes": 1e6}, journal)
    recs = {}
    for name, prune, weights, decay, aug in (("plain", 0.0, "int8", 0.0, "none"),
                                             ("small", 0.5, "mixed-int4", 0.01, "noise+shift")):
        trial = study.ask()
        params = {"train.lr": 0.003, "train.batch_size": 32, "train.epochs_factor": 1.0, "compress.prune": prune,
                  "compress.weights": weights, "train.weight_decay": decay, "train.augment": aug}
        recs[name] = run_trial(TrialTask("tune", str(storage), trial_id(journal, study, trial.number), trial.number,
                                         params, space,
                                         "digits", 0, "nrf52840", "tflm-cmsis-nn", None, None, None, 1,
                                         str(tmp_path / "out"), "tpe"))
    plain, small = recs["plain"], recs["small"]
    assert plain["state"] == small["state"] == "trained", (plain["error"], small["error"])
    assert small["macs"] < plain["macs"] and small["flash_bytes"] < plain["flash_bytes"]
    assert plain["model"].endswith(".onnx") and small["model"].endswith(".tsgraph")  # int4 weights: not ONNX


def test_multi_objective_tpe_keeps_sampling_after_a_pruned_trial(tmp_path):
    """Optuna's TPE raises on PRUNED trials in multi-objective studies; the driver must not hand it one. A
    pruned trial that reached a rung is told complete with its rung accuracy (the samplers learn from it),
    while its record stays "pruned", outside the Pareto front and the hypervolume."""
    from engine.search import setup
    from engine.search.study import _open_study, _result, _tell
    from engine.search.trial import open_storage, record

    spec = setup.check_spec(StudySpec(name="mo", space="dscnn", dataset="digits", mcu="nrf52840", strategy="tpe",
                                      trials=4, objectives=("accuracy", "latency_ms")))
    space = SPACES["dscnn"].for_data((1, 8, 8))
    journal = open_storage(str(tmp_path / "s.journal"))
    study = _open_study(spec, tmp_path / "s.journal", space, {"latency_ms": 10.0}, journal)
    dists, _ = setup.distributions(space)
    for i in range(12):
        trial = study.ask(fixed_distributions=dists)
        task = type("T", (), {"number": trial.number, "params": {}, "strategy": "tpe"})
        state = "pruned" if i % 2 else "trained"
        rec = record(task, state, 0.0, {"latency_ms": 1.0 + i, "ram_bytes": 1, "flash_bytes": 1, "energy_uj": 1,
                                        "macs": 1}, accuracy=0.5 if state == "trained" else None)
        if i % 4 == 1:
            rec["rung_accuracy"] = 0.9  # better than every trained one: must still stay off the front
        _tell(study, journal, trial.number, rec, spec.objectives, (None, None, None), trial)
    assert len(study.trials) == 12  # past TPE's 3 random start-up trials without an error
    states = [(t.state.name, t.values) for t in study.get_trials()]
    assert states[1] == ("COMPLETE", [0.9, 2.0]) and states[3] == ("FAIL", None)
    res = _result(spec, study, {"latency_ms": 20.0})
    assert res.counts()["pruned"] == 6 and res.counts()["trained"] == 6
    assert res.pareto == [0]  # the trained trial 0 (acc 0.5, 1 ms); no pruned one, though told 0.9
