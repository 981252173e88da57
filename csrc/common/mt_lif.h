// mt_lif: the torch-free description of one call, shared by the CPU and CUDA kernels.
// Python (fastsnn/ops/mt_lif.py) has already validated and normalised everything here;
// the binding (csrc/torch/mt_lif.cpp) fills this struct from the tensors.
#pragma once

#include <cstdint>

#include "common/enums.h"

namespace fastsnn {

struct MtLifParams {
  int64_t T = 0, N = 0, C = 1, R = 1;  // x is [T, N, C, R], contiguous
  int64_t decay_size = 1;              // 1 (shared) or C (per channel)
  int64_t syn_size = 0;                // 0: no synaptic current; else 1 or C
  bool has_v0 = false;                 // v0 is [N, C, R] in the compute dtype
  bool has_j0 = false;                 // j0 (initial synaptic current) likewise
  double threshold = 1.0;              // already rounded to the compute dtype
  double v_reset = 0.0;                // hard-reset value and rest potential, likewise
  double width = 1.0;                  // surrogate width a (alpha / slope for atan /
                                       // fast_sigmoid), likewise rounded
  int levels = 1;
  Reset reset = Reset::Hard;
  Surrogate surrogate = Surrogate::Rect;
  Form form = Form::Stbp;
  Save save = Save::None;
  bool detach_reset = false;
  bool save_j = false;      // forward also writes j[t] (compute dtype)
  bool decay_grad = false;  // backward must produce gdecay
  bool syn_grad = false;    // backward must produce gsyn
  bool return_state = false;  // forward writes u_T (and j_T with the synaptic current)
  bool has_grad_u = false;    // backward starts gu (gj) from the final state's gradient
  bool has_grad_j = false;

  int64_t step() const { return N * C * R; }  // elements in one time step
};

}  // namespace fastsnn
