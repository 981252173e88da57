// The intra-op thread count of torch for the CPU kernels' OpenMP regions.
//
// The extension links its own OpenMP runtime, not the copy inside torch, so
// torch.set_num_threads never reaches the kernels' parallel regions (they would use every
// core). Each CPU entry point opens an IntraOpThreads scope first: the calling thread's
// OpenMP team size becomes at::get_num_threads() for the call, and is restored after.
#pragma once

#include <ATen/Parallel.h>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace fastsnn {

class IntraOpThreads {
 public:
  IntraOpThreads() : count_(at::get_num_threads()) {
#if defined(_OPENMP)
    previous_ = omp_get_max_threads();
    omp_set_num_threads(count_);
#endif
  }
  ~IntraOpThreads() {
#if defined(_OPENMP)
    omp_set_num_threads(previous_);
#endif
  }
  IntraOpThreads(const IntraOpThreads&) = delete;
  IntraOpThreads& operator=(const IntraOpThreads&) = delete;

  int count() const { return count_; }

 private:
  int count_ = 1;
  int previous_ = 1;
};

}  // namespace fastsnn
