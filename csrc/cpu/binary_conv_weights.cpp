// binary_conv2d CPU kernel: the packed weights in micro-kernel order (and the sign mode's
// tap-popcount prefix sums) (overview in binary_conv.cpp), and the contract's wpacked from a
// float weight (binary_pack_weight, declared in cpu/binary_conv.h).
#include <algorithm>
#include <type_traits>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include "cpu/binary_conv_parts.h"

namespace fastsnn::cpu {
namespace {

// One output channel, any CPU: channel-major pass over w[Cin][KK] (contiguous reads), one
// word per tap accumulated at a time. `>= 0` is false for NaN, as in the reference.
template <class T>
void pack_channel_portable(const T* w, int64_t Cin, int64_t KK, uint32_t* out,
                           std::vector<uint32_t>& acc) {
  const int64_t W32 = (Cin + 31) / 32;
  acc.resize(size_t(KK));
  for (int64_t wd = 0; wd < W32; ++wd) {
    std::fill(acc.begin(), acc.end(), 0u);
    const int64_t cn = std::min<int64_t>(32, Cin - 32 * wd);
    for (int64_t i = 0; i < cn; ++i) {
      const T* row = w + (32 * wd + i) * KK;
      for (int64_t t = 0; t < KK; ++t) acc[size_t(t)] |= uint32_t(row[t] >= T(0)) << i;
    }
    for (int64_t t = 0; t < KK; ++t) out[t * W32 + wd] = acc[size_t(t)];
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
// One output channel with AVX2: 8 channels of one tap per gather (stride KK), compared and
// turned into 8 bits by movemask; four make a word.
__attribute__((target("avx2"))) void pack_channel_avx2(const float* w, int64_t Cin, int64_t KK,
                                                       uint32_t* out) {
  const int64_t W32 = (Cin + 31) / 32;
  const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                         _mm256_set1_epi32(int32_t(KK)));
  const __m256 zero = _mm256_setzero_ps();
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t wd = 0; wd < W32; ++wd) {
    const int64_t cn = std::min<int64_t>(32, Cin - 32 * wd);
    const float* base = w + 32 * wd * KK;
    for (int64_t t = 0; t < KK; ++t) {
      uint32_t word = 0;
      for (int64_t g = 0; g < cn; g += 8) {  // lanes past cn: masked off, bits 0
        const __m256 live =
            _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(int32_t(cn - g)), lane));
        const __m256 v = _mm256_mask_i32gather_ps(zero, base + g * KK + t, idx, live, 4);
        const __m256 ge = _mm256_and_ps(_mm256_cmp_ps(v, zero, _CMP_GE_OQ), live);
        word |= uint32_t(_mm256_movemask_ps(ge)) << g;
      }
      out[t * W32 + wd] = word;
    }
  }
}
#endif

template <class T>
void pack_weight_any(const T* weight, int64_t Cout, int64_t Cin, int64_t KK, uint32_t* out,
                     PopcountIsa isa) {
  const int64_t W32 = (Cin + 31) / 32;
  // The AVX2 and AVX-512 ISAs of the popcount kernels both include avx2; the gather indices
  // (8 * KK) are int32.
  const bool wide = isa != PopcountIsa::Portable && KK < (int64_t(1) << 27);
#pragma omp parallel if (Cout * Cin * KK > (1 << 15))
  {
    std::vector<uint32_t> acc;
#pragma omp for schedule(static)
    for (int64_t o = 0; o < Cout; ++o) {
      const T* w = weight + o * Cin * KK;
      uint32_t* dst = out + o * KK * W32;
#if defined(__x86_64__) && defined(__GNUC__)
      if constexpr (std::is_same_v<T, float>) {
        if (wide) {
          pack_channel_avx2(w, Cin, KK, dst);
          continue;
        }
      }
#endif
      pack_channel_portable(w, Cin, KK, dst, acc);
    }
  }
}

}  // namespace

void binary_pack_weight(const float* weight, int64_t Cout, int64_t Cin, int64_t KK,
                        uint32_t* out, PopcountIsa isa) {
  pack_weight_any(weight, Cout, Cin, KK, out, isa);
}

void binary_pack_weight(const double* weight, int64_t Cout, int64_t Cin, int64_t KK,
                        uint32_t* out, PopcountIsa isa) {
  pack_weight_any(weight, Cout, Cin, KK, out, isa);
}

}  // namespace fastsnn::cpu

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
