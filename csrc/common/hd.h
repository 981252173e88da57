// FASTSNN_HD: a function both nvcc (host and device) and the host C++ compiler build, so the
// CPU and CUDA kernels share one copy of their per-element arithmetic.
#pragma once

#if defined(__CUDACC__)
#define FASTSNN_HD __host__ __device__ __forceinline__
#else
#define FASTSNN_HD inline
#endif
