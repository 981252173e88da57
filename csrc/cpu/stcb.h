// stcb CPU kernels: torch-free, raw contiguous pointers (the kernel contract is the docstring
// of fastsnn/ops/stcb.py; shared arithmetic in common/stcb.h). acc_t is the compute dtype,
// float or double; the binding converts nothing (Python hands float32/float64 only).
#pragma once

#include <cstdint>

#include "common/stcb.h"

namespace fastsnn::cpu {

// a: [E]. Writes out ([E] counts when p.count_only, else the [T, E] train) and, when
// p.save_mask, mask [p.mask_bytes()] (packed, common/stcb.h). Each output element is
// written exactly once.
template <class acc_t>
void stcb_forward(const StcbParams& p, const acc_t* a, acc_t* out, uint8_t* mask);

// grad: [E] (count) or [T, E] (train); mask as written by the forward. Writes
// ga[e] = mask[e] ? scale * g : 0 with g = grad[e] or the sum over t = 0..T-1 of grad[t, e]
// (accumulated in acc_t in time order).
template <class acc_t>
void stcb_backward(const StcbBackwardParams& p, const acc_t* grad, const uint8_t* mask,
                   acc_t* ga);

// s: [T, E]. out[e] = sum over t = 0..T-1 of s[t, e], accumulated in acc_t in time order.
template <class acc_t>
void spike_count(int64_t T, int64_t E, const acc_t* s, acc_t* out);

#define FASTSNN_STCB_EXTERN(A)                                                            \
  extern template void stcb_forward<A>(const StcbParams&, const A*, A*, uint8_t*);        \
  extern template void stcb_backward<A>(const StcbBackwardParams&, const A*,              \
                                        const uint8_t*, A*);                              \
  extern template void spike_count<A>(int64_t, int64_t, const A*, A*);
FASTSNN_STCB_EXTERN(float)
FASTSNN_STCB_EXTERN(double)
#undef FASTSNN_STCB_EXTERN

}  // namespace fastsnn::cpu
