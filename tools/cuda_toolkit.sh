#!/usr/bin/env bash
# Prints the CUDA toolkit directory: CUDA_HOME / CUDA_PATH, else the directory of the real
# nvcc (the nvcc on PATH may be a wrapper script; `nvcc --dryrun` prints where the real one
# lives). Fails when there is none or it lacks the CUDA runtime headers.
set -euo pipefail
home=${CUDA_HOME:-${CUDA_PATH:-}}
if [[ -z $home ]]; then
    command -v nvcc >/dev/null || { echo "no CUDA toolkit: set CUDA_HOME or put nvcc on PATH" >&2; exit 1; }
    here=$(nvcc --dryrun -c -x cu /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ _HERE_=//p' | head -1)
    home=$(cd "${here:-$(dirname "$(readlink -f "$(command -v nvcc)")")}/.." && pwd)
fi
[[ -f $home/include/cuda_runtime.h ]] || {
    echo "CUDA toolkit at $home has no include/cuda_runtime.h" >&2; exit 1; }
echo "$home"
