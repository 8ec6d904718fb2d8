"""The study driver: asks optuna for candidates, runs them as trials on the executor's Dask client, tells
optuna the outcome, and keeps every trial's record in the study's JournalStorage file.

Budget: `spec.trials` counts candidates that cost training (trained, pruned or failed); rejected candidates
cost a profile only and do not count, up to REJECT_CAP x trials of them. `spec.time_budget_s` stops asking
for new candidates when it runs out (running trials finish). Resuming: the same storage file and study name
continue the study; trials a previous run left running (the process was killed) are recorded failed.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from engine.errors import TinyStudioError
from engine.search import StudyResult, StudySpec, TrialRecord
from engine.search import setup
from engine.search.objectives import hypervolume, normalized, objective_vector, pareto_front, violation
from engine.search.trial import TrialTask, dataset, open_storage, run_trial

CONSTRAINTS = ("max_sram", "max_flash", "max_latency_ms", "mcu_capacity")  # the order of objectives.violation
REJECT_CAP = 50  # rejected candidates allowed per trained one before the study stops asking
POLL_S = 0.5


def _spec_doc(spec: StudySpec, space_knobs) -> dict:
    return {"space": spec.space, "dataset": spec.dataset, "mcu": spec.mcu, "objectives": list(spec.objectives),
            "knobs": list(space_knobs), "search_training": spec.search_training}


def _open_study(spec, storage: Path, space, ref: dict):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage.parent.mkdir(parents=True, exist_ok=True)
    directions = ["maximize" if o == "accuracy" else "minimize" for o in spec.objectives]
    study = optuna.create_study(study_name=spec.name, storage=open_storage(str(storage)), directions=directions,
                                sampler=setup.sampler(spec), load_if_exists=True)
    doc = _spec_doc(spec, space.knob_names)
    have = study.user_attrs.get("spec")
    if have is None:
        study.set_user_attr("spec", doc)
        study.set_user_attr("reference", ref)
    elif have != doc:
        diff = [k for k in doc if have.get(k) != doc[k]]
        raise TinyStudioError(f"study '{spec.name}' in {storage} was made with other settings ({', '.join(diff)}: "
                              f"{have.get(diff[0])!r}); use another --study name or the same settings")
    return study


def _records(study) -> dict[int, TrialRecord]:
    return {t.number: TrialRecord.from_json(t.user_attrs["record"]) for t in study.get_trials(deepcopy=False)
            if "record" in t.user_attrs}


def _tell(study, trial_id: int, number: int, rec: dict, objectives, limits) -> None:
    from optuna.trial import Trial, TrialState

    study._storage.set_trial_user_attr(trial_id, "record", rec)
    if rec["state"] in ("trained", "rejected"):
        # A rejected candidate is told complete with the worst accuracy and its real costs, marked infeasible
        # (constraint values > 0): TPE and NSGA-II learn where the constraints bite instead of proposing the
        # same region again; the random baseline ignores them.
        trial = Trial(study, trial_id)
        over_mcu = (rec.get("broke") or "").startswith("MCU capacity")
        excess = violation({**rec, "fits": not over_mcu}, *limits) if rec["state"] == "rejected" else [0.0] * 4
        if rec["state"] == "rejected" and max(excess) <= 0:
            excess[-1] = 1e-9  # rejected on a limit hit exactly: still infeasible
        for name, v in zip(CONSTRAINTS, excess):
            trial.set_constraint(name, v)
        acc = rec["accuracy"] if rec["state"] == "trained" else 0.0
        study.tell(number, list(_values({**rec, "accuracy": acc}, objectives)))
    elif rec["state"] == "pruned" and len(objectives) == 1:
        study.tell(number, state=TrialState.PRUNED)
    elif rec["state"] == "pruned":
        # Optuna's TPE reads pruned trials through study.direction, which raises in multi-objective studies:
        # there a pruned trial is told FAIL (ignored by the samplers); its record still says "pruned".
        study.tell(number, state=TrialState.FAIL)
    else:
        study.tell(number, state=TrialState.FAIL)


def _values(rec: dict, objectives) -> tuple[float, ...]:
    return tuple(float(rec[o]) for o in objectives)


def _fail(study, trial_id: int, number: int, task: TrialTask, why: str, objectives, limits) -> dict:
    from engine.search.trial import record

    rec = record(task, "failed", time.perf_counter(), error=why,
                 attempts=int(study._storage.get_trial(trial_id).user_attrs.get("attempts", 1)))
    _tell(study, trial_id, number, rec, objectives, limits)
    return rec


def _reconcile(study, task_of: Callable[[int, int, dict], TrialTask], objectives, limits) -> None:
    """Trials a previous run left RUNNING (its process was killed) are lost: record them failed."""
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        _fail(study, t._trial_id, t.number, task_of(t._trial_id, t.number, t.params),
              "interrupted: the study's process stopped while this trial ran", objectives, limits)


def _result(spec, study, ref: dict) -> StudyResult:
    recs = sorted(_records(study).values(), key=lambda r: r.number)
    trained = [r for r in recs if r.state == "trained" and r.accuracy is not None]
    vecs = [objective_vector(r.to_json(), spec.objectives) for r in trained]
    front = [trained[i].number for i in pareto_front(vecs)]
    hv = None
    if trained:
        norm = [normalized(v, spec.objectives, ref) for v in vecs]
        hv = round(hypervolume(norm, [1.0] * len(spec.objectives)), 6)
    front.sort(key=lambda n: -next(r.accuracy for r in trained if r.number == n))
    return StudyResult(spec.name, spec.strategy, recs, front, hv)


def run_study(spec: StudySpec, *, out_dir: Path, storage: Path, workers: int = 1, scheduler: str | None = None,
              base_graph=None, on_trial: Callable[[TrialRecord], None] | None = None,
              stop: Callable[[], bool] | None = None) -> StudyResult:
    from engine.executor import get_client

    spec = setup.check_spec(spec)
    mcu, runtime = setup.target(spec)
    if spec.space != "version":
        from engine.search.spaces import get_space

        get_space(spec.space)  # an unknown space fails before the data set is loaded
    data = dataset(spec.dataset, spec.seed)
    space = setup.resolve_space(spec, base_graph, data.input_shape)
    setup.check_feasible(spec, space, data, mcu, runtime)  # impossible constraints: before any worker starts
    client = get_client(workers, scheduler)  # a scheduler that does not answer: nothing stored yet
    out_dir = Path(out_dir).resolve()
    storage = Path(storage).resolve()
    ref = setup.reference(spec, space, data, mcu, runtime)
    study = _open_study(spec, storage, space, ref)
    ref = study.user_attrs.get("reference", ref)
    dists, decode = setup.distributions(space)
    limits = (spec.max_sram, spec.max_flash, spec.max_latency_ms)

    def task_of(trial_id: int, number: int, enc_params: dict) -> TrialTask:
        params = {k: decode[k].get(v, v) for k, v in enc_params.items() if k in decode}
        return TrialTask(spec.name, str(storage), trial_id, number, params, space, spec.dataset, spec.seed, mcu,
                         runtime, spec.max_sram, spec.max_flash, spec.max_latency_ms, spec.epochs, str(out_dir),
                         spec.strategy, tuple(spec.objectives))

    _reconcile(study, task_of, spec.objectives, limits)
    slots = max(1, sum(client.nthreads().values()) if scheduler else workers)
    start = time.monotonic()
    running: dict = {}  # future -> (trial_id, number, task)

    def costly() -> int:
        return sum(1 for r in _records(study).values() if r.state != "rejected")

    def rejected() -> int:
        return sum(1 for r in _records(study).values() if r.state == "rejected")

    def may_ask() -> bool:
        if stop is not None and stop():
            return False
        if spec.time_budget_s is not None and time.monotonic() - start >= spec.time_budget_s:
            return False
        return costly() + len(running) < spec.trials and rejected() < REJECT_CAP * spec.trials

    while True:
        while len(running) < slots and may_ask():
            trial = study.ask(fixed_distributions=dists)
            task = task_of(trial._trial_id, trial.number, trial.params)
            fut = client.submit(run_trial, task, pure=False, key=f"search-{spec.name}-{trial.number}-{time.time_ns()}")
            running[fut] = (trial._trial_id, trial.number, task)
        if not running:
            break
        done = [f for f in running if f.done()]
        if not done:
            time.sleep(POLL_S)  # polling: distributed.wait needs a default client, which we do not set
        if stop is not None and stop():
            for fut, (tid, num, task) in list(running.items()):
                fut.cancel()
                rec = _fail(study, tid, num, task, "stopped before it finished", spec.objectives, limits)
                running.pop(fut)
                if on_trial:
                    on_trial(TrialRecord.from_json(rec))
            break
        for fut in done:
            tid, num, task = running.pop(fut)
            try:
                rec = fut.result()
            except Exception as e:  # KilledWorker (its worker died on every retry), a lost scheduler, ...
                rec = _fail(study, tid, num, task, f"worker lost: {type(e).__name__}: {e}", spec.objectives,
                            limits)
            else:
                _tell(study, tid, num, rec, spec.objectives, limits)
            if on_trial:
                on_trial(TrialRecord.from_json(rec))
    return _result(spec, study, ref)


def load_result(spec: StudySpec, storage: Path) -> StudyResult:
    """The result of a stored study without running anything (the studio's view of a finished study)."""
    import optuna

    study = optuna.load_study(study_name=spec.name, storage=open_storage(str(storage)))
    return _result(setup.check_spec(spec), study, study.user_attrs.get("reference", {}))
