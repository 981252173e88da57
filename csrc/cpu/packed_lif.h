// Packed spikes, internal: the LIF of one channel's lanes over all time steps with the spikes
// OR-ed into packed words (shared by cpu/mt_lif_packed.cpp and cpu/binary_snn_layer.cpp).
#pragma once

#include <cstdint>

#include "common/mt_lif.h"

namespace fastsnn::cpu::packed {

// Where the word of lane i at step t and plane b goes: out[t * t_stride + i * lane_stride +
// b * plane_stride] (bits planes). The words are written whole: one writer per word.
struct PackedOut {
  uint32_t* out;
  int64_t t_stride, lane_stride, plane_stride;
  int bits;
};

// The LIF of the nch <= 32 channels c0 .. c0 + nch - 1 of one output word, n <= kLanes lanes
// each, u starting at 0: channel j's step t at x + j * x_channel + t * x_t, its decay
// decay[p.decay_size == 1 ? 0 : c0 + j]. The per-step arithmetic is forward_step of
// cpu/mt_lif_step.h (mt_lif's, bit for bit); channel j's spikes become bit j of the words
// (a NaN charge, only from a non-finite scale / bias, spikes 0: packed bits hold no NaN).
// scratch holds p.T * o.bits * kLanes words.
void lif_pack_word(const MtLifParams& p, const float* decay, int64_t c0, int64_t nch,
                   const float* x, int64_t x_channel, int64_t x_t, int64_t n,
                   uint32_t* scratch, const PackedOut& o);

}  // namespace fastsnn::cpu::packed
