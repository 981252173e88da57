// Host emulation of the packed-spike CUDA kernels (csrc/cuda/packed_spikes.cu and the packed
// path of binary_conv.cu) for machines without a GPU: runs the kernels' own per-thread bodies
// (csrc/cuda/packed_lif.cuh, binary_conv_packed.cuh, the GEMM bodies under host_env.h) for
// every thread of the grid, in the order the launchers launch them. Built and driven by
// tests/test_packed_cuda_emu.py through ctypes; compile with -ffp-contract=off (the device
// code's _rn intrinsics never contract, and the CUDA build uses --fmad=false).
#include <cstdint>
#include <vector>

#include "cuda/binary_conv_mma.cuh"
#include "cuda/binary_conv_packed.cuh"
#include "cuda/binary_conv_popc.cuh"
#include "cuda/packed_lif.cuh"
#include "host_env.h"

namespace packed = fastsnn::cuda::packed;
namespace step = fastsnn::cuda::step;
namespace bconv = fastsnn::cuda::bconv;

namespace {

// ip: T, N, C, R, decay_size, levels, reset, form.
fastsnn::MtLifParams lif_from(const int64_t* ip, double threshold) {
  fastsnn::MtLifParams p;
  p.T = ip[0], p.N = ip[1], p.C = ip[2], p.R = ip[3], p.decay_size = ip[4];
  p.levels = static_cast<int>(ip[5]);
  p.reset = static_cast<fastsnn::Reset>(ip[6]);
  p.form = static_cast<fastsnn::Form>(ip[7]);
  p.threshold = threshold;
  return p;
}

// h: N Cin H W Cout KH KW sh sw ph pw dh dw Hout Wout bits (spike activation).
fastsnn::BinaryConvParams conv_from(const int64_t* h) {
  fastsnn::BinaryConvParams p;
  p.N = h[0], p.Cin = h[1], p.H = h[2], p.W = h[3], p.Cout = h[4], p.KH = h[5], p.KW = h[6];
  p.stride_h = h[7], p.stride_w = h[8], p.pad_h = h[9], p.pad_w = h[10];
  p.dil_h = h[11], p.dil_w = h[12], p.Hout = h[13], p.Wout = h[14];
  p.bits = static_cast<int>(h[15]);
  p.activation = fastsnn::BinaryActivation::Spike;
  return p;
}

// binary_conv2d_forward_packed of binary_conv.cu: the xsum kernel, then popc or mma.
void conv_packed(const fastsnn::BinaryConvParams& p, const uint32_t* xw, const uint32_t* w,
                 const float* alpha, const float* bias, float* out, bool mma) {
  if (p.N * p.Hout * p.Wout == 0 || p.Cout == 0) return;
  std::vector<int32_t> xsum(static_cast<size_t>(p.N * p.H * p.W));
  const bconv::ConvArgs a = bconv::make_packed_args(p, xw, w, alpha, bias, out, xsum.data());
  for (int64_t pix = 0; pix < p.N * p.H * p.W; ++pix) bconv::packed_xsum_thread(a, pix);
  const int64_t m = p.N * p.Hout * p.Wout;
  if (mma) {
    emu::launch<bconv::MmaSmem>(
        (m + bconv::kMmaBM - 1) / bconv::kMmaBM, (p.Cout + bconv::kMmaBN - 1) / bconv::kMmaBN,
        bconv::kMmaThreads, [&](const auto& env, bconv::MmaSmem& s) { mma_body(env, a, s); });
  } else {
    emu::launch<bconv::PopcSmem>(
        (m + bconv::kPopcBM - 1) / bconv::kPopcBM,
        (p.Cout + bconv::kPopcBN - 1) / bconv::kPopcBN, bconv::kPopcThreads,
        [&](const auto& env, bconv::PopcSmem& s) { popc_body(env, a, s); });
  }
}

void lif_packed(const fastsnn::MtLifParams& p, const float* x, const float* decay,
                uint32_t* out) {
  if (p.T == 0) return;
  const step::Consts k = step::make_consts(p);
  const packed::MtLifPackedShape s{p.N, p.C, p.R, (p.C + 31) / 32, packed::bits_for(p.levels)};
  for (int64_t id = 0; id < s.N * s.W32 * s.R; ++id)
    packed::mt_lif_packed_thread(k, s, x, decay, out, id);
}

}  // namespace

// binary_conv2d on packed words xw [N, H, W, bits, W32] -> out float [N, Cout, Hout, Wout].
extern "C" int emu_conv_packed(const int64_t* h, const uint32_t* xw, const uint32_t* w,
                               const float* alpha, const float* bias, float* out, int mma) {
  conv_packed(conv_from(h), xw, w, alpha, bias, out, mma != 0);
  return 0;
}

// binary_snn_layer_forward of packed_spikes.cu: the conv of all T * Nb images into a float
// scratch, then the LIF pass. lp: T, decay_size, levels, reset, form.
extern "C" int emu_snn_layer(const int64_t* h, const int64_t* lp, double threshold,
                             const uint32_t* xw, const uint32_t* w, const float* scale,
                             const float* bias, const float* decay, uint32_t* out, int mma) {
  const fastsnn::BinaryConvParams p = conv_from(h);
  const int64_t T = lp[0];
  if (T < 1 || p.N % T != 0) return 1;
  const int64_t ip[8] = {T, p.N / T, p.Cout, p.Hout * p.Wout, lp[1], lp[2], lp[3], lp[4]};
  std::vector<float> current(static_cast<size_t>(p.N * p.Cout * p.Hout * p.Wout));
  conv_packed(p, xw, w, scale, bias, current.data(), mma != 0);
  lif_packed(lif_from(ip, threshold), current.data(), decay, out);
  return 0;
}

// mt_lif_packed: x float [T, N, C, R] -> out [T, N, R, bits, W32], every thread of the grid.
extern "C" int emu_mt_lif_packed(const int64_t* ip, double threshold, const float* x,
                                 const float* decay, uint32_t* out) {
  lif_packed(lif_from(ip, threshold), x, decay, out);
  return 0;
}
