// events_to_current CPU kernel (declared in cpu/events.h; math in
// fastsnn/reference/events.py, shared integer helpers in common/events.h).
//
// Two phases. (1) Segment boundaries: for every stream, the global index of the first event
// of each of its T segments (split by number: a formula; by time: T-1 binary searches on the
// sorted timestamps), kept non-decreasing even for unsorted input so that the segments
// always partition the events. (2) One work item per (stream, segment) pair, handed out by
// OpenMP; the item owns one output frame (128 KB for 128x128x2: it stays in L2) and adds its
// events in one front-to-back pass that also validates them. Counts of an item with at most
// 2^24 events are added as 1.0f straight into the zeroed slab (exact integers in float32);
// larger count items use an int32 scratch frame, and exp weights an int64 fixed-point one
// (common/events.h), converted once into the slab. All sums are therefore exact integer
// sums: independent of the schedule and the thread count, and identical to the CUDA and
// Triton kernels. Every event is checked before it is used (coordinates, polarity, order
// within its stream); a bad one stops its item, and the lowest bad index over all items is
// returned.
#include "cpu/events.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "cpu/memory.h"

namespace fastsnn::cpu {
namespace {

constexpr int64_t kNoFault = std::numeric_limits<int64_t>::max();
constexpr int64_t kMinParallelWork = 1 << 18;  // events + output elements for one thread
// Up to 2^24 events, adding 1.0f is exact in float32: a count item with at most this many
// events accumulates straight into its output slab (same bits as the int32 path).
constexpr int64_t kExactFloatCount = int64_t{1} << 24;
constexpr int64_t kPrefetchBytes = 2048;

// starts[b*T + j]: global index of the first event of segment j of stream b; starts[B*T] = E.
template <class index_t>
void segment_starts(const EventsParams& p, const index_t* ev, const int64_t* offsets,
                    int64_t* starts, int threads) {
  const int64_t T = p.T;
#pragma omp parallel for schedule(static) if (p.B * T > 1024) num_threads(threads)
  for (int64_t b = 0; b < p.B; ++b) {
    const int64_t base = offsets[b], n = offsets[b + 1] - offsets[b];
    int64_t* s = starts + b * T;
    s[0] = base;
    if (p.split == EventSplit::Number || n == 0) {
      for (int64_t j = 1; j < T; ++j) s[j] = base + number_split_start(j, n, T);
      continue;
    }
    const int64_t t0 = time_at(ev, base);
    const uint64_t span_m1 =
        static_cast<uint64_t>(time_at(ev, base + n - 1)) - static_cast<uint64_t>(t0);
    for (int64_t j = 1; j < T; ++j)
      s[j] = first_at_offset(ev, s[j - 1], base + n, t0, time_split_offset(j, span_m1, T));
  }
  starts[p.B * T] = p.E;
}

// Fault of one event already known to be bad (checks in the order of EventFault).
template <class index_t>
EventFault classify(const EventsParams& p, const index_t* ev, int64_t i) {
  const index_t* r = ev + 4 * i;
  if (static_cast<uint64_t>(static_cast<int64_t>(r[0])) >= static_cast<uint64_t>(p.W))
    return EventFault::X;
  if (static_cast<uint64_t>(static_cast<int64_t>(r[1])) >= static_cast<uint64_t>(p.H))
    return EventFault::Y;
  if (static_cast<uint64_t>(static_cast<int64_t>(r[3])) >= static_cast<uint64_t>(p.P))
    return EventFault::P;
  return EventFault::Order;
}

// Adds events [first, last) into acc (one frame) with weight(t); prev_t is the time of the
// event before `first` in the same stream (lowest int64 at a stream start). Returns the first
// bad index, or kNoFault.
template <bool kPooled, class index_t, class acc_t, class Weight>
int64_t accumulate(const EventsParams& p, const index_t* ev, int64_t first, int64_t last,
                   int64_t prev_t, acc_t* acc, Weight weight) {
  const uint64_t W = p.W, H = p.H, P = p.P;
  const int64_t f = p.factor, Hout = p.Hout(), Wout = p.Wout();
  const int64_t keep_p = p.merge ? 0 : 1;
  for (int64_t i = first; i < last; ++i) {
    const index_t* r = ev + 4 * i;
    // The stream is read once, front to back: prefetching kPrefetchBytes ahead keeps the
    // loads off the critical path of the scattered adds (measured: ~1.7x on 10M events).
    __builtin_prefetch(reinterpret_cast<const char*>(r) + kPrefetchBytes);
    const int64_t x = r[0], y = r[1], t = r[2], pol = r[3];
    const bool bad = (static_cast<uint64_t>(x) >= W) | (static_cast<uint64_t>(y) >= H) |
                     (static_cast<uint64_t>(pol) >= P) | (t < prev_t);
    if (bad) return i;
    prev_t = t;
    const int64_t px = kPooled ? x / f : x, py = kPooled ? y / f : y;
    acc[(pol * keep_p * Hout + py) * Wout + px] += weight(t);
  }
  return kNoFault;
}

template <class index_t, class acc_t, class Weight>
int64_t accumulate_any(const EventsParams& p, const index_t* ev, int64_t first, int64_t last,
                       int64_t prev_t, acc_t* acc, Weight weight) {
  return p.factor == 1 ? accumulate<false>(p, ev, first, last, prev_t, acc, weight)
                       : accumulate<true>(p, ev, first, last, prev_t, acc, weight);
}

// One (stream b, segment j) item: counts of at most kExactFloatCount events are added to the
// zeroed slab directly; otherwise the scratch frame is zeroed, summed and converted.
template <class index_t, class acc_t>
int64_t run_item(const EventsParams& p, const index_t* ev, const int64_t* offsets,
                 const int64_t* starts, int64_t b, int64_t j, std::vector<acc_t>& scratch,
                 float* slab) {
  const int64_t frame = p.frame(), first = starts[b * p.T + j], last = starts[b * p.T + j + 1];
  if (first >= last) {
    std::memset(slab, 0, sizeof(float) * frame);
    return kNoFault;
  }
  const int64_t prev_t =
      first > offsets[b] ? time_at(ev, first - 1) : std::numeric_limits<int64_t>::min();
  int64_t bad;
  if constexpr (std::is_same_v<acc_t, int32_t>) {
    if (last - first <= kExactFloatCount) {  // float sums of ones are exact: add in place
      std::memset(slab, 0, sizeof(float) * frame);
      return accumulate_any(p, ev, first, last, prev_t, slab, [](int64_t) { return 1.0f; });
    }
    scratch.assign(static_cast<size_t>(frame), 0);
    acc_t* acc = scratch.data();
    bad = accumulate_any(p, ev, first, last, prev_t, acc, [](int64_t) { return int32_t{1}; });
    for (int64_t k = 0; k < frame; ++k) slab[k] = static_cast<float>(acc[k]);
  } else {
    scratch.assign(static_cast<size_t>(frame), 0);
    acc_t* acc = scratch.data();
    const int64_t t_end = time_at(ev, last - 1);
    const double neg_inv_tau = -1.0 / p.tau, scale = std::ldexp(1.0, p.frac_bits);
    bad = accumulate_any(p, ev, first, last, prev_t, acc, [=](int64_t t) {
      return exp_weight_fixed(t_end, t, neg_inv_tau, scale);
    });
    const double inv_scale = std::ldexp(1.0, -p.frac_bits);
    for (int64_t k = 0; k < frame; ++k) slab[k] = fixed_to_float(acc[k], inv_scale);
  }
  return bad;
}

template <class index_t, class acc_t>
int64_t run_items(const EventsParams& p, const index_t* ev, const int64_t* offsets,
                  const int64_t* starts, float* out, int threads) {
  const int64_t items = p.B * p.T, frame = p.frame();
  int64_t first_bad = kNoFault;
  const bool parallel = p.E + items * frame >= kMinParallelWork && items > 1;
  advise_huge_pages(out, sizeof(float) * static_cast<size_t>(items * frame));
#pragma omp parallel if (parallel) num_threads(threads) reduction(min : first_bad)
  {
    std::vector<acc_t> scratch;  // one frame of integer sums, allocated when first needed
#pragma omp for schedule(dynamic, 1)
    for (int64_t k = 0; k < items; ++k) {
      const int64_t b = k / p.T, j = k % p.T;
      float* slab = out + (j * p.B + b) * frame;
      first_bad = std::min(first_bad, run_item(p, ev, offsets, starts, b, j, scratch, slab));
    }
  }
  return first_bad;
}

}  // namespace

template <class index_t>
EventsFaultReport events_to_current(const EventsParams& p, const index_t* events,
                                    const int64_t* offsets, float* out, int threads) {
  threads = std::max(threads, 1);
  std::vector<int64_t> starts(static_cast<size_t>(p.B * p.T + 1));
  segment_starts(p, events, offsets, starts.data(), threads);
  const int64_t* s = starts.data();
  const int64_t bad = p.weighting == EventWeighting::Count
                          ? run_items<index_t, int32_t>(p, events, offsets, s, out, threads)
                          : run_items<index_t, int64_t>(p, events, offsets, s, out, threads);
  EventsFaultReport report;
  if (bad != kNoFault) {
    report.index = bad;
    report.fault = classify(p, events, bad);
  }
  return report;
}

template EventsFaultReport events_to_current<int32_t>(const EventsParams&, const int32_t*,
                                                      const int64_t*, float*, int);
template EventsFaultReport events_to_current<int64_t>(const EventsParams&, const int64_t*,
                                                      const int64_t*, float*, int);

}  // namespace fastsnn::cpu
