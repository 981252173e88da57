// stcb binding: the CPU and CUDA implementations of fastsnn::stcb_forward / stcb_backward
// (schemas declared in fastsnn/ops/stcb.py, whose docstring is the contract), with the
// checks that keep the raw-pointer kernels in bounds when called directly (checks.h).
#include <ATen/ATen.h>
#include <torch/library.h>

#include <cstdint>
#include <tuple>

#include "checks.h"
#include "common/stcb.h"
#include "cpu/stcb.h"
#include "torch/threads.h"

#ifdef FASTSNN_WITH_CUDA
#include "cuda/stcb.h"
#endif

namespace fastsnn {
namespace {

constexpr int64_t kMaxCount = int64_t{1} << 24;  // K*T: counts exact in float32
constexpr const char* kOp = "stcb";

// float32 / float64 on CPU, float32 on CUDA.
void check_float(const at::Tensor& t, const char* name) {
  if (t.is_cuda()) {
    checks::dtype(t, "stcb (cuda)", name, {at::kFloat});
  } else {
    checks::dtype(t, kOp, name, {at::kFloat, at::kDouble});
  }
  checks::contiguous(t, kOp, name);
}

StcbParams forward_params(const at::Tensor& a, int64_t T, int64_t levels, double threshold,
                          bool count_only, bool save_mask) {
  check_float(a, "a");
  TORCH_CHECK_VALUE(a.dim() == 1, "stcb: a must be a 1-D tensor, got shape ", a.sizes());
  TORCH_CHECK_VALUE(T >= 1 && levels >= 1 && levels * T <= kMaxCount,
                    "stcb: need T >= 1, levels >= 1 and levels*T <= 2^24");
  StcbParams p;
  p.E = a.numel();
  p.T = T;
  p.levels = int(levels);
  p.threshold = threshold;
  p.count_only = count_only;
  p.save_mask = save_mask;
  return p;
}

std::tuple<at::Tensor, at::Tensor> forward_outputs(const at::Tensor& a, const StcbParams& p) {
  at::Tensor out = p.count_only ? at::empty({p.E}, a.options())
                                : at::empty({p.T, p.E}, a.options());
  at::Tensor mask = at::empty({p.save_mask ? p.mask_bytes() : 0}, a.options().dtype(at::kByte));
  return {out, mask};
}

StcbBackwardParams backward_params(const at::Tensor& grad, const at::Tensor& mask, int64_t T,
                                   double scale, bool count_only) {
  check_float(grad, "grad");
  TORCH_CHECK_VALUE(count_only ? grad.dim() == 1 : (grad.dim() == 2 && grad.size(0) == T),
                    "stcb: grad must be [E] (count) or [T, E] (train)");
  StcbBackwardParams p;
  p.E = grad.size(count_only ? 0 : 1);
  p.T = T;
  p.scale = scale;
  p.count_only = count_only;
  checks::dtype(mask, kOp, "mask", {at::kByte});
  checks::contiguous(mask, kOp, "mask");
  checks::same_device(mask, kOp, "mask", grad);
  TORCH_CHECK_VALUE(mask.dim() == 1 && mask.numel() == (p.E + 7) / 8,
                    "stcb: mask must be [ceil(E/8)] bytes");
  return p;
}

template <class F>
void dispatch_cpu(at::ScalarType t, F&& f) {
  if (t == at::kFloat) return f.template operator()<float>();
  return f.template operator()<double>();  // check_float allowed nothing else
}

std::tuple<at::Tensor, at::Tensor> forward_cpu(const at::Tensor& a, int64_t T, int64_t levels,
                                               double threshold, bool count_only,
                                               bool save_mask) {
  const IntraOpThreads threads;  // torch.set_num_threads governs the kernel (torch/threads.h)
  const StcbParams p = forward_params(a, T, levels, threshold, count_only, save_mask);
  auto [out, mask] = forward_outputs(a, p);
  dispatch_cpu(a.scalar_type(), [&]<class A>() {
    cpu::stcb_forward<A>(p, a.data_ptr<A>(), out.data_ptr<A>(), mask.data_ptr<uint8_t>());
  });
  return {out, mask};
}

at::Tensor backward_cpu(const at::Tensor& grad, const at::Tensor& mask, int64_t T,
                        double scale, bool count_only) {
  const IntraOpThreads threads;  // torch.set_num_threads governs the kernel (torch/threads.h)
  const StcbBackwardParams p = backward_params(grad, mask, T, scale, count_only);
  at::Tensor ga = at::empty({p.E}, grad.options());
  dispatch_cpu(grad.scalar_type(), [&]<class A>() {
    cpu::stcb_backward<A>(p, grad.data_ptr<A>(), mask.data_ptr<uint8_t>(), ga.data_ptr<A>());
  });
  return ga;
}

#ifdef FASTSNN_WITH_CUDA
std::tuple<at::Tensor, at::Tensor> forward_cuda(const at::Tensor& a, int64_t T, int64_t levels,
                                                double threshold, bool count_only,
                                                bool save_mask) {
  const StcbParams p = forward_params(a, T, levels, threshold, count_only, save_mask);
  const CudaLaunch launch(a);
  auto [out, mask] = forward_outputs(a, p);
  cuda::stcb_forward(p, a.data_ptr<float>(), out.data_ptr<float>(),
                     p.save_mask ? mask.data_ptr<uint8_t>() : nullptr, launch.stream());
  return {out, mask};
}

at::Tensor backward_cuda(const at::Tensor& grad, const at::Tensor& mask, int64_t T,
                         double scale, bool count_only) {
  const StcbBackwardParams p = backward_params(grad, mask, T, scale, count_only);
  const CudaLaunch launch(grad);
  at::Tensor ga = at::empty({p.E}, grad.options());
  cuda::stcb_backward(p, grad.data_ptr<float>(), mask.data_ptr<uint8_t>(), ga.data_ptr<float>(),
                      launch.stream());
  return ga;
}
#endif

}  // namespace
}  // namespace fastsnn

TORCH_LIBRARY_FRAGMENT(fastsnn, m) {
  fastsnn::register_impl(m, "stcb_forward", &fastsnn::forward_cpu,
                         FASTSNN_CUDA_ONLY(&fastsnn::forward_cuda));
  fastsnn::register_impl(m, "stcb_backward", &fastsnn::backward_cpu,
                         FASTSNN_CUDA_ONLY(&fastsnn::backward_cuda));
}
