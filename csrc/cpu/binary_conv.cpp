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
// Operation floor (see bench/bench_binary_conv.py): N*Hout*Wout*Cout*bits*ceil(KK*W32/2)
// 64-bit AND+popcount+add; x is read once (4 B per element), out written once.
#include "cpu/binary_conv.h"

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#define FASTSNN_BCONV_X86 1
#include <immintrin.h>
#endif

#if defined(FASTSNN_BCONV_X86) && !defined(__clang__) && !defined(FASTSNN_NO_CLONES)
#define FASTSNN_BCONV_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FASTSNN_BCONV_CLONES
#endif

namespace fastsnn::cpu {

// ---------------------------------------------------------------- ISA selection

const char* popcount_isa_name(PopcountIsa isa) {
  switch (isa) {
    case PopcountIsa::Avx512: return "avx512";
    case PopcountIsa::Avx2: return "avx2";
    default: return "portable";
  }
}

bool popcount_isa_supported(PopcountIsa isa) {
  switch (isa) {
#if defined(FASTSNN_BCONV_X86)
    case PopcountIsa::Avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq");
    case PopcountIsa::Avx2: return __builtin_cpu_supports("avx2");
#endif
    case PopcountIsa::Portable: return true;
    default: return false;
  }
}

std::vector<PopcountIsa> supported_popcount_isas() {
  std::vector<PopcountIsa> out;
  for (PopcountIsa isa : {PopcountIsa::Avx512, PopcountIsa::Avx2, PopcountIsa::Portable})
    if (popcount_isa_supported(isa)) out.push_back(isa);
  return out;
}

bool select_popcount_isa(const char* request, PopcountIsa* isa, std::string* error) {
  const std::string name = request ? request : "";
  if (name.empty() || name == "auto") {
    *isa = supported_popcount_isas().front();
    return true;
  }
  for (PopcountIsa cand : {PopcountIsa::Avx512, PopcountIsa::Avx2, PopcountIsa::Portable}) {
    if (name != popcount_isa_name(cand)) continue;
    if (!popcount_isa_supported(cand)) {
      *error = "FASTSNN_CPU_ISA=" + name + ": this CPU does not support it";
      return false;
    }
    *isa = cand;
    return true;
  }
  *error = "FASTSNN_CPU_ISA must be avx512, avx2, portable or auto; got '" + name + "'";
  return false;
}

namespace {

constexpr int64_t kTile = 64;  // output pixels per tile: a multiple of every kernel's width

struct Layout {
  int64_t W32 = 0;     // 32-bit words per pixel and plane
  int64_t KK = 0;      // taps
  int64_t K32 = 0;     // 32-bit units of one im2col row and plane: KK * W32
  int64_t K64 = 0;     // 64-bit words of one im2col row and plane
  int64_t Hp = 0, Wp = 0, HWo = 0;
  int64_t pixel = 0;   // words per packed-image pixel: bits * W32
};

Layout make_layout(const BinaryConvParams& p) {
  Layout L;
  L.W32 = p.words();
  L.KK = p.KH * p.KW;
  L.K32 = L.KK * L.W32;
  L.K64 = (L.K32 + 1) / 2;
  L.Hp = p.H + 2 * p.pad_h;
  L.Wp = p.W + 2 * p.pad_w;
  L.HWo = p.Hout * p.Wout;
  L.pixel = p.bits * L.W32;
  return L;
}

void check_params(const BinaryConvParams& p) {
  const bool ok = p.N >= 0 && p.Cin >= 1 && p.H >= 1 && p.W >= 1 && p.Cout >= 0 &&
                  p.KH >= 1 && p.KW >= 1 && p.stride_h >= 1 && p.stride_w >= 1 &&
                  p.pad_h >= 0 && p.pad_w >= 0 && p.dil_h >= 1 && p.dil_w >= 1 &&
                  p.bits >= 1 && p.bits <= 8 &&
                  (p.activation == BinaryActivation::Spike || p.bits == 1) &&
                  p.Hout == (p.H + 2 * p.pad_h - p.dil_h * (p.KH - 1) - 1) / p.stride_h + 1 &&
                  p.Wout == (p.W + 2 * p.pad_w - p.dil_w * (p.KW - 1) - 1) / p.stride_w + 1 &&
                  p.H + 2 * p.pad_h >= p.dil_h * (p.KH - 1) + 1 &&
                  p.W + 2 * p.pad_w >= p.dil_w * (p.KW - 1) + 1 && p.Hout >= 1 && p.Wout >= 1 &&
                  // the dot must fit int32 (and is float-exact only below 2^24 anyway)
                  ((int64_t(1) << p.bits) - 1) * p.Cin * p.KH * p.KW < (int64_t(1) << 31);
  if (!ok) throw std::invalid_argument("binary_conv2d: inconsistent BinaryConvParams");
}

// ---------------------------------------------------------------- 1. packing the input

// Bit count without libgcc's call (the baseline ISA has no popcnt instruction).
inline int popcount32(uint32_t v) {
  v = v - ((v >> 1) & 0x55555555u);
  v = (v & 0x33333333u) + ((v >> 2) & 0x33333333u);
  return int((((v + (v >> 4)) & 0x0f0f0f0fu) * 0x01010101u) >> 24);
}

// dst[i] |= bit(src[i]) << c over one channel plane; cloned per ISA so it vectorises wide.
FASTSNN_BCONV_CLONES
void or_sign_bits(const float* src, int64_t n, int c, uint32_t* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] |= uint32_t(src[i] > 0.f) << c;
}

// Bit b of the spike value; the clamp keeps float->int defined for any input (garbage in,
// garbage out, never undefined behaviour): values are valid per the contract.
FASTSNN_BCONV_CLONES
void or_spike_bits(const float* src, int64_t n, int c, int b, uint32_t* dst) {
  for (int64_t i = 0; i < n; ++i) {
    float f = src[i];
    f = f > 0.f ? f : 0.f;
    f = f < 255.f ? f : 255.f;
    dst[i] |= ((uint32_t(int32_t(f)) >> b) & 1u) << c;
  }
}

// Packing is split into tasks of whole rows of one image (all channels), so that each task
// also finishes its pixels' popcounts (no second pass over the packed image).
struct PackTasks {
  int64_t rows = 1, per_image = 1;  // rows per task, tasks per image
};

PackTasks pack_tasks(const BinaryConvParams& p) {
  PackTasks t;
  t.rows = std::min<int64_t>(p.H, std::max<int64_t>(1, 256 / p.W));  // ~256 floats per pass
  t.per_image = (p.H + t.rows - 1) / t.rows;
  return t;
}

// Packs rows [y0, y0 + rows) of image n. img [N, Hp, Wp, bits, W32] and pixpop [N, Hp, Wp]
// are zero on entry (the border stays zero); planes holds bits * rows * W words.
void pack_rows(const BinaryConvParams& p, const Layout& L, const float* x, int64_t n,
               int64_t y0, int64_t rows, uint32_t* planes, uint32_t* img, int32_t* pixpop) {
  const int64_t len = rows * p.W;
  const bool sign = p.activation == BinaryActivation::Sign;
  for (int64_t w = 0; w < L.W32; ++w) {
    const int64_t c0 = 32 * w;
    const int cn = int(std::min<int64_t>(32, p.Cin - c0));
    std::fill(planes, planes + p.bits * len, 0u);
    for (int c = 0; c < cn; ++c) {
      const float* src = x + ((n * p.Cin + c0 + c) * p.H + y0) * p.W;
      if (sign) {
        or_sign_bits(src, len, c, planes);
      } else {
        for (int b = 0; b < p.bits; ++b) or_spike_bits(src, len, c, b, planes + b * len);
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t row = (n * L.Hp + y0 + r + p.pad_h) * L.Wp + p.pad_w;  // first pixel
      for (int64_t ix = 0; ix < p.W; ++ix) {
        const int64_t i = r * p.W + ix;
        uint32_t* dst = img + (row + ix) * L.pixel + w;
        int32_t pop = 0;
        for (int b = 0; b < p.bits; ++b) {
          dst[b * L.W32] = planes[b * len + i];
          pop += popcount32(planes[b * len + i]) << b;
        }
        pixpop[row + ix] += pop;
      }
    }
  }
}

// ---------------------------------------------------------------- weights

// The contract's [Cout, KK, W32] is, per output channel, the im2col row's K32 units in the
// order the gather produces them; 64-bit word k = unit 2k | unit 2k+1 << 32.
uint64_t weight_word(const uint32_t* row, int64_t K32, int64_t k) {
  const uint64_t lo = row[2 * k];
  const uint64_t hi = 2 * k + 1 < K32 ? row[2 * k + 1] : 0u;
  return lo | hi << 32;
}

struct Weights {
  int nr = 8;                     // output channels per micro-kernel call
  int64_t blocks = 0;             // ceil(Cout / nr)
  std::vector<uint64_t> w, w2;    // [blocks][K64][nr], zero beyond Cout; w2: avx2 high nibbles
  std::vector<int32_t> prefix;    // sign: [Cout][(KH+1)(KW+1)] prefix sums of tap popcounts
};

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

// ---------------------------------------------------------------- 2. micro-kernels

// acc[j * kTile + q] (+)= (sum_k popc(xt[k * kTile + q] & w[k * nr + j])) << shift for the
// nr channels of one block and all kTile pixels of the tile; the first plane overwrites acc
// (accumulate = false), the others add to it.
using TileKernel = void (*)(const uint64_t* xt, const uint64_t* w, const uint64_t* w2,
                            int64_t K, int shift, bool accumulate, int64_t* acc);

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

// ---------------------------------------------------------------- gather + epilogue

// Valid taps of an output row / column: [lo, hi) of ky (kx); a rectangle per pixel.
struct TapRange {
  int32_t lo = 0, hi = 0;
};

std::vector<TapRange> tap_ranges(int64_t out, int64_t in, int64_t k, int64_t stride,
                                 int64_t pad, int64_t dil) {
  std::vector<TapRange> r(static_cast<size_t>(out));
  for (int64_t o = 0; o < out; ++o) {
    int32_t lo = int32_t(k), hi = 0;
    for (int64_t t = 0; t < k; ++t) {
      const int64_t i = o * stride - pad + t * dil;
      if (i >= 0 && i < in) {
        lo = std::min(lo, int32_t(t));
        hi = int32_t(t + 1);
      }
    }
    r[size_t(o)] = {std::min(lo, hi), hi};
  }
  return r;
}

struct Shared {
  const BinaryConvParams* p;
  Layout L;
  const uint32_t* img;
  const int32_t* pixpop;
  Weights wts;
  std::vector<int64_t> taps;         // tap offsets in packed-image pixels, row-major
  std::vector<int64_t> unit_lo, unit_hi;  // per im2col word: its 32-bit units' offsets
  std::vector<TapRange> rows, cols;  // sign only
  TileKernel kernel;
};

struct TileBuffers {
  std::vector<uint64_t> xt;      // [bits][K64][kTile]
  std::vector<int64_t> acc;      // [nr][kTile]
  std::vector<int64_t> origin;   // [kTile] offset of each pixel's packed words in img
  std::vector<int64_t> offset;   // [kTile] dot - mult * S, less the sign mode's weight term
  std::vector<int64_t> scratch;  // [kTile] sign: offset less the weight term of one channel
  std::vector<int32_t> corner;   // sign: [kTile][4] prefix-table corners of the valid taps
};

// Word k of the tile's im2col rows, for its first `count` pixels: 32-bit units lo and hi
// (offsets from each pixel's words; hi < 0: none, the row's zero padding) as lo | hi << 32.
// Adjacent units (hi == lo + 1: the same tap) are one 64-bit load per pixel.
FASTSNN_BCONV_CLONES
void gather_word(const uint32_t* img, const int64_t* origin, int64_t count, int64_t lo,
                 int64_t hi, uint64_t* dst) {
  if (hi == lo + 1) {
    for (int64_t q = 0; q < count; ++q) {
      const uint32_t* u = img + origin[q] + lo;
      dst[q] = uint64_t(u[0]) | uint64_t(u[1]) << 32;
    }
  } else if (hi < 0) {
    for (int64_t q = 0; q < count; ++q) dst[q] = img[origin[q] + lo];
  } else {
    for (int64_t q = 0; q < count; ++q)
      dst[q] = uint64_t(img[origin[q] + lo]) | uint64_t(img[origin[q] + hi]) << 32;
  }
}

// The tile's im2col rows (xt, k-major) and the per-pixel terms of the dot that do not depend
// on the output channel: spike -X, sign Cin * valid taps - 2 popc(a) (+ the prefix-table
// corners of the valid taps).
void gather_tile(const Shared& s, int64_t n, int64_t pix0, int64_t count, TileBuffers& tb) {
  const BinaryConvParams& p = *s.p;
  const Layout& L = s.L;
  const bool sign = p.activation == BinaryActivation::Sign;
  int64_t oy = pix0 / p.Wout, ox = pix0 % p.Wout;
  for (int64_t q = 0; q < count; ++q) {
    const int64_t origin = (n * L.Hp + oy * p.stride_h) * L.Wp + ox * p.stride_w;
    tb.origin[size_t(q)] = origin * L.pixel;
    int64_t sum = 0;
    for (const int64_t tap : s.taps) sum += s.pixpop[origin + tap];
    if (sign) {
      const TapRange r = s.rows[size_t(oy)], c = s.cols[size_t(ox)];
      const int32_t stride = int32_t(p.KW + 1);
      int32_t* corner = tb.corner.data() + 4 * q;
      corner[0] = r.hi * stride + c.hi;
      corner[1] = r.lo * stride + c.hi;
      corner[2] = r.hi * stride + c.lo;
      corner[3] = r.lo * stride + c.lo;
      tb.offset[size_t(q)] = int64_t(r.hi - r.lo) * (c.hi - c.lo) * p.Cin - 2 * sum;
    } else {
      tb.offset[size_t(q)] = -sum;
    }
    if (++ox == p.Wout) {
      ox = 0;
      ++oy;
    }
  }
  for (int b = 0; b < p.bits; ++b)
    for (int64_t k = 0; k < L.K64; ++k) {
      const int64_t hi = s.unit_hi[size_t(k)];
      gather_word(s.img, tb.origin.data(), count, s.unit_lo[size_t(k)] + b * L.W32,
                  hi < 0 ? hi : hi + b * L.W32, tb.xt.data() + (b * L.K64 + k) * kTile);
    }
  for (int64_t k = 0; k < p.bits * L.K64; ++k)  // tail pixels: zero words, results discarded
    std::fill(tb.xt.begin() + k * kTile + count, tb.xt.begin() + (k + 1) * kTile, 0u);
}

// dst[q] = float(mult * S[q] + offset[q]) * a + c; the dot fits int32 (check_params).
FASTSNN_BCONV_CLONES
void scale_store(const int64_t* S, const int64_t* offset, int64_t count, int64_t mult, float a,
                 float c, float* dst) {
  for (int64_t q = 0; q < count; ++q) dst[q] = float(int32_t(mult * S[q] + offset[q])) * a + c;
}

void epilogue(const Shared& s, int64_t n, int64_t pix0, int64_t count, int64_t blk,
              TileBuffers& tb, const float* alpha, const float* bias, float* out) {
  const BinaryConvParams& p = *s.p;
  const int nr = s.wts.nr;
  const int64_t table = (p.KH + 1) * (p.KW + 1);
  const bool sign = p.activation == BinaryActivation::Sign;
  for (int j = 0; j < nr; ++j) {
    const int64_t o = blk * nr + j;
    if (o >= p.Cout) break;
    const float a = alpha ? alpha[o] : 1.f, c = bias ? bias[o] : 0.f;
    float* dst = out + (n * p.Cout + o) * s.L.HWo + pix0;
    const int64_t* S = tb.acc.data() + j * kTile;
    if (!sign) {
      scale_store(S, tb.offset.data(), count, 2, a, c, dst);
      continue;
    }
    const int32_t* t = s.wts.prefix.data() + o * table;  // popc(w) over the valid taps
    for (int64_t q = 0; q < count; ++q) {
      const int32_t* k = tb.corner.data() + 4 * q;
      tb.scratch[size_t(q)] = tb.offset[size_t(q)] - 2 * (int64_t(t[k[0]]) - t[k[1]] - t[k[2]] +
                                                          t[k[3]]);
    }
    scale_store(S, tb.scratch.data(), count, 4, a, c, dst);
  }
}

}  // namespace

// ---------------------------------------------------------------- 3. the call

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
