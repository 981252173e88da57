// stcb CUDA kernels: torch-free launchers over raw pointers (the contract is the docstring of
// fastsnn/ops/stcb.py; the binding csrc/torch/stcb.cpp fills the parameter structs of
// common/stcb.h and calls these). All tensors are contiguous float32 (the mask uint8).
// Launchers enqueue on `stream`, never synchronise, and throw std::runtime_error when a
// launch fails.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/stcb.h"

namespace fastsnn::cuda {

// a: [E]. Writes out ([E] counts when p.count_only, else the [T, E] train, every element
// once) and, when p.save_mask, mask [p.mask_bytes()] (packed; may be null otherwise).
void stcb_forward(const StcbParams& p, const float* a, float* out, uint8_t* mask,
                  cudaStream_t stream);

// grad: [E] (count) or [T, E] (train). ga[e] = bit e of mask ? scale * g : 0, with g the
// gradient or its sum over t = 0..T-1 (float32, in time order).
void stcb_backward(const StcbBackwardParams& p, const float* grad, const uint8_t* mask,
                   float* ga, cudaStream_t stream);

// s: [T, E]. out[e] = sum over t = 0..T-1 of s[t, e] (float32, in time order).
void spike_count(int64_t T, int64_t E, const float* s, float* out, cudaStream_t stream);

}  // namespace fastsnn::cuda
