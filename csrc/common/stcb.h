// stcb: the torch-free description of one call and the per-element arithmetic, shared by the
// CPU and CUDA kernels so both compute the train with the same operations. The rule (a
// reconstruction of paper C, docs/stcb.md) and why it is exact for float32 are in
// fastsnn/reference/stcb.py; the kernel contract is in fastsnn/ops/stcb.py.
#pragma once

#include <cstdint>

#include "common/hd.h"

namespace fastsnn {

struct StcbParams {
  int64_t E = 0;            // elements of the charge a (flattened [N, C, ...])
  int64_t T = 1;            // time steps, 1 <= T, levels * T <= 2^24 (checked in Python)
  int levels = 1;           // K
  double threshold = 1.0;   // vth, already rounded to the compute dtype
  bool count_only = false;  // write N_out [E] instead of S_out [T, E]
  bool save_mask = false;   // also write the packed mask 1[0 < A/vth < K*T]

  // Packed mask: bit j of byte i is the mask of element 8*i + j (unused high bits 0).
  int64_t mask_bytes() const { return (E + 7) / 8; }
};

struct StcbBackwardParams {
  int64_t E = 0, T = 1;
  double scale = 1.0;       // 1/vth (count) or 1/(T*vth) (train), rounded to the compute dtype
  bool count_only = false;  // grad is [E] (count) or [T, E] (train, summed over T)
};

// One element's train, from its normalised charge x = A / vth. With n = clamp(floor(x), 0,
// K*T) and, inside (0, K*T), f = x - n (exact; 0 outside):
//   floor(t*x/T) = Q_t + c_t,  Q_t = (t*n) div T,  c_t = [t*f >= T - (t*n) mod T].
// (t*n) div/mod T advance by (qa, rb) = (n div T, n mod T) per step, plus a wrap of the
// remainder. Outside (0, K*T) the same recursion gives the clamped train without a branch:
// n = 0 -> 0 every step, n = K*T -> K every step. A NaN charge adds NaN (`nan`) to every
// value so that NaN propagates; `nan` is 0 otherwise. qa and rb are small integers held in
// double (exact), the type the CPU loop runs in.
template <class acc_t>
struct StcbElement {
  double qa = 0, rb = 0;  // n div T, n mod T
  double f = 0.0;         // t*f is exact in double for a float32 x (t < 2^29)
  acc_t nan = 0;          // 0, or NaN for a NaN charge
  acc_t count = 0;        // N_out = n + nan
  bool mid = false;       // 0 < x < K*T: the gradient mask
};

template <class acc_t>
FASTSNN_HD StcbElement<acc_t> stcb_element(acc_t x, int64_t T, int levels) {
  StcbElement<acc_t> e;
  const acc_t kt = acc_t(levels * T);  // <= 2^24: exact
  e.mid = x > acc_t(0) && x < kt;
  // floor(x) is a truncating conversion inside (0, K*T), where x > 0: no libm call.
  const acc_t n = e.mid ? acc_t(int32_t(x)) : (x >= kt ? kt : acc_t(0));
  const double Td = double(T);
  // n / T < 2^24 and its fraction is at most 1 - 1/T, far from the next integer compared
  // with the division's rounding error: truncating the double quotient is n div T.
  e.qa = double(int32_t(double(n) / Td));
  e.rb = double(n) - e.qa * Td;  // exact
  e.f = double(x - n);           // exact (0 outside: n = x is not needed there)
  e.f = e.mid ? e.f : 0.0;
  e.nan = x != x ? x : acc_t(0);
  e.count = n + e.nan;
  return e;
}

// Advance one element by a step: t (1-based, as double), r the running (t*n) mod T, c the
// previous c_t. Returns S[t] = floor(t*x/T) - floor((t-1)*x/T) = qa + wrap + c_t - c_{t-1}
// (add the element's `nan`). `I` holds these small integers: int32_t on the GPU; double
// on the CPU, where keeping every lane of the loop in double lets GCC vectorise it (both
// exact, so both give the same result). Start with r = c = 0.
template <class I>
FASTSNN_HD I stcb_step(I qa, I rb, double f, I& r, I& c, double t, I T) {
  r += rb;
  const I wrap = r >= T ? I(1) : I(0);
  r -= wrap * T;
  const I c_t = t * f >= double(T - r) ? I(1) : I(0);
  const I s = qa + wrap + c_t - c;
  c = c_t;
  return s;
}

}  // namespace fastsnn
