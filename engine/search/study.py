"""The study driver: asks optuna for candidates, runs them as trials on the executor's Dask client, tells
optuna the outcome, and keeps every trial's record in the study's JournalStorage file.

Budget: `spec.trials` counts candidates that cost training (trained, pruned or failed); rejected candidates
cost a profile only and do not count, up to REJECT_CAP x trials of them; nor do repeats (a candidate the
sampler proposes again is told its known outcome, not trained twice), and a study whose space is exhausted
stops. `spec.time_budget_s` stops asking for new candidates when it runs out (running trials finish). Resuming: the same storage file and study name
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
            "knobs": list(space_knobs), "search_training": spec.search_training, "prune": spec.prune}


def _open_study(spec, storage: Path, space, ref: dict, journal=None):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage.parent.mkdir(parents=True, exist_ok=True)
    directions = ["maximize" if o == "accuracy" else "minimize" for o in spec.objectives]
    study = optuna.create_study(study_name=spec.name, storage=journal or open_storage(str(storage)),
                                directions=directions,
                                sampler=setup.sampler(spec), load_if_exists=True)
    doc = _spec_doc(spec, space.knob_names)
    have = study.user_attrs.get("spec")
    if have is not None:
        have = {"prune": True, **have}  # studies stored before the prune setting existed pruned
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


def trial_id(storage, study, number: int) -> int:
    """The storage's id of trial `number` of `study` (optuna's public storage API)."""
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name), number)


def _tell(study, storage, number: int, rec: dict, objectives, limits, trial=None, store: bool = True) -> None:
    """Store `rec` on trial `number` and tell optuna its outcome. `trial`: the optuna Trial that study.ask
    returned (needed to mark a rejected candidate infeasible); None only for records that are not rejected."""
    from optuna.trial import TrialState

    if store:
        storage.set_trial_user_attr(trial_id(storage, study, number), "record", rec)
    if rec["state"] in ("trained", "rejected"):
        # A rejected candidate is told complete with the worst accuracy and its real costs, marked infeasible
        # (constraint values > 0, optuna 5's Trial.set_constraint: constraints_func is deprecated there): TPE and
        # NSGA-II learn where the constraints bite instead of proposing the same region again; the random
        # baseline ignores them.
        over_mcu = (rec.get("broke") or "").startswith("MCU capacity")
        excess = violation({**rec, "fits": not over_mcu}, *limits) if rec["state"] == "rejected" else [0.0] * 4
        if rec["state"] == "rejected" and max(excess) <= 0:
            excess[-1] = 1e-9  # rejected on a limit hit exactly: still infeasible
        if trial is not None:
            for name, v in zip(CONSTRAINTS, excess):
                trial.set_constraint(name, v)
        acc = rec["accuracy"] if rec["state"] == "trained" else 0.0
        study.tell(number, list(_values({**rec, "accuracy": acc}, objectives)))
    elif rec["state"] == "pruned" and len(objectives) == 1:
        study.tell(number, state=TrialState.PRUNED)
    elif rec["state"] == "pruned" and rec.get("rung_accuracy") is not None:
        # Multi-objective: optuna's TPE reads PRUNED trials through study.direction (it raises there) and
        # NSGA-II drops them, so a pruned trial told FAIL taught the samplers nothing — with most trials pruned
        # they were sampling blind. It is told complete with the accuracy it reached at its rung (a pessimistic,
        # lower-fidelity value) and its real costs; its record still says "pruned" and it never enters the
        # study's Pareto front or hypervolume, which read the records.
        if trial is not None:
            for name in CONSTRAINTS:
                trial.set_constraint(name, 0.0)
        study.tell(number, list(_values({**rec, "accuracy": rec["rung_accuracy"]}, objectives)))
    else:
        study.tell(number, state=TrialState.FAIL)
def _values(rec: dict, objectives) -> tuple[float, ...]:
    return tuple(float(rec[o]) for o in objectives)


def _fail(study, storage, number: int, task: TrialTask, why: str, objectives, limits) -> dict:
    from engine.search.trial import record

    attrs = storage.get_trial(trial_id(storage, study, number)).user_attrs
    rec = record(task, "failed", time.perf_counter(), error=why, attempts=int(attrs.get("attempts", 1)))
    _tell(study, storage, number, rec, objectives, limits)
    return rec


def _reconcile(study, storage, task_of: Callable[[int, dict], TrialTask], objectives, limits) -> None:
    """Trials a previous run left RUNNING (its process was killed) are lost: record them failed."""
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        _fail(study, storage, t.number, task_of(t.number, t.params),
              "interrupted: the study's process stopped while this trial ran", objectives, limits)


def _result(spec, study, ref: dict) -> StudyResult:
    recs = sorted(_records(study).values(), key=lambda r: r.number)
    dups = sum(1 for t in study.get_trials(deepcopy=False) if "duplicate_of" in t.user_attrs)
    trained = [r for r in recs if r.state == "trained" and r.accuracy is not None]
    vecs = [objective_vector(r.to_json(), spec.objectives) for r in trained]
    front = [trained[i].number for i in pareto_front(vecs)]
    hv = None
    if trained:
        norm = [normalized(v, spec.objectives, ref) for v in vecs]
        hv = round(hypervolume(norm, [1.0] * len(spec.objectives)), 6)
    front.sort(key=lambda n: -next(r.accuracy for r in trained if r.number == n))
    return StudyResult(spec.name, spec.strategy, recs, front, hv, dups)


def run_study(spec: StudySpec, *, out_dir: Path, storage: Path, workers: int = 1, scheduler: str | None = None,
              base_graph=None, on_trial: Callable[[TrialRecord], None] | None = None,
              stop: Callable[[], bool] | None = None) -> StudyResult:
    from optuna.trial import TrialState

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
    storage.parent.mkdir(parents=True, exist_ok=True)
    journal = open_storage(str(storage))
    study = _open_study(spec, storage, space, ref, journal)
    ref = study.user_attrs.get("reference", ref)
    dists, decode = setup.distributions(space)
    limits = (spec.max_sram, spec.max_flash, spec.max_latency_ms)

    def task_of(number: int, enc_params: dict) -> TrialTask:
        params = {k: decode[k].get(v, v) for k, v in enc_params.items() if k in decode}
        return TrialTask(spec.name, str(storage), trial_id(journal, study, number), number, params, space,
                         spec.dataset, spec.seed, mcu, runtime, spec.max_sram, spec.max_flash, spec.max_latency_ms,
                         spec.epochs, str(out_dir), spec.strategy, tuple(spec.objectives), spec.prune)

    _reconcile(study, journal, task_of, spec.objectives, limits)
    slots = max(1, sum(client.nthreads().values()) if scheduler else workers)
    start = time.monotonic()
    running: dict = {}  # future -> (optuna Trial, task)
    seen = _finished(study)  # encoded params -> (number, record) of candidates already measured
    duplicates = sum(1 for t in study.get_trials(deepcopy=False) if "duplicate_of" in t.user_attrs)

    def costly() -> int:
        return sum(1 for r in _records(study).values() if r.state != "rejected")

    def rejected() -> int:
        return sum(1 for r in _records(study).values() if r.state == "rejected")

    def may_ask() -> bool:
        if stop is not None and stop():
            return False
        if spec.time_budget_s is not None and time.monotonic() - start >= spec.time_budget_s:
            return False
        return (costly() + len(running) < spec.trials and rejected() < REJECT_CAP * spec.trials
                and duplicates < REJECT_CAP * spec.trials and len(seen) + len(running) < space.size())

    waiting: dict = {}  # encoded params of a running candidate -> optuna Trials that proposed it again

    def finish(trial, task, rec: dict) -> None:
        _tell(study, journal, task.number, rec, spec.objectives, limits, trial)
        again = waiting.pop(_key(trial.params), [])
        if rec["state"] != "failed":
            seen[_key(trial.params)] = (task.number, rec)
        for dup in again:
            _tell(study, journal, dup.number, rec, spec.objectives, limits, dup, store=False)
        if on_trial:
            on_trial(TrialRecord.from_json(rec))

    try:
        while True:
            while len(running) < slots and may_ask():
                trial = study.ask(fixed_distributions=dists)
                key = _key(trial.params)
                prev = seen.get(key)
                if prev is None and any(_key(t.params) == key for t, _ in running.values()):
                    # Proposed while the same candidate runs: told its outcome when it finishes.
                    journal.set_trial_user_attr(trial_id(journal, study, trial.number), "duplicate_of",
                                                next(k.number for t, k in running.values() if _key(t.params) == key))
                    waiting.setdefault(key, []).append(trial)
                    duplicates += 1
                    continue
                if prev is not None:
                    # A candidate measured before (samplers re-propose points of small categorical spaces):
                    # told its known outcome again, at no training cost and outside the budget, so every
                    # trained candidate of the budget is a distinct one, for the baseline as for TPE/NSGA-II.
                    journal.set_trial_user_attr(trial_id(journal, study, trial.number), "duplicate_of", prev[0])
                    _tell(study, journal, trial.number, prev[1], spec.objectives, limits, trial, store=False)
                    duplicates += 1
                    continue
                task = task_of(trial.number, trial.params)
                fut = client.submit(run_trial, task, pure=False,
                                    key=f"search-{spec.name}-{trial.number}-{time.time_ns()}")
                running[fut] = (trial, task)
            if not running:
                break
            done = [f for f in running if f.done()]
            if not done:
                time.sleep(POLL_S)  # polling: distributed.wait needs a default client, which we do not set
            if stop is not None and stop():
                break
            for fut in done:
                trial, task = running.pop(fut)
                try:
                    rec = fut.result()
                except Exception as e:  # KilledWorker (its worker died on every retry), a lost scheduler, ...
                    rec = _fail(study, journal, task.number, task, f"worker lost: {type(e).__name__}: {e}",
                                spec.objectives, limits)
                    if on_trial:
                        on_trial(TrialRecord.from_json(rec))
                else:
                    finish(trial, task, rec)
    finally:
        # Stopped (the page's Cancel), or interrupted by an exception (a callback raising, Ctrl-C): the trials
        # still running are cancelled and recorded failed now, never left RUNNING in the journal.
        for trial in (t for ts in waiting.values() for t in ts):
            study.tell(trial.number, state=TrialState.FAIL)
        for fut, (trial, task) in list(running.items()):
            fut.cancel()
            running.pop(fut)
            why = "stopped before it finished" if stop is not None and stop() else "interrupted before it finished"
            rec = _fail(study, journal, task.number, task, why, spec.objectives, limits)
            if on_trial:
                try:
                    on_trial(TrialRecord.from_json(rec))
                except Exception:  # the caller is going away (its own exception goes on); the record is stored
                    pass
    return _result(spec, study, ref)


def _key(enc_params: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in enc_params.items()))


def _finished(study) -> dict:
    """Encoded params -> (number, record) of the study's measured candidates (failed ones may be tried again)."""
    out = {}
    for t in study.get_trials(deepcopy=False):
        rec = t.user_attrs.get("record")
        if rec is not None and rec["state"] != "failed":
            out.setdefault(_key(t.params), (t.number, rec))
    return out


def load_result(spec: StudySpec, storage: Path) -> StudyResult:
    """The result of a stored study without running anything (the studio's view of a finished study)."""
    import optuna

    study = optuna.load_study(study_name=spec.name, storage=open_storage(str(storage)))
    return _result(setup.check_spec(spec), study, study.user_attrs.get("reference", {}))
