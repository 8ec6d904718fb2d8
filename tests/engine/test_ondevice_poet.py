"""POET-style plans: the MILP respects the budget, trades time for memory, and the replayed schedule gives the
same backward inputs (hence the same gradients) as keeping everything."""
import pytest

from engine.errors import TinyStudioError
from engine.ondevice import parse_spec, resolve
from engine.ondevice.memory import training_profile
from engine.ondevice.poet import poet_curve, poet_plan, schedule_buffers, verify_poet
from engine.zoo import build_zoo_model


@pytest.fixture(scope="module")
def full():
    g = build_zoo_model("zoo:kws_dscnn")
    return g, training_profile(g, resolve(g, parse_spec("all")), "stm32f746ng")


def test_unconstrained_budget_keeps_everything(full):
    g, prof = full
    p = poet_plan(prof, prof.peak_sram_bytes)
    assert p.feasible and set(p.choice.values()) == {"keep"} and p.extra_ms == 0
    assert p.peak_sram_bytes == prof.peak_sram_bytes


@pytest.mark.parametrize("budget", [200_000, 215_000])  # peak 227,028 (no dW buffer)
def test_tight_budget_is_met_and_verified(full, budget):
    g, prof = full
    p = poet_plan(prof, budget, "energy")
    assert p.feasible and p.peak_sram_bytes <= budget < prof.peak_sram_bytes
    dropped = [k for k, v in p.choice.items() if v != "keep"]
    assert dropped and p.extra_ms > 0 and p.extra_uj > 0
    # live bytes of the schedule never exceed the arena the planners placed
    bufs = schedule_buffers(prof, p.choice)
    live = max(sum(b.size for b in bufs if b.first_use <= s <= b.last_use) for s in range(len(prof.steps)))
    assert live <= p.arena_bytes
    rep = verify_poet(g, prof, p)
    assert rep["checked"] == len(dropped)


def test_curve_is_monotone_and_too_small_is_infeasible(full):
    g, prof = full
    curve = poet_curve(prof, [100_000, 200_000, 215_000, prof.peak_sram_bytes], "time")
    assert curve[0]["feasible"] is False
    ok = [c for c in curve if c["feasible"]]
    assert len(ok) == 3
    assert [c["step_ms"] for c in ok] == sorted([c["step_ms"] for c in ok], reverse=True)
    with pytest.raises(TinyStudioError, match="objective"):
        poet_plan(prof, 200_000, "speed")
    with pytest.raises(TinyStudioError, match="MCU"):
        poet_plan(training_profile(g, resolve(g, parse_spec("all"))), 200_000)
