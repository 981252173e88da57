// events_to_current CUDA kernels: the launcher declared in events.h.
//
// Kernels, enqueued in order on one stream for the whole batch:
//   1. memset of the integer accumulator (the float32 output itself for counts, which are
//      accumulated as int32 in place; an int64 scratch for exp weights);
//   2. segment_starts_kernel: one thread per stream writes the global first event of each of
//      its T segments (the same integer rules as the CPU kernel, common/events.h), kept
//      non-decreasing so the segments partition the events even for unsorted input; it also
//      resets the fault slots;
//   3. accumulate_kernel: a block takes a tile of kThreads*kItems consecutive events (loads
//      coalesced across the block); thread 0 locates the (stream, segment) items of the
//      tile's first and last event, and every event is placed by bisection between them
//      (no search at all when the tile lies in one segment, the common case). Each event is
//      validated and added with an integer atomic (int32 count, or int64 fixed-point exp
//      weight): integer addition is associative, so the result does not depend on the order
//      the atomics land in and equals the CPU kernel's bit for bit. A bad event is skipped
//      and its index goes to atomicMin on the slot of its fault kind;
//   4. convert_kernel: integers to float32 in place (counts) or from the scratch (exp).
#include "cuda/events.h"

#include <climits>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace fastsnn::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kItems = 8;  // events per thread in one tile
constexpr int64_t kTile = int64_t{kThreads} * kItems;


template <class index_t>
__global__ void segment_starts_kernel(EventsParams p, const index_t* ev,
                                      const int64_t* offsets, int64_t* starts,
                                      int64_t* faults) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b == 0) {
    for (int k = 0; k < kEventFaultKinds; ++k) faults[k] = LLONG_MAX;
    starts[p.B * p.T] = p.E;
  }
  if (b >= p.B) return;
  const int64_t T = p.T, base = offsets[b], n = offsets[b + 1] - base;
  int64_t* s = starts + b * T;
  s[0] = base;
  if (p.split == EventSplit::Number || n == 0) {
    for (int64_t j = 1; j < T; ++j) s[j] = base + number_split_start(j, n, T);
    return;
  }
  const int64_t t0 = time_at(ev, base);
  const uint64_t span_m1 =
      static_cast<uint64_t>(time_at(ev, base + n - 1)) - static_cast<uint64_t>(t0);
  int64_t prev = base;
  for (int64_t j = 1; j < T; ++j) {
    prev = first_at_offset(ev, prev, base + n, t0, time_split_offset(j, span_m1, T));
    s[j] = prev;
  }
}

// The item k in [lo, hi] (items are (stream, segment) pairs in stream-major order) whose
// events contain i: the last k with starts[k] <= i.
__device__ __forceinline__ int64_t find_item(const int64_t* starts, int64_t lo, int64_t hi,
                                             int64_t i) {
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo + 1) / 2;
    if (__ldg(starts + mid) <= i) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

// The fault of event i (EventFault::None when it is valid).
__device__ __forceinline__ EventFault check_event(const EventsParams& p, int64_t x, int64_t y,
                                                  int64_t pol, int64_t t, int64_t prev_t) {
  if (static_cast<uint64_t>(x) >= static_cast<uint64_t>(p.W)) return EventFault::X;
  if (static_cast<uint64_t>(y) >= static_cast<uint64_t>(p.H)) return EventFault::Y;
  if (static_cast<uint64_t>(pol) >= static_cast<uint64_t>(p.P)) return EventFault::P;
  if (t < prev_t) return EventFault::Order;
  return EventFault::None;
}

template <class index_t, bool kExp>
__global__ void __launch_bounds__(kThreads)
    accumulate_kernel(EventsParams p, const index_t* __restrict__ ev,
                      const int64_t* __restrict__ offsets, const int64_t* __restrict__ starts,
                      int* __restrict__ counts, unsigned long long* __restrict__ acc,
                      long long* __restrict__ faults, double neg_inv_tau,
                      double scale) {
  __shared__ int64_t item_range[2];
  const int64_t tile = static_cast<int64_t>(blockIdx.x) * kTile;
  const int64_t tile_end = min(tile + kTile, p.E);
  const int64_t items = p.B * p.T;
  if (threadIdx.x == 0) {
    item_range[0] = find_item(starts, 0, items - 1, tile);
    item_range[1] = find_item(starts, item_range[0], items - 1, tile_end - 1);
  }
  __syncthreads();
  const int64_t k_lo = item_range[0], k_hi = item_range[1];
  const int64_t frame = p.frame(), Hout = p.Hout(), Wout = p.Wout();
  for (int m = 0; m < kItems; ++m) {
    const int64_t i = tile + static_cast<int64_t>(m) * kThreads + threadIdx.x;
    if (i >= tile_end) break;
    const int64_t k = k_lo == k_hi ? k_lo : find_item(starts, k_lo, k_hi, i);
    const int64_t b = k / p.T, j = k % p.T;
    const index_t* r = ev + 4 * i;
    const int64_t x = r[0], y = r[1], t = r[2], pol = r[3];
    const int64_t prev_t = i > __ldg(offsets + b) ? time_at(ev, i - 1) : LLONG_MIN;
    const EventFault fault = check_event(p, x, y, pol, t, prev_t);
    if (fault != EventFault::None) {
      atomicMin(faults + static_cast<int>(fault), static_cast<long long>(i));
      continue;
    }
    const int64_t at = (j * p.B + b) * frame + event_pixel(x, y, pol, p.factor, p.merge, Hout,
                                                           Wout);
    if constexpr (kExp) {
      const int64_t t_end = time_at(ev, __ldg(starts + k + 1) - 1);
      const int64_t w = exp_weight_fixed(t_end, t, neg_inv_tau, scale);
      atomicAdd(acc + at, static_cast<unsigned long long>(w));
    } else {
      atomicAdd(counts + at, 1);
    }
  }
}

__global__ void counts_to_float_kernel(float* out, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += stride) {
    const int c = reinterpret_cast<const int*>(out)[k];
    out[k] = __int2float_rn(c);
  }
}

__global__ void fixed_to_float_kernel(const long long* acc, float* out, int64_t n,
                                      double inv_scale) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += stride) {
    out[k] = fixed_to_float(acc[k], inv_scale);
  }
}

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("fastsnn events_to_current: ") + what +
                             " failed: " + cudaGetErrorString(err));
  }
}

unsigned blocks_for(int64_t n, int64_t per_block, int64_t cap) {
  const int64_t blocks = (n + per_block - 1) / per_block;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > cap ? cap : blocks));
}

template <class index_t>
void launch(const EventsParams& p, const EventsBuffers& buf, cudaStream_t stream) {
  const auto* ev = static_cast<const index_t*>(buf.events);
  const bool exp_w = p.weighting == EventWeighting::Exp;
  const int64_t n_out = p.T * p.B * p.frame();
  if (n_out > 0) {
    check(exp_w ? cudaMemsetAsync(buf.acc, 0, sizeof(int64_t) * n_out, stream)
                : cudaMemsetAsync(buf.out, 0, sizeof(float) * n_out, stream),
          "memset");
  }
  segment_starts_kernel<index_t><<<blocks_for(p.B, 128, INT_MAX), 128, 0, stream>>>(
      p, ev, buf.offsets, buf.starts, buf.faults);
  check(cudaGetLastError(), "segment_starts_kernel");
  if (p.E > 0 && p.B > 0) {
    const unsigned grid = blocks_for(p.E, kTile, INT_MAX);
    auto* faults = reinterpret_cast<long long*>(buf.faults);
    if (exp_w) {
      accumulate_kernel<index_t, true><<<grid, kThreads, 0, stream>>>(
          p, ev, buf.offsets, buf.starts, nullptr,
          reinterpret_cast<unsigned long long*>(buf.acc), faults, -1.0 / p.tau,
          ldexp(1.0, p.frac_bits));
    } else {
      accumulate_kernel<index_t, false><<<grid, kThreads, 0, stream>>>(
          p, ev, buf.offsets, buf.starts, reinterpret_cast<int*>(buf.out), nullptr, faults, 0.0,
          1.0);
    }
    check(cudaGetLastError(), "accumulate_kernel");
  }
  if (n_out > 0) {
    const unsigned grid = blocks_for(n_out, kThreads * 4, 65535);
    if (exp_w) {
      fixed_to_float_kernel<<<grid, kThreads, 0, stream>>>(
          reinterpret_cast<const long long*>(buf.acc), buf.out, n_out,
          ldexp(1.0, -p.frac_bits));
    } else {
      counts_to_float_kernel<<<grid, kThreads, 0, stream>>>(buf.out, n_out);
    }
    check(cudaGetLastError(), "convert kernel");
  }
}

}  // namespace

void events_to_current(const EventsParams& p, const EventsBuffers& buf, cudaStream_t stream) {
  if (p.T < 1 || p.B < 0 || p.E < 0 || p.frac_bits < 0 || p.frac_bits > 62) {
    throw std::invalid_argument("fastsnn events_to_current: inconsistent parameters");
  }
  if (buf.events_int64) {
    launch<int64_t>(p, buf, stream);
  } else {
    launch<int32_t>(p, buf, stream);
  }
}

}  // namespace fastsnn::cuda
