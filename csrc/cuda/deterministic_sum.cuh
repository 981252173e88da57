// Deterministic float sums for parameter gradients: every sum runs in an order fixed by the
// sizes alone (never by scheduling), so repeated runs give bit-identical results. No float
// atomics anywhere.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace fastsnn::cuda {

constexpr int kSumThreads = 256;  // blockDim.x of every kernel that calls block_sum
constexpr int kWarps = kSumThreads / 32;

// Sum of one value per thread of the block: a fixed shuffle tree inside each warp, then warp
// 0 sums the per-warp results the same way. The total is valid in thread 0. Every thread of
// the block must call it (it synchronises), with blockDim.x == kSumThreads.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float warp_sums[kWarps];
  for (int off = 16; off > 0; off >>= 1) v = __fadd_rn(v, __shfl_down_sync(0xffffffffu, v, off));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kWarps ? warp_sums[lane] : 0.0f;
    for (int off = 16; off > 0; off >>= 1) {
      v = __fadd_rn(v, __shfl_down_sync(0xffffffffu, v, off));
    }
  }
  __syncthreads();  // warp_sums may be reused by the next call
  return v;
}

// (The kernels are static: each .cu that includes this header gets its own copy.)
// out[p] = sum over o < outer, i < inner of src[o * outer_stride + p * seg_stride + i]; one
// block per p. Each thread walks a fixed strided subset, then block_sum.
static __global__ void __launch_bounds__(kSumThreads)
    segment_sum_kernel(const float* __restrict__ src, int64_t outer, int64_t outer_stride,
                       int64_t seg_stride, int64_t inner, float* __restrict__ out) {
  const int64_t p = blockIdx.x;
  const int64_t n = outer * inner;
  float v = 0.0f;
  for (int64_t q = threadIdx.x; q < n; q += kSumThreads) {
    const int64_t o = q / inner, i = q - o * inner;
    v = __fadd_rn(v, src[o * outer_stride + p * seg_stride + i]);
  }
  v = block_sum(v);
  if (threadIdx.x == 0) out[p] = v;
}

// out[split, q] = sum over rows n of the split of src[n * cols + q], rows in order: the
// coalesced first stage of a per-channel reduction of a [rows, cols] array.
// Grid: (ceil(cols / kSumThreads), splits).
static __global__ void __launch_bounds__(kSumThreads)
    column_sum_kernel(const float* __restrict__ src, int64_t rows, int64_t cols,
                      int64_t rows_per_split, float* __restrict__ out) {
  const int64_t q = static_cast<int64_t>(blockIdx.x) * kSumThreads + threadIdx.x;
  if (q >= cols) return;
  const int64_t n0 = static_cast<int64_t>(blockIdx.y) * rows_per_split;
  const int64_t n1 = n0 + rows_per_split < rows ? n0 + rows_per_split : rows;
  float v = 0.0f;
#pragma unroll 4
  for (int64_t n = n0; n < n1; ++n) v = __fadd_rn(v, src[n * cols + q]);
  out[static_cast<int64_t>(blockIdx.y) * cols + q] = v;
}

}  // namespace fastsnn::cuda
