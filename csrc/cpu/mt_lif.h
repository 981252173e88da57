// mt_lif CPU kernels: torch-free, raw contiguous pointers (layout and meaning of every
// buffer in the kernel contract of fastsnn/ops/mt_lif.py; options in common/mt_lif.h).
//
// scalar_t is the storage dtype of x, s, grad_s, gx (and saved in save mode Sg); acc_t is
// the compute dtype of decay, syn, v0, j, saved in save mode H, and every gradient of a
// parameter. Instantiated for (float, float), (double, double), (half, float),
// (bfloat16, float).
#pragma once

#include "common/mt_lif.h"
#include "cpu/dtypes.h"

namespace fastsnn::cpu {

// x: [T, step]; decay: [decay_size]; syn: [syn_size] or null; v0, j0: [step] or null.
// Writes s [T, step], saved [T, step] (scalar_t for Sg, acc_t for H, untouched for None),
// when p.save_j j [T, step] (the synaptic current; x itself without syn_decay), and when
// p.return_state the final state u_t [step] (j_t [step] with the synaptic current).
template <class scalar_t, class acc_t>
void mt_lif_forward(const MtLifParams& p, const scalar_t* x, const acc_t* decay,
                    const acc_t* syn, const acc_t* v0, const acc_t* j0, scalar_t* s,
                    void* saved, acc_t* j, acc_t* u_t, acc_t* j_t);

// Implements fastsnn.reference.mt_lif.backward_recursion (hard mode) in one pass over T.
// j may be null unless the synaptic gradient or a plif decay gradient needs it; grad_u /
// grad_j (the final state's gradients, [step]) may be null (zero). Writes gx [T, step],
// gdecay [decay_size] (zeros unless p.decay_grad), gsyn [syn_size] when syn (zeros unless
// p.syn_grad), gv0 [step] when p.has_v0, gj0 [step] when p.has_j0. The parameter gradients
// are reduced in a fixed order: identical for any number of threads.
template <class scalar_t, class acc_t>
void mt_lif_backward(const MtLifParams& p, const scalar_t* grad_s, const acc_t* grad_u,
                     const acc_t* grad_j, const scalar_t* s, const void* saved, const acc_t* j,
                     const acc_t* decay, const acc_t* syn, const acc_t* v0, const acc_t* j0,
                     scalar_t* gx, acc_t* gdecay, acc_t* gsyn, acc_t* gv0, acc_t* gj0);

#define FASTSNN_MT_LIF_EXTERN(S, A)                                                        \
  extern template void mt_lif_forward<S, A>(const MtLifParams&, const S*, const A*,        \
                                            const A*, const A*, const A*, S*, void*, A*,   \
                                            A*, A*);                                       \
  extern template void mt_lif_backward<S, A>(const MtLifParams&, const S*, const A*,       \
                                             const A*, const S*, const void*, const A*,    \
                                             const A*, const A*, const A*, const A*, S*,   \
                                             A*, A*, A*, A*);
FASTSNN_MT_LIF_EXTERN(float, float)
FASTSNN_MT_LIF_EXTERN(double, double)
FASTSNN_MT_LIF_EXTERN(half, float)
FASTSNN_MT_LIF_EXTERN(bfloat16, float)
#undef FASTSNN_MT_LIF_EXTERN

}  // namespace fastsnn::cpu
