// stcb CUDA kernels (docs/stcb.md, a reconstruction of paper C): the launchers declared
// in stcb.h. One thread per element; consecutive threads own consecutive elements, so every
// step's loads and stores are coalesced. The per-element arithmetic is common/stcb.h, shared
// with the CPU kernel (the same operations, so the same bits): x = A / vth with an IEEE
// division (__fdiv_rn, whatever the compiler flags), then the exact integer/double recursion
// (int32 counters here, doubles on the CPU: both exact).
// The mask is packed with a warp ballot: lane 0 of each warp stores its warp's 32 bits as 4
// bytes (fewer at the tail), so no two threads ever write the same byte.
#include "cuda/stcb.h"

#include <stdexcept>
#include <string>

namespace fastsnn::cuda {
namespace {

constexpr int kThreads = 256;  // a multiple of 32: warps own whole mask bytes

int64_t blocks_for(int64_t n) { return (n + kThreads - 1) / kThreads; }

void check_launch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("stcb (cuda): ") + what + " launch failed: " +
                             cudaGetErrorString(err));
  }
}

__device__ void store_mask_bits(bool bit, int64_t e, int64_t E, uint8_t* mask) {
  const unsigned bits = __ballot_sync(0xffffffffu, bit);
  const int lane = threadIdx.x & 31;
  if (lane != 0) return;
  const int64_t byte0 = e >> 3;  // e is the warp's first element, a multiple of 32
  const int64_t bytes = (E + 7) / 8;
  for (int b = 0; b < 4 && byte0 + b < bytes; ++b) mask[byte0 + b] = uint8_t(bits >> (8 * b));
}

__global__ void stcb_forward_kernel(StcbParams p, const float* __restrict__ a,
                                    float* __restrict__ out, uint8_t* __restrict__ mask) {
  const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const bool in = e < p.E;
  const float x = in ? __fdiv_rn(a[e], float(p.threshold)) : 0.0f;
  const StcbElement<float> el = stcb_element<float>(x, p.T, p.levels);
  // Every thread of a warp takes part in the ballot, including those past the end.
  if (p.save_mask) store_mask_bits(in && el.mid, e, p.E, mask);
  if (!in) return;
  if (p.count_only) {
    out[e] = el.count;
    return;
  }
  const int32_t T = int32_t(p.T), qa = int32_t(el.qa), rb = int32_t(el.rb);
  int32_t r = 0, c = 0;
  for (int64_t t = 1; t <= p.T; ++t) {
    const int32_t s = stcb_step<int32_t>(qa, rb, el.f, r, c, double(t), T);
    out[(t - 1) * p.E + e] = float(s) + el.nan;
  }
}

__global__ void stcb_backward_kernel(StcbBackwardParams p, const float* __restrict__ grad,
                                     const uint8_t* __restrict__ mask, float* __restrict__ ga) {
  const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= p.E) return;
  const bool bit = (mask[e >> 3] >> (e & 7)) & 1;
  float sum = 0.0f;
  if (p.count_only) {
    sum = grad[e];
  } else {
    for (int64_t t = 0; t < p.T; ++t) sum = __fadd_rn(sum, grad[t * p.E + e]);
  }
  ga[e] = bit ? __fmul_rn(sum, float(p.scale)) : 0.0f;
}

__global__ void spike_count_kernel(int64_t T, int64_t E, const float* __restrict__ s,
                                   float* __restrict__ out) {
  const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= E) return;
  float sum = 0.0f;
  for (int64_t t = 0; t < T; ++t) sum = __fadd_rn(sum, s[t * E + e]);
  out[e] = sum;
}

}  // namespace

void stcb_forward(const StcbParams& p, const float* a, float* out, uint8_t* mask,
                  cudaStream_t stream) {
  if (p.E == 0) return;
  stcb_forward_kernel<<<blocks_for(p.E), kThreads, 0, stream>>>(p, a, out, mask);
  check_launch("stcb_forward");
}

void stcb_backward(const StcbBackwardParams& p, const float* grad, const uint8_t* mask,
                   float* ga, cudaStream_t stream) {
  if (p.E == 0) return;
  stcb_backward_kernel<<<blocks_for(p.E), kThreads, 0, stream>>>(p, grad, mask, ga);
  check_launch("stcb_backward");
}

void spike_count(int64_t T, int64_t E, const float* s, float* out, cudaStream_t stream) {
  if (E == 0) return;
  spike_count_kernel<<<blocks_for(E), kThreads, 0, stream>>>(T, E, s, out);
  check_launch("spike_count");
}

}  // namespace fastsnn::cuda
