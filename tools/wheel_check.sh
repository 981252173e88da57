#!/usr/bin/env bash
# `make wheel-check`: build the wheel the way the README says, install it into a fresh venv
# (not the development one) and smoke-test it there from outside the source tree: import,
# `python -m fastsnn`, every op once against its reference, `python -m fastsnn.train --help`.
#
# Usage: tools/wheel_check.sh [BUILD_PYTHON]   (default .venv/bin/python; its torch builds)
# The fresh venv gets torch like the Makefile's: the base python's own torch when it has one
# (--system-site-packages), else torch==$TORCH_VERSION (the CPU wheel), then the wheel with
# its `train` extra from the package index.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
build_py=${1:-.venv/bin/python}
base_py=${PYTHON:-python3}
torch_version=${TORCH_VERSION:-2.13.0}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pip_quiet=(-q --disable-pip-version-check)

start=$(date +%s)
"$build_py" -m pip wheel "${pip_quiet[@]}" --no-build-isolation --no-deps -w "$work/dist" .
wheel=$(ls "$work"/dist/fastsnn-*.whl)
built=$(date +%s)
echo "wheel-check: $(basename "$wheel"), $(( $(stat -c %s "$wheel") / 1024 )) KiB, built in" \
     "$(( built - start )) s"

if "$base_py" -c "import torch" 2>/dev/null; then
  "$base_py" -m venv --system-site-packages "$work/venv"
else
  "$base_py" -m venv "$work/venv"
  "$work/venv/bin/python" -m pip install "${pip_quiet[@]}" "torch==$torch_version"
fi
"$work/venv/bin/python" -m pip install "${pip_quiet[@]}" "$wheel[train]"
echo "wheel-check: fresh venv with torch and the wheel in $(( $(date +%s) - built )) s"

cd "$work"  # nothing of the source tree on sys.path
venv/bin/python -m pip check
venv/bin/python -m fastsnn
venv/bin/python "$repo/tools/wheel_smoke.py"
venv/bin/python -m fastsnn.train --help >/dev/null
echo "wheel-check: passed in $(( $(date +%s) - start )) s"
