#!/usr/bin/env bash
# Set up .venv (see setup.sh) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
# --max-worker-restart=0: a crashed worker ends the run with its test named; with restarts, pytest-xdist 3.8.0
# (loadfile) can wait forever for work it never reschedules (pytest-xdist issues 784, 1313), as CI once did.
exec .venv/bin/python -m pytest -n 2 --dist loadfile --max-worker-restart=0 tests "$@"
