// binary_conv2d CPU kernel: step 2, the three popcount micro-kernels (AVX-512 VPOPCNTDQ, AVX2
// nibble table, portable) (overview in binary_conv.cpp).
#include <algorithm>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include "cpu/binary_conv_parts.h"

namespace fastsnn::cpu::bconv {

void tile_portable(const uint64_t* xt, const uint64_t* w, const uint64_t*, int64_t K,
                   int shift, bool accumulate, int64_t* acc) {
  constexpr int NR = 8;
  for (int j = 0; j < NR; ++j) {
    int64_t sum[kTile] = {};
    for (int64_t k = 0; k < K; ++k) {
      const uint64_t wk = w[k * NR + j];
      const uint64_t* row = xt + k * kTile;
      for (int64_t q = 0; q < kTile; ++q) sum[q] += __builtin_popcountll(row[q] & wk);
    }
    for (int64_t q = 0; q < kTile; ++q)
      acc[j * kTile + q] = (accumulate ? acc[j * kTile + q] : 0) + (sum[q] << shift);
  }
}

#if defined(FASTSNN_BCONV_X86)

// 8 channels x 16 pixels in 16 zmm accumulators: per 64-bit word of the im2col row, 2 loads
// of pixels, 8 broadcast weights, 16 AND + VPOPCNTQ + ADD.
__attribute__((target("avx512f,avx512vpopcntdq"))) void tile_avx512(
    const uint64_t* xt, const uint64_t* w, const uint64_t*, int64_t K, int shift,
    bool accumulate, int64_t* acc) {
  constexpr int NR = 8, MV = 2;
  const __m512i sh = _mm512_set1_epi64(shift);
  for (int64_t q0 = 0; q0 < kTile; q0 += 8 * MV) {
    __m512i a[MV][NR];
#pragma GCC unroll 16
    for (int v = 0; v < MV; ++v)
#pragma GCC unroll 16
      for (int j = 0; j < NR; ++j) a[v][j] = _mm512_setzero_si512();
    for (int64_t k = 0; k < K; ++k) {
      const uint64_t* row = xt + k * kTile + q0;
      __m512i xv[MV];
#pragma GCC unroll 16
      for (int v = 0; v < MV; ++v) xv[v] = _mm512_loadu_si512(row + 8 * v);
#pragma GCC unroll 16
      for (int j = 0; j < NR; ++j) {
        const __m512i wj = _mm512_set1_epi64(int64_t(w[k * NR + j]));
#pragma GCC unroll 16
        for (int v = 0; v < MV; ++v)
          a[v][j] = _mm512_add_epi64(a[v][j], _mm512_popcnt_epi64(_mm512_and_si512(xv[v], wj)));
      }
    }
#pragma GCC unroll 16
    for (int v = 0; v < MV; ++v)
#pragma GCC unroll 16
      for (int j = 0; j < NR; ++j) {
        int64_t* dst = acc + j * kTile + q0 + 8 * v;
        const __m512i sum = _mm512_maskz_sllv_epi64(__mmask8(0xff), a[v][j], sh);
        _mm512_storeu_si512(dst, accumulate ? _mm512_add_epi64(_mm512_loadu_si512(dst), sum)
                                            : sum);
      }
  }
}

// 4 channels x 8 pixels: popcount by nibble table (vpshufb) into byte counters, which hold
// at most 31 words (31 * 8 <= 255) before vpsadbw folds them into the 64-bit sums. The
// weights arrive split into low / high nibbles (w, w2), so a pixel vector is split once.
__attribute__((target("avx2"))) void tile_avx2(const uint64_t* xt, const uint64_t* w,
                                               const uint64_t* w2, int64_t K, int shift,
                                               bool accumulate, int64_t* acc) {
  constexpr int NR = 4, MV = 2;
  constexpr int64_t kChunk = 31;
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1,
                                       2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i nib = _mm256_set1_epi8(0x0f), zero = _mm256_setzero_si256();
  const __m128i sh = _mm_cvtsi32_si128(shift);
  for (int64_t q0 = 0; q0 < kTile; q0 += 4 * MV) {
    for (int64_t k0 = 0; k0 < K; k0 += kChunk) {
      __m256i a[MV][NR];
#pragma GCC unroll 16
      for (int v = 0; v < MV; ++v)
#pragma GCC unroll 16
        for (int j = 0; j < NR; ++j) a[v][j] = zero;
      const int64_t k1 = std::min(K, k0 + kChunk);
      for (int64_t k = k0; k < k1; ++k) {
        const uint64_t* row = xt + k * kTile + q0;
        __m256i lo[MV], hi[MV];
#pragma GCC unroll 16
        for (int v = 0; v < MV; ++v) {
          const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 4 * v));
          lo[v] = _mm256_and_si256(xv, nib);
          hi[v] = _mm256_and_si256(_mm256_srli_epi16(xv, 4), nib);
        }
#pragma GCC unroll 16
        for (int j = 0; j < NR; ++j) {
          const __m256i wl = _mm256_set1_epi64x(int64_t(w[k * NR + j]));
          const __m256i wh = _mm256_set1_epi64x(int64_t(w2[k * NR + j]));
#pragma GCC unroll 16
          for (int v = 0; v < MV; ++v) {
            const __m256i c =
                _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_and_si256(lo[v], wl)),
                                _mm256_shuffle_epi8(lut, _mm256_and_si256(hi[v], wh)));
            a[v][j] = _mm256_add_epi8(a[v][j], c);
          }
        }
      }
#pragma GCC unroll 16
      for (int v = 0; v < MV; ++v)
#pragma GCC unroll 16
        for (int j = 0; j < NR; ++j) {
          auto* dst = reinterpret_cast<__m256i*>(acc + j * kTile + q0 + 4 * v);
          const __m256i s = _mm256_sll_epi64(_mm256_sad_epu8(a[v][j], zero), sh);
          const bool add = accumulate || k0 > 0;
          _mm256_storeu_si256(dst, add ? _mm256_add_epi64(_mm256_loadu_si256(dst), s) : s);
        }
    }
  }
}

#endif  // FASTSNN_BCONV_X86

TileKernel tile_kernel(PopcountIsa isa) {
#if defined(FASTSNN_BCONV_X86)
  if (isa == PopcountIsa::Avx512) return tile_avx512;
  if (isa == PopcountIsa::Avx2) return tile_avx2;
#endif
  return tile_portable;
}

}  // namespace fastsnn::cpu::bconv
