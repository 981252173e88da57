// Binding of the stcb kernels: schemas in the fastsnn_C namespace, argument checks, and the
// CPU (and, built with CUDA, CUDA) implementations. The Python side
// (fastsnn/ops/stcb.py) has already validated and normalised the arguments to the kernel
// contract stated there; the checks here only guard the raw-pointer kernels.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <cstdint>

#include "common/stcb.h"
#include "cpu/stcb.h"
#include "torch/threads.h"

#ifdef FASTSNN_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "cuda/stcb.h"
#endif

namespace fastsnn {
namespace {

constexpr int64_t kMaxCount = int64_t{1} << 24;  // K*T: counts exact in float32

void check_vector(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.dim() == 1 && t.is_contiguous(), "stcb: ", name,
              " must be a contiguous 1-D tensor");
}

StcbParams forward_params(const at::Tensor& a, int64_t T, int64_t levels, double threshold,
                          bool count_only, bool save_mask) {
  check_vector(a, "a");
  TORCH_CHECK(T >= 1 && levels >= 1 && levels * T <= kMaxCount,
              "stcb: need T >= 1, levels >= 1 and levels*T <= 2^24");
  TORCH_CHECK(threshold > 0, "stcb: threshold must be > 0");
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
  TORCH_CHECK(grad.is_contiguous(), "stcb: grad must be contiguous");
  TORCH_CHECK(count_only ? grad.dim() == 1 : (grad.dim() == 2 && grad.size(0) == T),
              "stcb: grad must be [E] (count) or [T, E] (train)");
  StcbBackwardParams p;
  p.E = grad.size(count_only ? 0 : 1);
  p.T = T;
  p.scale = scale;
  p.count_only = count_only;
  check_vector(mask, "mask");
  TORCH_CHECK(mask.scalar_type() == at::kByte && mask.numel() == (p.E + 7) / 8,
              "stcb: mask must be uint8 with ceil(E/8) bytes");
  TORCH_CHECK(mask.device() == grad.device(), "stcb: mask and grad on different devices");
  return p;
}

at::Tensor count_output(const at::Tensor& s) {
  TORCH_CHECK(s.dim() >= 1 && s.is_contiguous(), "spike_count: s must be contiguous [T, ...]");
  return at::empty(s.sizes().slice(1), s.options());
}

// ---- CPU -----------------------------------------------------------------------------------

std::tuple<at::Tensor, at::Tensor> forward_cpu(const at::Tensor& a, int64_t T, int64_t levels,
                                               double threshold, bool count_only,
                                               bool save_mask) {
  const IntraOpThreads threads;  // torch.set_num_threads governs the kernel (torch/threads.h)
  const StcbParams p = forward_params(a, T, levels, threshold, count_only, save_mask);
  auto [out, mask] = forward_outputs(a, p);
  if (a.scalar_type() == at::kFloat) {
    cpu::stcb_forward<float>(p, a.data_ptr<float>(), out.data_ptr<float>(),
                             mask.data_ptr<uint8_t>());
  } else {
    TORCH_CHECK(a.scalar_type() == at::kDouble, "stcb (cpu): a must be float32 or float64");
    cpu::stcb_forward<double>(p, a.data_ptr<double>(), out.data_ptr<double>(),
                              mask.data_ptr<uint8_t>());
  }
  return {out, mask};
}

at::Tensor backward_cpu(const at::Tensor& grad, const at::Tensor& mask, int64_t T,
                        double scale, bool count_only) {
  const IntraOpThreads threads;  // torch.set_num_threads governs the kernel (torch/threads.h)
  const StcbBackwardParams p = backward_params(grad, mask, T, scale, count_only);
  at::Tensor ga = at::empty({p.E}, grad.options());
  if (grad.scalar_type() == at::kFloat) {
    cpu::stcb_backward<float>(p, grad.data_ptr<float>(), mask.data_ptr<uint8_t>(),
                              ga.data_ptr<float>());
  } else {
    TORCH_CHECK(grad.scalar_type() == at::kDouble, "stcb (cpu): grad must be float32/64");
    cpu::stcb_backward<double>(p, grad.data_ptr<double>(), mask.data_ptr<uint8_t>(),
                               ga.data_ptr<double>());
  }
  return ga;
}

at::Tensor spike_count_cpu(const at::Tensor& s) {
  const IntraOpThreads threads;  // torch.set_num_threads governs the kernel (torch/threads.h)
  at::Tensor out = count_output(s);
  const int64_t T = s.size(0), E = out.numel();
  if (s.scalar_type() == at::kFloat) {
    cpu::spike_count<float>(T, E, s.data_ptr<float>(), out.data_ptr<float>());
  } else {
    TORCH_CHECK(s.scalar_type() == at::kDouble, "spike_count (cpu): s must be float32/64");
    cpu::spike_count<double>(T, E, s.data_ptr<double>(), out.data_ptr<double>());
  }
  return out;
}

// ---- CUDA ----------------------------------------------------------------------------------

#ifdef FASTSNN_WITH_CUDA
void check_cuda_float(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.is_cuda() && t.scalar_type() == at::kFloat, "stcb (cuda): ", name,
              " must be a float32 CUDA tensor");
}

std::tuple<at::Tensor, at::Tensor> forward_cuda(const at::Tensor& a, int64_t T, int64_t levels,
                                                double threshold, bool count_only,
                                                bool save_mask) {
  check_cuda_float(a, "a");
  const c10::cuda::CUDAGuard guard(a.device());
  const StcbParams p = forward_params(a, T, levels, threshold, count_only, save_mask);
  auto [out, mask] = forward_outputs(a, p);
  cuda::stcb_forward(p, a.data_ptr<float>(), out.data_ptr<float>(),
                     p.save_mask ? mask.data_ptr<uint8_t>() : nullptr,
                     c10::cuda::getCurrentCUDAStream());
  return {out, mask};
}

at::Tensor backward_cuda(const at::Tensor& grad, const at::Tensor& mask, int64_t T,
                         double scale, bool count_only) {
  check_cuda_float(grad, "grad");
  const c10::cuda::CUDAGuard guard(grad.device());
  const StcbBackwardParams p = backward_params(grad, mask, T, scale, count_only);
  at::Tensor ga = at::empty({p.E}, grad.options());
  cuda::stcb_backward(p, grad.data_ptr<float>(), mask.data_ptr<uint8_t>(), ga.data_ptr<float>(),
                      c10::cuda::getCurrentCUDAStream());
  return ga;
}

at::Tensor spike_count_cuda(const at::Tensor& s) {
  check_cuda_float(s, "s");
  const c10::cuda::CUDAGuard guard(s.device());
  at::Tensor out = count_output(s);
  cuda::spike_count(s.size(0), out.numel(), s.data_ptr<float>(), out.data_ptr<float>(),
                    c10::cuda::getCurrentCUDAStream());
  return out;
}
#endif

}  // namespace

TORCH_LIBRARY_FRAGMENT(fastsnn_C, m) {
  m.def("stcb_forward(Tensor a, int T, int levels, float threshold, bool count_only, "
        "bool save_mask) -> (Tensor, Tensor)");
  m.def("stcb_backward(Tensor grad, Tensor mask, int T, float scale, bool count_only) "
        "-> Tensor");
  m.def("spike_count(Tensor s) -> Tensor");
}

TORCH_LIBRARY_IMPL(fastsnn_C, CPU, m) {
  m.impl("stcb_forward", &forward_cpu);
  m.impl("stcb_backward", &backward_cpu);
  m.impl("spike_count", &spike_count_cpu);
}

#ifdef FASTSNN_WITH_CUDA
TORCH_LIBRARY_IMPL(fastsnn_C, CUDA, m) {
  m.impl("stcb_forward", &forward_cuda);
  m.impl("stcb_backward", &backward_cuda);
  m.impl("spike_count", &spike_count_cuda);
}
#endif

}  // namespace fastsnn
