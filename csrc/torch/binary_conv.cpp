// binary_conv2d binding: schemas of fastsnn_C::binary_conv2d_forward (and the CPU ISA
// queries), argument checks against the kernel contract (fastsnn/ops/binary_conv.py), and
// the CPU / CUDA implementations calling the torch-free kernels.
#include <torch/library.h>

#include <ATen/ATen.h>
#include <cstdlib>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "common/binary_conv.h"
#include "cpu/binary_conv.h"
#include "torch/threads.h"

#ifdef FASTSNN_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "cuda/binary_conv.h"
#endif

namespace fastsnn {
namespace {

using OptTensor = std::optional<at::Tensor>;

std::pair<int64_t, int64_t> pair_arg(at::IntArrayRef v, const char* name) {
  TORCH_CHECK(v.size() == 1 || v.size() == 2, "binary_conv2d_forward: ", name,
              " must have 1 or 2 values, got ", v.size());
  return {v[0], v.size() == 2 ? v[1] : v[0]};
}

void check_vector(const OptTensor& t, const char* name, const at::Tensor& x, int64_t cout) {
  if (!t.has_value()) return;
  TORCH_CHECK(t->scalar_type() == at::kFloat, "binary_conv2d_forward: ", name,
              " must be float32, got ", t->scalar_type());
  TORCH_CHECK(t->device() == x.device(), "binary_conv2d_forward: ", name, " is on ",
              t->device(), " but x is on ", x.device());
  TORCH_CHECK(t->dim() == 1 && t->size(0) == cout && t->is_contiguous(),
              "binary_conv2d_forward: ", name, " must be a contiguous [Cout] = [", cout,
              "] tensor, got ", t->sizes());
}

// The contract's checks; returns the kernel parameters.
BinaryConvParams make_params(const at::Tensor& x, const at::Tensor& wpacked,
                             const OptTensor& alpha, const OptTensor& bias,
                             at::IntArrayRef stride, at::IntArrayRef padding,
                             at::IntArrayRef dilation, int64_t kh, int64_t kw,
                             int64_t activation, int64_t bits) {
  TORCH_CHECK(x.scalar_type() == at::kFloat, "binary_conv2d_forward: x must be float32, got ",
              x.scalar_type());
  TORCH_CHECK(x.dim() == 4 && x.is_contiguous(),
              "binary_conv2d_forward: x must be a contiguous [N, Cin, H, W] tensor, got ",
              x.sizes());
  TORCH_CHECK(x.size(1) >= 1 && x.size(2) >= 1 && x.size(3) >= 1,
              "binary_conv2d_forward: x has an empty channel or spatial dim: ", x.sizes());
  TORCH_CHECK(wpacked.scalar_type() == at::kInt,
              "binary_conv2d_forward: wpacked must be int32, got ", wpacked.scalar_type());
  TORCH_CHECK(wpacked.device() == x.device(), "binary_conv2d_forward: wpacked is on ",
              wpacked.device(), " but x is on ", x.device());
  TORCH_CHECK(kh >= 1 && kw >= 1, "binary_conv2d_forward: kernel size must be >= 1, got ", kh,
              "x", kw);
  TORCH_CHECK(activation == 0 || activation == 1,
              "binary_conv2d_forward: activation must be 0 (spike) or 1 (sign), got ",
              activation);
  TORCH_CHECK(bits >= 1 && bits <= 8 && (activation == 0 || bits == 1),
              "binary_conv2d_forward: bits must be 1..8 for spike and 1 for sign, got ", bits);
  BinaryConvParams p;
  p.N = x.size(0);
  p.Cin = x.size(1);
  p.H = x.size(2);
  p.W = x.size(3);
  p.KH = kh;
  p.KW = kw;
  TORCH_CHECK(wpacked.dim() == 3 && wpacked.size(1) == kh * kw &&
                  wpacked.size(2) == p.words() && wpacked.is_contiguous(),
              "binary_conv2d_forward: wpacked must be a contiguous [Cout, KH*KW, ceil(Cin/32)]"
              " = [Cout, ", kh * kw, ", ", p.words(), "] tensor, got ", wpacked.sizes());
  p.Cout = wpacked.size(0);
  check_vector(alpha, "alpha", x, p.Cout);
  check_vector(bias, "bias", x, p.Cout);
  std::tie(p.stride_h, p.stride_w) = pair_arg(stride, "stride");
  std::tie(p.pad_h, p.pad_w) = pair_arg(padding, "padding");
  std::tie(p.dil_h, p.dil_w) = pair_arg(dilation, "dilation");
  TORCH_CHECK(p.stride_h >= 1 && p.stride_w >= 1 && p.dil_h >= 1 && p.dil_w >= 1 &&
                  p.pad_h >= 0 && p.pad_w >= 0,
              "binary_conv2d_forward: stride and dilation must be >= 1 and padding >= 0");
  p.Hout = (p.H + 2 * p.pad_h - p.dil_h * (kh - 1) - 1) / p.stride_h + 1;
  p.Wout = (p.W + 2 * p.pad_w - p.dil_w * (kw - 1) - 1) / p.stride_w + 1;
  TORCH_CHECK(p.H + 2 * p.pad_h >= p.dil_h * (kh - 1) + 1 &&
                  p.W + 2 * p.pad_w >= p.dil_w * (kw - 1) + 1,
              "binary_conv2d_forward: the (dilated) kernel is larger than the padded input");
  p.bits = int(bits);
  p.activation = activation == 1 ? BinaryActivation::Sign : BinaryActivation::Spike;
  return p;
}

const float* data_or_null(const OptTensor& t) {
  return t.has_value() ? t->data_ptr<float>() : nullptr;
}

cpu::PopcountIsa current_isa() {
  cpu::PopcountIsa isa;
  std::string error;
  TORCH_CHECK(cpu::select_popcount_isa(std::getenv("FASTSNN_CPU_ISA"), &isa, &error), error);
  return isa;
}

at::Tensor forward_cpu(const at::Tensor& x, const at::Tensor& wpacked, const OptTensor& alpha,
                       const OptTensor& bias, at::IntArrayRef stride, at::IntArrayRef padding,
                       at::IntArrayRef dilation, int64_t kh, int64_t kw, int64_t activation,
                       int64_t bits) {
  const IntraOpThreads threads;  // torch.set_num_threads governs the kernel (torch/threads.h)
  const BinaryConvParams p =
      make_params(x, wpacked, alpha, bias, stride, padding, dilation, kh, kw, activation, bits);
  const cpu::PopcountIsa isa = current_isa();  // read per call: tests force each path
  at::Tensor out = at::empty({p.N, p.Cout, p.Hout, p.Wout}, x.options());
  cpu::binary_conv2d_forward(p, x.data_ptr<float>(),
                             reinterpret_cast<const uint32_t*>(wpacked.data_ptr<int32_t>()),
                             data_or_null(alpha), data_or_null(bias), out.data_ptr<float>(),
                             isa);
  return out;
}

std::string cpu_isa() { return cpu::popcount_isa_name(current_isa()); }

std::vector<std::string> cpu_isas() {
  std::vector<std::string> names;
  for (cpu::PopcountIsa isa : cpu::supported_popcount_isas())
    names.emplace_back(cpu::popcount_isa_name(isa));
  return names;
}

#ifdef FASTSNN_WITH_CUDA
at::Tensor forward_cuda(const at::Tensor& x, const at::Tensor& wpacked, const OptTensor& alpha,
                        const OptTensor& bias, at::IntArrayRef stride, at::IntArrayRef padding,
                        at::IntArrayRef dilation, int64_t kh, int64_t kw, int64_t activation,
                        int64_t bits) {
  const BinaryConvParams p =
      make_params(x, wpacked, alpha, bias, stride, padding, dilation, kh, kw, activation, bits);
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor out = at::empty({p.N, p.Cout, p.Hout, p.Wout}, x.options());
  if (out.numel() == 0) return out;
  const size_t bytes = cuda::binary_conv2d_workspace_bytes(p);
  at::Tensor workspace = at::empty({int64_t(bytes)}, x.options().dtype(at::kByte));
  cuda::binary_conv2d_forward(p, x.data_ptr<float>(),
                              reinterpret_cast<const uint32_t*>(wpacked.data_ptr<int32_t>()),
                              data_or_null(alpha), data_or_null(bias), out.data_ptr<float>(),
                              bytes ? workspace.data_ptr() : nullptr,
                              c10::cuda::getCurrentCUDAStream(x.device().index()).stream());
  return out;
}
#endif

}  // namespace
}  // namespace fastsnn

TORCH_LIBRARY_FRAGMENT(fastsnn_C, m) {
  m.def(
      "binary_conv2d_forward(Tensor x, Tensor wpacked, Tensor? alpha, Tensor? bias, "
      "int[] stride, int[] padding, int[] dilation, int kh, int kw, int activation, "
      "int bits) -> Tensor");
  // The popcount path a CPU call takes now (FASTSNN_CPU_ISA honoured) and those available.
  m.def("binary_conv2d_cpu_isa() -> str", &fastsnn::cpu_isa);
  m.def("binary_conv2d_cpu_isas() -> str[]", &fastsnn::cpu_isas);
}

TORCH_LIBRARY_IMPL(fastsnn_C, CPU, m) {
  m.impl("binary_conv2d_forward", &fastsnn::forward_cpu);
}

#ifdef FASTSNN_WITH_CUDA
TORCH_LIBRARY_IMPL(fastsnn_C, CUDA, m) {
  m.impl("binary_conv2d_forward", &fastsnn::forward_cuda);
}
#endif
