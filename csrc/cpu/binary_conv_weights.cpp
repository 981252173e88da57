// binary_conv2d CPU kernel: the packed weights in micro-kernel order (and the sign mode's
// tap-popcount prefix sums) (overview in binary_conv.cpp).
#include "cpu/binary_conv_parts.h"

namespace fastsnn::cpu::bconv {

// The contract's [Cout, KK, W32] is, per output channel, the im2col row's K32 units in the
// order the gather produces them; 64-bit word k = unit 2k | unit 2k+1 << 32.
uint64_t weight_word(const uint32_t* row, int64_t K32, int64_t k) {
  const uint64_t lo = row[2 * k];
  const uint64_t hi = 2 * k + 1 < K32 ? row[2 * k + 1] : 0u;
  return lo | hi << 32;
}

// Bits of word w that hold channels (the contract leaves the rest 0; the AND-popcount
// ignores them anyway, since x's unused bits are 0).
uint32_t channel_mask(const BinaryConvParams& p, int64_t w) {
  const int64_t left = p.Cin - 32 * w;
  return left >= 32 ? ~0u : (1u << left) - 1u;
}

int kernel_channels(PopcountIsa isa) { return isa == PopcountIsa::Avx2 ? 4 : 8; }

Weights pack_weights(const BinaryConvParams& p, const Layout& L, const uint32_t* wpacked,
                     PopcountIsa isa) {
  Weights r;
  r.nr = kernel_channels(isa);
  r.blocks = (p.Cout + r.nr - 1) / r.nr;
  r.w.assign(size_t(r.blocks * L.K64 * r.nr), 0u);
  for (int64_t o = 0; o < p.Cout; ++o) {
    const int64_t blk = o / r.nr, j = o % r.nr;
    for (int64_t k = 0; k < L.K64; ++k)
      r.w[size_t((blk * L.K64 + k) * r.nr + j)] = weight_word(wpacked + o * L.K32, L.K32, k);
  }
  if (isa == PopcountIsa::Avx2) {  // the nibble-table popcount wants both nibbles at bit 0
    r.w2.resize(r.w.size());
    for (size_t i = 0; i < r.w.size(); ++i) {
      r.w2[i] = (r.w[i] >> 4) & 0x0f0f0f0f0f0f0f0full;
      r.w[i] &= 0x0f0f0f0f0f0f0f0full;
    }
  }
  if (p.activation == BinaryActivation::Sign) {
    const int64_t stride = p.KW + 1, table = (p.KH + 1) * stride;
    r.prefix.assign(size_t(p.Cout * table), 0);
    for (int64_t o = 0; o < p.Cout; ++o) {
      int32_t* t = r.prefix.data() + o * table;
      for (int64_t ky = 0; ky < p.KH; ++ky)
        for (int64_t kx = 0; kx < p.KW; ++kx) {
          const uint32_t* tap = wpacked + (o * L.KK + ky * p.KW + kx) * L.W32;
          int32_t pop = 0;  // only real channels count, whatever the unused bits hold
          for (int64_t w = 0; w < L.W32; ++w) pop += popcount32(tap[w] & channel_mask(p, w));
          t[(ky + 1) * stride + kx + 1] =
              pop + t[ky * stride + kx + 1] + t[(ky + 1) * stride + kx] - t[ky * stride + kx];
        }
    }
  }
  return r;
}

}  // namespace fastsnn::cpu::bconv
