// Host emulation of the CUDA execution model for the kernel bodies in csrc/cuda/*.cuh.
//
// Each CUDA thread of a block runs as a std::thread over the same body; __syncthreads is a
// std::barrier; shared memory is one heap object per block, filled with garbage first so a
// read of something never staged shows. The warp-level mma m16n8k256 .and.popc is a block
// rendezvous: every lane posts its fragments, then each lane rebuilds its warp's A and B
// from the fragment layout stated in the PTX ISA ("Matrix Fragments for mma.m16n8k256") and
// computes its own accumulator entries. That layout is written out here independently of
// the kernel's fragment loads, so a disagreement between the two shows as a wrong result.
#pragma once

#include <array>
#include <barrier>
#include <bit>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

namespace emu {

struct BlockState {
  std::barrier<> bar;
  std::vector<std::array<uint32_t, 4>> a;
  std::vector<std::array<uint32_t, 2>> b;
  explicit BlockState(int threads) : bar(threads), a(threads), b(threads) {}
};

class HostEnv {
 public:
  HostEnv(int tid, int threads, int64_t bx, int64_t by, BlockState* st)
      : tid_(tid), threads_(threads), bx_(bx), by_(by), st_(st) {}
  int tid() const { return tid_; }
  int nthreads() const { return threads_; }
  int64_t bx() const { return bx_; }
  int64_t by() const { return by_; }
  void sync() const { st_->bar.arrive_and_wait(); }

  void mma_and_popc(int32_t (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) const {
    std::memcpy(st_->a[tid_].data(), a, sizeof(a));
    std::memcpy(st_->b[tid_].data(), b, sizeof(b));
    sync();
    uint32_t A[16][8], B[8][8];  // A[row][word], B[col][word]; bit i of word k = k-index 32k+i
    const int w0 = tid_ / 32 * 32;
    for (int lane = 0; lane < 32; ++lane) {
      const int g = lane >> 2, q = lane % 4;
      const auto& fa = st_->a[w0 + lane];
      const auto& fb = st_->b[w0 + lane];
      // A: a_i, i < 32 || 64 <= i < 96 -> row g, else g + 8; col q*32 + (i & 31) (+128 for i >= 64)
      A[g][q] = fa[0];
      A[g + 8][q] = fa[1];
      A[g][q + 4] = fa[2];
      A[g + 8][q + 4] = fa[3];
      // B: b_i -> row (k) q*32 + (i & 31) (+128 for i >= 32), col g
      B[g][q] = fb[0];
      B[g][q + 4] = fb[1];
    }
    const int lane = tid_ % 32, g = lane >> 2, q = lane % 4;
    for (int i = 0; i < 4; ++i) {  // c_i: row g (+8 for i >= 2), col 2q + (i & 1)
      const int row = g + (i >= 2 ? 8 : 0), col = 2 * q + (i & 1);
      int32_t d = 0;
      for (int k = 0; k < 8; ++k) d += std::popcount(A[row][k] & B[col][k]);
      c[i] += d;
    }
    sync();  // nobody posts the next fragments before every lane has read these
  }

 private:
  int tid_, threads_;
  int64_t bx_, by_;
  BlockState* st_;
};

// Runs body(env, smem) for every thread of every block of a (gx, gy) grid, one block at a time.
template <class Smem, class Body>
void launch(int64_t gx, int64_t gy, int threads, Body body) {
  for (int64_t by = 0; by < gy; ++by) {
    for (int64_t bx = 0; bx < gx; ++bx) {
      auto smem = std::make_unique<Smem>();
      std::memset(static_cast<void*>(smem.get()), 0xA5, sizeof(Smem));
      BlockState st(threads);
      std::vector<std::thread> pool;
      pool.reserve(threads);
      for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] { body(HostEnv(t, threads, bx, by, &st), *smem); });
      for (auto& th : pool) th.join();
    }
  }
}

}  // namespace emu
