// CPU kernels on packed spikes (layout: fastsnn/packed_spikes.py, the one home of it):
// words int32 [T, N, *rest, bits, ceil(C/32)], bit i of word w of plane b = bit b of the
// spike at channel 32w+i. Torch-free, raw contiguous pointers; the binding is
// csrc/torch/packed_spikes.cpp, the contracts fastsnn/ops/{binary_snn_layer,mt_lif_packed}.py.
#pragma once

#include <cstdint>

#include "common/binary_conv.h"
#include "common/mt_lif.h"
#include "cpu/binary_conv.h"

namespace fastsnn::cpu {

// binary_conv2d_forward on input already packed: xw [N, H, W, bits, W32] (p.N images; spike
// activation only), no packing step. Same out as binary_conv2d_forward on the unpacked x.
void binary_conv2d_forward_packed(const BinaryConvParams& p, const uint32_t* xw,
                                  const uint32_t* wpacked, const float* scale,
                                  const float* bias, float* out, PopcountIsa isa);

// The fused inference layer: for the T * Nb images of xw [T, Nb, H, W, bits, W32]
// (p.N = T * Nb), current = float32(dot) * scale + bias per output channel (two roundings),
// then the multi-threshold LIF of lif (lif.T = T; decay [lif.decay_size], forward only,
// no synaptic current, u starts at 0) over T per output element, spikes written packed to
// out [T, Nb, Hout, Wout, bits_out, ceil(Cout/32)], which must be zero on entry.
void binary_snn_layer_forward(const BinaryConvParams& p, const MtLifParams& lif,
                              const uint32_t* xw, const uint32_t* wpacked, const float* scale,
                              const float* bias, const float* decay, uint32_t* out,
                              PopcountIsa isa);

// mt_lif forward with packed spikes out: x float [T, N, C, R] -> out [T, N, R, bits, W32]
// (zero on entry); decay [p.decay_size]; no synaptic current, u starts at 0. Spikes are
// mt_lif_forward's, bit for bit (the same per-step arithmetic, cpu/mt_lif_step.h).
void mt_lif_packed_forward(const MtLifParams& p, const float* x, const float* decay,
                           uint32_t* out);

}  // namespace fastsnn::cpu
