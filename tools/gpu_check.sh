#!/usr/bin/env bash
# make gpu-check: everything that needs a GPU, as stages with their own time budgets, about
# 8 minutes in all on an H200 (GPU_CHECK_SECONDS, default 450, start-up not included):
#
#   deps      wheels from .whl/ (make gpu-wheels) for what python3 lacks: no network needed
#   build     the extension with CUDA, in place, TORCH_CUDA_ARCH_LIST=9.0, all cores
#   tests     the whole suite with CUDA tensors (FASTSNN_TEST_DEVICE=cuda), xdist workers
#   sanitize  compute-sanitizer memcheck, then racecheck, on tools/gpu_cases.py (one small
#             call of every CUDA kernel), not the whole suite
#   bench     bench/run.py --quick, then the full rows op by op while time remains
#
# Every stage appends to $RESULTS/gpu-check.log as it goes; RESULTS is $OUT when set (the
# GPU machine hands back what is written there, even after a timeout), else bench/results.
# Files: gpu-check.log, tests.xml, quick/gpu-<device>.json|png, gpu-<device>.json|png.
#
# --dry-run: the same stages on this machine's CPU, up to where CUDA is needed (deps for
# real; build incremental; tests collected with FASTSNN_TEST_DEVICE=cuda; gpu_cases.py on
# the C++ kernels; one quick CPU benchmark). Run it from a tree whose python has the GPU
# machine's torch, e.g. `make cuda-build` then
# `cd build/cuda/src && PYTHON=~/.cache/fastsnn/cuda-venv/bin/python tools/gpu_check.sh --dry-run`.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
[[ ${1:-} == --dry-run ]] && DRY=1
PY=${PYTHON:-python3}
RESULTS=${OUT:-bench/results}
TOTAL=${GPU_CHECK_SECONDS:-450}
ARCH=${TORCH_CUDA_ARCH_LIST:-9.0}
CORES=$(nproc)
WORKERS=${GPU_CHECK_WORKERS:-$(( CORES > 8 ? 8 : CORES ))}
mkdir -p "$RESULTS"
LOG=$RESULTS/gpu-check.log
: > "$LOG"
START=$(date +%s)
status=0
declare -A RESULT

log() { echo "$*" | tee -a "$LOG"; }
left() { echo $(( TOTAL - ($(date +%s) - START) )); }
# budget SECONDS: the stage's limit, cut to what is left of the total (0: no time left)
budget() { local l; l=$(left); (( l < $1 )) && echo $(( l > 0 ? l : 0 )) || echo "$1"; }
# stage NAME SECONDS CMD...: runs CMD under timeout, its output into the log
stage() {
    local name=$1 limit; limit=$(budget "$2"); shift 2
    if (( limit < 10 )); then
        log "== $name: skipped (no time left)"; RESULT[$name]="skipped"; return 0
    fi
    log "== $name (budget ${limit} s, $(left) s left in all)"
    local t0 rc; t0=$(date +%s)
    timeout --kill-after=10 "$limit" bash -c '"$@"' _ "$@" >> "$LOG" 2>&1
    rc=$?
    local took=$(( $(date +%s) - t0 ))
    case $rc in
        0) RESULT[$name]="ok ${took} s" ;;
        124|137) RESULT[$name]="TIMEOUT after ${took} s"; status=1 ;;
        *) RESULT[$name]="FAILED (exit $rc) after ${took} s"; status=1 ;;
    esac
    log "== $name: ${RESULT[$name]}"
    return $rc
}

log "gpu-check $(date -u +%FT%TZ) on $(hostname): $CORES cores, budget $TOTAL s$( ((DRY)) && echo ', DRY RUN')"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'device',
           torch.cuda.get_device_name() if torch.cuda.is_available() else None)" 2>&1 | tee -a "$LOG"
if (( ! DRY )) && ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    log "gpu-check: $PY sees no CUDA device (--dry-run runs the CPU part)"; exit 2
fi

# -- deps: packages the GPU machine lacks, from the wheels in .whl/ (make gpu-wheels), which
# travel with the tree; the ones its python already has are left alone.
deps() {
    [[ -d .whl ]] || { echo "no .whl/ (make gpu-wheels): tests needing peers skip or fail"; return 0; }
    local missing wheel rc=0
    missing=$("$PY" - <<'PYEOF'
import pathlib
from importlib import metadata
for wheel in sorted(pathlib.Path(".whl").glob("*.whl")):
    try:
        metadata.version(wheel.name.split("-")[0])
    except metadata.PackageNotFoundError:
        print(wheel)
PYEOF
)
    [[ -z $missing ]] && { echo "every wheel in .whl/ is installed already"; return 0; }
    for wheel in $missing; do  # one by one: a wheel for another python must not stop the rest
        echo "installing $wheel into build/pydeps"
        PIP_ROOT_USER_ACTION=ignore "$PY" -m pip install -q --no-index --no-deps \
            --target build/pydeps "$wheel" || rc=1
    done
    return $rc
}
export -f deps
export PY ARCH CORES
stage deps 60 deps
export PYTHONPATH=$PWD:$PWD/build/pydeps${PYTHONPATH:+:$PYTHONPATH}
export PATH=$PWD/build/pydeps/bin:$PATH  # ninja, when it came from .whl/

# -- build: in place (this tree is the GPU machine's copy); ninja, every core
build() {
    local home; home=$(bash tools/cuda_toolkit.sh) || return 1
    echo "toolkit $home, TORCH_CUDA_ARCH_LIST=$ARCH, MAX_JOBS=$CORES"
    CUDA_HOME=$home FASTSNN_CUDA=1 TORCH_CUDA_ARCH_LIST=$ARCH MAX_JOBS=$CORES \
        "$PY" setup.py -q build_ext --inplace 2>&1 | grep -v "^\[[0-9]*/[0-9]*\] "
    test "${PIPESTATUS[0]}" -eq 0 && "$PY" -m fastsnn
}
export -f build
stage build 200 build || { log "gpu-check: the build failed, nothing else can run"; exit 1; }

# -- tests
export FASTSNN_REQUIRE_EXTENSION=1 HYPOTHESIS_PROFILE=${HYPOTHESIS_PROFILE:-ci}
if (( DRY )); then
    stage tests 120 env FASTSNN_TEST_DEVICE=cuda "$PY" -m pytest -q --collect-only -p no:cacheprovider
else
    stage tests 200 env FASTSNN_TEST_DEVICE=cuda "$PY" -m pytest -q -n "$WORKERS" -rfEs \
        -p no:cacheprovider --junitxml="$RESULTS/tests.xml"
fi

# -- compute-sanitizer over one small call per CUDA kernel
if (( DRY )); then
    stage sanitize 120 "$PY" tools/gpu_cases.py --device cpu --backend cpu
elif command -v compute-sanitizer >/dev/null; then
    for tool in memcheck racecheck; do
        # without the caching allocator every buffer has its exact size: memcheck sees
        # a read past a tensor's end instead of into the allocator's slack
        stage "sanitize-$tool" 60 env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer \
            --tool "$tool" --error-exitcode 1 --print-limit 20 "$PY" tools/gpu_cases.py
    done
else
    log "== sanitize: compute-sanitizer not found"; RESULT[sanitize]="not found"; status=1
fi

# -- benchmarks: quick first (a complete table early), then full rows op by op
if (( DRY )); then
    stage bench-quick 200 "$PY" bench/run.py --quick --device cpu --only stcb --out "$RESULTS/quick"
else
    stage bench-quick 90 "$PY" bench/run.py --quick --out "$RESULTS/quick"
    for op in $(ls bench/bench_*.py | sed 's|bench/bench_||; s|\.py$||'); do
        stage "bench-$op" 120 "$PY" bench/run.py --only "$op" --out "$RESULTS"
    done
fi

log "== summary ($(( $(date +%s) - START )) s)"
for name in $(printf '%s\n' "${!RESULT[@]}" | sort); do log "  $name: ${RESULT[$name]}"; done
exit $status
