"""Multi-fidelity on epochs: asynchronous successive halving (ASHA, Li et al. 2020) over the validation accuracy
each trial reports to optuna after every epoch (its intermediate values, step = epoch).

    rungs(epochs=9, eta=3)                 # (1, 3): the epochs at which a trial is judged
    should_prune(me, peers, eta=3)         # me/peers: (accuracy at the rung, (cost objectives...))

Single objective (accuracy): a trial reaching a rung continues only when its accuracy is in the top 1/eta of
the accuracies all trials reached at that rung (itself included). Several objectives: accuracy alone would
prune the small, fast candidates the Pareto front needs, so a trial is pruned when it is in the worst
(1 - 1/eta) of the trials by non-dominated rank over (accuracy at the rung, its deployed costs), the
multi-objective ASHA rule (Schmucker et al. 2021, non-dominated sorting). With fewer than eta trials at the
rung it continues (not enough evidence). Optuna's own pruners refuse multi-objective studies (Trial.report
raises there), so the rule is applied here, on the intermediate values stored in the study.
"""
from __future__ import annotations

from typing import Sequence

from engine.search.objectives import dominates

ETA = 3
Point = tuple[float, tuple[float, ...]]  # (accuracy at the rung, minimized costs)


def rungs(epochs: int, eta: int = ETA, min_epochs: int = 1) -> tuple[int, ...]:
    """Epochs before the last at which trials are compared: min_epochs * eta^k."""
    out, r = [], min_epochs
    while r < epochs:
        out.append(r)
        r *= eta
    return tuple(out)


def _ranks(points: Sequence[tuple[float, ...]]) -> list[int]:
    """Non-dominated sorting rank of each point (0 = on the front; all minimized)."""
    left, rank, r = set(range(len(points))), [0] * len(points), 0
    while left:
        front = {i for i in left if not any(dominates(points[j], points[i]) for j in left if j != i)}
        for i in front:
            rank[i] = r
        left -= front
        r += 1
    return rank


def should_prune(me: Point, peers: Sequence[Point], eta: int = ETA) -> bool:
    """True when `me` is outside the top 1/eta of `peers` + itself (see the module docstring)."""
    everyone = list(peers) + [me]
    n = len(everyone)
    if n < eta:
        return False
    keep = max(1, n // eta)
    if not me[1]:  # accuracy only
        return me[0] < sorted((p[0] for p in everyone), reverse=True)[keep - 1]
    ranks = _ranks([(-p[0], *p[1]) for p in everyone])
    return ranks[-1] > sorted(ranks)[keep - 1]


def peers_at(study, epoch: int, exclude_number: int, costs: Sequence[str]) -> list[Point]:
    """(accuracy at `epoch`, costs) of the other trials of `study` that reported that epoch."""
    from optuna.trial import TrialState

    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)):
        c = t.user_attrs.get("costs")
        if t.number != exclude_number and epoch in t.intermediate_values and c is not None:
            out.append((float(t.intermediate_values[epoch]), tuple(float(c[k]) for k in costs)))
    return out
