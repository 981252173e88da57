// binary_conv2d (CUDA): the tensor-core kernel for sm_80+:
// mma.sync.aligned.m16n8k256.row.col.s32.b1.b1.s32.and.popc (D = C + popc(A & B) per entry).
//
// Same GEMM view and implicit im2col as binary_conv_popc.cuh. A block of 4 warps computes a
// 64 x 64 tile (warps 2 x 2, each 32 x 32 = 2 x 4 mma tiles); chunks of 16 words (two
// k-steps of 256 bits) are staged in shared memory as [plane][pixel][word] and
// [channel][word], rows padded to 20 words so the fragment loads (8 rows x 4 words per
// warp) hit 32 distinct banks.
//   spike: acc += popc(x_b & w) << b per plane (the mma accumulates into a zeroed temporary
//          for b > 0, then shifts)
//   sign:  Hopper has no XOR form, so XNOR = two AND passes: popc(x & w) + popc(~x & ~w),
//          staged as plane 0 = x and plane 1 = ~x & valid (valid = channel mask for in-bounds
//          taps, 0 for padding): padding and unused channel bits then count nothing.
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k256"), g = lane / 4,
// q = lane % 4, bit i of a register = column 32*(word) + i:
//   A (16 x 256, row): a0 = (row g, word q), a1 = (g + 8, q), a2 = (g, q + 4), a3 = (g + 8, q + 4)
//   B (256 x 8, col):  b0 = (col g, word q), b1 = (col g, word q + 4)
//   C/D (16 x 8):      c0, c1 = (row g, cols 2q, 2q + 1), c2, c3 = (row g + 8, same cols)
#pragma once

#include "cuda/binary_conv_tile.cuh"

namespace fastsnn::cuda::bconv {

constexpr int kMmaBM = 64, kMmaBN = 64, kMmaKC = 16, kMmaKCP = 20, kMmaPG = 4;
constexpr int kMmaWarpsM = 2, kMmaWarpsN = 2, kMmaThreads = 32 * kMmaWarpsM * kMmaWarpsN;
constexpr int kMmaMT = kMmaBM / kMmaWarpsM / 16, kMmaNT = kMmaBN / kMmaWarpsN / 8;  // 2, 4

struct MmaSmem {
  alignas(16) uint32_t a[kMmaPG][kMmaBM][kMmaKCP];  // [plane][pixel][word of chunk]
  alignas(16) uint32_t b[kMmaBN][kMmaKCP];          // [channel][word of chunk]
  TileRows<kMmaBM> rows;
};

// Stages planes plane0 .. plane0 + np - 1 of chunk k0. Thread t owns word t % 16 of the
// chunk (one cursor seek) for pixels t / 16 + 8 j: consecutive threads read consecutive
// words of a pixel's tap.
template <class Env>
FASTSNN_D void mma_load_a(const Env& env, const ConvArgs& a, MmaSmem& s, int64_t k0, int plane0,
                          int np) {
  constexpr int kRowStep = kMmaThreads / kMmaKC;  // 8
  const int kl = env.tid() % kMmaKC;
  const bool k_ok = k0 + kl < a.kk;
  KCursor k;
  k.seek(k0 + kl, a.words, a.p.KW);
  const uint32_t cmask = channel_mask(k.word, a.p.Cin);
  for (int m = env.tid() / kMmaKC; m < kMmaBM; m += kRowStep) {
    const uint32_t* src = k_ok ? tap_words(a, s.rows, m, k) : nullptr;
    if (a.sign) {
      const uint32_t x = src != nullptr ? src[0] : 0u;
      s.a[0][m][kl] = x;
      s.a[1][m][kl] = src != nullptr ? ~x & cmask : 0u;
    } else {
      for (int p = 0; p < np; ++p) s.a[p][m][kl] = src != nullptr ? src[(plane0 + p) * a.words] : 0u;
    }
  }
}

// Stages the weights of chunk k0 for channels o0 .. o0 + 63 (0 past Cout or past kk).
template <class Env>
FASTSNN_D void mma_load_b(const Env& env, const ConvArgs& a, MmaSmem& s, int64_t k0, int64_t o0) {
  constexpr int kRowStep = kMmaThreads / kMmaKC;
  const int kl = env.tid() % kMmaKC;
  const bool k_ok = k0 + kl < a.kk;
  for (int o = env.tid() / kMmaKC; o < kMmaBN; o += kRowStep)
    s.b[o][kl] = k_ok && o0 + o < a.p.Cout ? a.w[(o0 + o) * a.kk + k0 + kl] : 0u;
}

struct MmaWarp {
  int g, q;       // lane / 4, lane % 4
  int row0, col0;  // the warp's first tile row (pixel) and column (channel)
};

FASTSNN_HD void load_frag_a(const MmaSmem& s, const MmaWarp& w, int plane, int mt, int ks,
                            uint32_t (&f)[4]) {
  const int r = w.row0 + mt * 16 + w.g, c = ks * 8 + w.q;
  f[0] = s.a[plane][r][c];
  f[1] = s.a[plane][r + 8][c];
  f[2] = s.a[plane][r][c + 4];
  f[3] = s.a[plane][r + 8][c + 4];
}

FASTSNN_HD void load_frag_b(const MmaSmem& s, const MmaWarp& w, int nt, int ks, bool invert,
                            uint32_t (&f)[2]) {
  const int r = w.col0 + nt * 8 + w.g, c = ks * 8 + w.q;
  f[0] = invert ? ~s.b[r][c] : s.b[r][c];
  f[1] = invert ? ~s.b[r][c + 4] : s.b[r][c + 4];
}

// One k-step (256 bits) of one plane for the warp's 2 x 4 tiles. Control flow is uniform
// over the block (the host emulation's mma is a block-wide rendezvous).
template <class Env>
FASTSNN_D void mma_step(const Env& env, const MmaSmem& s, const MmaWarp& w, int plane, int ks,
                        bool invert_b, int shift, int32_t (&acc)[kMmaMT][kMmaNT][4]) {
  uint32_t fa[kMmaMT][4], fb[kMmaNT][2];
  FASTSNN_UNROLL
  for (int mt = 0; mt < kMmaMT; ++mt) load_frag_a(s, w, plane, mt, ks, fa[mt]);
  FASTSNN_UNROLL
  for (int nt = 0; nt < kMmaNT; ++nt) load_frag_b(s, w, nt, ks, invert_b, fb[nt]);
  FASTSNN_UNROLL
  for (int mt = 0; mt < kMmaMT; ++mt) {
    FASTSNN_UNROLL
    for (int nt = 0; nt < kMmaNT; ++nt) {
      if (shift == 0) {
        env.mma_and_popc(acc[mt][nt], fa[mt], fb[nt]);
        continue;
      }
      int32_t t[4] = {0, 0, 0, 0};
      env.mma_and_popc(t, fa[mt], fb[nt]);
      FASTSNN_UNROLL
      for (int i = 0; i < 4; ++i) acc[mt][nt][i] += t[i] << shift;
    }
  }
}

// Block (bx, by) computes output pixels 64*bx .. and channels 64*by .. ; 128 threads.
template <class Env>
FASTSNN_D void mma_body(const Env& env, const ConvArgs& a, MmaSmem& s) {
  const int64_t m0 = env.bx() * kMmaBM, o0 = env.by() * kMmaBN;
  const int lane = env.tid() % 32, warp = env.tid() / 32;
  const MmaWarp w{lane / 4, lane % 4, warp % kMmaWarpsM * (kMmaBM / kMmaWarpsM),
                  warp / kMmaWarpsM * (kMmaBN / kMmaWarpsN)};
  fill_rows<kMmaBM>(env, a, m0, s.rows);
  env.sync();
  int32_t acc[kMmaMT][kMmaNT][4] = {};
  const int planes = a.sign ? 2 : a.planes;  // sign stages (x, ~x & valid) in one group
  for (int plane0 = 0; plane0 < planes; plane0 += kMmaPG) {
    const int np = planes - plane0 < kMmaPG ? planes - plane0 : kMmaPG;
    for (int64_t k0 = 0; k0 < a.kk; k0 += kMmaKC) {
      mma_load_a(env, a, s, k0, plane0, np);
      mma_load_b(env, a, s, k0, o0);
      env.sync();
      for (int ks = 0; ks < kMmaKC / 8; ++ks) {
        for (int p = 0; p < np; ++p) {
          // sign: plane 1 (~x & valid) meets ~w; both planes count with weight 1
          mma_step(env, s, w, p, ks, a.sign && p == 1, a.sign ? 0 : plane0 + p, acc);
        }
      }
      env.sync();
    }
  }
  FASTSNN_UNROLL
  for (int mt = 0; mt < kMmaMT; ++mt)
    FASTSNN_UNROLL
    for (int nt = 0; nt < kMmaNT; ++nt)
      FASTSNN_UNROLL
      for (int i = 0; i < 4; ++i)
        store_out(a, s.rows, w.row0 + mt * 16 + w.g + (i >= 2 ? 8 : 0),
                  o0 + w.col0 + nt * 8 + 2 * w.q + (i & 1), acc[mt][nt][i]);
}

}  // namespace fastsnn::cuda::bconv
