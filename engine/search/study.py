"""Running a study (filled in next)."""
from __future__ import annotations


def run_study(spec, *, out_dir, storage, workers=1, scheduler=None, base_graph=None, on_trial=None, stop=None):
    raise NotImplementedError("run_study: being written on branch search")
