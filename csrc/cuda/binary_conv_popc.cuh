// binary_conv2d (CUDA): the portable kernel, for every GPU: implicit GEMM on packed words with
// __popc.
//
// GEMM view: rows = output pixels (M = N*Hout*Wout), columns = output channels, reduction =
// the flattened kk = (kh*KW + kw)*words + word of the packed weight. A block computes a
// 64 x 64 tile; per chunk of 16 words it stages the pixels' words (implicit im2col: padding
// taps are 0) and the weights' words in shared memory, and each of its 256 threads
// accumulates 4 pixels x 4 channels.
//   spike: acc = sum_b 2^b popc(x_b & w); planes staged in groups of kPopcPG
//   sign:  acc = sum popc(~(x ^ w) & valid), staged as plane 0 = x, plane 1 = valid, where
//          valid = channel mask for in-bounds taps and 0 for padding
// The epilogue turns acc into the dot with the per-pixel correction (TileRows::corr).
#pragma once

#include "cuda/binary_conv_tile.cuh"

namespace fastsnn::cuda::bconv {

constexpr int kPopcBM = 64, kPopcBN = 64, kPopcKC = 16, kPopcPG = 4;
constexpr int kPopcTM = 4, kPopcTN = 4;
constexpr int kPopcThreads = (kPopcBM / kPopcTM) * (kPopcBN / kPopcTN);  // 256
constexpr int kPopcKPerThread = kPopcKC * kPopcBM / kPopcThreads;       // A and B loads: 4

struct PopcSmem {
  alignas(16) uint32_t a[kPopcPG][kPopcKC][kPopcBM];  // [plane][kk][pixel]
  alignas(16) uint32_t b[kPopcKC][kPopcBN];           // [kk][channel]
  TileRows<kPopcBM> rows;
};

// Stages planes plane0 .. plane0 + np - 1 of chunk k0: thread t fills pixel t % 64 for
// kKPerThread consecutive kk (one cursor seek, then steps).
template <class Env>
FASTSNN_D void popc_load_a(const Env& env, const ConvArgs& a, PopcSmem& s, int64_t k0,
                           int plane0, int np) {
  const int m = env.tid() % kPopcBM;
  const int kl0 = env.tid() / kPopcBM * kPopcKPerThread;
  KCursor k;
  k.seek(k0 + kl0, a.words, a.p.KW);
  for (int j = 0; j < kPopcKPerThread; ++j, k.next(a.words, a.p.KW)) {
    const int kl = kl0 + j;
    const uint32_t* src = k0 + kl < a.kk ? tap_words(a, s.rows, m, k) : nullptr;
    if (a.sign) {
      s.a[0][kl][m] = src != nullptr ? src[0] : 0u;
      s.a[1][kl][m] = src != nullptr ? channel_mask(k.word, a.p.Cin) : 0u;
    } else {
      for (int p = 0; p < np; ++p) s.a[p][kl][m] = src != nullptr ? src[(plane0 + p) * a.words] : 0u;
    }
  }
}

// Stages the weights of chunk k0 for channels o0 .. o0 + 63 (0 past Cout or past kk).
template <class Env>
FASTSNN_D void popc_load_b(const Env& env, const ConvArgs& a, PopcSmem& s, int64_t k0,
                           int64_t o0) {
  const int o = env.tid() % kPopcBN;
  const int kl0 = env.tid() / kPopcBN * kPopcKPerThread;
  const bool ok = o0 + o < a.p.Cout;
  const uint32_t* src = a.w + (o0 + o) * a.kk + k0;
  for (int j = 0; j < kPopcKPerThread; ++j) {
    const int kl = kl0 + j;
    s.b[kl][o] = ok && k0 + kl < a.kk ? src[kl] : 0u;
  }
}

FASTSNN_HD void popc_compute(const ConvArgs& a, const PopcSmem& s, int tm, int tn, int plane0,
                             int np, int32_t (&acc)[kPopcTM][kPopcTN]) {
  for (int kl = 0; kl < kPopcKC; ++kl) {
    const Words4 w = *reinterpret_cast<const Words4*>(&s.b[kl][tn * kPopcTN]);
    if (a.sign) {
      const Words4 x = *reinterpret_cast<const Words4*>(&s.a[0][kl][tm * kPopcTM]);
      const Words4 valid = *reinterpret_cast<const Words4*>(&s.a[1][kl][tm * kPopcTM]);
      FASTSNN_UNROLL
      for (int i = 0; i < kPopcTM; ++i) {
        FASTSNN_UNROLL
        for (int j = 0; j < kPopcTN; ++j) acc[i][j] += popc32(~(x.v[i] ^ w.v[j]) & valid.v[i]);
      }
      continue;
    }
    for (int p = 0; p < np; ++p) {
      const Words4 x = *reinterpret_cast<const Words4*>(&s.a[p][kl][tm * kPopcTM]);
      const int shift = plane0 + p;
      FASTSNN_UNROLL
      for (int i = 0; i < kPopcTM; ++i) {
        FASTSNN_UNROLL
        for (int j = 0; j < kPopcTN; ++j) acc[i][j] += popc32(x.v[i] & w.v[j]) << shift;
      }
    }
  }
}

// Block (bx, by) computes output pixels 64*bx .. and channels 64*by .. ; 256 threads.
template <class Env>
FASTSNN_D void popc_body(const Env& env, const ConvArgs& a, PopcSmem& s) {
  const int64_t m0 = env.bx() * kPopcBM, o0 = env.by() * kPopcBN;
  const int tm = env.tid() % (kPopcBM / kPopcTM), tn = env.tid() / (kPopcBM / kPopcTM);
  fill_rows<kPopcBM>(env, a, m0, s.rows);
  env.sync();
  int32_t acc[kPopcTM][kPopcTN] = {};
  const int planes = a.sign ? 2 : a.planes;  // sign stages (x, valid) in one group
  for (int plane0 = 0; plane0 < planes; plane0 += kPopcPG) {
    const int np = planes - plane0 < kPopcPG ? planes - plane0 : kPopcPG;
    for (int64_t k0 = 0; k0 < a.kk; k0 += kPopcKC) {
      popc_load_a(env, a, s, k0, plane0, np);
      popc_load_b(env, a, s, k0, o0);
      env.sync();
      popc_compute(a, s, tm, tn, plane0, np, acc);
      env.sync();
    }
  }
  for (int i = 0; i < kPopcTM; ++i)
    for (int j = 0; j < kPopcTN; ++j)
      store_out(a, s.rows, tm * kPopcTM + i, o0 + tn * kPopcTN + j, acc[i][j]);
}

}  // namespace fastsnn::cuda::bconv
