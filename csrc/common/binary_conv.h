// binary_conv2d: the torch-free description of one call, shared by the CPU and CUDA kernels.
// Contract (fastsnn/ops/binary_conv.py states it in full):
//   x        float32 [N, Cin, H, W] contiguous, values valid for the activation
//            (spike: integers 0..levels; sign: -1 or +1); the kernel packs it itself.
//   wpacked  int32 [Cout, KH*KW, words] with words = ceil(Cin / 32): bit i of word w at
//            (o, kpos) is 1 iff W[o, 32*w + i, kpos] >= 0 (sign(0) = +1); unused bits are 0.
//   alpha    float32 [Cout] or null (1); bias float32 [Cout] or null (0).
//   out      float32 [N, Cout, Hout, Wout]:
//            out = alpha[o] * dot + bias[o], dot the exact integer sum over in-bounds taps:
//            spike: sum_b 2^b (2 popc(x_b & w) - popc(x_b))   (x_b bit-plane b of x)
//            sign:  2 popc(~(x ^ w) & valid) - popc(valid)     (zero padding = no input)
#pragma once

#include <cstdint>

#include "common/enums.h"

namespace fastsnn {

struct BinaryConvParams {
  int64_t N = 0, Cin = 0, H = 0, W = 0;
  int64_t Cout = 0, KH = 1, KW = 1;
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1;
  int64_t Hout = 0, Wout = 0;
  int bits = 1;  // bit-planes of a spike value: ceil(log2(levels + 1)); 1 for sign
  BinaryActivation activation = BinaryActivation::Spike;

  int64_t words() const { return (Cin + 31) / 32; }
};

}  // namespace fastsnn
