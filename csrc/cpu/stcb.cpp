// stcb CPU kernels (docs/stcb.md, a reconstruction of paper C): the functions declared
// in stcb.h. OpenMP splits the elements into chunks of kChunk (a multiple of 8, so a chunk
// owns whole mask bytes and threads never share a byte). Within a chunk the per-element
// state lives in small arrays and the time loop is outside the element loop, so the inner
// loops are plain array loops GCC vectorises, and the train is written row by row (each
// output element once, contiguous stores).
// GCC if-converts (and so vectorises) the compare-and-select of stcb_step only when it may
// assume floating-point operations do not trap. That changes no value (rounding is
// untouched), only exception-flag bookkeeping. Set for the whole file, before any include,
// so that every function here (and the inlined common/stcb.h) has the same options.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include "cpu/stcb.h"

#include <algorithm>

// The time loop also gets an AVX2 clone, picked at load time (ifunc): twice the lanes of the
// SSE2 baseline for the same operations (no FMA: -ffp-contract=off), so the same bits.
#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__)
#define FASTSNN_AVX2_CLONE __attribute__((target_clones("avx2", "default")))
#define FASTSNN_WIDE_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FASTSNN_AVX2_CLONE
#define FASTSNN_WIDE_CLONES
#endif

namespace fastsnn::cpu {
namespace {

constexpr int64_t kChunk = 256;  // the state of a chunk (~13 KB) stays in L1
static_assert(kChunk % 8 == 0, "a chunk must own whole mask bytes");
// spike_count's chunk: 4-8 KB of sums in L1, and long contiguous reads of each time row.
constexpr int64_t kCountChunk = 1024;

int64_t chunks(int64_t E) { return (E + kChunk - 1) / kChunk; }

// Threads only pay off above some work (element-steps): below it the fork/join costs more.
bool worth_threads(int64_t work) { return work >= (int64_t{1} << 16); }

// Per-element train state of one chunk, structure of arrays; the small integers are held in
// double (exact), so the time loop has one lane width and vectorises (common/stcb.h).
template <class acc_t>
struct ChunkState {
  double qa[kChunk], rb[kChunk], f[kChunk], r[kChunk], c[kChunk];
  acc_t nan[kChunk];
  uint8_t mid[kChunk];
};

void pack_mask(const uint8_t* mid, int64_t len, uint8_t* bytes) {
  for (int64_t b = 0; b < (len + 7) / 8; ++b) {
    uint8_t byte = 0;
    for (int64_t j = 0; j < 8 && 8 * b + j < len; ++j) byte |= uint8_t(mid[8 * b + j] << j);
    bytes[b] = byte;
  }
}

template <class acc_t>
void setup(ChunkState<acc_t>& st, const acc_t* a, int64_t len, const StcbParams& p,
           acc_t* count) {
  const acc_t vth = acc_t(p.threshold);
  for (int64_t i = 0; i < len; ++i) {
    const StcbElement<acc_t> el = stcb_element<acc_t>(a[i] / vth, p.T, p.levels);
    st.qa[i] = el.qa;
    st.rb[i] = el.rb;
    st.f[i] = el.f;
    st.nan[i] = el.nan;
    st.mid[i] = el.mid;
    st.r[i] = st.c[i] = 0.0;
    if (count != nullptr) count[i] = el.count;
  }
}

template <class acc_t>
FASTSNN_AVX2_CLONE void regenerate(ChunkState<acc_t>& st, int64_t len, int64_t T, int64_t E, acc_t* out) {
  const double Td = double(T);
  for (int64_t t = 1; t <= T; ++t) {
    acc_t* row = out + (t - 1) * E;
    const double td = double(t);
    for (int64_t i = 0; i < len; ++i) {
      const double s = stcb_step(st.qa[i], st.rb[i], st.f[i], st.r[i], st.c[i], td, Td);
      row[i] = acc_t(s) + st.nan[i];
    }
  }
}

}  // namespace

template <class acc_t>
void stcb_forward(const StcbParams& p, const acc_t* a, acc_t* out, uint8_t* mask) {
#pragma omp parallel for schedule(static) if (worth_threads(p.E * (p.count_only ? 1 : p.T)))
  for (int64_t c = 0; c < chunks(p.E); ++c) {
    const int64_t e0 = c * kChunk, len = std::min(kChunk, p.E - e0);
    ChunkState<acc_t> st;
    setup(st, a + e0, len, p, p.count_only ? out + e0 : nullptr);
    if (!p.count_only) regenerate(st, len, p.T, p.E, out + e0);
    if (p.save_mask) pack_mask(st.mid, len, mask + e0 / 8);
  }
}

template <class acc_t>
void stcb_backward(const StcbBackwardParams& p, const acc_t* grad, const uint8_t* mask,
                   acc_t* ga) {
  const acc_t scale = acc_t(p.scale);
#pragma omp parallel for schedule(static) if (worth_threads(p.E * (p.count_only ? 1 : p.T)))
  for (int64_t c = 0; c < chunks(p.E); ++c) {
    const int64_t e0 = c * kChunk, len = std::min(kChunk, p.E - e0);
    acc_t sum[kChunk];
    uint8_t bit[kChunk];
    for (int64_t i = 0; i < len; ++i) {
      const int64_t e = e0 + i;
      bit[i] = (mask[e >> 3] >> (e & 7)) & 1;
      sum[i] = p.count_only ? grad[e] : acc_t(0);
    }
    if (!p.count_only) {
      for (int64_t t = 0; t < p.T; ++t) {
        const acc_t* row = grad + t * p.E + e0;
        for (int64_t i = 0; i < len; ++i) sum[i] += row[i];
      }
    }
    for (int64_t i = 0; i < len; ++i) ga[e0 + i] = bit[i] ? sum[i] * scale : acc_t(0);
  }
}

// One chunk of spike_count: len <= kCountChunk elements, rows summed in time order into an
// L1-resident accumulator. Cloned up to AVX-512 (the SSE2 baseline moves 16 B per
// instruction, which left the op below torch.sum's rate): the same additions in the same
// order at every width, so the same bits.
template <class acc_t>
FASTSNN_WIDE_CLONES void count_chunk(int64_t T, int64_t E, int64_t len, const acc_t* s,
                                     acc_t* out) {
  alignas(64) acc_t sum[kCountChunk];
  for (int64_t i = 0; i < len; ++i) sum[i] = acc_t(0);
  for (int64_t t = 0; t < T; ++t) {
    const acc_t* row = s + t * E;
    for (int64_t i = 0; i < len; ++i) sum[i] += row[i];
  }
  for (int64_t i = 0; i < len; ++i) out[i] = sum[i];
}

template <class acc_t>
void spike_count(int64_t T, int64_t E, const acc_t* s, acc_t* out) {
  const int64_t n = (E + kCountChunk - 1) / kCountChunk;
#pragma omp parallel for schedule(static) if (worth_threads(E * T))
  for (int64_t c = 0; c < n; ++c) {
    const int64_t e0 = c * kCountChunk;
    count_chunk(T, E, std::min(kCountChunk, E - e0), s + e0, out + e0);
  }
}

#define FASTSNN_STCB_INSTANTIATE(A)                                                      \
  template void stcb_forward<A>(const StcbParams&, const A*, A*, uint8_t*);              \
  template void stcb_backward<A>(const StcbBackwardParams&, const A*, const uint8_t*,    \
                                 A*);                                                    \
  template void spike_count<A>(int64_t, int64_t, const A*, A*);
FASTSNN_STCB_INSTANTIATE(float)
FASTSNN_STCB_INSTANTIATE(double)
#undef FASTSNN_STCB_INSTANTIATE

}  // namespace fastsnn::cpu
