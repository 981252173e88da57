// spike_count binding: the CPU and CUDA implementations of fastsnn::spike_count (schema
// declared in fastsnn/ops/spike_count.py, whose docstring is the contract). The kernels
// live with stcb's (cpu/stcb.h, cuda/stcb.h): the count is the block's input.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <cstdint>

#include "checks.h"
#include "cpu/stcb.h"
#include "torch/threads.h"

#ifdef FASTSNN_WITH_CUDA
#include "cuda/stcb.h"
#endif

namespace fastsnn {
namespace {

constexpr const char* kOp = "spike_count";

// A contiguous [T, ...] tensor; returns the [...] output.
at::Tensor count_output(const at::Tensor& s) {
  checks::contiguous(s, kOp, "s");
  TORCH_CHECK_VALUE(s.dim() >= 1, "spike_count: s must be [T, ...], got shape ", s.sizes());
  return at::empty(s.sizes().slice(1), s.options());
}

at::Tensor spike_count_cpu(const at::Tensor& s) {
  const IntraOpThreads threads;  // torch.set_num_threads governs the kernel (torch/threads.h)
  checks::dtype(s, kOp, "s", {at::kFloat, at::kDouble});
  at::Tensor out = count_output(s);
  const int64_t T = s.size(0), E = out.numel();
  if (s.scalar_type() == at::kFloat) {
    cpu::spike_count<float>(T, E, s.data_ptr<float>(), out.data_ptr<float>());
  } else {
    cpu::spike_count<double>(T, E, s.data_ptr<double>(), out.data_ptr<double>());
  }
  return out;
}

#ifdef FASTSNN_WITH_CUDA
at::Tensor spike_count_cuda(const at::Tensor& s) {
  checks::dtype(s, "spike_count (cuda)", "s", {at::kFloat});
  const CudaLaunch launch(s);
  at::Tensor out = count_output(s);
  cuda::spike_count(s.size(0), out.numel(), s.data_ptr<float>(), out.data_ptr<float>(),
                    launch.stream());
  return out;
}
#endif

}  // namespace
}  // namespace fastsnn

TORCH_LIBRARY_FRAGMENT(fastsnn, m) {
  fastsnn::register_impl(m, "spike_count", &fastsnn::spike_count_cpu,
                         FASTSNN_CUDA_ONLY(&fastsnn::spike_count_cuda));
}
