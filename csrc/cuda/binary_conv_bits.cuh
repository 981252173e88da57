// binary_conv2d (CUDA): the bit-level helpers every kernel shares.
//
// Everything here is __host__ __device__ and free of CUDA-only types, so the host emulation
// (tests/cuda_emu) compiles it with g++ and checks it without a GPU. The packed layouts and
// the integer dot are those of csrc/common/binary_conv.h.
#pragma once

#include <bit>
#include <cstdint>

#include "common/hd.h"

#if defined(__CUDACC__)
#define FASTSNN_D __device__ __forceinline__
#else
#define FASTSNN_D inline
#endif
#if defined(__CUDA_ARCH__)
#define FASTSNN_UNROLL _Pragma("unroll")
#else
#define FASTSNN_UNROLL
#endif

namespace fastsnn::cuda::bconv {

// Four packed words moved as one 16-byte load or store (uint4 without CUDA headers).
struct alignas(16) Words4 {
  uint32_t v[4];
};

FASTSNN_HD int popc32(uint32_t v) {
#if defined(__CUDA_ARCH__)
  return __popc(v);
#else
  return std::popcount(v);
#endif
}

// The integer a valid spike value stands for (0..levels): exact, since it is a small integer.
FASTSNN_HD uint32_t spike_level(float v) { return static_cast<uint32_t>(static_cast<int32_t>(v)); }

// The sign bit of a valid sign value: 1 for +1 (the weights' convention: sign(0) = +1).
FASTSNN_HD uint32_t sign_bit(float v) { return v >= 0.0f ? 1u : 0u; }

// Bits of packed word `word` that hold real channels (channel 32*word + i < cin): the rest
// are zero in both operands and must not count as XNOR matches.
FASTSNN_HD uint32_t channel_mask(int64_t word, int64_t cin) {
  const int64_t rem = cin - 32 * word;
  if (rem >= 32) return ~0u;
  if (rem <= 0) return 0u;
  return (1u << rem) - 1u;
}

// Input coordinate of kernel tap k for output coordinate `out` (may be outside [0, size)).
FASTSNN_HD int64_t in_coord(int64_t out, int64_t k, int64_t stride, int64_t pad, int64_t dil) {
  return out * stride - pad + k * dil;
}

FASTSNN_HD bool in_range(int64_t i, int64_t size) { return i >= 0 && i < size; }

// Kernel taps of one axis that land inside the input for output coordinate `out`.
FASTSNN_HD int64_t taps_in_bounds(int64_t out, int64_t ksize, int64_t stride, int64_t pad,
                                  int64_t dil, int64_t size) {
  int64_t n = 0;
  for (int64_t k = 0; k < ksize; ++k) n += in_range(in_coord(out, k, stride, pad, dil), size);
  return n;
}

// spike: sum_b 2^b (2 popc(x_b & w) - popc(x_b)) = 2 * and_sum - x_sum, where and_sum is the
// plane-weighted AND count and x_sum the sum of the input levels under the window.
FASTSNN_HD int32_t spike_dot(int32_t and_sum, int32_t x_sum) { return 2 * and_sum - x_sum; }

// sign: 2 popc(xnor & valid) - popc(valid); n_valid = in-bounds taps * Cin.
FASTSNN_HD int32_t sign_dot(int32_t xnor_sum, int64_t n_valid) {
  return 2 * xnor_sum - static_cast<int32_t>(n_valid);
}

// out = alpha[o] * dot + bias[o], two float32 roundings (the contract; no fma).
FASTSNN_HD float affine(int32_t dot, const float* alpha, const float* bias, int64_t o) {
  float r = static_cast<float>(dot);
  if (alpha != nullptr) r = alpha[o] * r;
  if (bias != nullptr) r = r + bias[o];
  return r;
}

// Walks the flattened reduction index kk = kpos * words + word (kpos = kh * KW + kw), the
// order of the packed weight's last two axes, one step at a time without divisions.
struct KCursor {
  int64_t kh = 0, kw = 0, word = 0;

  FASTSNN_HD void seek(int64_t kk, int64_t words, int64_t KW) {
    const int64_t kpos = kk / words;
    word = kk - kpos * words;
    kh = kpos / KW;
    kw = kpos - kh * KW;
  }
  FASTSNN_HD void next(int64_t words, int64_t KW) {
    if (++word < words) return;
    word = 0;
    if (++kw < KW) return;
    kw = 0;
    ++kh;
  }
};

}  // namespace fastsnn::cuda::bconv
