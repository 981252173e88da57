// events_to_current: the torch-free description of one call and the integer arithmetic the
// CPU and CUDA kernels share (host + device), so that both compute the same segments, the
// same pixels and the same fixed-point weights. The contract is stated in full in
// fastsnn/ops/events_to_current.py; the binding (csrc/torch/events_to_current.cpp) fills
// EventsParams.
//
//   events  [E, 4] int32 or int64, contiguous, rows (x, y, t, p); B streams concatenated,
//           stream b = rows [offsets[b], offsets[b+1]).
//   out     float32 [T, B, Pout, Hout, Wout]; the (t, b) slab is contiguous (frame()).
//   starts  int64 [B, T+1] scratch: stream-local first event of every segment.
//
// Kernels check every event they read (x in [0, W), y in [0, H), p in [0, P), t not below
// the previous event of the same stream), skip a bad one and report the lowest bad index
// with its fault, so that no input can make them write out of bounds.
#pragma once

#include <cmath>
#include <cstdint>

#include "common/enums.h"
#include "common/hd.h"

namespace fastsnn {

struct EventsParams {
  int64_t E = 0, B = 1, T = 1;  // events, streams, segments (1 <= T < 2^31)
  int64_t W = 1, H = 1, P = 2;  // sensor_size (W, H, P); P is 1 or 2
  int64_t factor = 1;           // spatial sum-pooling f: pixel (y / f, x / f)
  bool merge = false;           // merge_polarity: one output channel
  EventSplit split = EventSplit::Number;
  EventWeighting weighting = EventWeighting::Count;
  double tau = 1.0;   // tau_syn (exp weighting), > 0
  int frac_bits = 0;  // exp weighting: weights accumulate as int64 in units of 2^-frac_bits

  FASTSNN_HD int64_t Pout() const { return merge ? 1 : P; }
  FASTSNN_HD int64_t Hout() const { return (H + factor - 1) / factor; }
  FASTSNN_HD int64_t Wout() const { return (W + factor - 1) / factor; }
  // Elements of one (t, b) slab of the output.
  FASTSNN_HD int64_t frame() const { return Pout() * Hout() * Wout(); }
};

// First (stream-local) index of segment j of a stream of n events split by number:
// floor(j * n / T), computed as j*q + floor(j*r / T) with n = q*T + r so that nothing
// overflows for T < 2^31.
FASTSNN_HD int64_t number_split_start(int64_t j, int64_t n, int64_t T) {
  const int64_t q = n / T, r = n % T;
  return j * q + (j * r) / T;
}

// Split by time: an event at time t with d = t - t_first belongs to segment
// floor(d * T / (t_last - t_first + 1)), so segment j (1 <= j < T) starts at the first event
// with d >= ceil(j * span / T), span = t_last - t_first + 1. The caller passes
// span_m1 = t_last - t_first in uint64 (exact for any int64 pair); span itself can be 2^64
// (the whole int64 range), so it is split as q*T + r without being formed: with T >= 2,
// q <= 2^63, j*q + ceil(j*r/T) = ceil(j*span/T) < span <= 2^64 and j*r < 2^62: no wrap.
FASTSNN_HD uint64_t time_split_offset(int64_t j, uint64_t span_m1, int64_t T) {
  const uint64_t uT = static_cast<uint64_t>(T), uj = static_cast<uint64_t>(j);
  uint64_t q = span_m1 / uT, r = span_m1 % uT + 1;
  if (r == uT) {
    ++q;
    r = 0;
  }
  return uj * q + (uj * r + uT - 1) / uT;
}

// Output element of one event inside its (t, b) slab.
FASTSNN_HD int64_t event_pixel(int64_t x, int64_t y, int64_t p, int64_t factor, bool merge,
                               int64_t Hout, int64_t Wout) {
  const int64_t channel = merge ? 0 : p;
  return (channel * Hout + y / factor) * Wout + x / factor;
}

// exp weighting: exp((t_end - t) * neg_inv_tau) in float64 with neg_inv_tau = -1 / tau
// (one rounding, done once on the host: no division in the kernels), rounded to the nearest
// multiple of 2^-frac_bits (scale = 2^frac_bits; w * scale is exact, + 0.5 is exact for
// w * scale < 2^52). Integer sums are exact and order-free, so every backend gets the same
// bits whatever order its threads add in. The difference is taken in uint64 (no overflow for
// any pair of timestamps); t > t_end only happens for an unsorted stream (reported as an
// error) and counts as 0 so the cast stays defined.
FASTSNN_HD int64_t exp_weight_fixed(int64_t t_end, int64_t t, double neg_inv_tau,
                                    double scale) {
  const double d =
      t < t_end ? static_cast<double>(static_cast<uint64_t>(t_end) - static_cast<uint64_t>(t))
                : 0.0;
  return static_cast<int64_t>(exp(d * neg_inv_tau) * scale + 0.5);
}

// The float32 value of a fixed-point sum (inv_scale = 2^-frac_bits).
FASTSNN_HD float fixed_to_float(int64_t acc, double inv_scale) {
  return static_cast<float>(static_cast<double>(acc) * inv_scale);
}

// Event rows are [x, y, t, p]; the time of row i.
template <class index_t>
FASTSNN_HD int64_t time_at(const index_t* ev, int64_t i) {
  return static_cast<int64_t>(ev[4 * i + 2]);
}

// First index in [lo, hi) whose time is at least `d` after t0 (hi when none). Plain bisection:
// on unsorted input it still returns some index in [lo, hi].
template <class index_t>
FASTSNN_HD int64_t first_at_offset(const index_t* ev, int64_t lo, int64_t hi, int64_t t0,
                                   uint64_t d) {
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    const uint64_t off = static_cast<uint64_t>(time_at(ev, mid)) - static_cast<uint64_t>(t0);
    if (off < d) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

}  // namespace fastsnn
