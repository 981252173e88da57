// binary_conv2d (CUDA): packing x (float32 NCHW) into channel-packed bit-planes per pixel
// (the workspace layout in binary_conv_tile.cuh).
//
// A block owns 32 consecutive pixels (lane = pixel, so every channel read is one coalesced
// 128-byte row of x) and its warps split the words; each thread reads its word's 32 channels
// once into registers and emits one word per plane. For spike inputs the block also writes
// each pixel's level sum (xsum), reduced over the warps in shared memory (no atomics).
#pragma once

#include "cuda/binary_conv_tile.cuh"

namespace fastsnn::cuda::bconv {

constexpr int kPackMaxWarps = 8;

struct PackSmem {
  int32_t sums[kPackMaxWarps][32];
};

// Warps per pack block: one per word, at most kPackMaxWarps, at least one (xsum needs it).
inline int pack_warps(int64_t words) {
  return words < 1 ? 1 : (words > kPackMaxWarps ? kPackMaxWarps : static_cast<int>(words));
}

// Packs the 32 channels of word `word` of one pixel (xp: its channel-0 value, channel
// stride hw) into every plane; returns the sum of their levels.
FASTSNN_HD int32_t pack_word(const ConvArgs& a, const float* xp, int64_t hw, int64_t pix,
                             int64_t word) {
  const int64_t c0 = 32 * word;
  const int64_t nc = a.p.Cin - c0 < 32 ? a.p.Cin - c0 : 32;
  uint32_t lv[32];
  int32_t sum = 0;
FASTSNN_UNROLL
  for (int i = 0; i < 32; ++i) {
    lv[i] = 0;
    if (i < nc) {
      const float v = xp[(c0 + i) * hw];
      lv[i] = a.sign ? sign_bit(v) : spike_level(v);
      sum += static_cast<int32_t>(lv[i]);
    }
  }
  uint32_t* dst = a.packed + pix * a.planes * a.words + word;
  for (int b = 0; b < a.planes; ++b) {
    uint32_t bits = 0;
FASTSNN_UNROLL
    for (int i = 0; i < 32; ++i) bits |= ((lv[i] >> b) & 1u) << i;
    dst[b * a.words] = bits;
  }
  return sum;
}

// Block bx packs pixels 32*bx .. 32*bx + 31 (flattened n, h, w).
template <class Env>
FASTSNN_D void pack_body(const Env& env, const ConvArgs& a, PackSmem& s) {
  const int lane = env.tid() % 32, warp = env.tid() / 32, warps = env.nthreads() / 32;
  const int64_t hw = a.p.H * a.p.W;
  const int64_t pix = env.bx() * 32 + lane;
  const bool active = pix < a.p.N * hw;
  int32_t sum = 0;
  if (active) {
    const int64_t n = pix / hw;
    const float* xp = a.x + n * a.p.Cin * hw + (pix - n * hw);
    for (int64_t word = warp; word < a.words; word += warps) sum += pack_word(a, xp, hw, pix, word);
  }
  if (a.sign) return;  // uniform over the block: no xsum, no barrier needed
  s.sums[warp][lane] = sum;
  env.sync();
  if (warp == 0 && active) {
    for (int w = 1; w < warps; ++w) sum += s.sums[w][lane];
    a.xsum[pix] = sum;
  }
}

}  // namespace fastsnn::cuda::bconv
