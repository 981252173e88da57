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

// A neuron state, [N, C, R] float32 each: membrane u and synaptic current j (null: absent).
struct StateIn {
  const float* u;
  const float* j;
};
struct StateOut {
  float* u;
  float* j;
};

// x, s, grad_s, gx and saved (when save == Sg) are in `dtype`; decay, syn, the states, saved
// (when save == H), j, gdecay, gsyn and workspace are float32.
// Forward: starts from init (u = v0 when p.has_v0, else v_reset; j = j0 when p.has_j0, else
// 0); writes s [T, N, C, R]; saved [T, N, C, R] unless save == None; j [T, N, C, R] when
// p.save_j (the synaptic current, or x itself without one); final_state (the state after
// the last step) when p.return_state (its j only with the synaptic current). syn may be
// null when absent.
void mt_lif_forward(const MtLifParams& p, DType dtype, const void* x, const float* decay,
                    const float* syn, StateIn init, void* s, void* saved, float* j,
                    StateOut final_state, cudaStream_t stream);

// Bytes of scratch memory mt_lif_backward needs for `p` (0 when no parameter gradient is
// asked for). The workspace must be aligned to 256 bytes (any torch allocation is).
size_t mt_lif_backward_workspace_bytes(const MtLifParams& p);

// Backward: grad_final holds the final state's gradients (p.has_grad_u / has_grad_j; absent:
// zero). Writes gx [T, N, C, R]; gdecay [decay_size] (zeros unless p.decay_grad); gsyn
// [syn_size] when p.syn_size > 0 (zeros unless p.syn_grad); grad_init.u [N, C, R] when
// p.has_v0, grad_init.j when p.has_j0. gdecay / gsyn are reduced deterministically (fixed
// order, no atomics). `s` is read only for save == Sg with reset == Hard; `j` whenever gsyn,
// or a plif gdecay, is asked for.
void mt_lif_backward(const MtLifParams& p, DType dtype, const void* grad_s,
                     StateIn grad_final, const void* s, const void* saved, const float* j,
                     const float* decay, const float* syn, StateIn init, void* gx,
                     float* gdecay, float* gsyn, StateOut grad_init, void* workspace,
                     cudaStream_t stream);

}  // namespace fastsnn::cuda
