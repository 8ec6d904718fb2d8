#!/usr/bin/env bash
# Create or reuse .venv at the repository root and install everything TinyStudio and its tests need.
# Idempotent and quick when nothing changed: a stamp records what was installed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Debian packages the product and its tests need, installed only when missing:
# gcc builds and verifies exported C on the host; the Arm toolchain, newlib and QEMU cross-compile it for
# Cortex-M and run it emulated; Chromium runs the browser tests (Playwright drives it, never downloads one).
APT_PACKAGES=(gcc libc6-dev gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm chromium fonts-dejavu-core espeak-ng)
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
python3 -m venv --help >/dev/null 2>&1 || { echo "setup: python3 with venv is required" >&2; exit 1; }

[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=.venv/.tinystudio-installed
want="$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages into .venv (first run takes a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q -r requirements.txt 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import engine, onnx, onnxruntime, torch, tflite" || { echo "setup: install failed" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
