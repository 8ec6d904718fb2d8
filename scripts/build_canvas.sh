#!/usr/bin/env bash
# Rebuild the graph canvas component (app/canvas/frontend/dist, committed) from its lockfile.
# Users never need this: the built JavaScript ships with the project. Needs Node.js 20+ and npm.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/app/canvas/frontend"
npm ci --no-audit --no-fund
npm run build
sha256sum dist/index.html dist/assets/*
