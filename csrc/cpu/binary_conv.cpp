// binary_conv2d CPU kernel (declared in cpu/binary_conv.h; math in docs/binary_conv.md and
// fastsnn/reference/binary_conv.py).
//
// Bit-packed implicit GEMM in three steps per call:
//  1. pack: x [N, Cin, H, W] -> a zero-bordered image of 32-bit words, [N, Hp, Wp, bits, W32]
//     (W32 = ceil(Cin/32); bit i of word w of plane b = bit b of channel 32w+i), plus each
//     pixel's popcount (spike: sum_b 2^b popc(x_b); sign: popc). The border is the conv's
//     zero padding: all-zero words, so the inner loop needs no bounds checks.
//  2. per tile of kTile output pixels of one image (OpenMP over tiles x groups of output
//     channels): gather the im2col rows of the tile from the packed image, already as bits
//     (the words of the KH*KW taps of one pixel concatenated, 32-bit units paired into 64-bit
//     words, stored k-major: xt[plane][k][pixel]); then the popcount micro-kernel computes
//     S[o][q] = sum_b 2^b popc(xt_b[.][q] & w[o][.]) for NR output channels at a time.
//  3. epilogue: the integer dot from S (and the per-pixel / per-tap corrections), then
//     out = alpha * dot + bias, written NCHW.
//
// Both activations use the same AND-popcount (with a = bits of x, b = sign bits of W):
//   spike: dot = sum_b 2^b (2 popc(x_b & w) - popc(x_b))                = 2 S - X
//   sign:  dot = sum_valid (2a-1)(2b-1) = 4 popc(a & w) - 2 popc(a) - 2 popc(w over valid taps)
//              + Cin * (valid taps)  -- equal to the contract's 2 popc(XNOR & valid) - n.
// popc(w over valid taps) comes from per-output-channel 2-D prefix sums of the weight popcounts
// over the kernel window: the valid taps of a pixel form a rectangle.
//
// Files: binary_conv_isa.cpp (which micro-kernel), binary_conv_input.cpp (geometry, step 1),
// binary_conv_weights.cpp, binary_conv_tiles.cpp (step 2's micro-kernels),
// binary_conv_gather.cpp (step 2's gather, step 3); this file drives one call.
//
// Operation floor (see bench/bench_binary_conv.py): N*Hout*Wout*Cout*bits*ceil(KK*W32/2)
// 64-bit AND+popcount+add; x is read once (4 B per element), out written once.
#include "cpu/binary_conv.h"

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "cpu/binary_conv_parts.h"

namespace fastsnn::cpu {

using namespace bconv;

void bconv::plan_gather(Shared& s, const uint32_t* wpacked, PopcountIsa isa) {
  const BinaryConvParams& p = *s.p;
  const Layout& L = s.L;
  s.wts = pack_weights(p, L, wpacked, isa);
  s.kernel = tile_kernel(isa);
  for (int64_t ky = 0; ky < p.KH; ++ky)
    for (int64_t kx = 0; kx < p.KW; ++kx) s.taps.push_back(ky * p.dil_h * L.Wp + kx * p.dil_w);
  // im2col unit u = (tap u / W32, word u % W32); 64-bit word k pairs units 2k and 2k+1.
  auto unit = [&](int64_t u) { return s.taps[size_t(u / L.W32)] * L.pixel + u % L.W32; };
  for (int64_t k = 0; k < L.K64; ++k) {
    s.unit_lo.push_back(unit(2 * k));
    s.unit_hi.push_back(2 * k + 1 < L.K32 ? unit(2 * k + 1) : -1);
  }
}

void binary_conv2d_forward(const BinaryConvParams& p, const float* x, const uint32_t* wpacked,
                           const float* alpha, const float* bias, float* out, PopcountIsa isa) {
  check_params(p);
  if (!popcount_isa_supported(isa))
    throw std::invalid_argument("binary_conv2d: popcount ISA not supported by this CPU");
  if (p.N == 0 || p.Cout == 0) return;
  Shared s;
  s.p = &p;
  s.L = make_layout(p);
  const Layout& L = s.L;
  std::vector<uint32_t> img(size_t(p.N * L.Hp * L.Wp * L.pixel), 0u);
  std::vector<int32_t> pixpop(size_t(p.N * L.Hp * L.Wp), 0);
  const PackTasks pt = pack_tasks(p);
  s.img = img.data();
  s.pixpop = pixpop.data();
  plan_gather(s, wpacked, isa);
  const bool sign = p.activation == BinaryActivation::Sign;
  if (sign) {
    s.rows = tap_ranges(p.Hout, p.H, p.KH, p.stride_h, p.pad_h, p.dil_h);
    s.cols = tap_ranges(p.Wout, p.W, p.KW, p.stride_w, p.pad_w, p.dil_w);
  }
  // Tasks: (image, pixel tile) x group of channel blocks; enough groups to feed every thread
  // when there are few tiles (each group gathers its tile itself: cheap next to the GEMM).
  const int64_t tiles_per_image = (L.HWo + kTile - 1) / kTile, tiles = p.N * tiles_per_image;
#if defined(_OPENMP)
  const int64_t threads = omp_get_max_threads();
#else
  const int64_t threads = 1;
#endif
  const int64_t groups = std::clamp<int64_t>((4 * threads + tiles - 1) / tiles, 1, s.wts.blocks);
  const int64_t per_group = (s.wts.blocks + groups - 1) / groups;
  const int64_t work = p.N * L.HWo * p.Cout * p.bits * L.K64;
  const int nr = s.wts.nr;
  // One parallel region and no barrier between packing and the GEMM: a thread done with
  // packing goes on to the tiles (image by image, in order) and only waits for an image
  // whose last rows another thread is still packing. Every packing task is then already
  // running, so the wait ends; on a busy machine no thread spins at a barrier for one that
  // lost its core.
  std::vector<std::atomic<int64_t>> packed(size_t(p.N));
#pragma omp parallel if (work > (1 << 16))
  {
    std::vector<uint32_t> planes(size_t(p.bits * pt.rows * p.W));
#pragma omp for schedule(dynamic) nowait
    for (int64_t t = 0; t < p.N * pt.per_image; ++t) {
      const int64_t n = t / pt.per_image, y0 = (t % pt.per_image) * pt.rows;
      pack_rows(p, L, x, n, y0, std::min(pt.rows, p.H - y0), planes.data(), img.data(),
                pixpop.data());
      packed[size_t(n)].fetch_add(1, std::memory_order_release);
    }
    TileBuffers tb;
    tb.xt.resize(size_t(p.bits * L.K64 * kTile));
    tb.acc.resize(size_t(nr * kTile));
    tb.offset.resize(size_t(kTile));
    tb.origin.resize(size_t(kTile));
    if (sign) {
      tb.corner.resize(size_t(4 * kTile));
      tb.scratch.resize(size_t(kTile));
    }
#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < tiles * groups; ++task) {
      const int64_t tile = task / groups, group = task % groups;
      const int64_t n = tile / tiles_per_image, pix0 = (tile % tiles_per_image) * kTile;
      const int64_t count = std::min(kTile, L.HWo - pix0);
      while (packed[size_t(n)].load(std::memory_order_acquire) < pt.per_image)
        std::this_thread::yield();
      gather_tile(s, n, pix0, count, tb);
      const int64_t blk_end = std::min(s.wts.blocks, (group + 1) * per_group);
      for (int64_t blk = group * per_group; blk < blk_end; ++blk) {
        const size_t woff = size_t(blk * L.K64 * nr);
        const uint64_t* w2 = s.wts.w2.empty() ? nullptr : s.wts.w2.data() + woff;
        for (int b = 0; b < p.bits; ++b)
          s.kernel(tb.xt.data() + b * L.K64 * kTile, s.wts.w.data() + woff, w2, L.K64, b,
                   b > 0, tb.acc.data());
        epilogue(s, n, pix0, count, blk, tb, alpha, bias, out);
      }
    }
  }
}

}  // namespace fastsnn::cpu
