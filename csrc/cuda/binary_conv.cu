// binary_conv2d, CUDA backend: launches the packing kernel (or, for packed input, the xsum
// kernel of binary_conv_packed.cuh) and one of the two GEMM kernels
// (bodies in binary_conv_{pack,popc,mma}.cuh, shared with the host emulation in
// tests/cuda_emu) and picks the path by device capability.
#include "cuda/binary_conv.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cuda/binary_conv_mma.cuh"
#include "cuda/binary_conv_pack.cuh"
#include "cuda/binary_conv_packed.cuh"
#include "cuda/binary_conv_popc.cuh"

namespace fastsnn::cuda {
namespace {

using namespace bconv;

// The Env of the kernel bodies on the device: CUDA's own indices, barrier and mma.
struct DeviceEnv {
  FASTSNN_D int tid() const { return static_cast<int>(threadIdx.x); }
  FASTSNN_D int nthreads() const { return static_cast<int>(blockDim.x); }
  FASTSNN_D int64_t bx() const { return blockIdx.x; }
  FASTSNN_D int64_t by() const { return blockIdx.y; }
  FASTSNN_D void sync() const { __syncthreads(); }
  FASTSNN_D void mma_and_popc(int32_t (&c)[4], const uint32_t (&a)[4],
                              const uint32_t (&b)[2]) const {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    // Not volatile: a pure register op, free to schedule (volatile cost a spill on sm_90).
    asm(
        "mma.sync.aligned.m16n8k256.row.col.s32.b1.b1.s32.and.popc "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
    __trap();  // never launched: the host picks the popc kernel below sm_80
#endif
  }
};

__global__ void __launch_bounds__(32 * kPackMaxWarps) pack_kernel(ConvArgs a) {
  __shared__ PackSmem s;
  pack_body(DeviceEnv{}, a, s);
}

constexpr int kXsumThreads = 256;

__global__ void __launch_bounds__(kXsumThreads) packed_xsum_kernel(ConvArgs a) {
  packed_xsum_thread(a, static_cast<int64_t>(blockIdx.x) * kXsumThreads + threadIdx.x);
}

__global__ void __launch_bounds__(kPopcThreads) popc_kernel(ConvArgs a) {
  __shared__ PopcSmem s;
  popc_body(DeviceEnv{}, a, s);
}

__global__ void __launch_bounds__(kMmaThreads) mma_kernel(ConvArgs a) {
  __shared__ MmaSmem s;
  mma_body(DeviceEnv{}, a, s);
}

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("fastsnn binary_conv2d (CUDA): ") + what + ": " +
                             cudaGetErrorString(err));
}

// Compute capability major of the current device, queried once per device.
int capability_major() {
  constexpr int kCached = 64;
  static std::atomic<int> cache[kCached] = {};
  int dev = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  if (dev >= 0 && dev < kCached && cache[dev].load(std::memory_order_relaxed) > 0)
    return cache[dev].load(std::memory_order_relaxed);
  int major = 0;
  check(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev),
        "cudaDeviceGetAttribute");
  if (dev >= 0 && dev < kCached) cache[dev].store(major, std::memory_order_relaxed);
  return major;
}

// FASTSNN_CUDA_BCONV=popc|mma|auto (unset = auto) lets tests run both paths on one GPU.
bool use_mma() {
  const bool capable = capability_major() >= 8;
  const char* env = std::getenv("FASTSNN_CUDA_BCONV");
  if (env == nullptr || *env == '\0' || std::strcmp(env, "auto") == 0) return capable;
  if (std::strcmp(env, "popc") == 0) return false;
  if (std::strcmp(env, "mma") == 0) {
    if (!capable)
      throw std::runtime_error(
          "fastsnn binary_conv2d (CUDA): FASTSNN_CUDA_BCONV=mma needs sm_80 or newer");
    return true;
  }
  throw std::runtime_error(std::string("fastsnn binary_conv2d (CUDA): FASTSNN_CUDA_BCONV must "
                                       "be popc, mma or auto, got '") + env + "'");
}

dim3 gemm_grid(const BinaryConvParams& p, int bm, int bn) {
  const int64_t gx = (p.N * p.Hout * p.Wout + bm - 1) / bm;
  const int64_t gy = (p.Cout + bn - 1) / bn;
  if (gx > 0x7fffffff || gy > 65535)
    throw std::runtime_error("fastsnn binary_conv2d (CUDA): output too large for one launch");
  return dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy));
}

// The GEMM kernel over the packed image of `a`: mma on sm_80+, else popc (use_mma).
void launch_gemm(const BinaryConvParams& p, const ConvArgs& a, cudaStream_t stream) {
  if (use_mma()) {
    mma_kernel<<<gemm_grid(p, kMmaBM, kMmaBN), kMmaThreads, 0, stream>>>(a);
    check(cudaGetLastError(), "mma kernel launch");
  } else {
    popc_kernel<<<gemm_grid(p, kPopcBM, kPopcBN), kPopcThreads, 0, stream>>>(a);
    check(cudaGetLastError(), "popc kernel launch");
  }
}

}  // namespace

size_t binary_conv2d_workspace_bytes(const BinaryConvParams& p) { return workspace_bytes(p); }

void binary_conv2d_forward(const BinaryConvParams& p, const float* x, const uint32_t* wpacked,
                           const float* alpha, const float* bias, float* out, void* workspace,
                           cudaStream_t stream) {
  if (p.bits < 1) throw std::runtime_error("fastsnn binary_conv2d (CUDA): bits must be >= 1");
  if (p.N * p.Hout * p.Wout == 0 || p.Cout == 0) return;
  const ConvArgs a = make_args(p, x, wpacked, alpha, bias, out, workspace);
  const int64_t pack_blocks = (p.N * p.H * p.W + 31) / 32;
  if (pack_blocks > 0x7fffffff)
    throw std::runtime_error("fastsnn binary_conv2d (CUDA): input too large for one launch");
  if (pack_blocks > 0) {
    pack_kernel<<<static_cast<unsigned>(pack_blocks), 32 * pack_warps(a.words), 0, stream>>>(a);
    check(cudaGetLastError(), "pack kernel launch");
  }
  launch_gemm(p, a, stream);
}

void binary_conv2d_forward_packed(const BinaryConvParams& p, const uint32_t* xw,
                                  const uint32_t* wpacked, const float* alpha,
                                  const float* bias, float* out, int32_t* xsum,
                                  cudaStream_t stream) {
  if (p.bits < 1 || p.bits > 8 || p.activation != BinaryActivation::Spike)
    throw std::runtime_error("fastsnn binary_conv2d (CUDA): packed input needs spike "
                             "activation and 1..8 bit planes");
  if (p.N * p.Hout * p.Wout == 0 || p.Cout == 0) return;
  const ConvArgs a = make_packed_args(p, xw, wpacked, alpha, bias, out, xsum);
  const int64_t blocks = (p.N * p.H * p.W + kXsumThreads - 1) / kXsumThreads;
  if (blocks > 0x7fffffff)
    throw std::runtime_error("fastsnn binary_conv2d (CUDA): input too large for one launch");
  packed_xsum_kernel<<<static_cast<unsigned>(blocks), kXsumThreads, 0, stream>>>(a);
  check(cudaGetLastError(), "packed xsum kernel launch");
  launch_gemm(p, a, stream);
}

}  // namespace fastsnn::cuda
