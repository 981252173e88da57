// binary_conv2d CPU kernel: the im2col gather of a tile and step 3, the epilogue (overview in
// binary_conv.cpp).
#include <algorithm>

#include "cpu/binary_conv_parts.h"

namespace fastsnn::cpu::bconv {

std::vector<TapRange> tap_ranges(int64_t out, int64_t in, int64_t k, int64_t stride,
                                 int64_t pad, int64_t dil) {
  std::vector<TapRange> r(static_cast<size_t>(out));
  for (int64_t o = 0; o < out; ++o) {
    int32_t lo = int32_t(k), hi = 0;
    for (int64_t t = 0; t < k; ++t) {
      const int64_t i = o * stride - pad + t * dil;
      if (i >= 0 && i < in) {
        lo = std::min(lo, int32_t(t));
        hi = int32_t(t + 1);
      }
    }
    r[size_t(o)] = {std::min(lo, hi), hi};
  }
  return r;
}

// Word k of the tile's im2col rows, for its first `count` pixels: 32-bit units lo and hi
// (offsets from each pixel's words; hi < 0: none, the row's zero padding) as lo | hi << 32.
// Adjacent units (hi == lo + 1: the same tap) are one 64-bit load per pixel.
FASTSNN_BCONV_CLONES
void gather_word(const uint32_t* img, const int64_t* origin, int64_t count, int64_t lo,
                 int64_t hi, uint64_t* dst) {
  if (hi == lo + 1) {
    for (int64_t q = 0; q < count; ++q) {
      const uint32_t* u = img + origin[q] + lo;
      dst[q] = uint64_t(u[0]) | uint64_t(u[1]) << 32;
    }
  } else if (hi < 0) {
    for (int64_t q = 0; q < count; ++q) dst[q] = img[origin[q] + lo];
  } else {
    for (int64_t q = 0; q < count; ++q)
      dst[q] = uint64_t(img[origin[q] + lo]) | uint64_t(img[origin[q] + hi]) << 32;
  }
}

// Spike: offset -X, sign Cin * valid taps - 2 popc(a) (+ the prefix-table
// corners of the valid taps).
void gather_tile(const Shared& s, int64_t n, int64_t pix0, int64_t count, TileBuffers& tb) {
  const BinaryConvParams& p = *s.p;
  const Layout& L = s.L;
  const bool sign = p.activation == BinaryActivation::Sign;
  int64_t oy = pix0 / p.Wout, ox = pix0 % p.Wout;
  for (int64_t q = 0; q < count; ++q) {
    const int64_t origin = (n * L.Hp + oy * p.stride_h) * L.Wp + ox * p.stride_w;
    tb.origin[size_t(q)] = origin * L.pixel;
    int64_t sum = 0;
    for (const int64_t tap : s.taps) sum += s.pixpop[origin + tap];
    if (sign) {
      const TapRange r = s.rows[size_t(oy)], c = s.cols[size_t(ox)];
      const int32_t stride = int32_t(p.KW + 1);
      int32_t* corner = tb.corner.data() + 4 * q;
      corner[0] = r.hi * stride + c.hi;
      corner[1] = r.lo * stride + c.hi;
      corner[2] = r.hi * stride + c.lo;
      corner[3] = r.lo * stride + c.lo;
      tb.offset[size_t(q)] = int64_t(r.hi - r.lo) * (c.hi - c.lo) * p.Cin - 2 * sum;
    } else {
      tb.offset[size_t(q)] = -sum;
    }
    if (++ox == p.Wout) {
      ox = 0;
      ++oy;
    }
  }
  for (int b = 0; b < p.bits; ++b)
    for (int64_t k = 0; k < L.K64; ++k) {
      const int64_t hi = s.unit_hi[size_t(k)];
      gather_word(s.img, tb.origin.data(), count, s.unit_lo[size_t(k)] + b * L.W32,
                  hi < 0 ? hi : hi + b * L.W32, tb.xt.data() + (b * L.K64 + k) * kTile);
    }
  for (int64_t k = 0; k < p.bits * L.K64; ++k)  // tail pixels: zero words, results discarded
    std::fill(tb.xt.begin() + k * kTile + count, tb.xt.begin() + (k + 1) * kTile, 0u);
}

// dst[q] = float(mult * S[q] + offset[q]) * a + c; the dot fits int32 (check_params).
FASTSNN_BCONV_CLONES
void scale_store(const int64_t* S, const int64_t* offset, int64_t count, int64_t mult, float a,
                 float c, float* dst) {
  for (int64_t q = 0; q < count; ++q) dst[q] = float(int32_t(mult * S[q] + offset[q])) * a + c;
}

void epilogue(const Shared& s, int64_t n, int64_t pix0, int64_t count, int64_t blk,
              TileBuffers& tb, const float* alpha, const float* bias, float* out) {
  const BinaryConvParams& p = *s.p;
  const int nr = s.wts.nr;
  const int64_t table = (p.KH + 1) * (p.KW + 1);
  const bool sign = p.activation == BinaryActivation::Sign;
  for (int j = 0; j < nr; ++j) {
    const int64_t o = blk * nr + j;
    if (o >= p.Cout) break;
    const float a = alpha ? alpha[o] : 1.f, c = bias ? bias[o] : 0.f;
    float* dst = out + (n * p.Cout + o) * s.L.HWo + pix0;
    const int64_t* S = tb.acc.data() + j * kTile;
    if (!sign) {
      scale_store(S, tb.offset.data(), count, 2, a, c, dst);
      continue;
    }
    const int32_t* t = s.wts.prefix.data() + o * table;  // popc(w) over the valid taps
    for (int64_t q = 0; q < count; ++q) {
      const int32_t* k = tb.corner.data() + 4 * q;
      tb.scratch[size_t(q)] = tb.offset[size_t(q)] - 2 * (int64_t(t[k[0]]) - t[k[1]] - t[k[2]] +
                                                          t[k[3]]);
    }
    scale_store(S, tb.scratch.data(), count, 4, a, c, dst);
  }
}

}  // namespace fastsnn::cpu::bconv
