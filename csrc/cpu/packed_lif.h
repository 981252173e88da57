// Packed spikes, internal: the LIF of one channel's lanes over all time steps with the spikes
// OR-ed into packed words (shared by cpu/mt_lif_packed.cpp and cpu/binary_snn_layer.cpp).
#pragma once

#include <cstdint>

#include "common/mt_lif.h"

namespace fastsnn::cpu::packed {

// Where lane i's spike of step t goes: bit `bit` of word out[t * t_stride + i * lane_stride
// + b * plane_stride] for plane b (bits planes). Words are OR-ed into, never overwritten.
struct PackedOut {
  uint32_t* out;
  int64_t t_stride, lane_stride, plane_stride;
  int bits, bit;
};

// n <= kLanes lanes of one channel (decay lam): x of step t at x + t * x_stride, u starts at
// 0. The per-step arithmetic is forward_step of cpu/mt_lif_step.h (mt_lif's, bit for bit).
// A NaN charge (only from non-finite scale / bias) gives spike 0: packed bits have no NaN.
void lif_pack_lanes(const MtLifParams& p, float lam, const float* x, int64_t x_stride,
                    int64_t n, const PackedOut& o);

}  // namespace fastsnn::cpu::packed
