// Surrogate bumps g(z) of docs/mt_lif.md (fastsnn/reference/surrogate.py), written as
// branch-free scalar functions that GCC inlines and vectorises inside lane loops. The
// order of operations copies the reference, so rect and triangle agree bit for bit; the
// sigmoid uses exp_approx below and agrees to a few float ulps.
#pragma once

#include <cmath>
#include <cstdint>

#include "common/mt_lif.h"
#include "cpu/dtypes.h"

namespace fastsnn::cpu {

// exp for float without a libm call, so the sigmoid loop vectorises (glibc's vector expf
// needs -ffast-math). Cephes expf: Cody-Waite reduction by ln 2, degree-6 polynomial,
// about 1 ulp. The argument is clamped to [-87, 88], where the result stays a normal float;
// beyond it the sigmoid bump is below 1e-37 anyway. NaN stays NaN.
inline float exp_approx(float x) {
  // Bit selects: with two ?: clamps GCC threads the jumps and gives up vectorising.
  x = select(x < -87.0f, -87.0f, x);
  x = select(x > 88.0f, 88.0f, x);
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds to int
  const float n = (x * 1.44269504088896341f + magic) - magic;
  float r = x - n * 0.693359375f;  // 0.693359375 has 9 bits: n * it is exact
  r = r + n * 2.12194440e-4f;
  // The polynomial by Estrin's scheme, not Horner's: the backward loop is bound by the
  // latency of this chain (its iterations are too long for the out-of-order window to
  // overlap many), and Estrin's is 4 dependent multiply-adds shorter.
  const float r2 = r * r, r4 = r2 * r2;
  const float p01 = 5.0000001201e-1f + 1.6666665459e-1f * r;
  const float p23 = 4.1665795894e-2f + 8.3334519073e-3f * r;
  const float p45 = 1.3981999507e-3f + 1.9875691500e-4f * r;
  const float y = ((p01 + p23 * r2) + p45 * r4) * r2 + r + 1.0f;
  // 2^n, n in [-126, 127]; a NaN x converts 0 instead (undefined), y carries the NaN.
  const uint32_t scale = uint32_t(int32_t(select(n == n, n, 0.0f)) + 127) << 23;
  return y * bits_to_float(scale);
}
inline double exp_approx(double x) { return std::exp(x); }

// The constants of one call in the compute dtype A, derived exactly as the reference
// derives them from the (already rounded) threshold and width. For atan and fast_sigmoid
// `width` carries the peer's parameter (alpha, slope).
template <class A>
struct SurrogateConsts {
  A thr, a, half_a, inv_a, four_over_a, half_pi;
  explicit SurrogateConsts(const MtLifParams& p)
      : thr(A(p.threshold)),
        a(A(p.width)),
        half_a(A(p.width) / A(2)),
        inv_a(A(1) / A(p.width)),
        four_over_a(A(4) / A(p.width)),
        half_pi(A(1.5707963267948966)) {}
};

// g(z): one threshold's bump, unit area, width a.
template <Surrogate K, class A>
[[gnu::always_inline]] inline A bump(A z, const SurrogateConsts<A>& c) {
  const A az = select(z < A(0), -z, z);
  if constexpr (K == Surrogate::Rect) {
    return select(az < c.half_a, c.inv_a, A(0));
  } else if constexpr (K == Surrogate::Triangle) {
    const A t = A(1) - az / c.a;
    return select(t > A(0), t, A(0)) / c.a;
  } else if constexpr (K == Surrogate::Sigmoid) {
    // (4 z) * (1 / a) rather than (4 z) / a: one division per bump, not two, on the chain
    // that bounds the backward loop; equal for a power-of-two width, within an ulp otherwise.
    const A sig = A(1) / (A(1) + exp_approx(-((A(4) * z) * c.inv_a)));
    return c.four_over_a * sig * (A(1) - sig);
  } else if constexpr (K == Surrogate::Atan) {  // (alpha/2) * 1 / (1 + (pi/2 * (alpha*z))^2)
    const A t = c.half_pi * (c.a * z);
    return c.half_a * (A(1) / (A(1) + t * t));
  } else {  // fast_sigmoid: 1 / (slope*|z| + 1)^2
    const A d = c.a * az + A(1);
    return A(1) / (d * d);
  }
}

}  // namespace fastsnn::cpu
