// binary_conv2d on packed spikes (declared in cpu/packed_spikes.h): the tiles, gather and
// micro-kernels of binary_conv.cpp on an input that is already a bit image, so step 1
// (packing float input) is skipped; only a zero border is added when the conv pads.
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <utility>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "cpu/binary_conv_packed_parts.h"
#include "cpu/packed_spikes.h"

namespace fastsnn::cpu {
namespace bconv {

void setup_packed(Shared& s, const BinaryConvParams& p, const uint32_t* xw,
                  const uint32_t* wpacked, PopcountIsa isa, PackedInput& in) {
  check_params(p);
  if (p.activation != BinaryActivation::Spike)
    throw std::invalid_argument("binary_conv2d (packed input): activation must be spike");
  if (!popcount_isa_supported(isa))
    throw std::invalid_argument("binary_conv2d: popcount ISA not supported by this CPU");
  s.p = &p;
  s.L = make_layout(p);
  const Layout& L = s.L;
  const bool border = p.pad_h > 0 || p.pad_w > 0;
  if (border) in.bordered.assign(size_t(p.N * L.Hp * L.Wp * L.pixel), 0u);
  in.pixpop.assign(size_t(p.N * L.Hp * L.Wp), 0);
  uint32_t* img = border ? in.bordered.data() : nullptr;
#pragma omp parallel for schedule(static) if (p.N * p.H * p.W * L.pixel > (1 << 16))
  for (int64_t row = 0; row < p.N * p.H; ++row) {
    const int64_t n = row / p.H, y = row % p.H;
    const int64_t first = (n * L.Hp + y + p.pad_h) * L.Wp + p.pad_w;  // padded pixel index
    const uint32_t* src = xw + row * p.W * L.pixel;
    if (border) std::memcpy(img + first * L.pixel, src, size_t(p.W * L.pixel) * 4);
    for (int64_t ix = 0; ix < p.W; ++ix) {
      int32_t pop = 0;
      for (int b = 0; b < p.bits; ++b)
        for (int64_t w = 0; w < L.W32; ++w)
          pop += popcount32(src[ix * L.pixel + b * L.W32 + w]) << b;
      in.pixpop[size_t(first + ix)] = pop;
    }
  }
  s.img = border ? img : xw;
  s.pixpop = in.pixpop.data();
  plan_gather(s, wpacked, isa);
}

void init_buffers(const Shared& s, TileBuffers& tb) {
  tb.xt.resize(size_t(s.p->bits * s.L.K64 * kTile));
  tb.acc.resize(size_t(s.wts.nr * kTile));
  tb.offset.resize(size_t(kTile));
  tb.origin.resize(size_t(kTile));
}

void run_block(const Shared& s, int64_t blk, TileBuffers& tb) {
  const size_t woff = size_t(blk * s.L.K64 * s.wts.nr);
  const uint64_t* w2 = s.wts.w2.empty() ? nullptr : s.wts.w2.data() + woff;
  for (int b = 0; b < s.p->bits; ++b)
    s.kernel(tb.xt.data() + b * s.L.K64 * kTile, s.wts.w.data() + woff, w2, s.L.K64, b, b > 0,
             tb.acc.data());
}

// dst[q] = float(2 S[q] + offset[q]) * a + c: two roundings (no FMA: -ffp-contract=off).
FASTSNN_BCONV_CLONES
static void current_row(const int64_t* S, const int64_t* offset, int64_t count, float a,
                        float c, float* dst) {
  for (int64_t q = 0; q < count; ++q) dst[q] = float(int32_t(2 * S[q] + offset[q])) * a + c;
}

void store_current(const Shared& s, int64_t count, int64_t blk, const TileBuffers& tb,
                   const float* scale, const float* bias, float* dst, int64_t dst_stride) {
  const int nr = s.wts.nr;
  for (int j = 0; j < nr; ++j) {
    const int64_t o = blk * nr + j;
    if (o >= s.p->Cout) break;
    current_row(tb.acc.data() + j * kTile, tb.offset.data(), count, scale ? scale[o] : 1.f,
                bias ? bias[o] : 0.f, dst + j * dst_stride);
  }
}

std::pair<int64_t, int64_t> channel_groups(const Shared& s, int64_t tiles, int64_t align) {
#if defined(_OPENMP)
  const int64_t threads = omp_get_max_threads();
#else
  const int64_t threads = 1;
#endif
  const int64_t blocks = s.wts.blocks;
  const int64_t want = std::clamp<int64_t>((4 * threads + tiles - 1) / tiles, 1, blocks);
  int64_t per_group = (blocks + want - 1) / want;
  per_group = (per_group + align - 1) / align * align;
  return {(blocks + per_group - 1) / per_group, per_group};
}

}  // namespace bconv

using namespace bconv;

void binary_conv2d_forward_packed(const BinaryConvParams& p, const uint32_t* xw,
                                  const uint32_t* wpacked, const float* scale,
                                  const float* bias, float* out, PopcountIsa isa) {
  if (p.N == 0 || p.Cout == 0) return;
  Shared s;
  PackedInput in;
  setup_packed(s, p, xw, wpacked, isa, in);
  const Layout& L = s.L;
  const int64_t tiles_per_image = (L.HWo + kTile - 1) / kTile, tiles = p.N * tiles_per_image;
  const auto [groups, per_group] = channel_groups(s, tiles, 1);
  const int64_t work = p.N * L.HWo * p.Cout * p.bits * L.K64;
#pragma omp parallel if (work > (1 << 16))
  {
    TileBuffers tb;
    init_buffers(s, tb);
#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < tiles * groups; ++task) {
      const int64_t tile = task / groups, group = task % groups;
      const int64_t n = tile / tiles_per_image, pix0 = (tile % tiles_per_image) * kTile;
      const int64_t count = std::min(kTile, L.HWo - pix0);
      gather_tile(s, n, pix0, count, tb);
      const int64_t blk_end = std::min(s.wts.blocks, (group + 1) * per_group);
      for (int64_t blk = group * per_group; blk < blk_end; ++blk) {
        run_block(s, blk, tb);
        store_current(s, count, blk, tb, scale, bias,
                      out + (n * p.Cout + blk * s.wts.nr) * L.HWo + pix0, L.HWo);
      }
    }
  }
}

}  // namespace fastsnn::cpu
