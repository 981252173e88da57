// Host emulation of the mt_lif CUDA kernels for machines without a GPU: runs the kernels' own
// per-thread loops (csrc/cuda/mt_lif_step.cuh) for every thread of the grid, with float32
// storage and plain loads/stores in place of the vector accesses of mt_lif.cu. Built and
// driven by tests/test_mt_lif_cuda_emulation.py through ctypes; compile with -ffp-contract=off.
#include <cstdint>

#include "cuda/mt_lif_step.cuh"

namespace {

namespace step = fastsnn::cuda::step;
using fastsnn::MtLifParams;

// The flat argument arrays of the C entry points (see tests/test_mt_lif_cuda_emulation.py).
MtLifParams params_from(const int64_t* ip, const double* dp) {
  MtLifParams p;
  p.T = ip[0], p.N = ip[1], p.C = ip[2], p.R = ip[3];
  p.decay_size = ip[4], p.syn_size = ip[5], p.has_v0 = ip[6] != 0;
  p.levels = static_cast<int>(ip[7]);
  p.reset = static_cast<fastsnn::Reset>(ip[8]);
  p.surrogate = static_cast<fastsnn::Surrogate>(ip[9]);
  p.form = static_cast<fastsnn::Form>(ip[10]);
  p.save = static_cast<fastsnn::Save>(ip[11]);
  p.detach_reset = ip[12] != 0, p.save_j = ip[13] != 0;
  p.decay_grad = ip[14] != 0, p.syn_grad = ip[15] != 0;
  p.has_j0 = ip[16] != 0, p.return_state = ip[17] != 0;
  p.has_grad_u = ip[18] != 0, p.has_grad_j = ip[19] != 0;
  p.threshold = dp[0], p.width = dp[1], p.v_reset = dp[2];
  return p;
}

template <int V>
void copy_in(const float* src, float (&v)[V]) {
  for (int i = 0; i < V; ++i) v[i] = src[i];
}
template <int V>
void copy_out(float* dst, const float (&v)[V]) {
  for (int i = 0; i < V; ++i) dst[i] = v[i];
}

template <int V>
struct FwdIO {
  const float *x, *v0, *j0;
  float *s, *saved, *j, *u_final, *j_final;
  int64_t M, e0;
  int64_t at(int64_t t) const { return t * M + e0; }
  void load_x(int64_t t, float (&v)[V]) { copy_in(x + at(t), v); }
  void load_v0(float (&v)[V]) { copy_in(v0 + e0, v); }
  void load_j0(float (&v)[V]) { copy_in(j0 + e0, v); }
  void store_u_final(const float (&v)[V]) { copy_out(u_final + e0, v); }
  void store_j_final(const float (&v)[V]) { copy_out(j_final + e0, v); }
  void store_s(int64_t t, const float (&v)[V]) { copy_out(s + at(t), v); }
  void store_h(int64_t t, const float (&v)[V]) { copy_out(saved + at(t), v); }
  void store_sg(int64_t t, const float (&v)[V]) { copy_out(saved + at(t), v); }
  void store_j(int64_t t, const float (&v)[V]) { copy_out(j + at(t), v); }
};

template <int V>
struct BwdIO {
  const float *gs, *s, *saved, *j, *v0, *j0, *grad_u, *grad_j;
  float *gx, *gv0, *gj0;
  int64_t M, e0;
  int64_t at(int64_t t) const { return t * M + e0; }
  void load_gs(int64_t t, float (&v)[V]) { copy_in(gs + at(t), v); }
  void load_h(int64_t t, float (&v)[V]) { copy_in(saved + at(t), v); }
  void load_sg(int64_t t, float (&v)[V]) { copy_in(saved + at(t), v); }
  void load_s(int64_t t, float (&v)[V]) { copy_in(s + at(t), v); }
  void load_j(int64_t t, float (&v)[V]) { copy_in(j + at(t), v); }
  void load_v0(float (&v)[V]) { copy_in(v0 + e0, v); }
  void load_j0(float (&v)[V]) { copy_in(j0 + e0, v); }
  void load_grad_u(float (&v)[V]) { copy_in(grad_u + e0, v); }
  void load_grad_j(float (&v)[V]) { copy_in(grad_j + e0, v); }
  void store_gj0(const float (&v)[V]) { copy_out(gj0 + e0, v); }
  void store_gx(int64_t t, const float (&v)[V]) { copy_out(gx + at(t), v); }
  void store_gv0(const float (&v)[V]) { copy_out(gv0 + e0, v); }
};

// The pointers of one call, in the order of the C entry points.
struct FwdPtrs {
  const float *x, *decay, *syn, *v0, *j0;
  float *s, *saved, *j, *u_final, *j_final;
};
struct BwdPtrs {
  const float *gs, *grad_u, *grad_j, *s, *saved, *j, *decay, *syn, *v0, *j0;
  float *gx, *gv0, *gj0, *acc_decay, *acc_syn;
};

template <int V>
void forward(const MtLifParams& p, const FwdPtrs& a) {
  const step::Consts k = step::make_consts(p);
  for (int64_t e0 = 0; e0 < k.M; e0 += V) {  // one iteration = one GPU thread
    step::Coef cf[V];
    step::coefs_from<V>(k, a.decay, a.syn, e0, cf);
    FwdIO<V> io{a.x, a.v0, a.j0, a.s, a.saved, a.j, a.u_final, a.j_final, k.M, e0};
    step::forward_thread<V>(k, cf, io);
  }
}

// Writes each element's sums over time of the decay / syn gradient terms (what a GPU thread
// holds before the block reduction) to acc_decay / acc_syn.
template <int V>
void backward(const MtLifParams& p, const BwdPtrs& a) {
  const step::Consts k = step::make_consts(p);
  for (int64_t e0 = 0; e0 < k.M; e0 += V) {
    step::Coef cf[V];
    step::coefs_from<V>(k, a.decay, a.syn, e0, cf);
    BwdIO<V> io{a.gs, a.s, a.saved, a.j, a.v0, a.j0, a.grad_u, a.grad_j, a.gx, a.gv0, a.gj0,
                k.M, e0};
    step::BackwardAcc<V> acc;
    step::backward_thread<V>(k, cf, io, acc);
    copy_out(a.acc_decay + e0, acc.gdecay);
    copy_out(a.acc_syn + e0, acc.gsyn);
  }
}

}  // namespace

extern "C" int emu_forward(const int64_t* ip, const double* dp, int vec, const float* x,
                           const float* decay, const float* syn, const float* v0,
                           const float* j0, float* s, float* saved, float* j, float* u_final,
                           float* j_final) {
  const MtLifParams p = params_from(ip, dp);
  if (p.step() % vec != 0) return 1;
  const FwdPtrs a{x, decay, syn, v0, j0, s, saved, j, u_final, j_final};
  switch (vec) {
    case 1: forward<1>(p, a); return 0;
    case 2: forward<2>(p, a); return 0;
    case 4: forward<4>(p, a); return 0;
    default: return 1;
  }
}

extern "C" int emu_backward(const int64_t* ip, const double* dp, int vec, const float* gs,
                            const float* grad_u, const float* grad_j, const float* s,
                            const float* saved, const float* j, const float* decay,
                            const float* syn, const float* v0, const float* j0, float* gx,
                            float* gv0, float* gj0, float* acc_decay, float* acc_syn) {
  const MtLifParams p = params_from(ip, dp);
  if (p.step() % vec != 0) return 1;
  const BwdPtrs a{gs, grad_u, grad_j, s, saved, j, decay, syn, v0, j0,
                  gx, gv0, gj0, acc_decay, acc_syn};
  switch (vec) {
    case 1: backward<1>(p, a); return 0;
    case 2: backward<2>(p, a); return 0;
    case 4: backward<4>(p, a); return 0;
    default: return 1;
  }
}
