// mt_lif: the per-element arithmetic and the per-thread time loops of the CUDA kernels.
//
// Everything here is __host__ __device__ and free of CUDA-only types, so a host compiler can
// run the very same loops (tests/cuda_emulation/mt_lif_emu.cpp) on a machine without a GPU.
// mt_lif.cu adds only the memory access (vector loads/stores), the launch geometry and the
// deterministic reductions.
//
// Arithmetic follows fastsnn/reference/mt_lif.py operation by operation, in float32, so that
// spikes, h, j and (for the rect and triangle surrogates) every gradient match the reference
// bit for bit: each multiply, add and divide is rounded on its own (no FMA contraction),
// scalars are rounded to float32 exactly where torch rounds them (k*threshold, 4/width, ...).
#pragma once

#include <cmath>
#include <cstdint>

#include "common/mt_lif.h"

#include "common/hd.h"

namespace fastsnn::cuda::step {

// One rounding per operation whatever the compiler flags: the _rn intrinsics are never
// contracted into FMAs. The host versions rely on -ffp-contract=off (SSE float is IEEE).
FASTSNN_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
FASTSNN_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
FASTSNN_HD float sub_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
FASTSNN_HD float div_rn(float a, float b) {  // IEEE division, as torch's CPU `tensor / a`
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

// The call's options and sizes in the form the loops use (scalars pre-rounded like torch).
struct Consts {
  int64_t T = 0, M = 0, C = 1, R = 1;  // steps, elements per step (N*C*R), channels, inner
  float threshold = 1.f;
  float v_reset = 0.f;          // hard-reset value and rest potential
  float width = 1.f;            // a
  float half_width = 0.5f;      // fl32(a / 2)       (rect:    |z| < a/2)
  float inv_width = 1.f;        // fl32(1 / a)       (rect:    1[...] / a)
  float four_over_width = 4.f;  // fl32(4 / a)       (sigmoid: (4/a) * sig * (1 - sig))
  int levels = 1;
  Reset reset = Reset::Hard;
  Surrogate surrogate = Surrogate::Rect;
  Save save = Save::None;
  bool detach_reset = false, synaptic = false, plif = false, has_v0 = false;
  bool has_j0 = false, return_state = false, has_grad_u = false, has_grad_j = false;
  bool save_j = false, decay_grad = false, syn_grad = false;
  bool decay_per_channel = false, syn_per_channel = false;
};

inline Consts make_consts(const MtLifParams& p) {
  Consts k;
  k.T = p.T;
  k.M = p.step();
  k.C = p.C;
  k.R = p.R;
  k.threshold = static_cast<float>(p.threshold);
  k.v_reset = static_cast<float>(p.v_reset);
  k.width = static_cast<float>(p.width);
  // Python computes a/2 and 4/a in double and torch rounds the scalar to float32 when it
  // meets a float32 tensor; `tensor / a` rounds a first, then divides in float32.
  k.half_width = static_cast<float>(p.width / 2.0);
  k.four_over_width = static_cast<float>(4.0 / p.width);
  k.inv_width = 1.0f / k.width;
  k.levels = p.levels;
  k.reset = p.reset;
  k.surrogate = p.surrogate;
  k.save = p.save;
  k.detach_reset = p.detach_reset;
  k.synaptic = p.syn_size > 0;
  k.plif = p.form == Form::Plif;
  k.has_v0 = p.has_v0;
  k.has_j0 = p.has_j0 && p.syn_size > 0;
  k.return_state = p.return_state;
  k.has_grad_u = p.has_grad_u;
  k.has_grad_j = p.has_grad_j && p.syn_size > 0;
  k.save_j = p.save_j;
  k.decay_grad = p.decay_grad;
  k.syn_grad = p.syn_grad && p.syn_size > 0;
  k.decay_per_channel = p.decay_size > 1;
  k.syn_per_channel = p.syn_size > 1;
  return k;
}

// Per-element coefficients: lam = decay, c = 1 (stbp) or 1 - decay (plif), alpha = syn.
struct Coef {
  float lam = 0.f, c = 1.f, alpha = 0.f;
};

FASTSNN_HD Coef coef_at(const Consts& k, const float* decay, const float* syn, int64_t ch) {
  Coef cf;
  cf.lam = decay[k.decay_per_channel ? ch : 0];
  cf.c = k.plif ? sub_rn(1.0f, cf.lam) : 1.0f;  // 1.0f * j == j exactly, as the reference
  cf.alpha = k.synaptic ? syn[k.syn_per_channel ? ch : 0] : 0.0f;
  return cf;
}

// Coefficients of the V consecutive elements starting at flat index e0 (channel (e/R) % C).
template <int V>
FASTSNN_HD void coefs_from(const Consts& k, const float* decay, const float* syn, int64_t e0,
                           Coef (&cf)[V]) {
  int64_t row = e0 / k.R, r = e0 % k.R;
  for (int i = 0; i < V; ++i) {
    cf[i] = coef_at(k, decay, syn, row % k.C);
    if (++r == k.R) {
      r = 0;
      ++row;
    }
  }
}

// k*threshold rounded in float32 (torch rounds the Python double k*threshold to float32).
FASTSNN_HD float level(const Consts& k, int lvl) {
  return mul_rn(static_cast<float>(lvl), k.threshold);
}

// s = sum_k [h >= k*threshold]. The levels increase, so the first miss ends the count.
FASTSNN_HD float staircase(const Consts& k, float h) {
  float s = 0.0f;
  for (int lvl = 1; lvl <= k.levels; ++lvl) {
    if (!(h >= level(k, lvl))) break;
    s = add_rn(s, 1.0f);
  }
  return s;
}

// u after the reset, from the charge h and its spike count s (reference `_reset`).
FASTSNN_HD float reset_value(const Consts& k, float h, float s) {
  switch (k.reset) {
    case Reset::Hard: {  // h * (1 - fired) + v_reset * fired
      const float fired = h >= k.threshold ? 1.0f : 0.0f;
      return add_rn(mul_rn(h, sub_rn(1.0f, fired)), mul_rn(k.v_reset, fired));
    }
    case Reset::Soft:
      return sub_rn(h, mul_rn(k.threshold, s));
    default:
      return h;
  }
}

FASTSNN_HD float reset_value(const Consts& k, float h) {
  return reset_value(k, h, k.reset == Reset::Soft ? staircase(k, h) : 0.0f);
}

// Logistic function. Uses the accurate expf (not __expf); torch's sigmoid is implemented
// differently, so sigmoid-surrogate gradients match the reference to tolerance, not bitwise.
FASTSNN_HD float logistic(float y) { return div_rn(1.0f, add_rn(1.0f, expf(-y))); }

// One bump g(z) of width a and unit area (fastsnn/reference/surrogate.py `bump`).
FASTSNN_HD float bump(const Consts& k, float z) {
  switch (k.surrogate) {
    case Surrogate::Rect:
      return fabsf(z) < k.half_width ? k.inv_width : 0.0f;  // 1[...] / a; 0 / a == 0
    case Surrogate::Triangle: {
      // clamp(1 - |z|/a, min=0) / a. |z| >= a rounds |z|/a to >= 1, so the result is 0.
      float az = fabsf(z);
      if (az >= k.width) return 0.0f;
      float d = sub_rn(1.0f, div_rn(az, k.width));
      return div_rn(d < 0.0f ? 0.0f : d, k.width);
    }
    case Surrogate::Atan: {  // a = alpha: (alpha/2) / (1 + (pi/2 * (alpha*z))^2)
      float t = mul_rn(1.57079632679489662f, mul_rn(k.width, z));
      return mul_rn(k.half_width, div_rn(1.0f, add_rn(1.0f, mul_rn(t, t))));
    }
    case Surrogate::FastSigmoid: {  // a = slope: 1 / (slope*|z| + 1)^2
      float d = add_rn(mul_rn(k.width, fabsf(z)), 1.0f);
      return div_rn(1.0f, mul_rn(d, d));
    }
    default: {
      float sig = logistic(div_rn(mul_rn(4.0f, z), k.width));
      return mul_rn(mul_rn(k.four_over_width, sig), sub_rn(1.0f, sig));
    }
  }
}

// sg(h) = sum_k g(h - k*threshold), summed from k = 1 up as Python's sum() does; *first
// receives g(h - threshold), the k = 1 term the hard reset's derivative reuses.
FASTSNN_HD float multi_bump(const Consts& k, float h, float* first = nullptr) {
  float sg = 0.0f;
  for (int lvl = 1; lvl <= k.levels; ++lvl) {
    float g = bump(k, sub_rn(h, level(k, lvl)));
    if (lvl == 1 && first != nullptr) *first = g;
    sg = add_rn(sg, g);
  }
  return sg;
}

// One forward step of one element: updates the state (u, j), returns h; s gets the spikes.
FASTSNN_HD float forward_step(const Consts& k, const Coef& cf, float x, float& u, float& j,
                              float& s) {
  j = k.synaptic ? add_rn(mul_rn(cf.alpha, j), x) : x;
  // v_reset + lam * (u - v_reset) + c * j: exactly lam * u + c * j when v_reset = 0
  float h = add_rn(add_rn(k.v_reset, mul_rn(cf.lam, sub_rn(u, k.v_reset))), mul_rn(cf.c, j));
  // subtract_next: the last step's spikes, read off the carried (unreset) membrane u.
  if (k.reset == Reset::SubtractNext) h = sub_rn(h, mul_rn(k.threshold, staircase(k, u)));
  s = staircase(k, h);
  u = reset_value(k, h, s);
  if (h != h) s = h;  // a NaN charge spikes NaN, visibly (docs/mt_lif.md)
  return h;
}

// du/dh and sg of one step. With save == H both come from h; with save == Sg, sg is the saved
// value and the hard reset (only ever detached in that mode) reads its mask from s >= 1,
// which equals h >= threshold because the staircase counts with the same comparison.
struct Local {
  float sg, dudh;
};

FASTSNN_HD Local local_from_h(const Consts& k, float h) {
  float g1 = 0.0f;
  Local l;
  l.sg = multi_bump(k, h, &g1);
  switch (k.reset) {
    case Reset::Hard:
      l.dudh = sub_rn(1.0f, h >= k.threshold ? 1.0f : 0.0f);
      if (!k.detach_reset) l.dudh = add_rn(sub_rn(l.dudh, mul_rn(h, g1)), mul_rn(k.v_reset, g1));
      break;
    case Reset::Soft:
      l.dudh = k.detach_reset ? 1.0f : sub_rn(1.0f, mul_rn(k.threshold, l.sg));
      break;
    default:
      l.dudh = 1.0f;
  }
  return l;
}

FASTSNN_HD Local local_from_sg(const Consts& k, float sg, float s) {
  Local l;
  l.sg = sg;
  switch (k.reset) {
    case Reset::Hard:  // detach_reset holds in this save mode (checked by the launcher)
      l.dudh = sub_rn(1.0f, s >= 1.0f ? 1.0f : 0.0f);
      break;
    case Reset::Soft:
      l.dudh = k.detach_reset ? 1.0f : sub_rn(1.0f, mul_rn(k.threshold, sg));
      break;
    default:
      l.dudh = 1.0f;
  }
  return l;
}

// ---------------------------------------------------------------------------------------
// Per-thread time loops over V consecutive elements. `io` supplies the loads and stores of
// one step for those elements (vector accesses on the device, plain loops on the host).
// Every stream is prefetched one step ahead so that two loads per stream are in flight.

template <int V, class IO>
FASTSNN_HD void forward_thread(const Consts& k, const Coef (&cf)[V], IO& io) {
  float u[V], j[V], x[V], xn[V];
  for (int i = 0; i < V; ++i) {
    j[i] = x[i] = xn[i] = 0.0f;
    u[i] = k.v_reset;  // at rest unless v0 is given
  }
  if (k.has_v0) io.load_v0(u);
  if (k.has_j0) io.load_j0(j);
  if (k.T > 0) io.load_x(0, x);
  for (int64_t t = 0; t < k.T; ++t) {
    if (t + 1 < k.T) io.load_x(t + 1, xn);
    float s[V], h[V];
    for (int i = 0; i < V; ++i) h[i] = forward_step(k, cf[i], x[i], u[i], j[i], s[i]);
    io.store_s(t, s);
    if (k.save == Save::H) {
      io.store_h(t, h);
    } else if (k.save == Save::Sg) {
      float sg[V];
      for (int i = 0; i < V; ++i) sg[i] = multi_bump(k, h[i]);
      io.store_sg(t, sg);
    }
    if (k.save_j) io.store_j(t, j);
    for (int i = 0; i < V; ++i) x[i] = xn[i];
  }
  if (k.return_state) {  // streaming: the state after the last step
    io.store_u_final(u);
    if (k.synaptic) io.store_j_final(j);
  }
}

// What the backward reads for one step of V elements.
template <int V>
struct BackwardIn {
  float gs[V], h[V], sg[V], s[V], j[V];
};

template <int V, class IO>
FASTSNN_HD void load_backward_in(const Consts& k, IO& io, int64_t t, BackwardIn<V>& in) {
  io.load_gs(t, in.gs);
  if (k.save == Save::H) {
    io.load_h(t, in.h);
  } else {
    io.load_sg(t, in.sg);
    if (k.reset == Reset::Hard) io.load_s(t, in.s);
  }
  if (k.syn_grad || (k.plif && k.decay_grad)) io.load_j(t, in.j);
}

// Per-element sums over time of the parameter gradients (what the block reduction takes).
template <int V>
struct BackwardAcc {
  float gdecay[V], gsyn[V];
};

// Step 0's pending terms use the initial state u[0] = v0 (or v_reset) and j[0] = j0 (or 0);
// gv0 = gu, gj0 = gj (the final state's gradients when T = 0).
template <int V, class IO>
FASTSNN_HD void finish_backward(const Consts& k, IO& io, const float (&gu)[V],
                                const float (&gj)[V], const float (&pend_gh)[V],
                                const float (&pend_j)[V],
                                const float (&pend_gjt)[V], BackwardAcc<V>& acc) {
  if (k.T > 0 && (k.decay_grad || k.syn_grad)) {
    float u0[V], j0[V];
    for (int i = 0; i < V; ++i) {
      u0[i] = k.v_reset;
      j0[i] = 0.0f;
    }
    if (k.decay_grad && k.has_v0) io.load_v0(u0);
    if (k.syn_grad && k.has_j0) io.load_j0(j0);
    for (int i = 0; i < V; ++i) {
      if (k.decay_grad) {
        float leak = sub_rn(u0[i], k.v_reset);
        float d = k.plif ? sub_rn(leak, pend_j[i]) : leak;
        acc.gdecay[i] = add_rn(acc.gdecay[i], mul_rn(pend_gh[i], d));
      }
      if (k.syn_grad) acc.gsyn[i] = add_rn(acc.gsyn[i], mul_rn(pend_gjt[i], j0[i]));
    }
  }
  if (k.has_v0) io.store_gv0(gu);
  if (k.has_j0) io.store_gj0(gj);
}

// The reference's backward_recursion for V elements. gdecay needs u[t-1] = reset(h[t-1]) and
// gsyn needs j[t-1]: both are one step older than what step t reads, so each step's term is
// kept pending and added in the next (older) step, where h[t-1] and j[t-1] are at hand; the
// additions happen in the reference's order (t = T-1 down to 0), and every stream is read once.
template <int V, class IO>
FASTSNN_HD void backward_thread(const Consts& k, const Coef (&cf)[V], IO& io,
                                BackwardAcc<V>& acc) {
  float gu[V], gj[V], pend_gh[V], pend_j[V], pend_gjt[V];
  for (int i = 0; i < V; ++i) {
    gu[i] = gj[i] = pend_gh[i] = pend_j[i] = pend_gjt[i] = 0.0f;
    acc.gdecay[i] = acc.gsyn[i] = 0.0f;
  }
  if (k.has_grad_u) io.load_grad_u(gu);  // streaming: the final state's gradient
  if (k.has_grad_j) io.load_grad_j(gj);
  BackwardIn<V> cur{}, nxt{};
  if (k.T > 0) load_backward_in(k, io, k.T - 1, cur);
  for (int64_t t = k.T - 1; t >= 0; --t) {
    if (t > 0) load_backward_in(k, io, t - 1, nxt);
    const bool pending = t + 1 < k.T;
    float gx[V];
    for (int i = 0; i < V; ++i) {
      if (pending && k.decay_grad) {  // term of step t+1: gh[t+1] * (u[t] (- j[t+1]))
        float leak = sub_rn(reset_value(k, cur.h[i]), k.v_reset);
        float d = k.plif ? sub_rn(leak, pend_j[i]) : leak;
        acc.gdecay[i] = add_rn(acc.gdecay[i], mul_rn(pend_gh[i], d));
      }
      if (pending && k.syn_grad) acc.gsyn[i] = add_rn(acc.gsyn[i], mul_rn(pend_gjt[i], cur.j[i]));
      Local l = k.save == Save::H ? local_from_h(k, cur.h[i])
                                  : local_from_sg(k, cur.sg[i], cur.s[i]);
      float gh = add_rn(mul_rn(cur.gs[i], l.sg), mul_rn(gu[i], l.dudh));
      gu[i] = mul_rn(cf[i].lam, gh);
      float gjt = mul_rn(cf[i].c, gh);
      if (k.synaptic) {
        gjt = add_rn(gjt, gj[i]);
        gj[i] = mul_rn(cf[i].alpha, gjt);
      }
      gx[i] = gjt;
      pend_gh[i] = gh;
      pend_j[i] = cur.j[i];
      pend_gjt[i] = gjt;
    }
    io.store_gx(t, gx);
    cur = nxt;
  }
  finish_backward(k, io, gu, gj, pend_gh, pend_j, pend_gjt, acc);
}

}  // namespace fastsnn::cuda::step
