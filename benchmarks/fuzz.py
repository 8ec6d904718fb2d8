"""Long fuzz run: mutated ONNX and TFLite files through every stage; prints the figures and the first crash
reproducers (see tests/fuzz/harness.py for the stages, limits and outcome classes).

Run: .venv/bin/python benchmarks/fuzz.py --cases 10000 --workers 2 [--seed 10] [--timeout 60] [--full-every 4]
Exit status 1 when any case crashed, hung, went over memory or got a multi-line error.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(root))

from tests.fuzz.harness import MEMORY_LIMIT, fuzz  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=10000)
    p.add_argument("--seed", type=int, default=10)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per case before it counts as a hang")
    p.add_argument("--memory", type=int, default=MEMORY_LIMIT >> 20, help="MiB of address space a worker may add")
    p.add_argument("--full-every", type=int, default=4, help="int8 run and C generation on every N-th case")
    p.add_argument("--crash-dir", default=None, help="where reproducers go (default: a temporary folder)")
    args = p.parse_args()
    last = [time.perf_counter()]

    def progress(summary, result):
        if time.perf_counter() - last[0] > 30:
            last[0] = time.perf_counter()
            print(summary.report().splitlines()[0], flush=True)
        if result["outcome"] not in ("ok", "clean"):
            print(f"  {result['outcome']}: case {result['index']} {result['case'][:120]!r} -> "
                  f"{result['reproducer']}", flush=True)

    s = fuzz(args.cases, seed=args.seed, workers=args.workers, timeout_s=args.timeout, memory_limit=args.memory << 20,
             crash_dir=args.crash_dir, progress=progress, full_every=args.full_every)
    print(f"seed {args.seed}, {args.workers} workers, {args.timeout:.0f} s and +{args.memory} MiB per case, "
          f"int8 run and C generation on every {args.full_every}. case")
    print(s.report())
    stages = ", ".join(f"{k} {v}" for k, v in sorted(s.stages.items()))
    print(f"stages reached by ok cases: {stages}")
    return 1 if s.failures else 0


if __name__ == "__main__":
    sys.exit(main())
