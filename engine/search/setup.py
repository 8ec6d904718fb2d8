"""What a study needs before its first trial: the checked spec, the space for the data, the target, the
feasibility check on the smallest candidate, the hypervolume reference and the optuna sampler.

Everything here runs in the calling process and trains nothing: a bad spec, an unknown space, MCU or data
set, or constraints nothing in the space can meet are one-line TinyStudioErrors before any work is sent.
"""
from __future__ import annotations

from dataclasses import replace

from engine.errors import TinyStudioError
from engine.search.objectives import broken_constraint, check_objectives, deployed_figures
from engine.search.spaces import Space, get_space


def check_spec(spec):
    """`spec` with objectives normalized; a one-line error naming the first bad field."""
    from engine.search import STRATEGIES

    if not str(spec.name).strip():
        raise TinyStudioError("study name: give a non-empty name (--study NAME)")
    if spec.strategy not in STRATEGIES:
        raise TinyStudioError(f"strategy '{spec.strategy}': choose one of {', '.join(STRATEGIES)}")
    for field, value, hi in (("trials", spec.trials, 100_000), ("epochs", spec.epochs, 1000)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
            raise TinyStudioError(f"{field} must be a whole number from 1 to {hi:,}, got {value!r}")
    for field in ("max_sram", "max_flash", "max_latency_ms", "time_budget_s"):
        v = getattr(spec, field)
        if v is not None and not v > 0:
            raise TinyStudioError(f"{field} must be positive, got {v!r}")
    return replace(spec, objectives=check_objectives(spec.objectives))


def resolve_space(spec, base_graph, input_shape) -> Space:
    """The space the study searches, with its data-dependent choices resolved and, with search_training, the
    training and compression knobs added."""
    if spec.space == "version":
        if base_graph is None:
            raise TinyStudioError("space 'version' searches a model's marked knobs: give the model")
        from engine.search.version import version_space

        # No marks with search_training: the architecture stays as it is, training and compression are searched.
        marks = {k: list(v) for k, v in spec.marks} if spec.marks else ({} if spec.search_training else None)
        space = version_space(base_graph, marks)
    else:
        space = get_space(spec.space).for_data(input_shape)
    return space.with_training() if spec.search_training else space


def target(spec) -> tuple[str, str]:
    """(mcu id, runtime id), both checked: unknown ids are one-line errors listing the valid ones."""
    from hwmodels.mcu import get_mcu
    from hwmodels.runtime import default_runtime, get_runtime

    get_mcu(spec.mcu)
    runtime = spec.runtime or default_runtime(spec.mcu)
    get_runtime(runtime)
    return spec.mcu, runtime


def _point(space: Space, last: bool) -> dict:
    return {k.name: k.choices[-1 if last else 0] for k in space.knobs}


def check_feasible(spec, space: Space, data, mcu: str, runtime: str) -> dict:
    """Figures of the space's smallest candidate; TinyStudioError when even it breaks a constraint (nothing in
    the space can fit, so no trial could ever be trained)."""
    from engine.search.trial import structure_of

    params = _point(space, last=False)
    g = structure_of(space.build(params, data.input_shape, data.classes, spec.seed), params, data)
    m = deployed_figures(g, mcu, runtime)
    broke = broken_constraint(m, spec.max_sram, spec.max_flash, spec.max_latency_ms)
    if broke:
        shown = ", ".join(f"{k}={encode(v)}" for k, v in params.items() if not k.startswith(("train.", "compress.")))
        raise TinyStudioError(f"impossible constraints: the smallest candidate of space '{space.name}' ({shown}) "
                              f"already breaks {broke} on {mcu}/{runtime}; nothing was trained")
    return m


def reference(spec, space: Space, data, mcu: str, runtime: str) -> dict:
    """The worst value of each minimized objective the hypervolume counts: the user's limit, else the MCU's
    capacity (RAM, flash), else the largest candidate's figure (latency, energy). Shared by every strategy run
    on the same spec, so their hypervolumes compare."""
    from hwmodels.mcu import get_mcu

    chip = get_mcu(mcu)
    ref = {"ram_bytes": float(spec.max_sram or chip.sram_bytes), "flash_bytes": float(spec.max_flash or
                                                                                       chip.flash_bytes)}
    need = [o for o in ("latency_ms", "energy_uj") if o in spec.objectives]
    if spec.max_latency_ms:
        ref["latency_ms"] = float(spec.max_latency_ms)
        need = [o for o in need if o != "latency_ms"]
    if need:
        params = _point(space, last=True)
        try:
            m = deployed_figures(space.build(params, data.input_shape, data.classes, spec.seed), mcu, runtime)
        except TinyStudioError:  # the largest point cannot be deployed at all: fall back to the smallest x 100
            m = deployed_figures(space.build(_point(space, False), data.input_shape, data.classes, spec.seed),
                                 mcu, runtime)
            m = {k: v * 100 for k, v in m.items() if k in need}
        for o in need:
            ref[o] = float(m[o])
    return ref


def sampler(spec):
    """random (the baseline), TPE or NSGA-II, seeded; TPE and NSGA-II see rejected trials as infeasible
    through the constraint values the driver sets on each trial (Trial.set_constraint).

    Sized to the budget (`spec.trials` trained candidates): every start-up draw of TPE and every member of
    NSGA-II's first generation is a random draw from the same seed as the baseline, so a large random start
    leaves the strategies nothing to differ by at small budgets. TPE starts model-based after a sixth of the
    budget (3-10 draws), multivariate (the knobs of one architecture interact: filters x blocks x stride set
    the arena) with constant liar (parallel workers do not all propose the same point); NSGA-II's population
    is a quarter of the budget (4-24), so a 24-candidate study runs four generations instead of two."""
    import optuna

    if spec.strategy == "random":
        return optuna.samplers.RandomSampler(seed=spec.seed)
    if spec.strategy == "tpe":
        import warnings

        with warnings.catch_warnings():  # multivariate and group are "experimental" in optuna 5.1: said once here
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=spec.seed, n_startup_trials=min(10, max(3, spec.trials // 6)),
                                              multivariate=True, group=True, constant_liar=True)
    return optuna.samplers.NSGAIISampler(seed=spec.seed, population_size=max(4, min(24, spec.trials // 4)))


def encode(value):
    """Optuna's categorical choices are scalars: a tuple (a kernel 10x4) travels as the string '10x4'."""
    return "x".join(map(str, value)) if isinstance(value, (tuple, list)) else value


def distributions(space: Space) -> tuple[dict, dict]:
    """Optuna distributions per knob and, per knob, the map from encoded choice back to the value."""
    from optuna.distributions import CategoricalDistribution

    dists, decode = {}, {}
    for k in space.knobs:
        enc = [encode(c) for c in k.choices]
        dists[k.name] = CategoricalDistribution(enc)
        decode[k.name] = dict(zip(enc, k.choices))
    return dists, decode
