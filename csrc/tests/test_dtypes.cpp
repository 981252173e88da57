// The bit-manipulation half / bfloat16 conversions of cpu/dtypes.h against the compiler's
// _Float16 (IEEE round to nearest even) and the bfloat16 definition (upper 16 bits, RNE).
#include <cmath>
#include <cstdint>
#include <random>

#include "cpu/dtypes.h"
#include "tests/check.h"

using namespace fastsnn::cpu;

static void every_half_widens_exactly() {
  for (uint32_t b = 0; b < 65536; ++b) {
    const float mine = to_float(half{uint16_t(b)});
    const float ref = float(std::bit_cast<_Float16>(uint16_t(b)));
    if (std::isnan(ref)) {
      CHECK(std::isnan(mine));
    } else {
      CHECK(float_to_bits(mine) == float_to_bits(ref));
    }
  }
}

static void narrowing_to_half(float f) {
  const uint16_t mine = to_half(f).bits;
  const _Float16 ref = _Float16(f);
  if (std::isnan(f)) {
    CHECK((mine & 0x7C00u) == 0x7C00u && (mine & 0x03FFu) != 0);
  } else {
    CHECK(mine == std::bit_cast<uint16_t>(ref));
  }
}

// Round to nearest even on the exact value, computed in double: the definition.
static uint16_t bf16_reference(float f) {
  const uint32_t w = float_to_bits(f);
  const uint32_t lower = w & 0xFFFFu, upper = w >> 16;
  if (lower > 0x8000u || (lower == 0x8000u && (upper & 1u))) return uint16_t(upper + 1);
  return uint16_t(upper);
}

static void narrowing(float f) {
  narrowing_to_half(f);
  if (std::isnan(f)) {
    CHECK(to_bfloat16(f).bits == 0x7FC0u);
  } else {
    CHECK(to_bfloat16(f).bits == bf16_reference(f));
  }
}

static void floats_narrow_with_round_to_nearest_even() {
  // Every float whose top 16 bits are given, with low halves at the rounding boundaries.
  for (uint32_t hi = 0; hi < 65536; ++hi) {
    for (uint32_t lo : {0x0000u, 0x0001u, 0x0FFFu, 0x1000u, 0x1001u, 0x7FFFu, 0x8000u,
                        0x8001u, 0xFFFFu}) {
      narrowing(bits_to_float((hi << 16) | lo));
    }
  }
  std::mt19937 rng(1);
  for (int i = 0; i < 1000000; ++i) narrowing(bits_to_float(uint32_t(rng())));
  for (float f : {0.0f, -0.0f, 65504.0f, 65520.0f, 65519.99f, 1e-8f, 2.98e-8f, 5.96e-8f,
                  INFINITY, -INFINITY, NAN}) {
    narrowing(f);
  }
}

int main() {
  every_half_widens_exactly();
  floats_narrow_with_round_to_nearest_even();
  return fastsnn::test::report("test_dtypes");
}
