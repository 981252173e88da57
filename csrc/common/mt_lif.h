// mt_lif: the torch-free description of one call, shared by the CPU and CUDA kernels.
// Python (fastsnn/ops/mt_lif.py) has already validated and normalised everything here;
// the binding (csrc/torch/mt_lif.cpp) fills this struct from the tensors.
#pragma once

#include <cstdint>

namespace fastsnn {

enum class Reset : int { Hard = 0, Soft = 1, None = 2, SubtractNext = 3 };
enum class Surrogate : int { Rect = 0, Triangle = 1, Sigmoid = 2, Atan = 3, FastSigmoid = 4 };
enum class Form : int { Stbp = 0, Plif = 1 };
// What the forward keeps for the backward (table in fastsnn/ops/mt_lif.py).
enum class Save : int { None = 0, Sg = 1, H = 2 };

struct MtLifParams {
  int64_t T = 0, N = 0, C = 1, R = 1;  // x is [T, N, C, R], contiguous
  int64_t decay_size = 1;              // 1 (shared) or C (per channel)
  int64_t syn_size = 0;                // 0: no synaptic current; else 1 or C
  bool has_v0 = false;                 // v0 is [N, C, R] in the compute dtype
  double threshold = 1.0;              // already rounded to the compute dtype
  double width = 1.0;                  // surrogate width a, likewise rounded
  int levels = 1;
  Reset reset = Reset::Hard;
  Surrogate surrogate = Surrogate::Rect;
  Form form = Form::Stbp;
  Save save = Save::None;
  bool detach_reset = false;
  bool save_j = false;      // forward also writes j[t] (compute dtype)
  bool decay_grad = false;  // backward must produce gdecay
  bool syn_grad = false;    // backward must produce gsyn

  int64_t step() const { return N * C * R; }  // elements in one time step
};

}  // namespace fastsnn
