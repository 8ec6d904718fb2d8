"""Training-step memory: SPEC parsing, update plans, the forward+backward arena, checked against PyTorch's autograd."""
import pytest

from engine.errors import TinyStudioError
from engine.memory.planners import check_no_overlap
from engine.ondevice import TrainSpec, UpdatePlan, parse_spec, resolve
from engine.ondevice.memory import training_profile
from engine.ondevice.torchref import torch_step_memory
from engine.zoo import build_zoo_model


def test_parse_spec():
    assert parse_spec("all") == TrainSpec("all")
    assert parse_spec("last:3") == TrainSpec("last", k=3)
    assert parse_spec(" Bias ") == TrainSpec("bias")
    assert parse_spec("sparse:262144") == TrainSpec("sparse", budget_bytes=262144)
    assert parse_spec("sparse:256K") == TrainSpec("sparse", budget_bytes=262144)
    for bad in ("", "last", "last:0", "last:x", "sparse:-5", "bias:2", "everything"):
        with pytest.raises(TinyStudioError) as e:
            parse_spec(bad)
        assert "\n" not in str(e.value) and "training spec" in str(e.value)


def test_resolve_names_the_deployed_layers():
    g = build_zoo_model("zoo:kws_dscnn")
    allp = resolve(g, parse_spec("all"))
    assert allp.layers[0] == "conv1" and allp.layers[-1] == "fc" and len(allp.layers) == 10
    assert resolve(g, parse_spec("last:2")).layers == ("block4_pw", "fc")
    # BN is folded on the device, so every conv has a bias there
    assert len(resolve(g, parse_spec("bias")).bias_only) == 10
    with pytest.raises(TinyStudioError, match="only 10 weighted layers"):
        resolve(g, parse_spec("last:11"))


@pytest.mark.parametrize("spec,k", [("zoo:kws_dscnn?bn=false", 1), ("zoo:kws_dscnn?bn=false", 3),
                                    ("zoo:lenet5", 1), ("zoo:lenet5", 2), ("zoo:lenet5", 3)])
def test_kept_activations_and_gradients_match_pytorch_autograd(spec, k):
    """What our backward keeps (int8: one byte per element) is what PyTorch's autograd saves for the same
    trainable set (counted in elements), except the graph output the loss reads (kws ends in a Softmax that
    the logits view drops); weight gradients are equal in bytes."""
    g = build_zoo_model(spec)
    plan = resolve(g, parse_spec(f"last:{k}"))
    prof = training_profile(g, plan)
    ref = torch_step_memory(g, list(plan.layers))
    out_elems = 12 if "kws" in spec else 0
    assert prof.kept_activation_bytes - out_elems == ref["saved_elements"]
    assert sum(lt.weight_grad_bytes for lt in prof.layers) == ref["grad_bytes"]


def test_arena_is_planned_without_overlap_and_grows_with_the_trained_set():
    g = build_zoo_model("zoo:kws_dscnn")
    peaks = []
    for s in ("last:1", "last:2", "last:5", "all"):
        prof = training_profile(g, resolve(g, parse_spec(s)))
        check_no_overlap(list(prof.buffers), list(prof.offsets))
        assert prof.arena_bytes >= max(sum(b.size for b in prof.buffers if b.first_use <= t <= b.last_use)
                                       for t in range(len(prof.steps)))
        assert prof.arena_bytes >= prof.inference_arena_bytes
        peaks.append(prof.peak_sram_bytes)
    assert peaks == sorted(peaks) and peaks[0] < peaks[-1]
    full = training_profile(g, resolve(g, parse_spec("all")))
    assert full.ram_weight_bytes == sum(lt.ram_weight_bytes for lt in full.layers) == 4 * 22_604  # weights + biases of the deployed layers, float32
    # nothing before the first updated layer runs a backward step
    last1 = training_profile(g, resolve(g, parse_spec("last:1")))
    assert [s for s in last1.steps if s.startswith("bwd:")] == ["bwd:softmax", "bwd:fc"]
    assert all(lt.kept_bytes == 0 and lt.grad_bytes == 0 for lt in last1.layers if lt.name.startswith("block"))


def test_optimizer_weights_and_mcu_estimates():
    g = build_zoo_model("zoo:kws_dscnn")
    plan = resolve(g, parse_spec("last:2"))
    sgd = training_profile(g, plan, "stm32f746ng")
    mom = training_profile(g, plan, optimizer="momentum")
    q = training_profile(g, plan, weights="int8")
    assert sgd.optimizer_bytes == 0 and mom.optimizer_bytes == sum(lt.weight_grad_bytes for lt in mom.layers)
    assert q.ram_weight_bytes < sgd.ram_weight_bytes
    t = sgd.targets[0]
    assert t["mcu"] == "stm32f746ng" and t["fits"] and t["backward_ms"] > 0
    assert t["step_ms"] == pytest.approx(t["forward_ms"] + t["backward_ms"], rel=1e-6)
    full = training_profile(g, resolve(g, parse_spec("all")), "stm32f746ng").targets[0]
    assert full["backward_ms"] > t["backward_ms"]
    doc = sgd.to_json()
    assert doc["peak_sram_bytes"] == sgd.arena_bytes + sgd.ram_weight_bytes + sum(doc["fixed_bytes"].values())
    assert doc["layers_updated"] == list(plan.layers)
    with pytest.raises(TinyStudioError, match="not in model"):
        training_profile(g, UpdatePlan(("nope",), {}))
