#!/usr/bin/env bash
# make gpu-check: everything that needs a GPU, in one command (< 10 min on an H100).
#  1. build with CUDA (TORCH_CUDA_ARCH_LIST default "8.0;9.0"), timing the build;
#  2. the whole test suite with CUDA tensors (FASTSNN_TEST_DEVICE=cuda);
#  3. compute-sanitizer memcheck and racecheck over the CUDA kernel tests;
#  4. the GPU benchmark suite -> bench/results/gpu-<device>.json (+ .png), and a summary.
set -uo pipefail
cd "$(dirname "$0")/.."
python3 -c "import torch" 2>/dev/null || {
    echo "gpu-check: python3 has no torch; run this on the GPU machine (CUDA torch)"; exit 2; }
python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
    echo "gpu-check: torch sees no CUDA device; run this on a GPU machine"; exit 2; }
LOG=${GPU_CHECK_LOG:-bench/results/gpu-check.log}
mkdir -p bench/results
status=0
step() { echo "== $*" | tee -a "$LOG"; }
: > "$LOG"

# The GPU machine has no network: build in place against its own torch and run from the
# tree (no venv, nothing to download).
step "build (CUDA)"
start=$(date +%s)
python3 setup.py build_ext --inplace 2>&1 | tail -5 | tee -a "$LOG" || status=1
echo "build seconds: $(( $(date +%s) - start ))" | tee -a "$LOG"
PY=python3
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
$PY -m fastsnn | tee -a "$LOG"

step "test suite on CUDA"
FASTSNN_REQUIRE_EXTENSION=1 FASTSNN_TEST_DEVICE=cuda $PY -m pytest -q -x -p no:cacheprovider \
    2>&1 | tail -20 | tee -a "$LOG" || status=1

if command -v compute-sanitizer >/dev/null; then
    for tool in memcheck racecheck; do
        step "compute-sanitizer $tool"
        FASTSNN_TEST_DEVICE=cuda HYPOTHESIS_PROFILE=ci compute-sanitizer --tool $tool \
            --error-exitcode 1 $PY -m pytest -q -x -k "cuda" -p no:cacheprovider \
            2>&1 | tail -8 | tee -a "$LOG" || status=1
    done
else
    step "compute-sanitizer not found: skipped"
fi

step "GPU benchmarks"
$PY bench/run.py --device cuda 2>&1 | tee -a "$LOG" || status=1
exit $status
