// binary_conv2d (CUDA) on input already packed (fastsnn.PackedSpikes words [N, H, W, bits,
// ceil(Cin/32)], bits past Cin zero): the packed image IS the GEMM kernels' packed workspace
// layout (binary_conv_tile.cuh), so the packing kernel is skipped; only each pixel's level
// sum (xsum, the spike dot's correction) is computed, one thread per pixel. Host-emulated by
// tests/test_packed_cuda_emu.py.
#pragma once

#include <cstdint>

#include "cuda/binary_conv_tile.cuh"

namespace fastsnn::cuda::bconv {

// The GEMM kernels' arguments over packed input xw, with xsum (N*H*W int32) as scratch.
inline ConvArgs make_packed_args(const BinaryConvParams& p, const uint32_t* xw,
                                 const uint32_t* w, const float* alpha, const float* bias,
                                 float* out, int32_t* xsum) {
  ConvArgs a;
  a.p = p;
  a.words = p.words();
  a.kk = p.KH * p.KW * a.words;
  a.sign = false;
  a.planes = p.bits;
  a.w = w;
  a.alpha = alpha;
  a.bias = bias;
  a.out = out;
  a.packed = const_cast<uint32_t*>(xw);  // read only: the GEMM kernels never write it
  a.xsum = xsum;
  return a;
}

// xsum of pixel `pix` (flattened n, h, w): sum over planes b of 2^b * popcount of its words.
FASTSNN_HD void packed_xsum_thread(const ConvArgs& a, int64_t pix) {
  if (pix >= a.p.N * a.p.H * a.p.W) return;
  const uint32_t* src = a.packed + pix * a.planes * a.words;
  int32_t sum = 0;
  for (int b = 0; b < a.planes; ++b) {
    int32_t plane = 0;
    for (int64_t w = 0; w < a.words; ++w) plane += popc32(src[b * a.words + w]);
    sum += plane << b;
  }
  a.xsum[pix] = sum;
}

}  // namespace fastsnn::cuda::bconv
