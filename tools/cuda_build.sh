#!/usr/bin/env bash
# make cuda-build: the GPU build proven on a machine without a GPU.
#
#  1. a venv with the GPU machine's torch (torch==$CUDA_TORCH, a CUDA 13.0 build, and the
#     Triton it pulls), kept outside the tree and reused: $FASTSNN_CUDA_VENV, default
#     ~/.cache/fastsnn/cuda-venv (created from scratch when missing or when the pinned
#     versions / requirement files change);
#  2. the whole extension built with CUDA (TORCH_CUDA_ARCH_LIST, default 9.0) in a copy of
#     the tree under build/cuda/src, so it never clobbers the CPU build of `make setup`;
#  3. tools/cuda_check.py: every op has CPU and CUDA kernels in the dispatcher, and every
#     Triton kernel compiles for sm_90 over the option space of the ops;
#  4. the whole test suite in that venv (torch with CUDA, no driver: CUDA tests skip).
#
# Stages: `tools/cuda_build.sh [venv] [build] [check] [test]` (default: all four).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CUDA_TORCH=${CUDA_TORCH:-2.11.0}
VENV=${FASTSNN_CUDA_VENV:-$HOME/.cache/fastsnn/cuda-venv}
# Triton 3.6's interpreter turns a runtime scalar argument into a Python int with int() of a
# 1-element array (`range(0, T)` in a kernel), an error since numpy 2.4 (a deprecation
# warning before; Triton 3.7+ squeezes first). Only the interpreter is affected.
EXTRA_PINS=${CUDA_VENV_PINS:-numpy<2.4}
BUILD=${FASTSNN_CUDA_BUILD:-$ROOT/build/cuda}
JOBS=${JOBS:-2}
PYTHON=${PYTHON:-python3}
PY=$VENV/bin/python
STAGES=${*:-venv build check test}
say() { echo "cuda-build: $*"; }
has() { [[ " $STAGES " == *" $1 "* ]]; }
elapsed() { echo "$(( $(date +%s) - $1 )) s"; }

# ---- 1. venv ---------------------------------------------------------------------------
# The stamp names what the venv holds: a change of pin or requirement file rebuilds it.
venv_stamp() {
    { echo "torch==$CUDA_TORCH $EXTRA_PINS"; cat requirements-dev.txt requirements-peers.txt 2>/dev/null
      echo "pytest pytest-xdist hypothesis numpy"; } | sha256sum | cut -c1-16
}
make_venv() {
    local want; want=$(venv_stamp)
    if [[ -x $PY && -f $VENV/.fastsnn-stamp && $(cat "$VENV/.fastsnn-stamp") == "$want" ]]; then
        say "venv $VENV reused (torch $($PY -c 'import torch; print(torch.__version__)'))"
        return
    fi
    local t0; t0=$(date +%s)
    say "venv $VENV: installing torch==$CUDA_TORCH (CUDA build, several GB on first use)"
    [[ -x $PY ]] || "$PYTHON" -m venv "$VENV"
    local pip=("$PY" -m pip -q --disable-pip-version-check)
    "${pip[@]}" install "torch==$CUDA_TORCH"
    # Later installs must not move torch or the Triton it brought (requirements-dev.txt
    # names an unpinned triton).
    local cons="$VENV/constraints.txt"
    "$PY" - > "$cons" <<'EOF'
from importlib.metadata import version
print(f"torch=={version('torch')}")
print(f"triton=={version('triton')}")
EOF
    printf '%s\n' $EXTRA_PINS >> "$cons"
    "${pip[@]}" install -c "$cons" pytest pytest-xdist hypothesis numpy
    [[ -f requirements-dev.txt ]] && "${pip[@]}" install -c "$cons" -r requirements-dev.txt
    [[ -f requirements-peers.txt ]] && "${pip[@]}" install --no-deps -r requirements-peers.txt
    echo "$want" > "$VENV/.fastsnn-stamp"
    say "venv ready in $(elapsed "$t0")"
}

# ---- 2. build --------------------------------------------------------------------------
# The tree as git sees it (tracked and untracked, not ignored), mirrored into $BUILD/src;
# build outputs there survive, so ninja recompiles only what changed.
sync_tree() {
    mkdir -p "$BUILD/src"
    local list="$BUILD/files.txt"
    git ls-files -co --exclude-standard | while read -r f; do [[ -e $f || -L $f ]] && echo "$f"; done \
        | sort > "$list"
    tar -cf - -T "$list" | tar -xf - -C "$BUILD/src"   # keeps mtimes: ninja stays incremental
    (cd "$BUILD/src" && find . \( -name build -o -name __pycache__ -o -name .hypothesis \
        -o -name .pytest_cache \) -prune -o \( -type f -o -type l \) ! -name '*.so' -print \
        | sed 's|^\./||' | sort | comm -23 - "$list" | xargs -r rm -f)
}

build_ext() {
    local home t0; home=$(bash tools/cuda_toolkit.sh); t0=$(date +%s)
    sync_tree
    say "building fastsnn._C with CUDA ($home, TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}, MAX_JOBS=$JOBS)"
    (cd "$BUILD/src" && CUDA_HOME=$home FASTSNN_CUDA=1 \
        TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=$JOBS \
        "$PY" setup.py -q build_ext --inplace > "$BUILD/build.log" 2>&1) || {
        grep -B2 -A12 -i "error" "$BUILD/build.log" | head -150
        say "build FAILED (full log: $BUILD/build.log)"; exit 1; }
    say "built in $(elapsed "$t0")"
}

# ---- 3./4. check and tests (run from the copy, against the CUDA build) ---------------------
in_copy() { (cd "$BUILD/src" && PYTHONPATH=$BUILD/src "$@"); }

has venv && make_venv
[[ -x $PY ]] || { say "no venv at $VENV: run the venv stage"; exit 1; }
has build && build_ext
if has check; then
    t0=$(date +%s)
    in_copy "$PY" tools/cuda_check.py --arch "${CUDA_CHECK_ARCH:-90}"
    say "checked in $(elapsed "$t0")"
fi
if has test; then
    t0=$(date +%s)
    in_copy env FASTSNN_REQUIRE_EXTENSION=1 "$PY" -m pytest -q -n "$JOBS" -p no:cacheprovider \
        -rs ${PYTEST_ARGS:-}
    say "tests done in $(elapsed "$t0")"
fi
