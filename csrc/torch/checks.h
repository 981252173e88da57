// What every binding in csrc/torch/ shares: the checks that keep a kernel in bounds, the
// CUDA device guard + stream of a launch, and the registration of an implementation.
//
// The public Python functions (fastsnn/ops/<op>.py) validate user input once, with messages
// naming the argument. The ops fastsnn::<kernel> can also be called directly, so each
// binding checks what its kernel relies on to stay in bounds (shapes, layout, dtypes,
// devices, ranges). Like the Python checks they raise ValueError, or TypeError for a dtype.
#pragma once

#include <ATen/ATen.h>
#include <torch/library.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <type_traits>

#ifdef FASTSNN_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace fastsnn::checks {

// `t` is contiguous.
inline void contiguous(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK_VALUE(t.is_contiguous(), op, ": ", name, " must be contiguous");
}

// `t`'s dtype is one of `allowed` ("op: x must be float32 or float64, got int32").
inline void dtype(const at::Tensor& t, const char* op, const char* name,
                  std::initializer_list<at::ScalarType> allowed) {
  std::string names;
  for (at::ScalarType d : allowed) {
    if (t.scalar_type() == d) return;
    names += (names.empty() ? "" : " or ") + std::string(c10::getDtypeNames(d).first);
  }
  TORCH_CHECK_TYPE(false, op, ": ", name, " must be ", names, ", got ",
                   c10::getDtypeNames(t.scalar_type()).first);
}

// `t` is on the device of `x`.
inline void same_device(const at::Tensor& t, const char* op, const char* name,
                        const at::Tensor& x) {
  TORCH_CHECK_VALUE(t.device() == x.device(), op, ": ", name, " is on ", t.device(),
                    " but x is on ", x.device());
}

// An enum argument: `value` in [0, count) (csrc/common/enums.h), as the enum.
template <class E>
E enum_arg(int64_t value, const char* op, const char* name, int count) {
  TORCH_CHECK_VALUE(value >= 0 && value < count, op, ": ", name,
                    " must be an enum value in [0, ", count, "), got ", value);
  return static_cast<E>(value);
}

}  // namespace fastsnn::checks

#ifdef FASTSNN_WITH_CUDA
namespace fastsnn {

// For the lifetime of one launch: the current device is `t`'s, and stream() is that
// device's current stream (the one torch queues `t`'s work on).
class CudaLaunch {
 public:
  explicit CudaLaunch(const at::Tensor& t)
      : guard_(t.device()), stream_(c10::cuda::getCurrentCUDAStream(t.device().index())) {}
  cudaStream_t stream() const { return stream_.stream(); }

 private:
  c10::cuda::CUDAGuard guard_;
  c10::cuda::CUDAStream stream_;
};

}  // namespace fastsnn
#endif

namespace fastsnn {

// Registers `cpu` (and `cuda`, unless it is FASTSNN_CUDA_ONLY's nullptr) as the CPU / CUDA
// implementations of fastsnn::<name>, whose schema fastsnn/ops/<op>.py declares.
template <class Cpu, class Cuda>
void register_impl(torch::Library& m, const char* name, Cpu cpu, Cuda cuda) {
  m.impl(name, torch::dispatch(c10::DispatchKey::CPU, cpu));
  if constexpr (!std::is_same_v<Cuda, std::nullptr_t>) {
    m.impl(name, torch::dispatch(c10::DispatchKey::CUDA, cuda));
  }
}

}  // namespace fastsnn

// The CUDA implementation where it is built, else nothing to register.
#ifdef FASTSNN_WITH_CUDA
#define FASTSNN_CUDA_ONLY(fn) (fn)
#else
#define FASTSNN_CUDA_ONLY(fn) nullptr
#endif
