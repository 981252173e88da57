// binary_conv2d binding: the CPU and CUDA implementations of fastsnn::binary_conv2d_forward
// (schema declared in fastsnn/ops/binary_conv.py, whose docstring is the contract), the
// checks that keep a direct call in bounds (checks.h), and the CPU ISA queries.
#include <torch/library.h>

#include <ATen/ATen.h>
#include <cstdlib>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "common/binary_conv.h"
#include "checks.h"
#include "cpu/binary_conv.h"
#include "torch/threads.h"

#ifdef FASTSNN_WITH_CUDA
#include "cuda/binary_conv.h"
#endif

namespace fastsnn {
namespace {

using OptTensor = std::optional<at::Tensor>;
constexpr const char* kOp = "binary_conv2d_forward";

std::pair<int64_t, int64_t> pair_arg(at::IntArrayRef v, const char* name) {
  TORCH_CHECK_VALUE(v.size() == 1 || v.size() == 2, kOp, ": ", name,
                    " must have 1 or 2 values, got ", v.size());
  return {v[0], v.size() == 2 ? v[1] : v[0]};
}

void check_vector(const OptTensor& t, const char* name, const at::Tensor& x, int64_t cout) {
  if (!t.has_value()) return;
  checks::dtype(*t, kOp, name, {at::kFloat});
  checks::same_device(*t, kOp, name, x);
  checks::contiguous(*t, kOp, name);
  TORCH_CHECK_VALUE(t->dim() == 1 && t->size(0) == cout, kOp, ": ", name,
                    " must be a [Cout] = [", cout, "] tensor, got ", t->sizes());
}

// The contract's checks; returns the kernel parameters.
BinaryConvParams make_params(const at::Tensor& x, const at::Tensor& wpacked,
                             const OptTensor& alpha, const OptTensor& bias,
                             at::IntArrayRef stride, at::IntArrayRef padding,
                             at::IntArrayRef dilation, int64_t kh, int64_t kw,
                             int64_t activation, int64_t bits) {
  checks::dtype(x, kOp, "x", {at::kFloat});
  checks::contiguous(x, kOp, "x");
  TORCH_CHECK_VALUE(x.dim() == 4 && x.size(1) >= 1 && x.size(2) >= 1 && x.size(3) >= 1, kOp,
                    ": x must be [N, Cin, H, W] with no empty channel or spatial dim, got ",
                    x.sizes());
  checks::dtype(wpacked, kOp, "wpacked", {at::kInt});
  checks::same_device(wpacked, kOp, "wpacked", x);
  checks::contiguous(wpacked, kOp, "wpacked");
  TORCH_CHECK_VALUE(kh >= 1 && kw >= 1, kOp, ": kernel size must be >= 1, got ", kh, "x", kw);
  const auto act = checks::enum_arg<BinaryActivation>(activation, kOp, "activation",
                                                      kBinaryActivations);
  TORCH_CHECK_VALUE(bits >= 1 && bits <= 8 && (act == BinaryActivation::Spike || bits == 1),
                    kOp, ": bits must be 1..8 for spike and 1 for sign, got ", bits);
  BinaryConvParams p;
  p.N = x.size(0);
  p.Cin = x.size(1);
  p.H = x.size(2);
  p.W = x.size(3);
  p.KH = kh;
  p.KW = kw;
  TORCH_CHECK_VALUE(wpacked.dim() == 3 && wpacked.size(1) == kh * kw &&
                        wpacked.size(2) == p.words(),
                    kOp, ": wpacked must be [Cout, KH*KW, ceil(Cin/32)] = [Cout, ", kh * kw,
                    ", ", p.words(), "], got ", wpacked.sizes());
  p.Cout = wpacked.size(0);
  check_vector(alpha, "alpha", x, p.Cout);
  check_vector(bias, "bias", x, p.Cout);
  std::tie(p.stride_h, p.stride_w) = pair_arg(stride, "stride");
  std::tie(p.pad_h, p.pad_w) = pair_arg(padding, "padding");
  std::tie(p.dil_h, p.dil_w) = pair_arg(dilation, "dilation");
  TORCH_CHECK_VALUE(p.stride_h >= 1 && p.stride_w >= 1 && p.dil_h >= 1 && p.dil_w >= 1 &&
                        p.pad_h >= 0 && p.pad_w >= 0,
                    kOp, ": stride and dilation must be >= 1 and padding >= 0");
  p.Hout = (p.H + 2 * p.pad_h - p.dil_h * (kh - 1) - 1) / p.stride_h + 1;
  p.Wout = (p.W + 2 * p.pad_w - p.dil_w * (kw - 1) - 1) / p.stride_w + 1;
  TORCH_CHECK_VALUE(p.H + 2 * p.pad_h >= p.dil_h * (kh - 1) + 1 &&
                        p.W + 2 * p.pad_w >= p.dil_w * (kw - 1) + 1,
                    kOp, ": the (dilated) kernel is larger than the padded input");
  p.bits = int(bits);
  p.activation = act;
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

// `wsign` (the weights as +1/-1 floats) is an input only so that autograd reaches the
// latent weights; the kernels read `wpacked`.
at::Tensor forward_cpu(const at::Tensor& x, const at::Tensor& wpacked,
                       const OptTensor& /*wsign*/, const OptTensor& alpha, const OptTensor& bias,
                       at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                       int64_t kh, int64_t kw, int64_t activation, int64_t bits) {
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

// The contract's wpacked from a float weight [Cout, Cin, KH, KW]: bit i of word w at
// (o, tap) is 1 iff W[o, 32w+i, tap] >= 0 (fastsnn.reference.binary_conv.pack_weight, which
// it reproduces bit for bit). Composite: the CPU kernel for CPU tensors, torch ops elsewhere.
at::Tensor pack_weight(const at::Tensor& weight) {
  constexpr const char* op = "binary_conv2d_pack_weight";
  checks::dtype(weight, op, "weight", {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16});
  TORCH_CHECK_VALUE(weight.dim() == 4 && weight.numel() > 0, op,
                    ": weight must be [Cout, Cin, KH, KW] with no empty dim, got ",
                    weight.sizes());
  const int64_t cout = weight.size(0), cin = weight.size(1), kk = weight.size(2) * weight.size(3);
  const int64_t words = (cin + 31) / 32;
  if (!weight.device().is_cpu()) {
    at::Tensor bits = weight.ge(0).permute({0, 2, 3, 1}).reshape({cout, kk, cin});
    bits = at::constant_pad_nd(bits.to(at::kLong), {0, words * 32 - cin});
    const at::Tensor shifts =
        at::bitwise_left_shift(at::ones({32}, bits.options()), at::arange(32, bits.options()));
    return (bits.reshape({cout, kk, words, 32}) * shifts).sum(-1).to(at::kInt);
  }
  const IntraOpThreads threads;  // torch.set_num_threads governs the kernel (torch/threads.h)
  // Half and bfloat16 widen to float32 exactly; float64 keeps its own compare (a tiny
  // negative double would round to -0.0f, which is >= 0).
  const at::Tensor w = weight.scalar_type() == at::kDouble
                           ? weight.contiguous()
                           : weight.to(at::kFloat).contiguous();
  at::Tensor out = at::empty({cout, kk, words}, weight.options().dtype(at::kInt));
  auto* dst = reinterpret_cast<uint32_t*>(out.data_ptr<int32_t>());
  const cpu::PopcountIsa isa = current_isa();
  if (w.scalar_type() == at::kDouble) {
    cpu::binary_pack_weight(w.data_ptr<double>(), cout, cin, kk, dst, isa);
  } else {
    cpu::binary_pack_weight(w.data_ptr<float>(), cout, cin, kk, dst, isa);
  }
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
at::Tensor forward_cuda(const at::Tensor& x, const at::Tensor& wpacked,
                        const OptTensor& /*wsign*/, const OptTensor& alpha,
                        const OptTensor& bias, at::IntArrayRef stride, at::IntArrayRef padding,
                        at::IntArrayRef dilation, int64_t kh, int64_t kw, int64_t activation,
                        int64_t bits) {
  const BinaryConvParams p =
      make_params(x, wpacked, alpha, bias, stride, padding, dilation, kh, kw, activation, bits);
  const CudaLaunch launch(x);
  at::Tensor out = at::empty({p.N, p.Cout, p.Hout, p.Wout}, x.options());
  if (out.numel() == 0) return out;
  const size_t bytes = cuda::binary_conv2d_workspace_bytes(p);
  at::Tensor workspace = at::empty({int64_t(bytes)}, x.options().dtype(at::kByte));
  cuda::binary_conv2d_forward(p, x.data_ptr<float>(),
                              reinterpret_cast<const uint32_t*>(wpacked.data_ptr<int32_t>()),
                              data_or_null(alpha), data_or_null(bias), out.data_ptr<float>(),
                              bytes ? workspace.data_ptr() : nullptr, launch.stream());
  return out;
}
#endif

}  // namespace
}  // namespace fastsnn

TORCH_LIBRARY_FRAGMENT(fastsnn, m) {
  fastsnn::register_impl(m, "binary_conv2d_forward", &fastsnn::forward_cpu,
                         FASTSNN_CUDA_ONLY(&fastsnn::forward_cuda));
  // The popcount path a CPU call takes now (FASTSNN_CPU_ISA honoured) and those available.
  m.impl("binary_conv2d_pack_weight",
         torch::dispatch(c10::DispatchKey::CompositeExplicitAutograd, &fastsnn::pack_weight));
  m.def("binary_conv2d_cpu_isa() -> str", &fastsnn::cpu_isa);
  m.def("binary_conv2d_cpu_isas() -> str[]", &fastsnn::cpu_isas);
}
