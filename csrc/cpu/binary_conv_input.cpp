// binary_conv2d CPU kernel: the geometry of a call and step 1, packing x into a zero-bordered bit
// image (overview in binary_conv.cpp).
#include <algorithm>
#include <stdexcept>

#include "cpu/binary_conv_parts.h"

namespace fastsnn::cpu::bconv {
Layout make_layout(const BinaryConvParams& p) {
  Layout L;
  L.W32 = p.words();
  L.KK = p.KH * p.KW;
  L.K32 = L.KK * L.W32;
  L.K64 = (L.K32 + 1) / 2;
  L.Hp = p.H + 2 * p.pad_h;
  L.Wp = p.W + 2 * p.pad_w;
  L.HWo = p.Hout * p.Wout;
  L.pixel = p.bits * L.W32;
  return L;
}

void check_params(const BinaryConvParams& p) {
  const bool ok = p.N >= 0 && p.Cin >= 1 && p.H >= 1 && p.W >= 1 && p.Cout >= 0 &&
                  p.KH >= 1 && p.KW >= 1 && p.stride_h >= 1 && p.stride_w >= 1 &&
                  p.pad_h >= 0 && p.pad_w >= 0 && p.dil_h >= 1 && p.dil_w >= 1 &&
                  p.bits >= 1 && p.bits <= 8 &&
                  (p.activation == BinaryActivation::Spike || p.bits == 1) &&
                  p.Hout == (p.H + 2 * p.pad_h - p.dil_h * (p.KH - 1) - 1) / p.stride_h + 1 &&
                  p.Wout == (p.W + 2 * p.pad_w - p.dil_w * (p.KW - 1) - 1) / p.stride_w + 1 &&
                  p.H + 2 * p.pad_h >= p.dil_h * (p.KH - 1) + 1 &&
                  p.W + 2 * p.pad_w >= p.dil_w * (p.KW - 1) + 1 && p.Hout >= 1 && p.Wout >= 1 &&
                  // the dot must fit int32 (and is float-exact only below 2^24 anyway)
                  ((int64_t(1) << p.bits) - 1) * p.Cin * p.KH * p.KW < (int64_t(1) << 31);
  if (!ok) throw std::invalid_argument("binary_conv2d: inconsistent BinaryConvParams");
}



// dst[i] |= bit(src[i]) << c over one channel plane; cloned per ISA so it vectorises wide.
FASTSNN_BCONV_CLONES
void or_sign_bits(const float* src, int64_t n, int c, uint32_t* dst) {
  // x >= 0 -> bit 1 (sign(0) = +1), the weights' rule and every backend's
  for (int64_t i = 0; i < n; ++i) dst[i] |= uint32_t(src[i] >= 0.f) << c;
}

// Bit b of the spike value; the clamp keeps float->int defined for any input (garbage in,
// garbage out, never undefined behaviour): values are valid per the contract.
FASTSNN_BCONV_CLONES
void or_spike_bits(const float* src, int64_t n, int c, int b, uint32_t* dst) {
  for (int64_t i = 0; i < n; ++i) {
    float f = src[i];
    f = f > 0.f ? f : 0.f;
    f = f < 255.f ? f : 255.f;
    dst[i] |= ((uint32_t(int32_t(f)) >> b) & 1u) << c;
  }
}

PackTasks pack_tasks(const BinaryConvParams& p) {
  PackTasks t;
  t.rows = std::min<int64_t>(p.H, std::max<int64_t>(1, 256 / p.W));  // ~256 floats per pass
  t.per_image = (p.H + t.rows - 1) / t.rows;
  return t;
}

void pack_rows(const BinaryConvParams& p, const Layout& L, const float* x, int64_t n,
               int64_t y0, int64_t rows, uint32_t* planes, uint32_t* img, int32_t* pixpop) {
  const int64_t len = rows * p.W;
  const bool sign = p.activation == BinaryActivation::Sign;
  for (int64_t w = 0; w < L.W32; ++w) {
    const int64_t c0 = 32 * w;
    const int cn = int(std::min<int64_t>(32, p.Cin - c0));
    std::fill(planes, planes + p.bits * len, 0u);
    for (int c = 0; c < cn; ++c) {
      const float* src = x + ((n * p.Cin + c0 + c) * p.H + y0) * p.W;
      if (sign) {
        or_sign_bits(src, len, c, planes);
      } else {
        for (int b = 0; b < p.bits; ++b) or_spike_bits(src, len, c, b, planes + b * len);
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t row = (n * L.Hp + y0 + r + p.pad_h) * L.Wp + p.pad_w;  // first pixel
      for (int64_t ix = 0; ix < p.W; ++ix) {
        const int64_t i = r * p.W + ix;
        uint32_t* dst = img + (row + ix) * L.pixel + w;
        int32_t pop = 0;
        for (int b = 0; b < p.bits; ++b) {
          dst[b * L.W32] = planes[b * len + i];
          pop += popcount32(planes[b * len + i]) << b;
        }
        pixpop[row + ix] += pop;
      }
    }
  }
}

}  // namespace fastsnn::cpu::bconv
