// mt_lif CUDA kernels: torch-free launchers over raw pointers (the contract is the docstring
// of fastsnn/ops/mt_lif.py; the binding csrc/torch/mt_lif.cpp fills MtLifParams and calls
// these). Tensors are contiguous [T, N, C, R] (one step = N*C*R elements). Launchers
// enqueue on `stream`, never synchronise, and throw std::invalid_argument for inconsistent
// arguments and std::runtime_error when a launch fails.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "common/mt_lif.h"

namespace fastsnn::cuda {

enum class DType : int { F32 = 0, F16 = 1, BF16 = 2 };

// x, s, grad_s, gx and saved (when save == Sg) are in `dtype`; decay, syn, v0, saved (when
// save == H), j, gdecay, gsyn, gv0 and workspace are float32.
// Forward: writes s [T, N, C, R]; saved [T, N, C, R] unless save == None; j [T, N, C, R] when
// p.save_j (the synaptic current, or x itself without one). syn / v0 may be null when absent.
void mt_lif_forward(const MtLifParams& p, DType dtype, const void* x, const float* decay,
                    const float* syn, const float* v0, void* s, void* saved, float* j,
                    cudaStream_t stream);

// Bytes of scratch memory mt_lif_backward needs for `p` (0 when no parameter gradient is
// asked for). The workspace must be aligned to 256 bytes (any torch allocation is).
size_t mt_lif_backward_workspace_bytes(const MtLifParams& p);

// Backward: writes gx [T, N, C, R]; gdecay [decay_size] (zeros unless p.decay_grad); gsyn
// [syn_size] when p.syn_size > 0 (zeros unless p.syn_grad); gv0 [N, C, R] when p.has_v0.
// gdecay / gsyn are reduced deterministically (fixed order, no atomics). `s` is read only for
// save == Sg with reset == Hard; `j` whenever gsyn, or a plif gdecay, is asked for.
void mt_lif_backward(const MtLifParams& p, DType dtype, const void* grad_s, const void* s,
                     const void* saved, const float* j, const float* decay, const float* syn,
                     const float* v0, void* gx, float* gdecay, float* gsyn, float* gv0,
                     void* workspace, cudaStream_t stream);

}  // namespace fastsnn::cuda
