// mt_lif: the lane loops of one time step over one tile (the driver is cpu/mt_lif.cpp).
//
// Each step is one branch-free loop over the tile's lanes that GCC vectorises (forward:
// forward_step, plus store_sg in save mode sg; backward: backward_step_h or _sg). Options
// are loop-invariant selects (cpu/dtypes.h `select`) or pointers chosen outside the loop
// (an output that is not kept goes to a scratch lane array, an absent input is read from a
// lane array of zeros), so one loop serves every option set. Template parameters are only
// the dtypes, the surrogate and KMax, the number of thresholds: 1 (levels == 1), 4 (levels
// 2..4; thresholds past `levels` are NaN, never reached) or 0 (any levels: a runtime loop
// per lane, not vectorised). Every expression keeps the reference's order of operations
// (fastsnn/reference/mt_lif.py), so spikes and h match it bit for bit.
#pragma once

#include <cstdint>
#include <limits>

#include "common/mt_lif.h"
#include "cpu/dtypes.h"
#include "cpu/surrogate.h"

#define FASTSNN_INLINE [[gnu::always_inline]] inline

namespace fastsnn::cpu {

// Most elements per tile (the lane arrays' length). The mt_lif driver uses 64 lanes for
// T > 1 (64 measured fastest of 32..512 on AVX-512, float32, [4, 32, 128, 256]: larger
// tiles were up to 1.5x slower, smaller ones pay the per-tile set-up) and all 256 for T = 1,
// where the set-up weighs most (cpu/mt_lif.cpp, tile_lanes).
constexpr int64_t kLanes = 256;

// lam, c (1 for stbp, 1 - lam for plif) and alpha (0 without synaptic current) per lane.
template <class A>
struct alignas(64) LaneParams {
  A lam[kLanes], c[kLanes], alpha[kLanes];
};

// The scalars of one call in the compute dtype, derived as the reference derives them.
template <class A>
struct StepConsts {
  SurrogateConsts<A> sc;
  A thr_k[4];     // k * thr for k = 1..4, rounded once; NaN past `levels`
  A soft_thr;     // thr for reset "soft", else 0: u = h - soft_thr * s is h exactly
  A vr;           // v_reset: hard-reset value and rest potential (0: the plain LIF exactly)
  bool hard, soft, subtract_next, attached, syn, plif;
  int levels;
  explicit StepConsts(const MtLifParams& p) : sc(p) {
    for (int k = 1; k <= 4; ++k) {
      thr_k[k - 1] = k <= p.levels ? A(k) * sc.thr : std::numeric_limits<A>::quiet_NaN();
    }
    hard = p.reset == Reset::Hard;
    soft = p.reset == Reset::Soft;
    subtract_next = p.reset == Reset::SubtractNext;
    soft_thr = soft ? sc.thr : A(0);
    vr = A(p.v_reset);
    attached = !p.detach_reset;
    syn = p.syn_size > 0;
    plif = p.form == Form::Plif;
    levels = p.levels;
  }
};

// s = sum_k [h >= k * thr] (reference `staircase`), summed in k order.
template <int KMax, class A>
FASTSNN_INLINE A staircase(A h, const StepConsts<A>& k) {
  A s = select(h >= k.thr_k[0], A(1), A(0));
  if constexpr (KMax == 4) {
    for (int i = 1; i < 4; ++i) s = s + select(h >= k.thr_k[i], A(1), A(0));  // NaN: never
  } else if constexpr (KMax == 0) {
    for (int i = 2; i <= k.levels; ++i) s = s + select(h >= A(i) * k.sc.thr, A(1), A(0));
  }
  return s;
}

// u after the step: hard -> h * (1 - [h >= thr]) + vr * [h >= thr]; soft -> h - thr * s;
// none -> h. The hard reset multiplies as the reference does, so an infinite charge leaves
// NaN (IEEE), on every backend alike (docs/mt_lif.md, "Non-finite input").
template <class A>
FASTSNN_INLINE A reset(A h, A s, const StepConsts<A>& k) {
  const A u = h - k.soft_thr * s;
  const A fired = select(h >= k.sc.thr, A(1), A(0));
  return select(k.hard, h * (A(1) - fired) + k.vr * fired, u);
}

// sg(h) = sum_k g(h - k * thr) in k order; *b1 = g(h - thr).
template <Surrogate Kind, int KMax, class A>
FASTSNN_INLINE A multi_bump(A h, const StepConsts<A>& k, A* b1) {
  A sg = bump<Kind>(h - k.thr_k[0], k.sc);
  *b1 = sg;
  if constexpr (KMax == 4) {
    for (int i = 1; i < 4; ++i) {
      // Levels above K have a NaN threshold: rect and triangle give 0 for NaN, the
      // others need a select.
      const A t = k.thr_k[i];
      const A b = bump<Kind>(h - t, k.sc);
      constexpr bool zero_for_nan = Kind == Surrogate::Rect || Kind == Surrogate::Triangle;
      sg = sg + (zero_for_nan ? b : select(t != t, A(0), b));
    }
  } else if constexpr (KMax == 0) {
    for (int i = 2; i <= k.levels; ++i) sg = sg + bump<Kind>(h - A(i) * k.sc.thr, k.sc);
  }
  return sg;
}

// ------------------------------------------------------------------ forward

// One step: j = alpha * j + x (or x), h = lam * u + c * j, s, u = reset. Writes s, h and j
// to their outputs (scratch lanes when not kept) and updates the state u, j. SubtractNext
// (reset "subtract_next") is a template parameter, not a test in the loop: GCC neither
// if-converts `flag ? h0 - thr * s : h0` (the subtraction may trap, so it will not run it
// unconditionally) nor unswitches a body this large, and the loop then stays scalar.
template <int KMax, bool SubtractNext, class S, class A>
FASTSNN_INLINE void forward_lanes(const StepConsts<A>& k0, const LaneParams<A>& lp,
                                  const S* __restrict x, int64_t n, A* __restrict u,
                                  A* __restrict j, S* __restrict s, A* __restrict h_out,
                                  A* __restrict j_out) {
  const StepConsts<A> k = k0;  // a local copy: no store below can alias it
  for (int64_t i = 0; i < n; ++i) {
    const A xv = widen(x[i]);
    const A with_syn = lp.alpha[i] * j[i] + xv;
    const A jv = select(k.syn, with_syn, xv);
    // vr + lam * (u - vr) + c * j: with vr = 0 exactly lam * u + c * j; c = 1 (stbp): exact
    const A h0 = (k.vr + lp.lam[i] * (u[i] - k.vr)) + lp.c[i] * jv;
    // subtract_next: the last step's spikes, read off the carried (unreset) membrane
    A h = h0;
    if constexpr (SubtractNext) h = h0 - k.sc.thr * staircase<KMax>(u[i], k);
    const A cnt = staircase<KMax>(h, k);
    s[i] = narrow<S, A>(select(h != h, h, cnt));  // a NaN charge spikes NaN, visibly
    h_out[i] = h;
    j_out[i] = jv;
    j[i] = jv;
    u[i] = reset(h, cnt, k);
  }
}

template <int KMax, class S, class A>
FASTSNN_INLINE void forward_step(const StepConsts<A>& k, const LaneParams<A>& lp, const S* x,
                                 int64_t n, A* u, A* j, S* s, A* h_out, A* j_out) {
  if (k.subtract_next) {
    forward_lanes<KMax, true>(k, lp, x, n, u, j, s, h_out, j_out);
  } else {
    forward_lanes<KMax, false>(k, lp, x, n, u, j, s, h_out, j_out);
  }
}

// Save mode sg: sg(h) rounded to the storage dtype.
template <Surrogate Kind, int KMax, class S, class A>
FASTSNN_INLINE void store_sg(const StepConsts<A>& k0, const A* __restrict h, int64_t n,
                             S* __restrict out) {
  const StepConsts<A> k = k0;
  for (int64_t i = 0; i < n; ++i) {
    A b1;
    out[i] = narrow<S, A>(multi_bump<Kind, KMax>(h[i], k, &b1));
  }
}

// ------------------------------------------------------------------ backward

// What the recurrence needs from the saved tensors at one step and lane.
template <class A>
struct Terms {
  A sg, dudh, prev;  // sg(h[t]), du[t]/dh[t], u[t-1] (0 when no decay gradient is asked for)
};

// Save mode h: sg and du/dh from h[t]; u[t-1] = reset(hp) from hp = h[t-1] when prev_from_h,
// else hp is u[t-1] itself (v0, or zeros before the first step). Without a decay gradient
// (DecayGrad false) u[t-1] is not needed: prev is 0 and costs nothing.
template <Surrogate Kind, int KMax, bool DecayGrad, class A>
FASTSNN_INLINE Terms<A> terms_from_h(const StepConsts<A>& k, A h, A hp, bool prev_from_h) {
  A b1;
  const A sg = multi_bump<Kind, KMax>(h, k, &b1);
  const A kept = select(h >= k.sc.thr, A(0), A(1));  // 1 - H(h - thr)
  const A d_hard = select(k.attached, kept - h * b1 + k.vr * b1, kept);
  const A d_soft = select(k.attached, A(1) - k.sc.thr * sg, A(1));
  const A dudh = select(k.hard, d_hard, select(k.soft, d_soft, A(1)));
  if constexpr (!DecayGrad) {
    return {sg, dudh, A(0)};
  } else {
    const A prev = select(prev_from_h, reset(hp, staircase<KMax>(hp, k), k), hp);
    return {sg, dudh, prev};
  }
}

// Save mode sg (no decay gradient; a hard reset only when detached, whose mask is s >= 1,
// the same test as h >= thr).
template <bool Hard, class A>
FASTSNN_INLINE Terms<A> terms_from_sg(const StepConsts<A>& k, A sg, A s) {
  const A d_hard = select(s >= A(1), A(0), A(1));
  const A d_soft = select(k.soft & k.attached, A(1) - k.sc.thr * sg, A(1));
  return {sg, Hard ? d_hard : d_soft, A(0)};
}

// The lanes' running backward state.
template <class A>
struct alignas(64) BackwardState {
  A gu[kLanes], gj[kLanes], gdecay[kLanes], gsyn[kLanes];
};

// Pointers of one step: `jt` is j[t] (zeros unless a plif decay gradient needs it), `jp` is
// j[t-1] (zeros unless the synaptic gradient needs it).
template <class S, class A>
struct BackwardStep {
  const S* grad_s;
  const A *jt, *jp;
  S* gx;
};

// gh, gu, the decay and synaptic-decay accumulators, gj and gx of one lane (the decay
// accumulator only with DecayGrad: otherwise nobody reads it).
template <bool DecayGrad, class S, class A>
FASTSNN_INLINE void recurrence(const StepConsts<A>& k, const LaneParams<A>& lp,
                               const S* grad_s, const A* jt, const A* jp, S* gx, int64_t i,
                               Terms<A> tm, A* gu, A* gj, A* gdecay, A* gsyn) {
  const A gh = widen(grad_s[i]) * tm.sg + gu[i] * tm.dudh;
  gu[i] = lp.lam[i] * gh;
  if constexpr (DecayGrad) {
    const A leak = tm.prev - k.vr;  // u[t-1] - v_reset (- j[t] for plif)
    const A u_term = select(k.plif, leak - jt[i], leak);
    gdecay[i] = gdecay[i] + gh * u_term;
  }
  const A gc = lp.c[i] * gh;  // c = 1 (stbp): exact
  const A gjt = select(k.syn, gc + gj[i], gc);
  gsyn[i] = gsyn[i] + gjt * jp[i];
  gj[i] = lp.alpha[i] * gjt;
  gx[i] = narrow<S, A>(gjt);
}

// The backward lane loops take every array as a __restrict parameter of the function that
// holds the loop. Read through the BackwardStep / BackwardState fields, GCC must assume gx
// may overlap every input and state array; the run-time overlap tests then exceed its limit
// of 10 (--param vect-max-version-for-alias-checks) and the loop stays scalar. (GCC ignores
// __restrict on local pointers, and on the parameters of a function inlined into the loop
// body it holds for one iteration only.)
template <Surrogate Kind, int KMax, bool DecayGrad, class S, class A>
FASTSNN_INLINE void backward_lanes_h(const StepConsts<A>& k0, const LaneParams<A>& lp,
                                     const A* __restrict h, const A* __restrict hp,
                                     bool prev_from_h, const S* __restrict grad_s,
                                     const A* __restrict jt, const A* __restrict jp,
                                     S* __restrict gx, int64_t n, A* __restrict gu,
                                     A* __restrict gj, A* __restrict gdecay,
                                     A* __restrict gsyn) {
  const StepConsts<A> k = k0;  // a local copy: no store below can alias it
  for (int64_t i = 0; i < n; ++i) {
    const Terms<A> tm = terms_from_h<Kind, KMax, DecayGrad>(k, h[i], hp[i], prev_from_h);
    recurrence<DecayGrad>(k, lp, grad_s, jt, jp, gx, i, tm, gu, gj, gdecay, gsyn);
  }
}

template <bool Hard, class S, class A>
FASTSNN_INLINE void backward_lanes_sg(const StepConsts<A>& k0, const LaneParams<A>& lp,
                                      const S* __restrict saved, const S* __restrict s,
                                      const S* __restrict grad_s, const A* __restrict jt,
                                      const A* __restrict jp, S* __restrict gx, int64_t n,
                                      A* __restrict gu, A* __restrict gj,
                                      A* __restrict gdecay, A* __restrict gsyn) {
  const StepConsts<A> k = k0;
  for (int64_t i = 0; i < n; ++i) {
    const A sv = Hard ? widen(s[i]) : A(0);
    const Terms<A> tm = terms_from_sg<Hard>(k, widen(saved[i]), sv);
    recurrence<false>(k, lp, grad_s, jt, jp, gx, i, tm, gu, gj, gdecay, gsyn);  // sg: no gdecay
  }
}

// One backward step in save mode h. `hp`: see terms_from_h.
template <Surrogate Kind, int KMax, bool DecayGrad, class S, class A>
FASTSNN_INLINE void backward_step_h(const StepConsts<A>& k, const LaneParams<A>& lp,
                                    const A* h, const A* hp, bool prev_from_h,
                                    const BackwardStep<S, A>& io, int64_t n,
                                    BackwardState<A>& st) {
  backward_lanes_h<Kind, KMax, DecayGrad>(k, lp, h, hp, prev_from_h, io.grad_s, io.jt, io.jp,
                                          io.gx, n, st.gu, st.gj, st.gdecay, st.gsyn);
}

// One backward step in save mode sg; `s` is read only for a hard reset.
template <bool Hard, class S, class A>
FASTSNN_INLINE void backward_step_sg(const StepConsts<A>& k, const LaneParams<A>& lp,
                                     const S* saved, const S* s, const BackwardStep<S, A>& io,
                                     int64_t n, BackwardState<A>& st) {
  backward_lanes_sg<Hard>(k, lp, saved, s, io.grad_s, io.jt, io.jp, io.gx, n, st.gu, st.gj,
                          st.gdecay, st.gsyn);
}

}  // namespace fastsnn::cpu
