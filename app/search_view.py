"""The Search page's moving parts: the study form, the live progress of a running study, and a finished (or
interrupted) study's plot, where a clicked point shows its architecture and profile and can become a version.

    values = study_form(session, version, graph)   # None until "Start the search" is pressed with good values
    note_running(session_id)                       # in the full run: whether it draws a running study
    live_study(session_id)                         # fragment: counts, best so far, live Pareto plot (every 1.5 s)
    study_results(session, version, study)         # plot with click-to-select, trial table, accept as a version
"""
from __future__ import annotations

import streamlit as st

import store as db
from app import search_charts as charts
from app import widgets
from app.data_panel import data_panel
from app.search_marks import marks_from_rows, markable_rows
from app.search_run import (accept_trial, default_scheduler, load_trial_graph, resume_search, search_spec,
                            start_search)
from app.state import get_store
from app.labels import web_message
from app.units import fmt_bytes, fmt_count, fmt_ms, fmt_pct, fmt_uj
from engine.errors import TinyStudioError

OBJECTIVE_LABELS = {"accuracy": "accuracy (max)", "latency_ms": "latency (min)", "ram_bytes": "RAM (min)",
                    "flash_bytes": "flash (min)", "energy_uj": "energy (min)"}
STRATEGY_LABELS = {"tpe": "TPE (Optuna)", "nsga2": "NSGA-II (Optuna, multi-objective)", "random": "random search"}


def _space_choice(graph) -> str:
    from engine.search import list_spaces

    spaces = dict(list_spaces())
    spaces["version"] = "the current version, with the layer attributes you mark below as choices"
    return st.selectbox("Space", list(spaces), key="search_space", format_func=lambda n: f"{n} — {spaces[n]}")


def _marks_editor(graph) -> dict:
    rows = markable_rows(graph)
    if not rows:
        st.info("This version has no layer attribute that can be searched (channels, kernel, stride).")
        return {}
    st.caption("Mark attributes as choices: type the values to try, separated by commas (e.g. `8, 16, 32`); "
               "rows left empty keep the version's value.")
    edited = st.data_editor(rows, key="search_marks", hide_index=True, width="stretch",
                            disabled=("layer", "op", "attribute", "now"),
                            column_config={"choices": st.column_config.TextColumn(
                                "choices", help="values to try, comma-separated; a kernel or stride as 3x3")})
    return marks_from_rows(edited)


def study_form(s, v, graph) -> dict | None:
    """Render the form; on "Start the search" returns {"spec", "workers", "scheduler", "baseline", "data"}
    (checked), else None. Bad values: one line under the button."""
    from engine.search import OBJECTIVES, STRATEGIES
    from hwmodels.mcu import load_mcus
    from hwmodels.runtime import load_runtimes

    space = _space_choice(graph)
    marks = _marks_editor(graph) if space == "version" else {}
    with st.expander("Data", expanded=True):
        with widgets.user_errors():
            data = data_panel(f"search_data_{s.id}", s.id)
    mcus = load_mcus()
    runtimes = ["default for the core", *load_runtimes()]
    n = len(db.list_studies(get_store(), s.id)) + 1
    with st.form("search_form"):
        c1, c2, c3 = st.columns([2, 2, 1])
        name = c1.text_input("Study name", value=f"{s.name}-search-{n}", max_chars=100)
        mcu = c2.selectbox("MCU", list(mcus), index=list(mcus).index("nrf52840") if "nrf52840" in mcus else 0,
                           format_func=lambda m: f"{m} ({mcus[m].core}, {mcus[m].sram_kb:g} KB SRAM)",
                           help="Every candidate is profiled as deployed (int8) on it before any training")
        runtime = c3.selectbox("Runtime", runtimes)
        c1, c2, c3 = st.columns(3)
        sram = c1.number_input("Max SRAM (KB)", min_value=0.0, value=0.0, step=8.0, format="%g",
                               help="0: the MCU's own SRAM")
        flash = c2.number_input("Max flash (KB)", min_value=0.0, value=0.0, step=32.0, format="%g",
                                help="0: the MCU's own flash")
        latency = c3.number_input("Max latency (ms)", min_value=0.0, value=0.0, step=10.0, format="%g",
                                  help="0: no limit")
        c1, c2 = st.columns([3, 2])
        objectives = c1.multiselect("Objectives", list(OBJECTIVES), default=["accuracy", "latency_ms"],
                                    format_func=lambda o: OBJECTIVE_LABELS.get(o, o))
        strategy = c2.selectbox("Strategy", list(STRATEGIES), index=list(STRATEGIES).index("tpe"),
                                format_func=lambda x: STRATEGY_LABELS.get(x, x))
        c1, c2, c3, c4, c5 = st.columns(5)
        budget = c1.radio("Budget in", ["trials", "minutes"], horizontal=True)
        trials = c2.number_input("Trials", min_value=1, max_value=10_000, value=12, step=1)
        minutes = c3.number_input("Minutes", min_value=0.5, max_value=1440.0, value=10.0, step=1.0, format="%g")
        epochs = c4.number_input("Epochs per candidate", min_value=1, max_value=1000, value=5, step=1)
        workers = c5.number_input("Workers", min_value=1, max_value=64, value=2, step=1,
                                  help="worker processes running trials at once (on the cluster when one is set)")
        c1, c2, c3 = st.columns(3)
        seed = c1.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1)
        baseline = c2.checkbox("Random baseline beside", value=True,
                               help="random search with the same budget, shown beside the chosen strategy")
        jointly = c3.checkbox("Search training and compression too",
                              help="learning rate, batch size, epochs share, channel pruning and int4 weights")
        sched = default_scheduler()
        st.caption(f"Trials run on the Dask cluster at {sched} (TINYSTUDIO_SCHEDULER)." if sched else
                   "Trials run in local worker processes; start the studio with --scheduler tcp://HOST:8786 "
                   "to run them on a Dask cluster.")
        go = st.form_submit_button("Start the search", type="primary", disabled=data is None)
    if data is None:
        st.caption("Choose a data set above to search.")
    if not go or data is None:
        return None
    with widgets.user_errors():
        spec = search_spec(name=name, space=space, dataset=data.name, mcu=mcu,
                           runtime=None if runtime.startswith("default") else runtime, max_sram_kb=sram,
                           max_flash_kb=flash, max_latency_ms=latency, objectives=objectives, strategy=strategy,
                           budget=budget, trials=trials, minutes=minutes, epochs=epochs, seed=seed,
                           search_training=jointly, marks=marks)
        _check_space(spec, graph, data)
    upload = None
    if data.source.startswith("upload:"):
        fname = data.source.partition(":")[2]
        match = [d for d in db.list_session_datasets(get_store(), s.id) if d.name == fname]
        if match:
            upload = (fname, db.session_dataset_bytes(get_store(), match[0].id))
    return {"spec": spec, "workers": int(workers), "scheduler": sched, "baseline": baseline, "data": upload}


def _check_space(spec, graph, data) -> None:
    """What can be told before anything runs: the family takes the data's samples; the marks name real knobs."""
    from engine.search import SPACES, version_space

    if spec.space == "version":  # no marks (with training searched): the architecture stays as it is
        version_space(graph, {k: list(v) for k, v in spec.marks})
    else:
        SPACES[spec.space].for_data(tuple(data.input_shape))


def start(s, v, graph, values: dict):
    with widgets.user_errors():
        job, study = start_search(get_store(), s.id, v.id, values["spec"], workers=values["workers"],
                                  scheduler=values["scheduler"], baseline=values["baseline"],
                                  base_graph=graph if values["spec"].space == "version" else None,
                                  dataset_bytes=values["data"])
    st.session_state[f"search_study_{s.id}"] = study.id


def _budget(study) -> int | None:
    spec = study.spec
    if spec.get("time_budget_s"):
        return None
    baseline = bool((spec.get("run") or {}).get("baseline", True)) and spec.get("strategy") != "random"
    return int(spec.get("trials", 0)) * (2 if baseline else 1)


def _headline(study, trials) -> None:
    c = study.counts
    cols = st.columns(6)
    budget = _budget(study)
    cols[0].metric("trials done", f"{c['total'] - c['rejected']}" + (f" / {budget}" if budget else ""),
                   help="trained, pruned or failed: the candidates that cost training, against the budget "
                        "(both strategies when the random baseline runs beside)")
    cols[1].metric("trained", c["trained"])
    cols[2].metric("rejected", c["rejected"], help="broke a limit when profiled, before any training")
    cols[3].metric("pruned", c["pruned"], help="stopped early by the pruner (too far behind at an epoch)")
    cols[4].metric("failed", c["failed"])
    b = charts.best(trials, study.spec.get("strategy"))
    cols[5].metric("best accuracy", fmt_pct(b.accuracy) if b else "—",
                   help=charts.best_text(trials, study.spec.get("strategy")))


def _drawn_key(session_id: int) -> str:
    return f"_search_drawn_running_{session_id}"


def note_running(session_id: int) -> None:
    """Call in the full page run, before live_study: whether this render shows a running study."""
    st.session_state[_drawn_key(session_id)] = any(x.status == "running"
                                                   for x in db.list_studies(get_store(), session_id))


@st.fragment(run_every=1.5)
def live_study(session_id: int) -> None:
    """Progress of the session's running study (if any): counts, best so far, the Pareto plot as it grows."""
    store = get_store()
    studies = db.list_studies(store, session_id)
    running = [x for x in studies if x.status == "running"]
    if not running:
        # It finished after the last full render: ask for one until a full run has drawn the results (a rerun
        # asked for while the server is busy can be lost; note_running, in the full run, clears the flag).
        if st.session_state.get(_drawn_key(session_id)):
            st.rerun(scope="app")
        return
    study = running[0]
    job = db.get_job(store, study.job_id) if study.job_id else None
    c1, c2 = st.columns([6, 1])
    c1.progress(job.progress if job else 0.0,
                text=f"search #{job.id if job else '?'} · study '{study.name}': {(job.message if job else '') or 'starting'}")
    if job and c2.button("Cancel", key=f"cancel_search_{job.id}"):
        db.cancel_job(store, job.id, "cancelled by the user")
    trials = db.list_trials(store, study.id)
    _headline(study, trials)
    if not trials:
        st.caption("The plot appears with the first finished trial (the first ones also start the workers).")
        return
    st.plotly_chart(charts.pareto_figure(trials, tuple(study.spec.get("objectives") or ()),
                                         main=study.spec.get("strategy", "tpe")),
                    width="stretch", key=f"live_pareto_{study.id}")  # one element, redrawn in place


def pick_study(session_id: int):
    """A selectbox of the session's studies (newest first); the running or last started one by default."""
    studies = db.list_studies(get_store(), session_id)
    if not studies:
        return None
    by_id = {x.id: x for x in studies}
    key = f"search_study_{session_id}"
    if st.session_state.get(key) not in by_id:
        st.session_state[key] = studies[0].id
    # The label stays the same while the study runs (a selectbox keeps the label it first drew for its value);
    # the status and counts are drawn below it.
    pick = st.selectbox("Study", list(by_id), key=key,
                        format_func=lambda i: f"{by_id[i].name} · started {by_id[i].created[:16].replace('T', ' ')}")
    study = by_id[pick]
    if study.status != "running":  # a running study's counts are live above
        st.caption(f"Study **{study.name}**: {study.status} · {charts.counts_text(study.counts)}")
    return study


def study_results(s, v, study) -> None:
    """A finished, cancelled or interrupted study: headline, plot (click a point), trials, accept."""
    store = get_store()
    trials = db.list_trials(store, study.id, session_id=s.id)
    spec = study.spec
    st.caption(f"Space {spec.get('space')} on {spec.get('dataset')}, {spec.get('mcu')}"
               + (f" ({spec['runtime']})" if spec.get("runtime") else "")
               + f"; limits: SRAM {fmt_bytes(spec.get('max_sram'))}, flash {fmt_bytes(spec.get('max_flash'))}, "
                 f"latency {fmt_ms(spec.get('max_latency_ms'))}; strategy {spec.get('strategy')}, at most "
                 f"{spec.get('epochs')} epoch{'s' if spec.get('epochs') != 1 else ''} per candidate")
    if study.status in ("interrupted", "cancelled"):
        st.info(f"Study '{study.name}' was {study.status}" + (f": {study.message}" if study.message else "")
                + ". Its finished trials are kept; resume it to run the rest of its budget.")
    if study.status in ("interrupted", "cancelled") and st.button("Resume the study",
                                                                             key=f"resume_{study.id}",
                                                                             help="continues from its Optuna journal; "
                                                                                  "finished trials are kept"):
        with widgets.user_errors():
            resume_search(store, s.id, study.id)
        st.rerun()
    if study.status == "failed":
        st.error(f"Study '{study.name}' failed: {study.message}", icon=":material/error:")
    _headline(study, trials)
    if not trials:
        st.info("No trial has finished yet.")
        return
    event = st.plotly_chart(charts.pareto_figure(trials, tuple(spec.get("objectives") or ()),
                                                 main=spec.get("strategy", "tpe")),
                            width="stretch", key=f"pareto_{study.id}", on_select="rerun", selection_mode="points")
    st.caption("Click a point to see its architecture and profile, and to accept it as a new version.")
    picked = _picked(event)
    with st.expander(f"All {len(trials)} trials"):
        st.dataframe(charts.trial_rows(trials), hide_index=True, width="stretch")
    trained = [t for t in trials if t.state == "trained"]
    if picked is None and trained:  # without a click: the best point, so the details are never empty
        b = charts.best(trials, spec.get("strategy")) or charts.best(trials)
        picked = (b.strategy, b.number)
    if picked is not None:
        trial = next((t for t in trials if (t.strategy, t.number) == tuple(picked)), None)
        if trial is not None:
            _point(s, v, study, trial)


def _picked(event) -> tuple[str, int] | None:
    try:
        points = event.selection.points if event else []
    except AttributeError:
        points = (event or {}).get("selection", {}).get("points", [])
    for p in points or []:
        cd = p.get("customdata") if isinstance(p, dict) else None
        if cd and len(cd) == 2:
            return str(cd[0]), int(cd[1])
    return None


def _point(s, v, study, trial) -> None:
    store = get_store()
    st.subheader(f"{trial.strategy} trial {trial.number} ({trial.state})")
    cols = st.columns(6)
    cols[0].metric("accuracy", fmt_pct(trial.accuracy) if trial.accuracy is not None else "—")
    cols[1].metric("latency", fmt_ms(trial.latency_ms))
    cols[2].metric("RAM", fmt_bytes(trial.ram_bytes), help=f"{trial.ram_bytes} B" if trial.ram_bytes else None)
    cols[3].metric("flash", fmt_bytes(trial.flash_bytes), help=f"{trial.flash_bytes} B" if trial.flash_bytes else None)
    cols[4].metric("energy", fmt_uj(trial.energy_uj))
    cols[5].metric("MACs", fmt_count(trial.macs) if trial.macs is not None else "—")
    st.caption(f"Estimates as deployed (int8) on {study.spec.get('mcu')}; trial took {trial.seconds:.1f} s."
               + (f" Broke: {trial.broke}." if trial.broke else "") + (f" Error: {trial.error}." if trial.error else ""))
    st.markdown("**Architecture**: " + ", ".join(f"`{k}` = {v}" for k, v in sorted(trial.params.items())))
    if trial.state != "trained":
        st.info("Only trained candidates have a model to look at or accept.")
        return
    with widgets.user_errors():
        name, data = db.trial_model(store, study.id, trial.strategy, trial.number, session_id=s.id)
        graph = _trial_graph(study.id, trial.strategy, trial.number, name, data)
    with st.expander("Layers and profile", expanded=False):
        try:
            _profile(graph, study.spec)
        except TinyStudioError as e:  # the point's details stay usable (and acceptable) without a profile
            st.warning(web_message(str(e)), icon=":material/warning:")
    if st.button(f"Accept {trial.strategy} trial {trial.number} as a new version", type="primary",
                 key=f"accept_{study.id}_{trial.strategy}_{trial.number}"):
        with widgets.user_errors():
            new = accept_trial(store, s.id, study.id, trial.strategy, trial.number, parent_id=v.id)
        st.toast(f"Saved as version {new.label}", icon=":material/check_circle:")
        st.rerun()


@st.cache_resource(max_entries=16)
def _trial_graph(study_id: int, strategy: str, number: int, name: str, data: bytes):
    return load_trial_graph(name, data)


def _profile(graph, spec: dict) -> None:
    from app.workflows.profile import profile_as_deployed, profile_targets

    targets = profile_targets([spec.get("mcu")], spec.get("runtime"))
    prof, why = profile_as_deployed(graph, targets)
    if why:
        st.warning(f"{why}; the model is shown as it is.")
    widgets.fit_cards(prof, per_row=1, key="search_fit")
    rows = [{"layer": lp.record.name, "op": lp.record.op, "MACs": lp.record.macs, "params": lp.record.params,
             "output": "×".join(map(str, lp.record.output_shape))} for lp in prof.layers]
    st.dataframe(rows, hide_index=True, width="stretch")
