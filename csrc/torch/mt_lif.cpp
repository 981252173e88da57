// mt_lif binding: the CPU and CUDA implementations of the ops fastsnn::mt_lif_forward /
// mt_lif_backward (schemas declared in fastsnn/ops/mt_lif.py, whose docstring is the
// contract): the checks that keep a direct call in bounds (checks.h), output allocation and
// the dtype dispatch to the CPU kernels (cpu/mt_lif.h) or the launchers of cuda/mt_lif.h.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

#include "common/mt_lif.h"
#include "cpu/mt_lif.h"
#include "checks.h"
#include "torch/threads.h"

#ifdef FASTSNN_WITH_CUDA
#include "cuda/mt_lif.h"
#endif

namespace fastsnn {
namespace {

using at::Tensor;
using OptTensor = std::optional<Tensor>;
using Tensors3 = std::tuple<Tensor, Tensor, Tensor>;
using Tensors5 = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor>;

at::ScalarType compute_dtype(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

// x-like storage tensors: contiguous [T, N, C, R] in a supported dtype on x's device.
void check_storage(const Tensor& t, const char* name) {
  TORCH_CHECK_VALUE(t.dim() == 4, "mt_lif: ", name, " must be [T, N, C, R], got shape ",
                    t.sizes());
  checks::contiguous(t, "mt_lif", name);
  if (t.is_cuda()) {
    checks::dtype(t, "mt_lif (cuda)", name, {at::kFloat, at::kHalf, at::kBFloat16});
  } else {
    checks::dtype(t, "mt_lif", name, {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16});
  }
}

// A tensor in the compute dtype on `like`'s device, contiguous, of the given shape.
void check_compute(const Tensor& t, const char* name, const Tensor& like,
                   at::IntArrayRef shape) {
  checks::same_device(t, "mt_lif", name, like);
  TORCH_CHECK_TYPE(t.scalar_type() == compute_dtype(like.scalar_type()), "mt_lif: ", name,
                   " must have dtype ", compute_dtype(like.scalar_type()), ", got ",
                   t.scalar_type());
  TORCH_CHECK_VALUE(t.sizes() == shape, "mt_lif: ", name, " must have shape ", shape,
                    ", got ", t.sizes());
  checks::contiguous(t, "mt_lif", name);
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
                        const OptTensor& v0, const OptTensor& j0, double threshold,
                        double v_reset, int64_t levels, int64_t reset, int64_t surrogate,
                        double width, bool detach_reset, int64_t form, int64_t save) {
  check_storage(x, "x");
  // MtLifParams::levels is an int.
  TORCH_CHECK_VALUE(levels >= 1 && levels <= (1 << 20),
                    "mt_lif: levels must be in [1, 2^20], got ", levels);
  MtLifParams p;
  p.T = x.size(0);
  p.N = x.size(1);
  p.C = x.size(2);
  p.R = x.size(3);
  p.decay_size = check_param(decay, "decay", x);
  p.syn_size = syn ? check_param(*syn, "syn_decay", x) : 0;
  if (v0) check_compute(*v0, "v0", x, x.sizes().slice(1));
  p.has_v0 = v0.has_value();
  if (j0) {
    TORCH_CHECK_VALUE(syn.has_value(), "mt_lif: j0 without syn_decay");
    check_compute(*j0, "j0", x, x.sizes().slice(1));
  }
  p.has_j0 = j0.has_value();
  p.threshold = threshold;
  p.v_reset = v_reset;
  p.width = width;
  p.levels = int(levels);
  p.reset = checks::enum_arg<Reset>(reset, "mt_lif", "reset", kResets);
  p.surrogate = checks::enum_arg<Surrogate>(surrogate, "mt_lif", "surrogate", kSurrogates);
  p.form = checks::enum_arg<Form>(form, "mt_lif", "form", kForms);
  p.save = checks::enum_arg<Save>(save, "mt_lif", "save", kSaves);
  p.detach_reset = detach_reset;
  return p;
}

// Outputs of the forward; unused ones are empty [0] tensors (dtypes as the fake impl).
Tensors5 forward_outputs(const Tensor& x, const MtLifParams& p) {
  const auto acc = x.options().dtype(compute_dtype(x.scalar_type()));
  Tensor s = at::empty(x.sizes(), x.options());
  Tensor saved = p.save == Save::Sg  ? at::empty(x.sizes(), x.options())
                 : p.save == Save::H ? at::empty(x.sizes(), acc)
                                     : at::empty({0}, x.options());
  Tensor j = p.save_j ? at::empty(x.sizes(), acc) : at::empty({0}, acc);
  const auto step = x.sizes().slice(1);
  Tensor u_t = p.return_state ? at::empty(step, acc) : at::empty({0}, acc);
  Tensor j_t = p.return_state && p.syn_size ? at::empty(step, acc) : at::empty({0}, acc);
  return {s, saved, j, u_t, j_t};
}

// Checks what the backward reads (the forward's outputs and the gradient) and returns
// the parameters it runs with.
MtLifParams backward_params(const Tensor& grad_s, const OptTensor& grad_u,
                            const OptTensor& grad_j, const Tensor& s, const Tensor& saved,
                            const Tensor& j, const Tensor& decay, const OptTensor& syn,
                            const OptTensor& v0, const OptTensor& j0, double threshold,
                            double v_reset, int64_t levels, int64_t reset, int64_t surrogate,
                            double width, bool detach_reset, int64_t form, int64_t save,
                            bool decay_grad, bool syn_grad) {
  MtLifParams p = make_params(s, decay, syn, v0, j0, threshold, v_reset, levels, reset,
                              surrogate, width, detach_reset, form, save);
  if (grad_u) check_compute(*grad_u, "grad_u", s, s.sizes().slice(1));
  if (grad_j) {
    TORCH_CHECK_VALUE(syn.has_value(), "mt_lif: grad_j without syn_decay");
    check_compute(*grad_j, "grad_j", s, s.sizes().slice(1));
  }
  p.has_grad_u = grad_u.has_value();
  p.has_grad_j = grad_j.has_value();
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

Tensors5 backward_outputs(const Tensor& s, const Tensor& decay, const OptTensor& syn,
                          const OptTensor& v0, const OptTensor& j0) {
  const auto acc = decay.options();
  Tensor gsyn = syn ? at::empty(syn->sizes(), acc) : at::empty({0}, acc);
  Tensor gv0 = v0 ? at::empty(v0->sizes(), acc) : at::empty({0}, acc);
  Tensor gj0 = j0 ? at::empty(j0->sizes(), acc) : at::empty({0}, acc);
  return {at::empty(s.sizes(), s.options()), at::empty(decay.sizes(), acc), gsyn, gv0, gj0};
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
                 const OptTensor& syn, const OptTensor& v0, const OptTensor& j0,
                 const Tensors5& out) {
  const auto& [s, saved, j, u_t, j_t] = out;
  cpu::mt_lif_forward<S, A>(p, static_cast<const S*>(x.const_data_ptr()),
                            static_cast<const A*>(decay.const_data_ptr()),
                            data_or_null<A>(syn), data_or_null<A>(v0), data_or_null<A>(j0),
                            static_cast<S*>(s.data_ptr()),
                            saved.numel() ? saved.data_ptr() : nullptr, data_or_null<A>(j),
                            data_or_null<A>(u_t), data_or_null<A>(j_t));
}

template <class S, class A>
void backward_cpu(const MtLifParams& p, const Tensor& grad_s, const OptTensor& grad_u,
                  const OptTensor& grad_j, const Tensor& s, const Tensor& saved,
                  const Tensor& j, const Tensor& decay, const OptTensor& syn,
                  const OptTensor& v0, const OptTensor& j0, const Tensors5& out) {
  const auto& [gx, gdecay, gsyn, gv0, gj0] = out;
  cpu::mt_lif_backward<S, A>(
      p, static_cast<const S*>(grad_s.const_data_ptr()), data_or_null<A>(grad_u),
      data_or_null<A>(grad_j), static_cast<const S*>(s.const_data_ptr()),
      saved.const_data_ptr(), j.numel() ? static_cast<const A*>(j.const_data_ptr()) : nullptr,
      static_cast<const A*>(decay.const_data_ptr()), data_or_null<A>(syn),
      data_or_null<A>(v0), data_or_null<A>(j0), static_cast<S*>(gx.data_ptr()),
      static_cast<A*>(gdecay.data_ptr()), data_or_null<A>(gsyn), data_or_null<A>(gv0),
      data_or_null<A>(gj0));
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

Tensors5 mt_lif_forward_cpu(const Tensor& x, const Tensor& decay, const OptTensor& syn,
                            const OptTensor& v0, const OptTensor& j0, double threshold,
                            double v_reset, int64_t levels, int64_t reset, int64_t surrogate,
                            double width, bool detach_reset, int64_t form, int64_t save,
                            bool save_j, bool return_state) {
  const IntraOpThreads threads;  // torch.set_num_threads governs the kernel (torch/threads.h)
  MtLifParams p = make_params(x, decay, syn, v0, j0, threshold, v_reset, levels, reset,
                              surrogate, width, detach_reset, form, save);
  p.save_j = save_j;
  p.return_state = return_state;
  const Tensors5 out = forward_outputs(x, p);
  dispatch_cpu(x.scalar_type(), [&]<class S, class A>() {
    forward_cpu<S, A>(p, x, decay, syn, v0, j0, out);
  });
  return out;
}

Tensors5 mt_lif_backward_cpu(const Tensor& grad_s, const OptTensor& grad_u,
                             const OptTensor& grad_j, const Tensor& s, const Tensor& saved,
                             const Tensor& j, const Tensor& decay, const OptTensor& syn,
                             const OptTensor& v0, const OptTensor& j0, double threshold,
                             double v_reset, int64_t levels, int64_t reset, int64_t surrogate,
                             double width, bool detach_reset, int64_t form, int64_t save,
                             bool decay_grad, bool syn_grad) {
  const IntraOpThreads threads;  // torch.set_num_threads governs the kernel (torch/threads.h)
  const MtLifParams p = backward_params(grad_s, grad_u, grad_j, s, saved, j, decay, syn, v0,
                                        j0, threshold, v_reset, levels, reset, surrogate,
                                        width, detach_reset, form, save, decay_grad, syn_grad);
  const Tensors5 out = backward_outputs(s, decay, syn, v0, j0);
  dispatch_cpu(s.scalar_type(), [&]<class S, class A>() {
    backward_cpu<S, A>(p, grad_s, grad_u, grad_j, s, saved, j, decay, syn, v0, j0, out);
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

Tensors5 mt_lif_forward_cuda(const Tensor& x, const Tensor& decay, const OptTensor& syn,
                             const OptTensor& v0, const OptTensor& j0, double threshold,
                             double v_reset, int64_t levels, int64_t reset, int64_t surrogate,
                             double width, bool detach_reset, int64_t form, int64_t save,
                             bool save_j, bool return_state) {
  MtLifParams p = make_params(x, decay, syn, v0, j0, threshold, v_reset, levels, reset,
                              surrogate, width, detach_reset, form, save);
  p.save_j = save_j;
  p.return_state = return_state;
  const CudaLaunch launch(x);
  const Tensors5 out = forward_outputs(x, p);
  const auto& [s, saved, j, u_t, j_t] = out;
  if (p.T == 0 && p.return_state) {  // no step: the final state is the initial one
    if (v0) u_t.copy_(*v0); else u_t.fill_(v_reset);
    if (p.syn_size) {
      if (j0) j_t.copy_(*j0); else j_t.zero_();
    }
    return out;
  }
  const cuda::StateIn in{data_or_null<float>(v0), data_or_null<float>(j0)};
  const cuda::StateOut st{data_or_null<float>(u_t), data_or_null<float>(j_t)};
  cuda::mt_lif_forward(p, cuda_dtype(x.scalar_type()), x.const_data_ptr(),
                       decay.const_data_ptr<float>(), data_or_null<float>(syn), in,
                       s.data_ptr(), saved.numel() ? saved.data_ptr() : nullptr,
                       data_or_null<float>(j), st, launch.stream());
  return out;
}

Tensors5 mt_lif_backward_cuda(const Tensor& grad_s, const OptTensor& grad_u,
                              const OptTensor& grad_j, const Tensor& s, const Tensor& saved,
                              const Tensor& j, const Tensor& decay, const OptTensor& syn,
                              const OptTensor& v0, const OptTensor& j0, double threshold,
                              double v_reset, int64_t levels, int64_t reset,
                              int64_t surrogate, double width, bool detach_reset,
                              int64_t form, int64_t save, bool decay_grad, bool syn_grad) {
  const MtLifParams p = backward_params(grad_s, grad_u, grad_j, s, saved, j, decay, syn, v0,
                                        j0, threshold, v_reset, levels, reset, surrogate,
                                        width, detach_reset, form, save, decay_grad, syn_grad);
  const CudaLaunch launch(s);
  const Tensors5 out = backward_outputs(s, decay, syn, v0, j0);
  const auto& [gx, gdecay, gsyn, gv0, gj0] = out;
  const auto bytes = int64_t(cuda::mt_lif_backward_workspace_bytes(p));
  Tensor workspace = at::empty({bytes}, s.options().dtype(at::kByte));
  const cuda::StateIn in{data_or_null<float>(v0), data_or_null<float>(j0)};
  const cuda::StateIn grad_state{data_or_null<float>(grad_u), data_or_null<float>(grad_j)};
  const cuda::StateOut grad_in{data_or_null<float>(gv0), data_or_null<float>(gj0)};
  cuda::mt_lif_backward(
      p, cuda_dtype(s.scalar_type()), grad_s.const_data_ptr(), grad_state,
      s.const_data_ptr(), saved.const_data_ptr(),
      j.numel() ? j.const_data_ptr<float>() : nullptr, decay.const_data_ptr<float>(),
      data_or_null<float>(syn), in, gx.data_ptr(), gdecay.data_ptr<float>(),
      data_or_null<float>(gsyn), grad_in, bytes ? workspace.data_ptr() : nullptr,
      launch.stream());
  return out;
}
#endif

}  // namespace
}  // namespace fastsnn

TORCH_LIBRARY_FRAGMENT(fastsnn, m) {
  fastsnn::register_impl(m, "mt_lif_forward", &fastsnn::mt_lif_forward_cpu,
                         FASTSNN_CUDA_ONLY(&fastsnn::mt_lif_forward_cuda));
  fastsnn::register_impl(m, "mt_lif_backward", &fastsnn::mt_lif_backward_cpu,
                         FASTSNN_CUDA_ONLY(&fastsnn::mt_lif_backward_cuda));
}
