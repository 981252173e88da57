// Torch-free 16-bit float storage types for the CPU kernels.
//
// `half` and `bfloat16` hold the raw bits (uint16), so a pointer to at::Half / at::BFloat16
// data can be reinterpret_cast to them. The conversions are branch-free integer/float bit
// manipulation (selects only) so that GCC vectorises loops that load or store them with
// any ISA: GCC 12 only vectorises _Float16 conversions with AVX512-FP16, which most x86
// CPUs lack. Both conversions round to nearest even, exactly like at::Half / at::BFloat16
// (test_dtypes.cpp checks every half value and a sweep of floats against _Float16).
#pragma once

#include <bit>
#include <cstdint>

namespace fastsnn::cpu {

struct half {
  uint16_t bits;
};
struct bfloat16 {
  uint16_t bits;
};
static_assert(sizeof(half) == 2 && sizeof(bfloat16) == 2);

inline float bits_to_float(uint32_t w) { return std::bit_cast<float>(w); }
inline uint32_t float_to_bits(float f) { return std::bit_cast<uint32_t>(f); }
// select(c, a, b) is c ? a : b computed with bit masks. Without AVX-512, GCC's if-conversion
// gives up on many ?: in loops (a condition combined with && or with a loop-invariant flag,
// chained clamps), and the loop is then not vectorised at all; this form always is.
// Conditions here compare small signed values: AVX2 has no unsigned vector compare.
inline uint32_t select(bool c, uint32_t a, uint32_t b) {
  const uint32_t mask = 0u - uint32_t(c);
  return (a & mask) | (b & ~mask);
}
inline uint64_t select(bool c, uint64_t a, uint64_t b) {
  const uint64_t mask = uint64_t(0) - uint64_t(c);
  return (a & mask) | (b & ~mask);
}
inline float select(bool c, float a, float b) {
  return bits_to_float(select(c, float_to_bits(a), float_to_bits(b)));
}
inline double select(bool c, double a, double b) {
  return std::bit_cast<double>(
      select(c, std::bit_cast<uint64_t>(a), std::bit_cast<uint64_t>(b)));
}

// IEEE binary16 -> binary32, exact (the FP16 library's fp16_ieee_to_fp32_value).
inline float to_float(half h) {
  const uint32_t w = uint32_t(h.bits) << 16;
  const uint32_t sign = w & 0x80000000u;
  const uint32_t two_w = w + w;
  // Normal numbers, infinities and NaNs: move the exponent into place and rescale.
  const float normalized = bits_to_float((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
  // Subnormals: build 0.5 + m * 2^-24 and subtract 0.5, exact.
  const float denormalized = bits_to_float((two_w >> 17) | (126u << 23)) - 0.5f;
  const uint32_t mag = select(int32_t(two_w >> 27) == 0, float_to_bits(denormalized),
                              float_to_bits(normalized));
  return bits_to_float(sign | mag);
}

// binary32 -> binary16, round to nearest even (fp16_ieee_from_fp32_value).
inline half to_half(float f) {
  const uint32_t w = float_to_bits(f);
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & 0x80000000u;
  // Scaling up then down overflows to inf above the half range and lets the float adder
  // do the rounding below.
  float base = (bits_to_float(w & 0x7FFFFFFFu) * 0x1.0p+112f) * 0x1.0p-110f;
  const uint32_t exponent = shl1_w >> 24;
  const uint32_t bias = select(int32_t(exponent) < 0x71, 0x71u, exponent) << 24;
  base = bits_to_float((bias >> 1) + 0x07800000u) + base;
  const uint32_t bits = float_to_bits(base);
  const uint32_t nonsign = ((bits >> 13) & 0x00007C00u) + (bits & 0x00000FFFu);
  const uint32_t out = (sign >> 16) | select(f != f, 0x7E00u, nonsign);
  return half{uint16_t(out)};
}

inline float to_float(bfloat16 b) { return bits_to_float(uint32_t(b.bits) << 16); }

// binary32 -> bfloat16, round to nearest even; NaN becomes the quiet NaN 0x7FC0 like c10.
inline bfloat16 to_bfloat16(float f) {
  const uint32_t w = float_to_bits(f);
  const uint32_t rounded = (w + 0x7FFFu + ((w >> 16) & 1u)) >> 16;
  return bfloat16{uint16_t(select(f != f, 0x7FC0u, rounded))};
}

// widen(v): storage -> compute dtype; narrow<S>(v): compute dtype -> storage.
inline float widen(float v) { return v; }
inline double widen(double v) { return v; }
inline float widen(half v) { return to_float(v); }
inline float widen(bfloat16 v) { return to_float(v); }

template <class S, class A>
inline S narrow(A v);
template <>
inline float narrow<float, float>(float v) { return v; }
template <>
inline double narrow<double, double>(double v) { return v; }
template <>
inline half narrow<half, float>(float v) { return to_half(v); }
template <>
inline bfloat16 narrow<bfloat16, float>(float v) { return to_bfloat16(v); }

}  // namespace fastsnn::cpu
