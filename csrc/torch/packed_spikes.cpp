// Packed-spike bindings: the CPU implementations of fastsnn::binary_conv2d_packed_forward,
// fastsnn::binary_snn_layer_forward and fastsnn::mt_lif_packed_forward, and where built the
// CUDA ones (cuda/packed_spikes.h, cuda/binary_conv.h) (schemas and
// contracts in fastsnn/ops/binary_conv_packed.py, binary_snn_layer.py, mt_lif_packed.py;
// the packed layout in fastsnn/packed_spikes.py), with the checks that keep a direct call in
// bounds (checks.h).
#include <ATen/ATen.h>
#include <torch/library.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <utility>

#include "checks.h"
#include "common/binary_conv.h"
#include "common/mt_lif.h"
#include "cpu/binary_conv.h"
#include "cpu/packed_spikes.h"
#include "torch/threads.h"

#ifdef FASTSNN_WITH_CUDA
#include "cuda/binary_conv.h"
#include "cuda/packed_spikes.h"
#endif

namespace fastsnn {
namespace {

using at::Tensor;
using OptTensor = std::optional<Tensor>;

int bits_for(int64_t levels) { return 64 - __builtin_clzll(uint64_t(levels)); }

void check_vector(const OptTensor& t, const char* op, const char* name, const Tensor& x,
                  int64_t size) {
  if (!t.has_value()) return;
  checks::dtype(*t, op, name, {at::kFloat});
  checks::same_device(*t, op, name, x);
  checks::contiguous(*t, op, name);
  TORCH_CHECK_VALUE(t->dim() == 1 && t->size(0) == size, op, ": ", name, " must be [",
                    size, "], got ", t->sizes());
}

// The conv of packed words xw [..., H, W, bits, ceil(cin/32)] folded to N images.
BinaryConvParams conv_params(const char* op, const Tensor& xw, int64_t images,
                             const Tensor& wpacked, at::IntArrayRef stride,
                             at::IntArrayRef padding, at::IntArrayRef dilation, int64_t kh,
                             int64_t kw, int64_t cin) {
  checks::dtype(xw, op, "x", {at::kInt});
  checks::contiguous(xw, op, "x");
  checks::dtype(wpacked, op, "wpacked", {at::kInt});
  checks::same_device(wpacked, op, "wpacked", xw);
  checks::contiguous(wpacked, op, "wpacked");
  TORCH_CHECK_VALUE(cin >= 1 && kh >= 1 && kw >= 1, op, ": cin, kh, kw must be >= 1");
  TORCH_CHECK_VALUE(stride.size() == 2 && padding.size() == 2 && dilation.size() == 2, op,
                    ": stride, padding and dilation must have 2 values");
  const int64_t d = xw.dim();
  BinaryConvParams p;
  p.N = images;
  p.Cin = cin;
  p.H = xw.size(d - 4);
  p.W = xw.size(d - 3);
  p.bits = int(xw.size(d - 2));
  TORCH_CHECK_VALUE(p.bits >= 1 && p.bits <= 8 && xw.size(d - 1) == p.words() && p.H >= 1 &&
                        p.W >= 1,
                    op, ": x must be [..., H, W, bits (1..8), ceil(cin/32) = ", p.words(),
                    "] with H, W >= 1, got ", xw.sizes());
  p.KH = kh;
  p.KW = kw;
  TORCH_CHECK_VALUE(wpacked.dim() == 3 && wpacked.size(1) == kh * kw &&
                        wpacked.size(2) == p.words(),
                    op, ": wpacked must be [Cout, KH*KW, ceil(Cin/32)], got ", wpacked.sizes());
  p.Cout = wpacked.size(0);
  p.stride_h = stride[0];
  p.stride_w = stride[1];
  p.pad_h = padding[0];
  p.pad_w = padding[1];
  p.dil_h = dilation[0];
  p.dil_w = dilation[1];
  TORCH_CHECK_VALUE(p.stride_h >= 1 && p.stride_w >= 1 && p.dil_h >= 1 && p.dil_w >= 1 &&
                        p.pad_h >= 0 && p.pad_w >= 0,
                    op, ": stride and dilation must be >= 1 and padding >= 0");
  TORCH_CHECK_VALUE(p.H + 2 * p.pad_h >= p.dil_h * (kh - 1) + 1 &&
                        p.W + 2 * p.pad_w >= p.dil_w * (kw - 1) + 1,
                    op, ": the (dilated) kernel is larger than the padded input");
  p.Hout = (p.H + 2 * p.pad_h - p.dil_h * (kh - 1) - 1) / p.stride_h + 1;
  p.Wout = (p.W + 2 * p.pad_w - p.dil_w * (kw - 1) - 1) / p.stride_w + 1;
  p.activation = BinaryActivation::Spike;
  return p;
}

MtLifParams lif_params(const char* op, int64_t T, const Tensor& decay, int64_t channels,
                       const Tensor& like, double threshold, int64_t levels, int64_t reset,
                       int64_t form) {
  checks::dtype(decay, op, "decay", {at::kFloat});
  checks::same_device(decay, op, "decay", like);
  checks::contiguous(decay, op, "decay");
  TORCH_CHECK_VALUE(decay.dim() == 1 && (decay.numel() == 1 || decay.numel() == channels), op,
                    ": decay must be [1] or [C] with C = ", channels, ", got ", decay.sizes());
  TORCH_CHECK_VALUE(levels >= 1 && levels <= 255, op, ": levels must be in 1..255, got ",
                    levels);
  MtLifParams p;
  p.T = T;
  p.decay_size = decay.numel();
  p.threshold = threshold;
  p.levels = int(levels);
  p.reset = checks::enum_arg<Reset>(reset, op, "reset", kResets);
  p.form = checks::enum_arg<Form>(form, op, "form", kForms);
  return p;
}

cpu::PopcountIsa current_isa() {
  cpu::PopcountIsa isa;
  std::string error;
  TORCH_CHECK(cpu::select_popcount_isa(std::getenv("FASTSNN_CPU_ISA"), &isa, &error), error);
  return isa;
}

const float* data_or_null(const OptTensor& t) {
  return t.has_value() ? t->data_ptr<float>() : nullptr;
}

const uint32_t* words(const Tensor& t) {
  return reinterpret_cast<const uint32_t*>(t.data_ptr<int32_t>());
}

// The checked parameters of a binary_conv2d_packed_forward call.
BinaryConvParams conv_packed_setup(const Tensor& xw, const Tensor& wpacked,
                                   const OptTensor& alpha, const OptTensor& bias,
                                   at::IntArrayRef stride, at::IntArrayRef padding,
                                   at::IntArrayRef dilation, int64_t kh, int64_t kw,
                                   int64_t cin) {
  constexpr const char* op = "binary_conv2d_packed_forward";
  TORCH_CHECK_VALUE(xw.dim() == 5, op, ": x must be [N, H, W, bits, words], got ", xw.sizes());
  const BinaryConvParams p =
      conv_params(op, xw, xw.size(0), wpacked, stride, padding, dilation, kh, kw, cin);
  check_vector(alpha, op, "alpha", xw, p.Cout);
  check_vector(bias, op, "bias", xw, p.Cout);
  return p;
}

Tensor conv_packed_cpu(const Tensor& xw, const Tensor& wpacked, const OptTensor& alpha,
                       const OptTensor& bias, at::IntArrayRef stride, at::IntArrayRef padding,
                       at::IntArrayRef dilation, int64_t kh, int64_t kw, int64_t cin) {
  const IntraOpThreads threads;
  const BinaryConvParams p =
      conv_packed_setup(xw, wpacked, alpha, bias, stride, padding, dilation, kh, kw, cin);
  Tensor out = at::empty({p.N, p.Cout, p.Hout, p.Wout}, xw.options().dtype(at::kFloat));
  cpu::binary_conv2d_forward_packed(p, words(xw), words(wpacked), data_or_null(alpha),
                                    data_or_null(bias), out.data_ptr<float>(), current_isa());
  return out;
}

// The checked parameters (conv, LIF) and the zeroed output words of binary_snn_layer_forward.
struct SnnLayerCall {
  BinaryConvParams p;
  MtLifParams lif;
  Tensor out;
};

SnnLayerCall snn_layer_setup(const Tensor& xw, const Tensor& wpacked, const OptTensor& scale,
                             const OptTensor& bias, const Tensor& decay,
                             at::IntArrayRef stride, at::IntArrayRef padding,
                             at::IntArrayRef dilation, int64_t kh, int64_t kw, int64_t cin,
                             double threshold, int64_t levels, int64_t reset, int64_t form) {
  constexpr const char* op = "binary_snn_layer_forward";
  TORCH_CHECK_VALUE(xw.dim() == 6, op, ": x must be [T, N, H, W, bits, words], got ",
                    xw.sizes());
  SnnLayerCall c;
  c.p = conv_params(op, xw, xw.size(0) * xw.size(1), wpacked, stride, padding, dilation, kh,
                    kw, cin);
  check_vector(scale, op, "scale", xw, c.p.Cout);
  check_vector(bias, op, "bias", xw, c.p.Cout);
  c.lif = lif_params(op, xw.size(0), decay, c.p.Cout, xw, threshold, levels, reset, form);
  c.out = at::zeros({xw.size(0), xw.size(1), c.p.Hout, c.p.Wout, bits_for(levels),
                     (c.p.Cout + 31) / 32}, xw.options());
  return c;
}

Tensor snn_layer_cpu(const Tensor& xw, const Tensor& wpacked, const OptTensor& scale,
                     const OptTensor& bias, const Tensor& decay, at::IntArrayRef stride,
                     at::IntArrayRef padding, at::IntArrayRef dilation, int64_t kh, int64_t kw,
                     int64_t cin, double threshold, int64_t levels, int64_t reset,
                     int64_t form) {
  const IntraOpThreads threads;
  SnnLayerCall c = snn_layer_setup(xw, wpacked, scale, bias, decay, stride, padding, dilation,
                                   kh, kw, cin, threshold, levels, reset, form);
  cpu::binary_snn_layer_forward(c.p, c.lif, words(xw), words(wpacked), data_or_null(scale),
                                data_or_null(bias), decay.data_ptr<float>(),
                                reinterpret_cast<uint32_t*>(c.out.data_ptr<int32_t>()),
                                current_isa());
  return c.out;
}

#ifdef FASTSNN_WITH_CUDA
Tensor conv_packed_cuda(const Tensor& xw, const Tensor& wpacked, const OptTensor& alpha,
                        const OptTensor& bias, at::IntArrayRef stride, at::IntArrayRef padding,
                        at::IntArrayRef dilation, int64_t kh, int64_t kw, int64_t cin) {
  const BinaryConvParams p =
      conv_packed_setup(xw, wpacked, alpha, bias, stride, padding, dilation, kh, kw, cin);
  Tensor out = at::empty({p.N, p.Cout, p.Hout, p.Wout}, xw.options().dtype(at::kFloat));
  Tensor xsum = at::empty({p.N * p.H * p.W}, xw.options());
  const CudaLaunch launch(xw);
  cuda::binary_conv2d_forward_packed(p, words(xw), words(wpacked), data_or_null(alpha),
                                     data_or_null(bias), out.data_ptr<float>(),
                                     xsum.data_ptr<int32_t>(), launch.stream());
  return out;
}

Tensor snn_layer_cuda(const Tensor& xw, const Tensor& wpacked, const OptTensor& scale,
                      const OptTensor& bias, const Tensor& decay, at::IntArrayRef stride,
                      at::IntArrayRef padding, at::IntArrayRef dilation, int64_t kh,
                      int64_t kw, int64_t cin, double threshold, int64_t levels,
                      int64_t reset, int64_t form) {
  SnnLayerCall c = snn_layer_setup(xw, wpacked, scale, bias, decay, stride, padding, dilation,
                                   kh, kw, cin, threshold, levels, reset, form);
  if (c.out.numel() == 0) return c.out;
  c.lif.N = xw.size(1);
  c.lif.C = c.p.Cout;
  c.lif.R = c.p.Hout * c.p.Wout;
  Tensor current = at::empty({c.p.N, c.p.Cout, c.p.Hout, c.p.Wout},
                             xw.options().dtype(at::kFloat));
  Tensor xsum = at::empty({c.p.N * c.p.H * c.p.W}, xw.options());
  const CudaLaunch launch(xw);
  cuda::binary_snn_layer_forward(c.p, c.lif, words(xw), words(wpacked), data_or_null(scale),
                                 data_or_null(bias), decay.data_ptr<float>(),
                                 xsum.data_ptr<int32_t>(), current.data_ptr<float>(),
                                 reinterpret_cast<uint32_t*>(c.out.data_ptr<int32_t>()),
                                 launch.stream());
  return c.out;
}
#endif

// The checked parameters and the (zeroed) output words of an mt_lif_packed_forward call.
std::pair<MtLifParams, Tensor> mt_lif_packed_setup(const char* op, const Tensor& x,
                                                   const Tensor& decay, double threshold,
                                                   int64_t levels, int64_t reset,
                                                   int64_t form) {
  checks::dtype(x, op, "x", {at::kFloat});
  checks::contiguous(x, op, "x");
  TORCH_CHECK_VALUE(x.dim() == 4, op, ": x must be [T, N, C, R], got ", x.sizes());
  MtLifParams p = lif_params(op, x.size(0), decay, x.size(2), x, threshold, levels, reset,
                             form);
  p.N = x.size(1);
  p.C = x.size(2);
  p.R = x.size(3);
  Tensor out = at::zeros({p.T, p.N, p.R, bits_for(levels), (p.C + 31) / 32},
                         x.options().dtype(at::kInt));
  return {p, out};
}

Tensor mt_lif_packed_cpu(const Tensor& x, const Tensor& decay, double threshold,
                         int64_t levels, int64_t reset, int64_t form) {
  const IntraOpThreads threads;
  auto [p, out] = mt_lif_packed_setup("mt_lif_packed_forward", x, decay, threshold, levels,
                                      reset, form);
  if (out.numel() == 0) return out;
  cpu::mt_lif_packed_forward(p, x.data_ptr<float>(), decay.data_ptr<float>(),
                             reinterpret_cast<uint32_t*>(out.data_ptr<int32_t>()));
  return out;
}

#ifdef FASTSNN_WITH_CUDA
Tensor mt_lif_packed_cuda(const Tensor& x, const Tensor& decay, double threshold,
                          int64_t levels, int64_t reset, int64_t form) {
  auto [p, out] = mt_lif_packed_setup("mt_lif_packed_forward", x, decay, threshold, levels,
                                      reset, form);
  if (out.numel() == 0) return out;
  const CudaLaunch launch(x);
  cuda::mt_lif_packed_forward(p, x.data_ptr<float>(), decay.data_ptr<float>(),
                              reinterpret_cast<uint32_t*>(out.data_ptr<int32_t>()),
                              launch.stream());
  return out;
}
#endif

}  // namespace
}  // namespace fastsnn

TORCH_LIBRARY_FRAGMENT(fastsnn, m) {
  fastsnn::register_impl(m, "binary_conv2d_packed_forward", &fastsnn::conv_packed_cpu,
                         FASTSNN_CUDA_ONLY(&fastsnn::conv_packed_cuda));
  fastsnn::register_impl(m, "binary_snn_layer_forward", &fastsnn::snn_layer_cpu,
                         FASTSNN_CUDA_ONLY(&fastsnn::snn_layer_cuda));
  fastsnn::register_impl(m, "mt_lif_packed_forward", &fastsnn::mt_lif_packed_cpu,
                         FASTSNN_CUDA_ONLY(&fastsnn::mt_lif_packed_cuda));
}
