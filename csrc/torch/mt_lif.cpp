// mt_lif binding: the schemas of fastsnn_C::mt_lif_forward / mt_lif_backward, argument
// checks, output allocation and the dtype dispatch to the CPU kernels (cpu/mt_lif.h) or,
// when built with CUDA, the launchers of cuda/mt_lif.h. fastsnn/ops/mt_lif.py validates and
// normalises the arguments first (its docstring is the contract); the checks here are the
// defence in depth that keeps a malformed direct call from reaching a kernel (TypeError for
// a dtype, ValueError for anything else, like the Python checks).
#include <ATen/ATen.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

#include "common/mt_lif.h"
#include "cpu/mt_lif.h"

#ifdef FASTSNN_WITH_CUDA
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>

#include "cuda/mt_lif.h"
#endif

namespace fastsnn {
namespace {

using at::Tensor;
using OptTensor = std::optional<Tensor>;
using Tensors3 = std::tuple<Tensor, Tensor, Tensor>;
using Tensors4 = std::tuple<Tensor, Tensor, Tensor, Tensor>;

at::ScalarType compute_dtype(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

// x-like storage tensors: contiguous [T, N, C, R] in a supported dtype on x's device.
void check_storage(const Tensor& t, const char* name) {
  TORCH_CHECK_VALUE(t.dim() == 4, "mt_lif: ", name, " must be [T, N, C, R], got shape ",
                    t.sizes());
  TORCH_CHECK_VALUE(t.is_contiguous(), "mt_lif: ", name, " must be contiguous");
  const auto d = t.scalar_type();
  TORCH_CHECK_TYPE(
      d == at::kFloat || d == at::kDouble || d == at::kHalf || d == at::kBFloat16, "mt_lif: ",
      name, " must be float32, float64, float16 or bfloat16, got ", d);
  TORCH_CHECK_TYPE(!(t.is_cuda() && d == at::kDouble),
                   "mt_lif: the cuda kernels support float32, float16 and bfloat16, not float64");
}

// A tensor in the compute dtype on `like`'s device, contiguous, of the given shape.
void check_compute(const Tensor& t, const char* name, const Tensor& like,
                   at::IntArrayRef shape) {
  TORCH_CHECK_VALUE(t.device() == like.device(), "mt_lif: ", name, " is on ", t.device(),
                    " but x is on ", like.device());
  TORCH_CHECK_TYPE(t.scalar_type() == compute_dtype(like.scalar_type()), "mt_lif: ", name,
                   " must have dtype ", compute_dtype(like.scalar_type()), ", got ",
                   t.scalar_type());
  TORCH_CHECK_VALUE(t.sizes() == shape, "mt_lif: ", name, " must have shape ", shape,
                    ", got ", t.sizes());
  TORCH_CHECK_VALUE(t.is_contiguous(), "mt_lif: ", name, " must be contiguous");
}

// decay / syn_decay: [1] or [C].
int64_t check_param(const Tensor& p, const char* name, const Tensor& x) {
  const int64_t C = x.size(2);
  TORCH_CHECK_VALUE(p.dim() == 1 && (p.numel() == 1 || p.numel() == C), "mt_lif: ", name,
                    " must be [1] or [C] with C = ", C, ", got shape ", p.sizes());
  check_compute(p, name, x, p.sizes());
  return p.numel();
}

MtLifParams make_params(const Tensor& x, const Tensor& decay, const OptTensor& syn,
                        const OptTensor& v0, double threshold, int64_t levels, int64_t reset,
                        int64_t surrogate, double width, bool detach_reset, int64_t form,
                        int64_t save) {
  check_storage(x, "x");
  TORCH_CHECK_VALUE(threshold > 0, "mt_lif: threshold must be > 0, got ", threshold);
  TORCH_CHECK_VALUE(width > 0, "mt_lif: width must be > 0, got ", width);
  TORCH_CHECK_VALUE(levels >= 1 && levels <= (1 << 20),
                    "mt_lif: levels must be in [1, 2^20], got ", levels);
  TORCH_CHECK_VALUE(reset >= 0 && reset <= 3,
                    "mt_lif: reset must be 0 (hard), 1 (soft), 2 (none) or 3 (subtract_next), "
                    "got ", reset);
  TORCH_CHECK_VALUE(surrogate >= 0 && surrogate <= 4,
                    "mt_lif: surrogate must be 0 (rect), 1 (triangle), 2 (sigmoid), 3 (atan) "
                    "or 4 (fast_sigmoid), got ", surrogate);
  TORCH_CHECK_VALUE(form == 0 || form == 1, "mt_lif: form must be 0 (stbp) or 1 (plif), got ",
                    form);
  TORCH_CHECK_VALUE(save >= 0 && save <= 2,
                    "mt_lif: save must be 0 (none), 1 (sg) or 2 (h), got ", save);
  MtLifParams p;
  p.T = x.size(0);
  p.N = x.size(1);
  p.C = x.size(2);
  p.R = x.size(3);
  p.decay_size = check_param(decay, "decay", x);
  p.syn_size = syn ? check_param(*syn, "syn_decay", x) : 0;
  if (v0) check_compute(*v0, "v0", x, x.sizes().slice(1));
  p.has_v0 = v0.has_value();
  p.threshold = threshold;
  p.width = width;
  p.levels = int(levels);
  p.reset = Reset(reset);
  p.surrogate = Surrogate(surrogate);
  p.form = Form(form);
  p.save = Save(save);
  p.detach_reset = detach_reset;
  return p;
}

// Outputs of the forward; unused ones are empty [0] tensors (dtypes as the fake impl).
Tensors3 forward_outputs(const Tensor& x, const MtLifParams& p) {
  const auto acc = x.options().dtype(compute_dtype(x.scalar_type()));
  Tensor s = at::empty(x.sizes(), x.options());
  Tensor saved = p.save == Save::Sg  ? at::empty(x.sizes(), x.options())
                 : p.save == Save::H ? at::empty(x.sizes(), acc)
                                     : at::empty({0}, x.options());
  Tensor j = p.save_j ? at::empty(x.sizes(), acc) : at::empty({0}, acc);
  return {s, saved, j};
}

// Checks what the backward reads (the forward's outputs and the gradient) and returns
// the parameters it runs with.
MtLifParams backward_params(const Tensor& grad_s, const Tensor& s, const Tensor& saved,
                            const Tensor& j, const Tensor& decay, const OptTensor& syn,
                            const OptTensor& v0, double threshold, int64_t levels,
                            int64_t reset, int64_t surrogate, double width, bool detach_reset,
                            int64_t form, int64_t save, bool decay_grad, bool syn_grad) {
  MtLifParams p = make_params(s, decay, syn, v0, threshold, levels, reset, surrogate, width,
                              detach_reset, form, save);
  check_storage(grad_s, "grad_s");
  TORCH_CHECK_VALUE(grad_s.sizes() == s.sizes() && grad_s.scalar_type() == s.scalar_type() &&
                        grad_s.device() == s.device(),
                    "mt_lif: grad_s must match s (shape ", s.sizes(), ", ", s.scalar_type(),
                    ", ", s.device(), ")");
  TORCH_CHECK_VALUE(p.save != Save::None,
                    "mt_lif: backward needs the tensors of a forward run with save = 1 or 2");
  if (p.save == Save::Sg) {
    TORCH_CHECK_VALUE(saved.sizes() == s.sizes() && saved.scalar_type() == s.scalar_type() &&
                          saved.is_contiguous() && saved.device() == s.device(),
                      "mt_lif: saved must be like s in save mode sg");
    TORCH_CHECK_VALUE(!(p.reset == Reset::Hard && !p.detach_reset),
                      "mt_lif: save mode sg cannot serve a hard reset without detach_reset "
                      "(needs save = 2, h)");
    TORCH_CHECK_VALUE(!decay_grad,
                      "mt_lif: save mode sg cannot serve a decay gradient (needs save = 2, h)");
  } else {
    check_compute(saved, "saved (h)", s, s.sizes());
  }
  const bool syn_on = p.syn_size > 0;
  TORCH_CHECK_VALUE(!syn_grad || syn_on, "mt_lif: syn_grad without syn_decay");
  const bool needs_j = (syn_on && syn_grad) || (decay_grad && p.form == Form::Plif);
  if (needs_j || j.numel() > 0) check_compute(j, "j", s, s.sizes());
  p.save_j = j.numel() > 0;
  p.decay_grad = decay_grad;
  p.syn_grad = syn_on && syn_grad;
  return p;
}

Tensors4 backward_outputs(const Tensor& s, const Tensor& decay, const OptTensor& syn,
                          const OptTensor& v0) {
  const auto acc = decay.options();
  Tensor gsyn = syn ? at::empty(syn->sizes(), acc) : at::empty({0}, acc);
  Tensor gv0 = v0 ? at::empty(v0->sizes(), acc) : at::empty({0}, acc);
  return {at::empty(s.sizes(), s.options()), at::empty(decay.sizes(), acc), gsyn, gv0};
}

template <class A>
const A* data_or_null(const OptTensor& t) {
  return t ? static_cast<const A*>(t->const_data_ptr()) : nullptr;
}

template <class A>
A* data_or_null(const Tensor& t) {
  return t.numel() ? static_cast<A*>(t.data_ptr()) : nullptr;
}

// ---------------------------------------------------------------- CPU

template <class S, class A>
void forward_cpu(const MtLifParams& p, const Tensor& x, const Tensor& decay,
                 const OptTensor& syn, const OptTensor& v0, const Tensors3& out) {
  const auto& [s, saved, j] = out;
  cpu::mt_lif_forward<S, A>(p, static_cast<const S*>(x.const_data_ptr()),
                            static_cast<const A*>(decay.const_data_ptr()),
                            data_or_null<A>(syn), data_or_null<A>(v0),
                            static_cast<S*>(s.data_ptr()),
                            saved.numel() ? saved.data_ptr() : nullptr, data_or_null<A>(j));
}

template <class S, class A>
void backward_cpu(const MtLifParams& p, const Tensor& grad_s, const Tensor& s,
                  const Tensor& saved, const Tensor& j, const Tensor& decay,
                  const OptTensor& syn, const OptTensor& v0, const Tensors4& out) {
  const auto& [gx, gdecay, gsyn, gv0] = out;
  cpu::mt_lif_backward<S, A>(
      p, static_cast<const S*>(grad_s.const_data_ptr()),
      static_cast<const S*>(s.const_data_ptr()), saved.const_data_ptr(),
      j.numel() ? static_cast<const A*>(j.const_data_ptr()) : nullptr,
      static_cast<const A*>(decay.const_data_ptr()), data_or_null<A>(syn),
      data_or_null<A>(v0), static_cast<S*>(gx.data_ptr()), static_cast<A*>(gdecay.data_ptr()),
      data_or_null<A>(gsyn), data_or_null<A>(gv0));
}

// Calls f.template operator()<S, A>() for x's dtype: storage S, compute A.
template <class F>
void dispatch_cpu(at::ScalarType t, F&& f) {
  switch (t) {
    case at::kFloat: return f.template operator()<float, float>();
    case at::kDouble: return f.template operator()<double, double>();
    case at::kHalf: return f.template operator()<cpu::half, float>();
    case at::kBFloat16: return f.template operator()<cpu::bfloat16, float>();
    default: TORCH_CHECK_TYPE(false, "mt_lif: unsupported dtype ", t);
  }
}

Tensors3 mt_lif_forward_cpu(const Tensor& x, const Tensor& decay, const OptTensor& syn,
                            const OptTensor& v0, double threshold, int64_t levels,
                            int64_t reset, int64_t surrogate, double width, bool detach_reset,
                            int64_t form, int64_t save, bool save_j) {
  MtLifParams p = make_params(x, decay, syn, v0, threshold, levels, reset, surrogate, width,
                              detach_reset, form, save);
  p.save_j = save_j;
  const Tensors3 out = forward_outputs(x, p);
  dispatch_cpu(x.scalar_type(), [&]<class S, class A>() {
    forward_cpu<S, A>(p, x, decay, syn, v0, out);
  });
  return out;
}

Tensors4 mt_lif_backward_cpu(const Tensor& grad_s, const Tensor& s, const Tensor& saved,
                             const Tensor& j, const Tensor& decay, const OptTensor& syn,
                             const OptTensor& v0, double threshold, int64_t levels,
                             int64_t reset, int64_t surrogate, double width, bool detach_reset,
                             int64_t form, int64_t save, bool decay_grad, bool syn_grad) {
  const MtLifParams p =
      backward_params(grad_s, s, saved, j, decay, syn, v0, threshold, levels, reset,
                      surrogate, width, detach_reset, form, save, decay_grad, syn_grad);
  const Tensors4 out = backward_outputs(s, decay, syn, v0);
  dispatch_cpu(s.scalar_type(), [&]<class S, class A>() {
    backward_cpu<S, A>(p, grad_s, s, saved, j, decay, syn, v0, out);
  });
  return out;
}

// ---------------------------------------------------------------- CUDA

#ifdef FASTSNN_WITH_CUDA
cuda::DType cuda_dtype(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return cuda::DType::F32;
    case at::kHalf: return cuda::DType::F16;
    case at::kBFloat16: return cuda::DType::BF16;
    default: TORCH_CHECK_TYPE(false, "mt_lif: the cuda kernels do not support ", t);
  }
}

Tensors3 mt_lif_forward_cuda(const Tensor& x, const Tensor& decay, const OptTensor& syn,
                             const OptTensor& v0, double threshold, int64_t levels,
                             int64_t reset, int64_t surrogate, double width, bool detach_reset,
                             int64_t form, int64_t save, bool save_j) {
  MtLifParams p = make_params(x, decay, syn, v0, threshold, levels, reset, surrogate, width,
                              detach_reset, form, save);
  p.save_j = save_j;
  const c10::cuda::CUDAGuard guard(x.device());
  const Tensors3 out = forward_outputs(x, p);
  const auto& [s, saved, j] = out;
  cuda::mt_lif_forward(p, cuda_dtype(x.scalar_type()), x.const_data_ptr(),
                       decay.const_data_ptr<float>(), data_or_null<float>(syn),
                       data_or_null<float>(v0), s.data_ptr(),
                       saved.numel() ? saved.data_ptr() : nullptr, data_or_null<float>(j),
                       c10::cuda::getCurrentCUDAStream());
  return out;
}

Tensors4 mt_lif_backward_cuda(const Tensor& grad_s, const Tensor& s, const Tensor& saved,
                              const Tensor& j, const Tensor& decay, const OptTensor& syn,
                              const OptTensor& v0, double threshold, int64_t levels,
                              int64_t reset, int64_t surrogate, double width,
                              bool detach_reset, int64_t form, int64_t save, bool decay_grad,
                              bool syn_grad) {
  const MtLifParams p =
      backward_params(grad_s, s, saved, j, decay, syn, v0, threshold, levels, reset,
                      surrogate, width, detach_reset, form, save, decay_grad, syn_grad);
  const c10::cuda::CUDAGuard guard(s.device());
  const Tensors4 out = backward_outputs(s, decay, syn, v0);
  const auto& [gx, gdecay, gsyn, gv0] = out;
  const auto bytes = int64_t(cuda::mt_lif_backward_workspace_bytes(p));
  Tensor workspace = at::empty({bytes}, s.options().dtype(at::kByte));
  cuda::mt_lif_backward(
      p, cuda_dtype(s.scalar_type()), grad_s.const_data_ptr(), s.const_data_ptr(),
      saved.const_data_ptr(), j.numel() ? j.const_data_ptr<float>() : nullptr,
      decay.const_data_ptr<float>(), data_or_null<float>(syn), data_or_null<float>(v0),
      gx.data_ptr(), gdecay.data_ptr<float>(), data_or_null<float>(gsyn),
      data_or_null<float>(gv0), bytes ? workspace.data_ptr() : nullptr,
      c10::cuda::getCurrentCUDAStream());
  return out;
}
#endif

}  // namespace
}  // namespace fastsnn

TORCH_LIBRARY_FRAGMENT(fastsnn_C, m) {
  m.def(
      "mt_lif_forward(Tensor x, Tensor decay, Tensor? syn_decay, Tensor? v0, float threshold, "
      "int levels, int reset, int surrogate, float width, bool detach_reset, int form, "
      "int save, bool save_j) -> (Tensor, Tensor, Tensor)");
  m.def(
      "mt_lif_backward(Tensor grad_s, Tensor s, Tensor saved, Tensor j, Tensor decay, "
      "Tensor? syn_decay, Tensor? v0, float threshold, int levels, int reset, int surrogate, "
      "float width, bool detach_reset, int form, int save, bool decay_grad, bool syn_grad) "
      "-> (Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(fastsnn_C, CPU, m) {
  m.impl("mt_lif_forward", &fastsnn::mt_lif_forward_cpu);
  m.impl("mt_lif_backward", &fastsnn::mt_lif_backward_cpu);
}

#ifdef FASTSNN_WITH_CUDA
TORCH_LIBRARY_IMPL(fastsnn_C, CUDA, m) {
  m.impl("mt_lif_forward", &fastsnn::mt_lif_forward_cuda);
  m.impl("mt_lif_backward", &fastsnn::mt_lif_backward_cuda);
}
#endif
