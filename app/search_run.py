"""A search study run from the studio: a "search" job whose thread only drives the study (Optuna's sampler asks,
trials run on engine.executor's workers — local processes or the Dask cluster at TINYSTUDIO_SCHEDULER) and
writes every finished trial to the store as it comes back.

    spec = search_spec(form)                                          # StudySpec, checked: one line per problem
    job, study = start_search(store, session_id, version_id, spec, workers=2, baseline=True, base_graph=g)
    job = resume_search(store, session_id, study_id)                  # an interrupted study, from its journal
    graph, params = accept_trial(store, session_id, study_id, "tpe", 7, parent_id)   # a new version

The random baseline runs beside the chosen strategy with the same budget, as its own Optuna study in the same
journal ("<name>-random"); its trials are stored in the same study row under strategy "random".
"""
from __future__ import annotations

import os
import re
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import store as db
from app.job_executor import default_scheduler  # noqa: F401 - the page asks here
from app.jobs import submit
from app.search_charts import best_text, counts_text
from engine.errors import TinyStudioError


MAX_TRIALS = 10_000
MAX_MINUTES = 24 * 60
MAX_WORKERS = 64


def study_dir(store: db.Store, session_id: int, name: str) -> Path:
    """Where a study's journal and models live: beside the database, so they are kept as long as it is."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "study"
    base = Path(store.path).parent / "searches" / f"session-{session_id}"
    path = base / safe
    n = 1
    while path.exists():  # a name used before in this session gets its own folder (and a fresh journal)
        n += 1
        path = base / f"{safe}-{n}"
    return path


def _whole(value, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or not lo <= value <= hi:
        raise TinyStudioError(f"{what} must be a whole number from {lo} to {hi}, got {value!r}")
    return int(value)


def _limit(value, what: str, scale: float = 1.0, integer: bool = True):
    """A limit from a field where 0 (or empty) means none."""
    if value in (None, "", 0, 0.0):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value != value:
        raise TinyStudioError(f"{what} must be a positive number (0 for no limit), got {value!r}")
    return int(round(value * scale)) if integer else float(value) * scale


def search_spec(*, name: str, space: str, dataset: str, mcu: str, runtime: str | None, max_sram_kb=None,
                max_flash_kb=None, max_latency_ms=None, objectives=("accuracy", "latency_ms"), strategy="tpe",
                budget: str = "trials", trials=20, minutes=None, epochs=5, seed=0, search_training=False,
                marks: dict | None = None):
    """The Search page's fields as an engine.search.StudySpec; TinyStudioError (one line, naming the field) for
    what cannot be right whatever the data: an empty name, no objective, a budget of nothing, a bad mark."""
    from engine.search import OBJECTIVES, STRATEGIES, StudySpec, list_spaces
    from hwmodels.mcu import load_mcus

    name = (name or "").strip()
    if not name:
        raise TinyStudioError("Study name is empty: give the study a name")
    spaces = [n for n, _ in list_spaces()] + ["version"]
    if space not in spaces:
        raise TinyStudioError(f"Space '{space}' is not one of {', '.join(spaces)}")
    if not dataset:
        raise TinyStudioError("Dataset: choose a data set to train the candidates on")
    if mcu not in load_mcus():
        raise TinyStudioError(f"MCU '{mcu}' is not a known MCU")
    if strategy not in STRATEGIES:
        raise TinyStudioError(f"Strategy '{strategy}' is not one of {', '.join(STRATEGIES)}")
    objectives = tuple(objectives or ())
    if not objectives:
        raise TinyStudioError("Objectives: choose at least one (accuracy, latency, RAM, flash, energy)")
    bad = [o for o in objectives if o not in OBJECTIVES]
    if bad:
        raise TinyStudioError(f"Objectives: {', '.join(bad)} not one of {', '.join(OBJECTIVES)}")
    if budget == "minutes":
        minutes = _limit(minutes, "Minutes", integer=False)
        if minutes is None or minutes > MAX_MINUTES:
            raise TinyStudioError(f"Minutes must be more than 0 and at most {MAX_MINUTES}, got {minutes!r}")
        n_trials, time_budget = MAX_TRIALS, minutes * 60.0
    else:
        n_trials, time_budget = _whole(trials, "Trials", 1, MAX_TRIALS), None
    mark_items: tuple = ()
    if space == "version":
        if not marks and not search_training:
            raise TinyStudioError("Space 'version': mark at least one layer attribute as a choice in the table, "
                                  "or tick 'Search training and compression too' to search those alone")
        mark_items = tuple((k, tuple(v)) for k, v in marks.items())
    return StudySpec(name=name, space=space, dataset=dataset, mcu=mcu, runtime=runtime or None,
                     max_sram=_limit(max_sram_kb, "Max SRAM", 1024), max_flash=_limit(max_flash_kb, "Max flash", 1024),
                     max_latency_ms=_limit(max_latency_ms, "Max latency", integer=False), objectives=objectives,
                     strategy=strategy, trials=n_trials, time_budget_s=time_budget,
                     epochs=_whole(epochs, "Epochs", 1, 1000), seed=_whole(seed, "Seed", 0, 2**31 - 1),
                     search_training=bool(search_training), marks=mark_items)


def spec_to_json(spec) -> dict:
    d = asdict(spec)
    d["marks"] = [[k, list(v)] for k, v in spec.marks]
    return d


def spec_from_json(d: dict):
    from engine.search import StudySpec

    fields = dict(d)
    fields["objectives"] = tuple(fields.get("objectives") or ())
    fields["marks"] = tuple((k, tuple(v)) for k, v in fields.get("marks") or ())
    return StudySpec(**{k: v for k, v in fields.items() if k in StudySpec.__dataclass_fields__})


def strategies_of(spec, baseline: bool) -> list[str]:
    return [spec.strategy] + (["random"] if baseline and spec.strategy != "random" else [])


def start_search(store: db.Store, session_id: int, version_id: int, spec, *, workers: int = 1,
                 scheduler: str | None = None, baseline: bool = True, base_graph=None,
                 dataset_bytes: tuple[str, bytes] | None = None):
    """Create the study row and its "search" job; returns (job, study). `dataset_bytes` (file name, bytes): a data
    set uploaded to the session, written into the study's folder for the workers to read."""
    workers = _whole(workers, "Workers", 1, MAX_WORKERS)
    folder = study_dir(store, session_id, spec.name)
    try:
        folder.mkdir(parents=True)
    except OSError as e:
        raise TinyStudioError(f"cannot create the study folder {folder}: {e.strerror or e}") from None
    if dataset_bytes is not None:
        fname, data = dataset_bytes
        path = folder / ("data" + os.path.splitext(fname)[1].lower())
        path.write_bytes(data)
        spec = replace(spec, dataset=str(path))
    if spec.space == "version" and base_graph is not None:  # the workers build candidates from this file
        from engine.serialize import save as save_graph

        save_graph(base_graph, str(folder / "base.tsgraph"))
    meta = {"workers": workers, "scheduler": scheduler, "baseline": baseline, "version": version_id}
    # The job row first: a study is never without its job, which is what tells running from interrupted.
    job = db.create_job(store, session_id, "search", {"name": spec.name})
    study = db.create_study(store, session_id, spec.name, {**spec_to_json(spec), "run": meta},
                            str(folder / "study.journal"), str(folder), base_version_id=version_id, job_id=job.id)
    _submit(store, study, spec, meta, base_graph, job)
    return job, db.get_study(store, study.id)


def resume_search(store: db.Store, session_id: int, study_id: int):
    """Continue an interrupted (or cancelled) study from its Optuna journal: finished trials are kept."""
    study = db.get_study(store, study_id, session_id=session_id)
    if study.status == "running":
        raise TinyStudioError(f"study '{study.name}' is running already")
    if not os.path.isdir(study.out_dir):
        raise TinyStudioError(f"study '{study.name}': its folder {study.out_dir} is gone; it cannot be resumed")
    spec = spec_from_json(study.spec)
    meta = dict(study.spec.get("run") or {})
    base_graph = None
    base = Path(study.out_dir) / "base.tsgraph"
    if spec.space == "version" and base.exists():
        from engine.serialize import load as load_graph

        base_graph = load_graph(str(base))
    job = db.create_job(store, session_id, "search", {"name": study.name, "resumed": True})
    study = db.set_study_job(store, study.id, job.id)
    return _submit(store, study, spec, meta, base_graph, job)


def _submit(store, study, spec, meta: dict, base_graph, job):
    from engine.search import run_study

    strategies = strategies_of(spec, bool(meta.get("baseline", True)))
    folder = Path(study.out_dir)
    budget = spec.trials * len(strategies) if spec.time_budget_s is None else None

    def work(progress):
        stopped = {"yes": False}
        t0 = time.monotonic()

        def stop() -> bool:
            if not stopped["yes"]:
                stopped["yes"] = db.get_job(store, progress.job_id).status == "cancelled"
            return stopped["yes"]

        def on_trial(trial) -> None:  # in this (the server's) thread, as each trial's future completes
            db.record_trial(store, study.id, trial)
            now = db.get_study(store, study.id)
            trials = db.list_trials(store, study.id)
            if budget:
                frac = (now.counts["total"] - now.counts["rejected"]) / budget  # rejected ones cost no training
            else:
                frac = (time.monotonic() - t0) / (spec.time_budget_s * len(strategies))
            try:
                progress(min(frac, 0.99), f"{counts_text(now.counts, budget)}; {best_text(trials)}")
            except Exception:  # cancelled from the page (app.jobs.Cancelled): let the study stop cleanly
                stopped["yes"] = True

        results = {}
        try:
            for strat in strategies:
                if stop():
                    break
                s = replace(spec, strategy=strat, name=spec.name if strat == spec.strategy else f"{spec.name}-random")
                progress(len(results) / len(strategies), f"running {strat}"
                         + (" (random baseline)" if strat != spec.strategy else ""))
                res = run_study(s, out_dir=folder / strat, storage=Path(study.storage),
                                workers=int(meta.get("workers", 1)), scheduler=meta.get("scheduler"),
                                base_graph=base_graph, on_trial=on_trial, stop=stop)
                for t in res.trials:  # what on_trial may have missed (a resumed study's earlier trials)
                    db.record_trial(store, study.id, t)
                results[strat] = res.to_json()
            final = db.get_study(store, study.id)
            status = "cancelled" if stopped["yes"] else "done"
            db.finish_study(store, study.id, status, counts_text(final.counts), result={"strategies": results})
        except BaseException as e:  # the study says why it stopped, as its job does
            status = "cancelled" if stopped["yes"] else "failed"
            db.finish_study(store, study.id, status, str(e).splitlines()[0] if str(e) else type(e).__name__,
                            result={"strategies": results} if results else None)
            raise
        return {"study": study.id, "status": status, "counts": final.counts}

    return submit(study.session_id, "search", {}, work, job=job)


def load_trial_graph(name: str, data: bytes):
    """A trial's stored model file as a Graph (.tsgraph: TinyStudio's own format; else ONNX/TFLite by content)."""
    if name.endswith(".tsgraph"):
        from engine.serialize import load as load_graph

        with tempfile.TemporaryDirectory(prefix="tinystudio-trial-") as d:
            path = os.path.join(d, "trial.tsgraph")
            with open(path, "wb") as f:
                f.write(data)
            return load_graph(path)
    from engine.importers import load_model_bytes

    return load_model_bytes(data, name)


def accept_trial(store: db.Store, session_id: int, study_id: int, strategy: str, number: int,
                 parent_id: int | None = None) -> db.VersionInfo:
    """Save a trained trial's model as a new version (action "search"), its lineage naming study and trial, with
    the accuracy and the data set (split, normalization) it was trained and measured on."""
    study = db.get_study(store, study_id, session_id=session_id)
    trial = next((t for t in db.list_trials(store, study_id) if t.strategy == strategy and t.number == number), None)
    if trial is None:
        raise TinyStudioError(f"study '{study.name}' has no {strategy} trial {number}")
    name, data = db.trial_model(store, study_id, strategy, number, session_id=session_id)
    graph = load_trial_graph(name, data)
    params = {"study": study.name, "study_id": study.id, "trial": number, "strategy": strategy,
              "space": study.spec.get("space"), "mcu": study.spec.get("mcu"), "params": trial.params,
              "accuracy": trial.accuracy, "latency_ms": trial.latency_ms, "ram_bytes": trial.ram_bytes,
              "flash_bytes": trial.flash_bytes, "dataset": _dataset_record(study.spec)}
    return db.add_version(store, session_id, graph, "search", params, parent_id=parent_id)


def _dataset_record(spec: dict) -> dict | None:
    """The data set a trial trained on, as a trained version records it (split and normalization included)."""
    from app.workflows.train import dataset_record
    from engine.data import load_dataset

    try:
        data = load_dataset(spec["dataset"], seed=int(spec.get("seed", 0)))
    except Exception:  # the study's data file is gone: record where it came from without the figures
        return {"source": str(spec.get("dataset")), "name": os.path.basename(str(spec.get("dataset")))}
    return dataset_record(data, int(spec.get("seed", 0)))
