// Packed spikes: the LIF of one output word's channels over all time steps, spikes OR-ed into
// channel-packed words (layout: fastsnn/packed_spikes.py). __host__ __device__ and free of
// CUDA-only types, so tests/cuda_emu/packed_emu.cpp runs the very same loop on the host.
//
// The per-step arithmetic is step::forward_step of mt_lif_step.cuh (mt_lif's CUDA kernel, bit
// for bit with the reference); the packed ops rest at 0 (v_reset 0), have no synaptic
// current and no state in or out. Steps run outer and the <= 32 channels inner, so each
// step's `bits` words are complete when written: one writer per word, no atomics, no zeroing.
#pragma once

#include <cstdint>

#include "common/hd.h"
#include "cuda/binary_conv_bits.cuh"  // FASTSNN_UNROLL: unroll on the device only
#include "cuda/mt_lif_step.cuh"

namespace fastsnn::cuda::packed {

constexpr int kMaxBits = 8;  // levels <= 255

// Where the words of one column go: step t, plane b at out[t * t_stride + b * plane_stride].
struct WordOut {
  uint32_t* out;
  int64_t t_stride, plane_stride;
  int bits;
};

// The spike count s of one step as an unsigned integer: a NaN charge (only from a non-finite
// input, scale or bias) spikes 0, as the other backends' `nan_to_num` (packed bits hold no NaN).
FASTSNN_HD uint32_t spike_bits(float s) {
  return s == s ? static_cast<uint32_t>(static_cast<int32_t>(s)) : 0u;
}

// Runs channels c0 .. c0 + nch - 1 (nch <= 32) of one column over k.T steps, the membrane
// starting at 0; current(t, i) is channel c0 + i's input at step t (a float32). Channel i's
// spikes become bit i of the words.
template <class Current>
FASTSNN_HD void lif_pack_column(const step::Consts& k, const float* decay, int64_t c0, int nch,
                                Current current, const WordOut& o) {
  float u[32], lam[32], c[32];
FASTSNN_UNROLL
  for (int i = 0; i < 32; ++i) {
    const step::Coef cf =
        i < nch ? step::coef_at(k, decay, nullptr, c0 + i) : step::Coef{};
    lam[i] = cf.lam;
    c[i] = cf.c;
    u[i] = 0.0f;
  }
  for (int64_t t = 0; t < k.T; ++t) {
    uint32_t w[kMaxBits];
FASTSNN_UNROLL
    for (int b = 0; b < kMaxBits; ++b) w[b] = 0u;
FASTSNN_UNROLL
    for (int i = 0; i < 32; ++i) {
      if (i < nch) {
        step::Coef cf;
        cf.lam = lam[i];
        cf.c = c[i];
        float j = 0.0f, s = 0.0f;
        step::forward_step(k, cf, current(t, i), u[i], j, s);
        const uint32_t q = spike_bits(s);
FASTSNN_UNROLL
        for (int b = 0; b < kMaxBits; ++b) w[b] |= ((q >> b) & 1u) << i;
      }
    }
FASTSNN_UNROLL
    for (int b = 0; b < kMaxBits; ++b) {
      if (b < o.bits) o.out[t * o.t_stride + b * o.plane_stride] = w[b];
    }
  }
}

// Bit planes of `levels` spikes: ceil(log2(levels + 1)).
FASTSNN_HD int bits_for(int levels) {
  int b = 0;
  while ((levels >> b) != 0) ++b;
  return b;
}

// mt_lif_packed: thread `id` of N * W32 * R owns (n, word w, position r), r fastest so that
// consecutive threads read consecutive x. x float [T, N, C, R] -> out [T, N, R, bits, W32].
struct MtLifPackedShape {
  int64_t N, C, R, W32;
  int bits;
};

FASTSNN_HD void mt_lif_packed_thread(const step::Consts& k, const MtLifPackedShape& s,
                                     const float* x, const float* decay, uint32_t* out,
                                     int64_t id) {
  const int64_t r = id % s.R, w = id / s.R % s.W32, n = id / (s.R * s.W32);
  const int64_t c0 = 32 * w;
  const int nch = static_cast<int>(s.C - c0 < 32 ? s.C - c0 : 32);
  const int64_t x_t = s.N * s.C * s.R;
  const float* xc = x + (n * s.C + c0) * s.R + r;
  const int64_t pixel = int64_t{s.bits} * s.W32;
  const WordOut o{out + (n * s.R + r) * pixel + w, s.N * s.R * pixel, s.W32, s.bits};
  lif_pack_column(k, decay, c0, nch,
                  [&](int64_t t, int i) { return xc[t * x_t + i * s.R]; }, o);
}

}  // namespace fastsnn::cuda::packed
