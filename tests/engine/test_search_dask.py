"""Search on a local Dask cluster the test starts itself (scheduler + 2 worker processes): a study runs and
stores every trial, resumes from its journal, survives a worker killed mid-trial, and the CLI prints the
issue's JSON. Tiny budgets: the DS-CNN space on digits, 1-2 epochs."""
from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from app.cli import main as cli
from engine.executor import get_client, shutdown
from engine.search import StudySpec, run_study

pytestmark = pytest.mark.slow

SPEC = dict(space="dscnn", dataset="digits", mcu="nrf52840", max_sram=64 * 1024, max_flash=256 * 1024, epochs=1)


@pytest.fixture(scope="module")
def client():
    c = get_client(2)
    assert len(c.nthreads()) == 2 and set(c.nthreads().values()) == {1}  # 2 processes, 1 thread each
    yield c
    shutdown()


def test_local_cluster_is_cached_and_runs_in_other_processes(client):
    assert get_client(2) is client
    pids = client.run(os.getpid)
    assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()


def test_study_runs_on_two_workers_and_resumes(client, tmp_path):
    spec = StudySpec(name="kws", strategy="tpe", trials=2, **SPEC)
    seen = []
    res = run_study(spec, out_dir=tmp_path / "out", storage=tmp_path / "s.journal", workers=2, on_trial=seen.append)
    c = res.counts()
    assert c["trained"] + c["pruned"] + c["failed"] == 2 and c["failed"] == 0
    assert sorted(t.number for t in seen) == sorted(t.number for t in res.trials)
    for t in res.trials:
        if t.state == "trained":
            assert os.path.isfile(t.model_path) and t.ram_bytes <= 64 * 1024 and t.flash_bytes <= 256 * 1024
    assert res.pareto and res.hypervolume is not None and 0 < res.hypervolume <= 1
    first = {t.number: t for t in res.trials}
    # Same journal and name: the study continues with one more trained candidate; earlier records unchanged.
    res2 = run_study(StudySpec(name="kws", strategy="tpe", trials=3, **SPEC), out_dir=tmp_path / "out",
                     storage=tmp_path / "s.journal", workers=2)
    assert sum(1 for t in res2.trials if t.state != "rejected") == 3
    assert all(res2.trials[i] == first[n] for i, n in enumerate(sorted(first)))
    # Other settings under the same name are refused instead of mixing two studies.
    with pytest.raises(Exception, match="was made with other settings"):
        run_study(StudySpec(name="kws", strategy="tpe", trials=3, objectives=("accuracy", "ram_bytes"), **SPEC),
                  out_dir=tmp_path / "out", storage=tmp_path / "s.journal", workers=2)


def test_killed_worker_loses_at_most_its_trial(client, tmp_path):
    """A worker process killed while it trains: Dask runs the trial again (attempts 2) or it is recorded
    failed; the study finishes with every trial accounted for."""
    spec = StudySpec(name="kill", strategy="random", trials=3, **{**SPEC, "epochs": 4})
    killed = {}

    def started() -> list[str]:
        """Workers running a trial that has begun (its attempt is counted in the journal, no record yet):
        killing one then is a kill mid-trial, not while the worker still unpacks the task."""
        import optuna

        from engine.search.trial import open_storage

        try:
            trials = optuna.load_study(study_name="kill", storage=open_storage(str(tmp_path / "s.journal"))).trials
        except Exception:  # the study is not created yet
            return []
        begun = {t.number for t in trials if "attempts" in t.user_attrs and "record" not in t.user_attrs}
        return [w for w, ks in client.processing().items()
                if any(k.startswith("search-kill-") and int(k.split("-")[2]) in begun for k in ks)]

    def killer():
        deadline = time.time() + 240
        while time.time() < deadline and not killed:
            workers = started()
            if workers:
                pid = client.run(os.getpid, workers=[workers[0]])[workers[0]]
                os.kill(pid, signal.SIGKILL)
                killed[workers[0]] = pid
                return
            time.sleep(0.1)

    th = threading.Thread(target=killer, daemon=True)
    th.start()
    res = run_study(spec, out_dir=tmp_path / "out", storage=tmp_path / "s.journal", workers=2)
    th.join(5)
    assert killed, "no trial was running to kill"
    c = res.counts()
    assert c["trained"] + c["pruned"] + c["failed"] == 3
    retried = [t for t in res.trials if t.attempts > 1]
    lost = [t for t in res.trials if t.state == "failed" and "worker lost" in (t.error or "")]
    assert retried or lost  # the killed trial is accounted for: run again, or recorded failed
    assert all(t.state in ("trained", "pruned") for t in retried)


def test_cli_json_shape(client, tmp_path, capsys):
    out = tmp_path / "out"
    rc = cli(["search", "--space", "dscnn", "--dataset", "digits", "--mcu", "nrf52840", "--max-sram", "64K",
              "--max-flash", "256K", "--trials", "1", "--epochs", "1", "--workers", "2", "--strategy", "random",
              "--objectives", "accuracy,latency_ms,ram_bytes", "--out", str(out), "--json"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc) == ["study", "strategy", "trials", "pareto", "hypervolume"]
    assert list(doc["trials"]) == ["total", "trained", "rejected", "pruned", "failed"]
    assert doc["trials"]["trained"] == 1 and len(doc["pareto"]) == 1
    p = doc["pareto"][0]
    assert list(p) == ["trial", "params", "accuracy", "latency_ms", "ram_bytes", "flash_bytes", "macs", "model"]
    assert os.path.dirname(p["model"]) == str(out) and os.path.isfile(p["model"])
    # The saved model re-profiled with `tinystudio profile --precision int8` gives the same figures.
    assert cli(["profile", p["model"], "--mcu", "nrf52840", "--precision", "int8", "--json"]) == 0
    prof = json.loads(capsys.readouterr().out)
    t = prof["targets"][0]
    assert (t["ram_bytes"], t["flash_bytes"]) == (p["ram_bytes"], p["flash_bytes"])
    assert t["latency_ms"] == pytest.approx(p["latency_ms"], rel=1e-6)


def test_every_trained_candidate_is_distinct_and_prune_off_trains_all_epochs(client, tmp_path):
    """A space of 2 points and a budget of 4: the 2 candidates are trained once each (a sampler's repeat is
    told the known outcome, not trained again) and the study stops when the space is exhausted; with
    prune=False no trial is cut at a rung (3 epochs: rung 1 exists)."""
    from engine.data import load_dataset
    from engine.search.spaces import SPACES

    data = load_dataset("digits")
    base = SPACES["dscnn"].build({"filters": 8, "blocks": 1, "first_kernel": (3, 3), "first_stride": 2},
                                 data.input_shape, data.classes)
    spec = StudySpec(name="two", space="version", dataset="digits", mcu="nrf52840", strategy="random", trials=4,
                     epochs=3, prune=False, marks=(("conv1.channels", (4, 8)),))
    res = run_study(spec, out_dir=tmp_path / "out", storage=tmp_path / "s.journal", workers=2, base_graph=base)
    c = res.counts()
    assert c["trained"] == 2 and c["pruned"] == c["failed"] == 0
    assert sorted(t.params["conv1.channels"] for t in res.trials) == [4, 8]
    import optuna

    from engine.search.trial import open_storage

    study = optuna.load_study(study_name="two", storage=open_storage(str(tmp_path / "s.journal")))
    assert res.duplicates == sum(1 for t in study.get_trials() if "duplicate_of" in t.user_attrs)
    for t in study.get_trials():  # every repeat told the outcome of the trial it repeats
        if "duplicate_of" in t.user_attrs and t.state.name == "COMPLETE":
            assert t.values == study.trials[t.user_attrs["duplicate_of"]].values
