// binary_conv2d (CUDA): the arguments every kernel receives, the workspace layout, and the
// per-output-pixel facts a tile computes once (shared by the popc and the mma kernel).
//
// Kernel bodies are templates over an `Env` that supplies the thread/block indices,
// __syncthreads and the 1-bit mma: binary_conv.cu passes the device one, the host emulation
// (tests/cuda_emu) one that runs each CUDA thread as a host thread, so the very same code is
// checked against F.conv2d without a GPU.
//
// Workspace (binary_conv2d_workspace_bytes):
//   packed  uint32 [N*H*W][planes][words]   bit i of word w in plane b: bit b of the level of
//                                           channel 32*w + i (spike; planes = bits) or its
//                                           sign bit (sign; planes = 1); unused bits 0
//   xsum    int32  [N*H*W]                  spike only: sum of the levels over channels
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/binary_conv.h"
#include "cuda/binary_conv_bits.cuh"

namespace fastsnn::cuda::bconv {

struct ConvArgs {
  BinaryConvParams p;
  int64_t words = 0;   // ceil(Cin / 32)
  int64_t kk = 0;      // KH * KW * words: reduction length in words (last axes of wpacked)
  int planes = 1;      // packed planes per input pixel
  bool sign = false;   // activation == Sign
  const float* x = nullptr;
  const uint32_t* w = nullptr;
  const float* alpha = nullptr;
  const float* bias = nullptr;
  float* out = nullptr;
  uint32_t* packed = nullptr;
  int32_t* xsum = nullptr;
};

inline int64_t packed_words(const BinaryConvParams& p) {
  const int64_t planes = p.activation == BinaryActivation::Sign ? 1 : p.bits;
  return p.N * p.H * p.W * planes * p.words();
}

inline size_t workspace_bytes(const BinaryConvParams& p) {
  const int64_t xsum = p.activation == BinaryActivation::Sign ? 0 : p.N * p.H * p.W;
  return static_cast<size_t>(packed_words(p) + xsum) * sizeof(uint32_t);
}

inline ConvArgs make_args(const BinaryConvParams& p, const float* x, const uint32_t* w,
                          const float* alpha, const float* bias, float* out, void* workspace) {
  ConvArgs a;
  a.p = p;
  a.words = p.words();
  a.kk = p.KH * p.KW * a.words;
  a.sign = p.activation == BinaryActivation::Sign;
  a.planes = a.sign ? 1 : p.bits;
  a.x = x;
  a.w = w;
  a.alpha = alpha;
  a.bias = bias;
  a.out = out;
  a.packed = static_cast<uint32_t*>(workspace);
  a.xsum = a.sign ? nullptr : reinterpret_cast<int32_t*>(a.packed + packed_words(p));
  return a;
}

// What a tile needs of each of its BM output pixels; in_base < 0 marks a row past the end.
template <int BM>
struct TileRows {
  int64_t in_base[BM];   // n * H * W: the image's first input pixel
  int64_t ih0[BM];       // oh * stride_h - pad_h: input row of tap kh = 0
  int64_t iw0[BM];       // ow * stride_w - pad_w
  int64_t out_base[BM];  // n * Cout * Hout * Wout + oh * Wout + ow: out index for o = 0
  int32_t corr[BM];      // spike: sum of levels under the window; sign: in-bounds taps * Cin
};

// Sum of the input levels under the (zero padded) window of one output pixel.
FASTSNN_HD int32_t window_xsum(const ConvArgs& a, int64_t in_base, int64_t ih0, int64_t iw0) {
  const BinaryConvParams& p = a.p;
  int32_t s = 0;
  for (int64_t kh = 0; kh < p.KH; ++kh) {
    const int64_t ih = ih0 + kh * p.dil_h;
    if (!in_range(ih, p.H)) continue;
    for (int64_t kw = 0; kw < p.KW; ++kw) {
      const int64_t iw = iw0 + kw * p.dil_w;
      if (in_range(iw, p.W)) s += a.xsum[in_base + ih * p.W + iw];
    }
  }
  return s;
}

// Fills rows for the tile starting at output pixel m0. The caller syncs before reading.
template <int BM, class Env>
FASTSNN_D void fill_rows(const Env& env, const ConvArgs& a, int64_t m0, TileRows<BM>& rows) {
  const BinaryConvParams& p = a.p;
  const int64_t hw_out = p.Hout * p.Wout;
  const int64_t m_end = p.N * hw_out;
  for (int i = env.tid(); i < BM; i += env.nthreads()) {
    const int64_t m = m0 + i;
    if (m >= m_end) {
      rows.in_base[i] = -1;
      continue;
    }
    const int64_t n = m / hw_out, r = m - n * hw_out;
    const int64_t oh = r / p.Wout, ow = r - oh * p.Wout;
    rows.in_base[i] = n * p.H * p.W;
    rows.ih0[i] = in_coord(oh, 0, p.stride_h, p.pad_h, p.dil_h);
    rows.iw0[i] = in_coord(ow, 0, p.stride_w, p.pad_w, p.dil_w);
    rows.out_base[i] = n * p.Cout * hw_out + r;
    if (a.sign) {
      const int64_t taps = taps_in_bounds(oh, p.KH, p.stride_h, p.pad_h, p.dil_h, p.H) *
                           taps_in_bounds(ow, p.KW, p.stride_w, p.pad_w, p.dil_w, p.W);
      rows.corr[i] = static_cast<int32_t>(taps * p.Cin);
    } else {
      rows.corr[i] = window_xsum(a, rows.in_base[i], rows.ih0[i], rows.iw0[i]);
    }
  }
}

// Address of packed word `word` of plane 0 at tap (kh, kw) of tile row i, or null when the
// tap is padding (or the row is past the end): padding is "no input", so its words are 0.
template <int BM>
FASTSNN_HD const uint32_t* tap_words(const ConvArgs& a, const TileRows<BM>& rows, int i,
                                     const KCursor& k) {
  const int64_t base = rows.in_base[i];
  if (base < 0) return nullptr;
  const int64_t ih = rows.ih0[i] + k.kh * a.p.dil_h;
  const int64_t iw = rows.iw0[i] + k.kw * a.p.dil_w;
  if (!in_range(ih, a.p.H) || !in_range(iw, a.p.W)) return nullptr;
  return a.packed + (base + ih * a.p.W + iw) * a.planes * a.words + k.word;
}

// Final value of one output element from its accumulated count.
template <int BM>
FASTSNN_HD void store_out(const ConvArgs& a, const TileRows<BM>& rows, int i, int64_t o,
                          int32_t acc) {
  if (rows.in_base[i] < 0 || o >= a.p.Cout) return;
  const int32_t dot = a.sign ? sign_dot(acc, rows.corr[i]) : spike_dot(acc, rows.corr[i]);
  a.out[rows.out_base[i] + o * a.p.Hout * a.p.Wout] = affine(dot, a.alpha, a.bias, o);
}

}  // namespace fastsnn::cuda::bconv
