"""Search under MCU constraints: the figures of issue 11 ("Must show"), from real runs.

Sections (--sections, default all):
  headline    dscnn on DATASET for an nRF52840 with <= 64 KB SRAM and <= 256 KB flash within --time-budget:
              every Pareto point re-profiled with `tinystudio profile --precision int8` (fits?) and exported with
              `tinystudio export --verify host` (bit-exact?); the best point's accuracy vs the zoo's KWS DS-CNN
              trained the same way (same epochs, learning rate, batch size, seed).
  strategies  TPE and NSGA-II against random search at the same number of trained candidates, over --seeds:
              hypervolume (accuracy x latency, normalized to the limits) ratio to random, best accuracy, the
              trainings the constraint pre-filter saved (candidates rejected before training), and the ceiling
              (the union of the three studies' trained candidates, over random). Pruning off: every study
              trains exactly --trials distinct candidates to the end.
  prefilter   the whole dscnn space profiled as deployed: the share the limits reject before any training.
  proxy       Kendall tau between training-free proxies (engine.search.proxies: naswot, synflow) at
              initialization and trained validation accuracy, on --proxy-archs architectures sampled at random.
  workers     the same study (random, same seed, so the same candidates) on 1 and on 2 local Dask workers: wall
              time ratio, no trial lost; then a worker process killed mid-study: how the killed trial ends.
  badinput    impossible constraints, unknown space / knob, a scheduler that does not answer: the CLI's message,
              its exit code, the seconds to fail, whether anything was written.
Run: .venv/bin/python benchmarks/search_table.py [--dataset keywords] [--time-budget 600] [--trials 12]
     [--seeds 3] [--first-seed 0] [--epochs 3] [--proxy-archs 40] [--workers 2] [--sections headline,strategies,...] [--json]
Defaults are the issue's budgets; on a shared machine pass smaller ones and say so next to the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.search import StudySpec, run_study  # noqa: E402

LIMITS = dict(mcu="nrf52840", max_sram=64 * 1024, max_flash=256 * 1024)


def cli(*argv: str, timeout: float = 900) -> tuple[int, str, str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "app.cli", *argv], capture_output=True, text=True, env=env,
                       timeout=timeout, cwd=str(ROOT))
    return p.returncode, p.stdout, p.stderr, time.perf_counter() - t


def headline(a, work: Path) -> dict:
    from engine.data import load_dataset
    from engine.search.objectives import deployed_figures
    from engine.train import adapt_zoo, train
    from hwmodels.runtime import default_runtime

    runtime = default_runtime(LIMITS["mcu"])
    spec = StudySpec(name="headline", space="dscnn", dataset=a.dataset, runtime=runtime, strategy="tpe",
                     trials=10_000, time_budget_s=a.time_budget, epochs=a.epochs, seed=0,
                     objectives=("accuracy", "latency_ms"), **LIMITS)
    t = time.perf_counter()
    res = run_study(spec, out_dir=work / "headline", storage=work / "headline.journal", workers=a.workers)
    wall = time.perf_counter() - t
    doc = res.to_json()
    points = []
    for p in doc["pareto"]:
        rc, out, err, _ = cli("profile", p["model"], "--mcu", LIMITS["mcu"], "--runtime", runtime, "--precision",
                              "int8", "--json")
        tgt = json.loads(out)["targets"][0] if rc == 0 else {}
        rc2, out2, err2, s2 = cli("export", p["model"], "--mcu", LIMITS["mcu"], "--out",
                                  str(work / f"bundle_{p['trial']}.zip"), "--verify", "host", "--json")
        ver = json.loads(out2).get("verify") or {} if out2.strip() else {}
        points.append({"trial": p["trial"], "params": p["params"], "accuracy": p["accuracy"],
                       "latency_ms": p["latency_ms"], "ram_bytes": tgt.get("ram_bytes"),
                       "flash_bytes": tgt.get("flash_bytes"),
                       "fits": bool(tgt) and tgt["ram_bytes"] <= LIMITS["max_sram"]
                       and tgt["flash_bytes"] <= LIMITS["max_flash"] and tgt["fits"],
                       "same_as_search": bool(tgt) and (tgt["ram_bytes"], tgt["flash_bytes"]) ==
                       (p["ram_bytes"], p["flash_bytes"]),
                       "bit_exact": bool(ver.get("bit_exact")), "verified_inputs": ver.get("inputs"),
                       "export_error": None if rc2 == 0 else (err2.strip().splitlines() or ["?"])[-1]})
    data = load_dataset(a.dataset, seed=0)
    zoo = adapt_zoo("zoo:kws_dscnn", data, seed=0)
    _, rep = train(zoo, data, epochs=a.epochs, lr=3e-3, batch_size=32, seed=0, patience=None)
    zf = deployed_figures(zoo, LIMITS["mcu"], runtime)
    best = max((p["accuracy"] for p in doc["pareto"]), default=None)
    return {"dataset": a.dataset, "runtime": runtime, "time_budget_s": a.time_budget, "wall_s": round(wall, 1),
            "epochs": a.epochs, "workers": a.workers, "trials": doc["trials"], "hypervolume": doc["hypervolume"],
            "pareto": points, "best_accuracy": best,
            "zoo_kws_dscnn": {"accuracy": rep.accuracy, "ram_bytes": zf["ram_bytes"], "flash_bytes": zf["flash_bytes"],
                              "latency_ms": zf["latency_ms"],
                              "fits_limits": zf["ram_bytes"] <= LIMITS["max_sram"]
                              and zf["flash_bytes"] <= LIMITS["max_flash"]}}


def strategies(a, work: Path) -> dict:
    """Pruning off here: every study trains exactly --trials distinct candidates to the full --epochs, so the
    strategies are compared at the same number of trained candidates (with pruning on, each strategy would
    train a different number to the end). Besides each ratio, the ceiling: the hypervolume of the front of
    every candidate trained at that seed by any of the three studies, over random's — no strategy could have
    done better on the candidates measured, and it shows how much room the reference point leaves."""
    from engine.search.objectives import hypervolume, normalized, objective_vector

    rows, points = [], {}
    for seed in a.seed_list:
        for strategy in ("random", "tpe", "nsga2"):
            spec = StudySpec(name=f"{strategy}-{seed}", space="dscnn", dataset=a.dataset, strategy=strategy,
                             trials=a.trials, epochs=a.epochs, seed=seed, objectives=("accuracy", "latency_ms"),
                             prune=False, **LIMITS)
            t = time.perf_counter()
            res = run_study(spec, out_dir=work / "strategies" / spec.name, storage=work / "strategies.journal",
                            workers=a.workers)
            c = res.counts()
            trained = [r for r in res.trials if r.state == "trained"]
            points.setdefault(seed, []).extend(r.to_json() for r in trained)
            accs = [r.accuracy for r in trained]
            rows.append({"seed": seed, "strategy": strategy, "trained": c["trained"], "pruned": c["pruned"],
                         "failed": c["failed"], "rejected": c["rejected"], "duplicates": res.duplicates,
                         "distinct_trained": len({json.dumps(r.params, sort_keys=True) for r in trained}),
                         "hypervolume": res.hypervolume, "best_accuracy": max(accs) if accs else None,
                         "wall_s": round(time.perf_counter() - t, 1)})
            print(f"  {rows[-1]}", file=sys.stderr)
    ref = _journal_reference(work / "strategies.journal", f"random-{a.seed_list[0]}")
    summary = {}
    for s in ("tpe", "nsga2"):
        ratios = []
        for seed in a.seed_list:
            base = next(r for r in rows if r["seed"] == seed and r["strategy"] == "random")["hypervolume"]
            mine = next(r for r in rows if r["seed"] == seed and r["strategy"] == s)["hypervolume"]
            if base and mine is not None:
                ratios.append(mine / base)
        summary[s] = {"hv_ratio_mean": round(sum(ratios) / len(ratios), 3) if ratios else None,
                      "hv_ratios": [round(r, 3) for r in ratios]}
    ceilings = []
    for seed in a.seed_list:
        objs = ("accuracy", "latency_ms")
        hv_all = hypervolume([normalized(objective_vector(p, objs), objs, ref) for p in points[seed]], [1.0, 1.0])
        base = next(r for r in rows if r["seed"] == seed and r["strategy"] == "random")["hypervolume"]
        ceilings.append(round(hv_all / base, 3) if base else None)
    summary["ceiling_ratio_union_front"] = ceilings
    for s in ("random", "tpe", "nsga2"):
        accs = [r["best_accuracy"] for r in rows if r["strategy"] == s and r["best_accuracy"] is not None]
        summary.setdefault(s, {})["best_accuracy_mean"] = round(sum(accs) / len(accs), 4) if accs else None
    saved = sum(r["rejected"] for r in rows)
    return {"trials_per_study": a.trials, "epochs": a.epochs, "seeds": a.seed_list, "pruning": False,
            "reference": ref, "rows": rows, "summary": summary, "trainings_saved_by_prefilter": saved,
            "share_rejected": round(saved / max(1, sum(r["rejected"] + r["trained"] + r["pruned"] + r["failed"]
                                                       for r in rows)), 3)}


def _journal_reference(journal: Path, study: str) -> dict:
    """The hypervolume reference the studies stored (the same for every strategy of one spec)."""
    import optuna

    from engine.search.trial import open_storage

    return optuna.load_study(study_name=study, storage=open_storage(str(journal))).user_attrs["reference"]


def prefilter(a, work: Path) -> dict:
    """The whole dscnn space for the data set, profiled as deployed: how much of it the limits reject (what a
    search without the pre-filter would train for nothing), and what a profile costs."""
    import itertools

    from engine.data import load_dataset
    from engine.search.objectives import broken_constraint, deployed_figures
    from engine.search.spaces import SPACES
    from hwmodels.runtime import default_runtime

    data = load_dataset(a.dataset, seed=0)
    space = SPACES["dscnn"].for_data(data.input_shape)
    runtime = default_runtime(LIMITS["mcu"])
    broke: dict[str, int] = {}
    n, t = 0, time.perf_counter()
    for values in itertools.product(*(k.choices for k in space.knobs)):
        params = dict(zip(space.knob_names, values))
        m = deployed_figures(space.build(params, data.input_shape, data.classes), LIMITS["mcu"], runtime)
        why = broken_constraint(m, LIMITS["max_sram"], LIMITS["max_flash"], None)
        n += 1
        if why:
            key = why.split(" ")[0]
            broke[key] = broke.get(key, 0) + 1
    return {"candidates": n, "rejected": sum(broke.values()), "by_constraint": broke,
            "seconds_per_profile": round((time.perf_counter() - t) / n, 3)}


def proxy(a, work: Path) -> dict:
    """Random architectures of the dscnn space that fit, trained without pruning (every one to the end)."""
    from scipy.stats import kendalltau

    from engine.data import load_dataset
    from engine.search.proxies import PROXIES, score
    from engine.search.spaces import SPACES

    spec = StudySpec(name="proxy", space="dscnn", dataset=a.dataset, strategy="random", trials=a.proxy_archs,
                     epochs=1, seed=7, objectives=("accuracy",), **LIMITS)
    res = run_study(spec, out_dir=work / "proxy", storage=work / "proxy.journal", workers=a.workers)
    data = load_dataset(a.dataset, seed=spec.seed)
    space = SPACES["dscnn"].for_data(data.input_shape)
    batch = data.x_train[:64]
    trained = [r for r in res.trials if r.state in ("trained", "pruned")]
    # With one epoch nothing is pruned (no rung before the last epoch): every sampled architecture is trained.
    accs = [r.accuracy for r in trained if r.accuracy is not None]
    out = {"architectures": len(accs), "epochs": spec.epochs}
    for kind in PROXIES:
        scores = []
        t = time.perf_counter()
        for r in trained:
            if r.accuracy is None:
                continue
            params = {k: tuple(v) if isinstance(v, list) else v for k, v in r.params.items()}
            scores.append(score(space.build(params, data.input_shape, data.classes, spec.seed), batch, kind))
        tau = kendalltau(scores, accs)
        out[kind] = {"kendall_tau": round(float(tau.statistic), 3), "p_value": round(float(tau.pvalue), 4),
                     "seconds_per_arch": round((time.perf_counter() - t) / max(1, len(scores)), 3)}
    macs = [r.macs for r in trained if r.accuracy is not None]
    out["macs_baseline"] = {"kendall_tau": round(float(kendalltau(macs, accs).statistic), 3)}
    return out


def workers(a, work: Path) -> dict:
    from engine.executor import get_client

    out = {}
    for n in (1, 2):
        get_client(n)  # started before timing: the comparison is of trials, not of cluster start-up
        spec = StudySpec(name=f"w{n}", space="dscnn", dataset=a.dataset, strategy="random", trials=a.worker_trials,
                         epochs=1, seed=3, objectives=("accuracy", "latency_ms"), **LIMITS)
        t = time.perf_counter()
        res = run_study(spec, out_dir=work / f"w{n}", storage=work / "workers.journal", workers=n)
        c = res.counts()
        out[f"{n}_workers"] = {"wall_s": round(time.perf_counter() - t, 1), **c,
                               "params": [r.params for r in res.trials]}
    out["same_candidates"] = out["1_workers"].pop("params") == out["2_workers"].pop("params")
    out["wall_ratio_1_over_2"] = round(out["1_workers"]["wall_s"] / out["2_workers"]["wall_s"], 2)
    out["killed"] = _kill(a, work)
    return out


def _kill(a, work: Path) -> dict:
    from engine.executor import get_client

    client = get_client(2)
    killed = {}

    def started() -> list[str]:
        """Workers running a trial that has begun (its attempt counted in the journal, no record yet): the kill
        lands mid-trial, not while the worker still unpacks the task (that would be no trial lost at all)."""
        import optuna

        from engine.search.trial import open_storage

        try:
            trials = optuna.load_study(study_name="kill", storage=open_storage(str(work / "kill.journal"))).trials
        except Exception:  # the study is not created yet
            return []
        begun = {t.number for t in trials if "attempts" in t.user_attrs and "record" not in t.user_attrs}
        return [w for w, ks in client.processing().items()
                if any(k.startswith("search-kill-") and int(k.split("-")[2]) in begun for k in ks)]

    def killer():
        end = time.time() + 600
        while time.time() < end and not killed:
            busy = started()
            if busy:
                time.sleep(1.0)  # into its training
                busy = started()
                if busy:
                    pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                    os.kill(pid, signal.SIGKILL)
                    killed["pid"] = pid
                    return
            time.sleep(0.2)

    th = threading.Thread(target=killer, daemon=True)
    th.start()
    spec = StudySpec(name="kill", space="dscnn", dataset=a.dataset, strategy="random", trials=4, epochs=2, seed=5,
                     objectives=("accuracy", "latency_ms"), **LIMITS)
    res = run_study(spec, out_dir=work / "kill", storage=work / "kill.journal", workers=2)
    th.join(5)
    return {"killed_pid": killed.get("pid"), **res.counts(),
            "trials": [{"trial": r.number, "state": r.state, "attempts": r.attempts, "error": r.error}
                       for r in res.trials]}


def badinput(a, work: Path) -> dict:
    cases = {
        "impossible constraints": ["--space", "dscnn", "--max-sram", "512"],
        "unknown space": ["--space", "lstm"],
        "unknown knob": ["--space", "zoo:kws_dscnn", "--knob", "conv9.channels=8,16"],
        "scheduler not answering": ["--space", "dscnn", "--scheduler", "tcp://127.0.0.1:9"],
    }
    out = {}
    for name, argv in cases.items():
        d = work / f"bad_{name.replace(' ', '_')}"
        rc, _, err, s = cli("search", "--dataset", a.dataset, "--mcu", "nrf52840", "--out", str(d), *argv)
        out[name] = {"exit": rc, "message": err.strip(), "seconds": round(s, 1), "wrote_anything": d.exists()}
    return out


SECTIONS = {"headline": headline, "strategies": strategies, "prefilter": prefilter, "proxy": proxy, "workers": workers,
            "badinput": badinput}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="keywords")
    ap.add_argument("--time-budget", type=float, default=600.0, help="headline study's budget (default 600 s)")
    ap.add_argument("--trials", type=int, default=24, help="trained candidates per strategy study")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed+seeds-1")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--proxy-archs", type=int, default=40)
    ap.add_argument("--worker-trials", type=int, default=6)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sections", default=",".join(SECTIONS))
    ap.add_argument("--work", help="folder for studies and models (default: a temporary one)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    a.seed_list = list(range(a.first_seed, a.first_seed + a.seeds))
    work = Path(a.work or tempfile.mkdtemp(prefix="search_table_"))
    work.mkdir(parents=True, exist_ok=True)
    doc = {"machine_cpus": os.cpu_count(), "load_avg_start": os.getloadavg()}
    for name in a.sections.split(","):
        t = time.perf_counter()
        print(f"[{name}] ...", file=sys.stderr)
        doc[name] = SECTIONS[name](a, work)
        doc[name]["section_s"] = round(time.perf_counter() - t, 1)
        print(json.dumps({name: doc[name]}, indent=1, default=str), file=sys.stderr)
    doc["load_avg_end"] = os.getloadavg()
    if a.json:
        print(json.dumps(doc, indent=1, default=str))
    else:
        _print(doc)
    return 0


def _print(doc: dict) -> None:
    print(f"machine: {doc['machine_cpus']} CPUs, load average {doc['load_avg_start'][0]:.1f} at start")
    h = doc.get("headline")
    if h:
        print(f"\nheadline: dscnn on {h['dataset']}, nrf52840/{h['runtime']}, <= 64 KB SRAM, <= 256 KB flash, "
              f"{h['time_budget_s']:g} s budget ({h['wall_s']} s wall), {h['epochs']} epochs, {h['workers']} workers")
        print(f"  trials {h['trials']}, hypervolume {h['hypervolume']}")
        for p in h["pareto"]:
            print(f"  #{p['trial']:<3} acc {p['accuracy']:.3f} lat {p['latency_ms']:.2f} ms RAM {p['ram_bytes']} "
                  f"flash {p['flash_bytes']} fits {p['fits']} same-as-search {p['same_as_search']} "
                  f"bit-exact {p['bit_exact']} ({p['verified_inputs']} inputs) {p['params']}")
        z = h["zoo_kws_dscnn"]
        print(f"  best point accuracy {h['best_accuracy']} vs zoo kws_dscnn {z['accuracy']:.3f} (RAM {z['ram_bytes']}, "
              f"flash {z['flash_bytes']}, fits the limits: {z['fits_limits']})")
    s = doc.get("strategies")
    if s:
        print(f"\nstrategies: {s['trials_per_study']} trained candidates per study, {s['epochs']} epochs, "
              f"{s['seeds']} seeds")
        for r in s["rows"]:
            print(f"  seed {r['seed']} {r['strategy']:<6} HV {r['hypervolume']} best acc {r['best_accuracy']} "
                  f"trained {r['trained']} ({r['distinct_trained']} distinct) pruned {r['pruned']} rejected "
                  f"{r['rejected']} duplicates told again {r['duplicates']} ({r['wall_s']} s)")
        for k, v in s["summary"].items():
            print(f"  {k:<6} {v}")
        print(f"  trainings saved by the pre-filter: {s['trainings_saved_by_prefilter']} "
              f"({s['share_rejected']:.0%} of candidates)")
    f = doc.get("prefilter")
    if f:
        print(f"\nprefilter: {f['rejected']} of {f['candidates']} dscnn candidates break the limits "
              f"{f['by_constraint']}; {f['seconds_per_profile']} s per profile as deployed")
    p = doc.get("proxy")
    if p:
        print(f"\nproxy: {p['architectures']} architectures, {p['epochs']} epoch(s): "
              + ", ".join(f"{k} tau {v['kendall_tau']}" for k, v in p.items() if isinstance(v, dict)))
    w = doc.get("workers")
    if w:
        print(f"\nworkers: 1 worker {w['1_workers']['wall_s']} s, 2 workers {w['2_workers']['wall_s']} s, ratio "
              f"{w['wall_ratio_1_over_2']}, same candidates {w['same_candidates']}; counts 1w {w['1_workers']}, "
              f"2w {w['2_workers']}")
        print(f"  killed worker pid {w['killed']['killed_pid']}: {w['killed']['trials']}")
    b = doc.get("badinput")
    if b:
        print("\nbad input:")
        for k, v in b.items():
            if not isinstance(v, dict):
                continue
            print(f"  {k}: exit {v['exit']} in {v['seconds']} s, wrote anything: {v['wrote_anything']}: {v['message']}")


if __name__ == "__main__":
    sys.exit(main())
