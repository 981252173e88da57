// CUDA kernels on packed spikes: torch-free launchers over raw contiguous pointers (layout:
// fastsnn/packed_spikes.py; contracts: fastsnn/ops/mt_lif_packed.py; the binding is
// csrc/torch/packed_spikes.cpp). Launchers enqueue on `stream`, never synchronise, and throw
// std::invalid_argument for inconsistent arguments and std::runtime_error when a launch fails.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/binary_conv.h"
#include "common/mt_lif.h"

namespace fastsnn::cuda {

// mt_lif forward with packed spikes out: x float32 [T, N, C, R] -> out int32 words
// [T, N, R, bits, ceil(C/32)] (every word written); decay [p.decay_size]; no synaptic current,
// u starts at 0 (p.v_reset must be 0). Spikes are mt_lif's, bit for bit (mt_lif_step.cuh).
void mt_lif_packed_forward(const MtLifParams& p, const float* x, const float* decay,
                           uint32_t* out, cudaStream_t stream);

// The binary SNN layer on packed spikes: for the T * Nb images of xw [T, Nb, H, W, bits, W32]
// (p.N = T * Nb, spike activation), current = float32(dot) * scale + bias (two roundings) by
// binary_conv2d_forward_packed into `current` (scratch, float32 [T * Nb, Cout, Hout, Wout]),
// then mt_lif_packed_forward over it (lif.T = T, lif.N = Nb, lif.C = Cout, lif.R = Hout*Wout)
// into out [T, Nb, Hout, Wout, bits_out, ceil(Cout/32)]. xsum: scratch, p.N*H*W int32.
void binary_snn_layer_forward(const BinaryConvParams& p, const MtLifParams& lif,
                              const uint32_t* xw, const uint32_t* wpacked, const float* scale,
                              const float* bias, const float* decay, int32_t* xsum,
                              float* current, uint32_t* out, cudaStream_t stream);

}  // namespace fastsnn::cuda
