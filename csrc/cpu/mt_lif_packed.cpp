// mt_lif with packed spikes out (declared in cpu/packed_spikes.h): the LIF arithmetic of
// cpu/mt_lif_step.h over lanes of one channel, the spikes OR-ed into channel-packed words.
//
// Work split: a task is (n, word w, run of up to kLanes positions r); it runs the 32 channels
// of word w over all T for its lanes, so it is the only writer of its output words (no
// atomics). With R < kLanes ([T, N, C] input: R = 1) lanes are few: correct, not fast.
#include <algorithm>

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
FASTSNN_PACKED_CLONES void lanes(const MtLifParams& p, float lam, const float* x,
                                 int64_t x_stride, int64_t n, const PackedOut& o) {
  const StepConsts<float> k(p);
  LaneParams<float> lp;
  std::fill_n(lp.lam, n, lam);
  std::fill_n(lp.c, n, p.form == Form::Plif ? 1.f - lam : 1.f);  // as fill_lane_params
  std::fill_n(lp.alpha, n, 0.f);
  alignas(64) float u[kLanes], j[kLanes], s[kLanes], h[kLanes], js[kLanes];
  std::fill_n(u, n, 0.f);
  std::fill_n(j, n, 0.f);
  for (int64_t t = 0; t < p.T; ++t) {
    forward_step<KMax>(k, lp, x + t * x_stride, n, u, j, s, h, js);
    uint32_t* dst = o.out + t * o.t_stride;
    for (int64_t i = 0; i < n; ++i) {
      const float v = s[i] == s[i] ? s[i] : 0.f;  // 0..levels
      const uint32_t q = uint32_t(int32_t(v));
      for (int b = 0; b < o.bits; ++b)
        dst[i * o.lane_stride + b * o.plane_stride] |= ((q >> b) & 1u) << o.bit;
    }
  }
}

}  // namespace

void lif_pack_lanes(const MtLifParams& p, float lam, const float* x, int64_t x_stride,
                    int64_t n, const PackedOut& o) {
  if (p.levels == 1) return lanes<1>(p, lam, x, x_stride, n, o);
  if (p.levels <= 4) return lanes<4>(p, lam, x, x_stride, n, o);
  return lanes<0>(p, lam, x, x_stride, n, o);
}

}  // namespace packed

void mt_lif_packed_forward(const MtLifParams& p, const float* x, const float* decay,
                           uint32_t* out) {
  const int64_t W32 = (p.C + 31) / 32;
  const int bits = 32 - __builtin_clz(uint32_t(p.levels));  // ceil(log2(levels + 1))
  const int64_t runs = (p.R + kLanes - 1) / kLanes, tasks = p.N * W32 * runs;
  const int64_t pixel = bits * W32;
#pragma omp parallel for schedule(static) if (p.T * p.step() >= (1 << 15))
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t n = task / (W32 * runs), w = task / runs % W32, r0 = task % runs * kLanes;
    const int64_t len = std::min(kLanes, p.R - r0);
    for (int64_t c = 32 * w; c < std::min(p.C, 32 * w + 32); ++c) {
      const packed::PackedOut o{out + (n * p.R + r0) * pixel + w, p.N * p.R * pixel, pixel,
                                W32, bits, int(c % 32)};
      packed::lif_pack_lanes(p, decay[p.decay_size == 1 ? 0 : c],
                             x + (n * p.C + c) * p.R + r0, p.step(), len, o);
    }
  }
}

}  // namespace fastsnn::cpu
