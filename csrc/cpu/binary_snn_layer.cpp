// binary_snn_layer CPU kernel (declared in cpu/packed_spikes.h; contract in
// fastsnn/ops/binary_snn_layer.py): popcount conv for all T, per-channel affine, MT-LIF over
// T in the epilogue, packed spikes out. No float tensor of the layer's size is materialised.
//
// A task is (image nb, tile of kTile output pixels, group of output channels, a multiple of
// 32 so the task is the only writer of its output words). For each t it gathers the tile of
// image (t, nb) and runs the popcount micro-kernels of binary_conv2d for its channels, keeping
// the currents float32(dot) * scale + bias in a per-thread buffer [T][channels][kTile]; then
// each channel's kTile pixels run the LIF over all T at once (lanes = pixels, the arithmetic
// of cpu/mt_lif_step.h), 32 channels at a time, their bits gathered into whole output words.
#include <algorithm>
#include <vector>

#include "cpu/binary_conv_packed_parts.h"
#include "cpu/mt_lif_step.h"  // kLanes
#include "cpu/packed_lif.h"
#include "cpu/packed_spikes.h"

namespace fastsnn::cpu {

using namespace bconv;

void binary_snn_layer_forward(const BinaryConvParams& p, const MtLifParams& lif,
                              const uint32_t* xw, const uint32_t* wpacked, const float* scale,
                              const float* bias, const float* decay, uint32_t* out,
                              PopcountIsa isa) {
  if (p.N == 0 || p.Cout == 0 || lif.T == 0) return;
  const int64_t T = lif.T, Nb = p.N / T;
  Shared s;
  PackedInput in;
  setup_packed(s, p, xw, wpacked, isa, in);
  const Layout& L = s.L;
  const int nr = s.wts.nr;
  const int64_t tiles_per_image = (L.HWo + kTile - 1) / kTile, tiles = Nb * tiles_per_image;
  const auto [groups, per_group] = channel_groups(s, tiles, 32 / nr);
  const int64_t gch = per_group * nr;  // channels of a group: a multiple of 32
  const int bits_out = 32 - __builtin_clz(uint32_t(lif.levels));
  const int64_t W32o = (p.Cout + 31) / 32, pixel_out = bits_out * W32o;
  const int64_t work = p.N * L.HWo * p.Cout * p.bits * L.K64;
#pragma omp parallel if (work > (1 << 16))
  {
    TileBuffers tb;
    init_buffers(s, tb);
    std::vector<float> cur(size_t(T * gch * kTile));
    // lif_pack_word's scratch: T * bits words per lane of its tile (kLanes >= kTile).
    static_assert(kTile <= kLanes, "a conv tile's pixels are one LIF tile's lanes");
    std::vector<uint32_t> scratch(size_t(T * bits_out * kLanes));
#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < tiles * groups; ++task) {
      const int64_t tile = task / groups, group = task % groups;
      const int64_t nb = tile / tiles_per_image, pix0 = (tile % tiles_per_image) * kTile;
      const int64_t count = std::min(kTile, L.HWo - pix0);
      const int64_t blk0 = group * per_group;
      const int64_t blk_end = std::min(s.wts.blocks, blk0 + per_group);
      for (int64_t t = 0; t < T; ++t) {
        gather_tile(s, t * Nb + nb, pix0, count, tb);
        for (int64_t blk = blk0; blk < blk_end; ++blk) {
          run_block(s, blk, tb);
          store_current(s, count, blk, tb, scale, bias,
                        cur.data() + (t * gch + (blk - blk0) * nr) * kTile, kTile);
        }
      }
      const int64_t o_end = std::min(p.Cout, blk_end * nr);
      for (int64_t o = blk0 * nr; o < o_end; o += 32) {  // one output word at a time
        const packed::PackedOut po{out + (nb * L.HWo + pix0) * pixel_out + o / 32,
                                   Nb * L.HWo * pixel_out, pixel_out, W32o, bits_out};
        packed::lif_pack_word(lif, decay, o, std::min<int64_t>(32, o_end - o),
                              cur.data() + (o - blk0 * nr) * kTile, kTile, gch * kTile, count,
                              scratch.data(), po);
      }
    }
  }
}

}  // namespace fastsnn::cpu
