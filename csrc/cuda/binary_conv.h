// binary_conv2d, CUDA backend: raw pointers and a stream, no torch (contract and packed
// weight layout: csrc/common/binary_conv.h).
//
// The caller allocates `workspace` (binary_conv2d_workspace_bytes(p) bytes, on the device of
// x, 4-byte aligned; may be null when that is 0). Kernels are queued on `stream`; launch
// errors throw std::runtime_error. Path: the tensor-core kernel on sm_80+, else the portable
// popcount kernel; FASTSNN_CUDA_BCONV=popc|mma|auto forces one (mma on a GPU below sm_80
// throws).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "common/binary_conv.h"

namespace fastsnn::cuda {

size_t binary_conv2d_workspace_bytes(const BinaryConvParams& p);

void binary_conv2d_forward(const BinaryConvParams& p, const float* x, const uint32_t* wpacked,
                           const float* alpha, const float* bias, float* out, void* workspace,
                           cudaStream_t stream);

// binary_conv2d_forward on spike input already packed: xw [N, H, W, p.bits, ceil(Cin/32)]
// words (bits past Cin zero; p.activation Spike), no packing step. `xsum` is scratch of
// N*H*W int32 on the device of xw. Same out as binary_conv2d_forward on the unpacked input.
void binary_conv2d_forward_packed(const BinaryConvParams& p, const uint32_t* xw,
                                  const uint32_t* wpacked, const float* alpha,
                                  const float* bias, float* out, int32_t* xsum,
                                  cudaStream_t stream);

}  // namespace fastsnn::cuda
