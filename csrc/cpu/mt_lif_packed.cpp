// mt_lif with packed spikes out (declared in cpu/packed_spikes.h): the LIF arithmetic of
// cpu/mt_lif_step.h over lanes of one channel, the spikes OR-ed into channel-packed words.
//
// Work split: a task is (n, word w, run of up to kLanes positions r); it runs the 32 channels
// of word w over all T for its lanes, collecting their bits in a scratch of whole words,
// and is the only writer of those words (no atomics). With R < kLanes ([T, N, C] input: R = 1) lanes are few: correct, not fast.
#include <algorithm>
#include <vector>

#include "cpu/mt_lif_step.h"
#include "cpu/packed_lif.h"
#include "cpu/packed_spikes.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(FASTSNN_NO_CLONES)
#define FASTSNN_PACKED_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FASTSNN_PACKED_CLONES
#endif

namespace fastsnn::cpu {
namespace packed {
namespace {

template <int KMax>
FASTSNN_PACKED_CLONES void word(const MtLifParams& p, const float* decay, int64_t c0,
                                int64_t nch, const float* x, int64_t x_channel, int64_t x_t,
                                int64_t n, uint32_t* acc, const PackedOut& o) {
  const StepConsts<float> k(p);
  std::fill_n(acc, p.T * o.bits * kLanes, 0u);
  LaneParams<float> lp;
  alignas(64) float u[kLanes], j[kLanes], s[kLanes], h[kLanes], js[kLanes];
  alignas(64) uint32_t q[kLanes];
  for (int64_t ch = 0; ch < nch; ++ch) {
    const float lam = decay[p.decay_size == 1 ? 0 : c0 + ch];
    std::fill_n(lp.lam, n, lam);
    std::fill_n(lp.c, n, p.form == Form::Plif ? 1.f - lam : 1.f);  // as fill_lane_params
    std::fill_n(lp.alpha, n, 0.f);
    std::fill_n(u, n, 0.f);
    std::fill_n(j, n, 0.f);
    const uint32_t bit = uint32_t(ch);
    for (int64_t t = 0; t < p.T; ++t) {
      forward_step<KMax>(k, lp, x + ch * x_channel + t * x_t, n, u, j, s, h, js);
      for (int64_t i = 0; i < n; ++i) q[i] = uint32_t(int32_t(s[i] == s[i] ? s[i] : 0.f));
      for (int b = 0; b < o.bits; ++b) {
        uint32_t* dst = acc + (t * o.bits + b) * kLanes;
        for (int64_t i = 0; i < n; ++i) dst[i] |= ((q[i] >> b) & 1u) << bit;
      }
    }
  }
  for (int64_t t = 0; t < p.T; ++t)
    for (int b = 0; b < o.bits; ++b)
      for (int64_t i = 0; i < n; ++i)
        o.out[t * o.t_stride + i * o.lane_stride + b * o.plane_stride] =
            acc[(t * o.bits + b) * kLanes + i];
}

}  // namespace

void lif_pack_word(const MtLifParams& p, const float* decay, int64_t c0, int64_t nch,
                   const float* x, int64_t x_channel, int64_t x_t, int64_t n,
                   uint32_t* scratch, const PackedOut& o) {
  if (p.levels == 1) return word<1>(p, decay, c0, nch, x, x_channel, x_t, n, scratch, o);
  if (p.levels <= 4) return word<4>(p, decay, c0, nch, x, x_channel, x_t, n, scratch, o);
  return word<0>(p, decay, c0, nch, x, x_channel, x_t, n, scratch, o);
}

}  // namespace packed

void mt_lif_packed_forward(const MtLifParams& p, const float* x, const float* decay,
                           uint32_t* out) {
  const int64_t W32 = (p.C + 31) / 32;
  const int bits = 32 - __builtin_clz(uint32_t(p.levels));  // ceil(log2(levels + 1))
  const int64_t runs = (p.R + kLanes - 1) / kLanes, tasks = p.N * W32 * runs;
  const int64_t pixel = bits * W32;
#pragma omp parallel if (p.T * p.step() >= (1 << 15))
  {
    std::vector<uint32_t> scratch(size_t(p.T * bits * kLanes));
#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t n = task / (W32 * runs), w = task / runs % W32, r0 = task % runs * kLanes;
      const int64_t len = std::min(kLanes, p.R - r0);
      const packed::PackedOut o{out + (n * p.R + r0) * pixel + w, p.N * p.R * pixel, pixel,
                                W32, bits};
      packed::lif_pack_word(p, decay, 32 * w, std::min<int64_t>(32, p.C - 32 * w),
                            x + (n * p.C + 32 * w) * p.R + r0, p.R, p.step(), len,
                            scratch.data(), o);
    }
  }
}

}  // namespace fastsnn::cpu
