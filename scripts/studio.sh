#!/usr/bin/env bash
# Set up .venv (see setup.sh) and start the studio on the default embedded DuckDB file.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
exec "$root/.venv/bin/tinystudio" studio "$@"
