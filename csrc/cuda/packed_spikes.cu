// CUDA kernels on packed spikes (launchers declared in packed_spikes.h). The per-thread bodies
// live in packed_lif.cuh (host-emulated by tests/test_packed_cuda_emu.py); this file adds the
// launch geometry and the argument checks. The conv on packed input is binary_conv.cu's.
#include "cuda/packed_spikes.h"

#include <cstdint>
#include <stdexcept>
#include <string>

#include "cuda/binary_conv.h"
#include "cuda/packed_lif.cuh"

namespace fastsnn::cuda {
namespace {

// 32 membranes per thread live in registers: a small block keeps the register file usable.
constexpr int kPackedThreads = 128;

void require(bool ok, const char* message) {
  if (!ok) throw std::invalid_argument(std::string("fastsnn packed spikes: ") + message);
}

void check_launch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("fastsnn packed spikes: ") + what + " failed: " +
                             cudaGetErrorString(err));
  }
}

__global__ void __launch_bounds__(kPackedThreads)
    mt_lif_packed_kernel(step::Consts k, packed::MtLifPackedShape s, const float* x,
                         const float* decay, uint32_t* out, int64_t threads) {
  const int64_t id = static_cast<int64_t>(blockIdx.x) * kPackedThreads + threadIdx.x;
  if (id >= threads) return;
  packed::mt_lif_packed_thread(k, s, x, decay, out, id);
}

}  // namespace

void mt_lif_packed_forward(const MtLifParams& p, const float* x, const float* decay,
                           uint32_t* out, cudaStream_t stream) {
  require(p.T >= 0 && p.N >= 0 && p.C >= 0 && p.R >= 0, "negative size");
  require(p.decay_size == 1 || p.decay_size == p.C, "decay_size must be 1 or C");
  require(p.syn_size == 0 && !p.has_v0 && !p.has_j0 && p.v_reset == 0.0,
          "packed mt_lif has no synaptic current, no initial state and rests at 0");
  require(p.levels >= 1 && p.levels <= 255, "levels must be in 1..255");
  require(static_cast<unsigned>(p.reset) <= 3 && static_cast<unsigned>(p.form) <= 1,
          "enum out of range");
  const packed::MtLifPackedShape s{p.N, p.C, p.R, (p.C + 31) / 32, packed::bits_for(p.levels)};
  const int64_t threads = s.N * s.W32 * s.R;
  if (p.T == 0 || threads == 0) return;
  const int64_t blocks = (threads + kPackedThreads - 1) / kPackedThreads;
  require(blocks < (int64_t{1} << 31), "too many (image, pixel, word) columns");
  mt_lif_packed_kernel<<<static_cast<unsigned>(blocks), kPackedThreads, 0, stream>>>(
      step::make_consts(p), s, x, decay, out, threads);
  check_launch("mt_lif_packed kernel");
}

// Two passes, not one fused kernel: the conv's float currents of all T steps go through
// `current` (T * Nb * Cout * Hout * Wout floats), then the LIF pass packs the spikes.
void binary_snn_layer_forward(const BinaryConvParams& p, const MtLifParams& lif,
                              const uint32_t* xw, const uint32_t* wpacked, const float* scale,
                              const float* bias, const float* decay, int32_t* xsum,
                              float* current, uint32_t* out, cudaStream_t stream) {
  require(lif.T >= 1 && p.N % lif.T == 0 && lif.N == p.N / lif.T && lif.C == p.Cout &&
              lif.R == p.Hout * p.Wout,
          "binary_snn_layer: the LIF shape must be [T, N / T, Cout, Hout * Wout]");
  binary_conv2d_forward_packed(p, xw, wpacked, scale, bias, current, xsum, stream);
  mt_lif_packed_forward(lif, current, decay, out, stream);
}

}  // namespace fastsnn::cuda
