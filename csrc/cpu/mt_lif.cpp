// mt_lif CPU kernels (declared in cpu/mt_lif.h; math in fastsnn/reference/mt_lif.py).
//
// Work split: the elements of one time step ([N, C, R] flattened) are cut into tiles of at
// most tile_lanes(T) contiguous elements that never mix a partial row with another row (a
// tile is either a piece of one (n, c) row, or a run of whole rows when R is short). OpenMP hands
// out tiles; each tile runs the whole recursion over T once, forward or backward, with its
// state (u, j; gu, gj and the parameter-gradient accumulators) in lane arrays that stay in
// L1, one fused vectorised loop per step (cpu/mt_lif_step.h). The tile functions are cloned
// per ISA (AVX-512 / AVX2 / baseline) and the clone is picked at load time.
//
// Parameter gradients: every tile writes the sum of its lanes for each (n, c) row piece into
// its own slot (double); the slots are then summed in index order. No atomics and no
// dependence on the thread count or the schedule.
#include "cpu/mt_lif.h"

#include <algorithm>
#include <vector>

#include "cpu/memory.h"
#include "cpu/mt_lif_step.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(FASTSNN_NO_CLONES)
#define FASTSNN_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FASTSNN_CLONES
#endif

namespace fastsnn::cpu {
namespace {

constexpr int64_t kMinParallelWork = 1 << 15;  // element-steps below which one thread runs

// ---------------------------------------------------------------- tiling

struct Geometry {
  int64_t rows = 0, R = 1;     // rows = N * C, each R contiguous elements
  int64_t lanes = kLanes;      // tile length (tile_lanes)
  int64_t tiles_per_row = 1;   // > 1: rows longer than `lanes` are cut into pieces
  int64_t rows_per_tile = 1;   // > 1: short rows are grouped
  int64_t tiles = 0;
  int64_t slots() const { return rows * tiles_per_row; }
};

// One tile: `segments` runs of `seg_len` lanes, each inside one row: row first_row + q
// (grouped rows), or piece `first_slot % tiles_per_row` of row first_row.
struct Tile {
  int64_t e0 = 0, len = 0, first_row = 0, segments = 1, seg_len = 0, first_slot = 0;
};

// Lanes per tile: kLanes (256) for one step, 64 for more. A tile's set-up (lane parameters,
// state fills) is paid once per tile and its steps run on lane arrays that must stay in
// L1; with one step the set-up weighs most and the arrays are read once. Measured on AVX2
// (one thread, [T, 32, 128, 256] float32 plif): T = 1 forward 1.0 -> 0.8 ms with 256
// lanes; T = 4 forward 2.9 ms with 64 lanes against 3.7 with 256.
int64_t tile_lanes(int64_t T) { return T <= 1 ? kLanes : 64; }

Geometry make_geometry(const MtLifParams& p) {
  Geometry g;
  g.rows = p.N * p.C;
  g.R = p.R;
  if (g.rows == 0 || p.R == 0) return g;  // nothing to do: tiles = 0
  g.lanes = tile_lanes(p.T);
  if (p.R >= g.lanes) {
    g.tiles_per_row = (p.R + g.lanes - 1) / g.lanes;
    g.tiles = g.rows * g.tiles_per_row;
  } else {
    g.rows_per_tile = g.lanes / p.R;
    g.tiles = (g.rows + g.rows_per_tile - 1) / g.rows_per_tile;
  }
  return g;
}

Tile tile_at(const Geometry& g, int64_t b) {
  Tile t;
  if (g.rows_per_tile == 1) {  // a piece of one row
    const int64_t row = b / g.tiles_per_row, piece = b % g.tiles_per_row;
    t.first_row = row;
    t.e0 = row * g.R + piece * g.lanes;
    t.len = std::min(g.lanes, g.R - piece * g.lanes);
    t.seg_len = t.len;
    t.first_slot = b;
  } else {  // whole rows
    t.first_row = b * g.rows_per_tile;
    t.segments = std::min(g.rows_per_tile, g.rows - t.first_row);
    t.seg_len = g.R;
    t.e0 = t.first_row * g.R;
    t.len = t.segments * g.R;
    t.first_slot = t.first_row;
  }
  return t;
}

bool parallel_worth_it(const MtLifParams& p) { return p.T * p.step() >= kMinParallelWork; }

template <class A>
void fill_lane_params(const MtLifParams& p, const Tile& tl, const A* decay, const A* syn,
                      LaneParams<A>& lp) {
  for (int64_t q = 0; q < tl.segments; ++q) {
    const int64_t ch = (tl.first_row + q) % p.C;
    const A lam = decay[p.decay_size == 1 ? 0 : ch];
    const A c = p.form == Form::Plif ? A(1) - lam : A(1);  // plif: 1 - decay in A
    const A alpha = syn ? syn[p.syn_size == 1 ? 0 : ch] : A(0);
    std::fill_n(lp.lam + q * tl.seg_len, tl.seg_len, lam);
    std::fill_n(lp.c + q * tl.seg_len, tl.seg_len, c);
    std::fill_n(lp.alpha + q * tl.seg_len, tl.seg_len, alpha);
  }
}

// One decay (and at most one synaptic decay) for every channel: the lane parameters are
// the same for every tile, and each thread fills them once per call rather than per tile
// (at T = 1 the per-tile fill cost as much as the step itself).
bool uniform_lanes(const MtLifParams& p) { return p.decay_size == 1 && p.syn_size <= 1; }

// The tile's lane parameters: `shared` when the call's are uniform (already filled), else
// filled into `own`.
template <class A>
const LaneParams<A>& lane_params(const MtLifParams& p, const Tile& tl, const A* decay,
                                 const A* syn, const LaneParams<A>* shared,
                                 LaneParams<A>& own) {
  if (shared) return *shared;
  fill_lane_params(p, tl, decay, syn, own);
  return own;
}

// Runs tile(p, tile b, a, shared lane parameters or null) for every tile, on the threads.
template <class A, class TileFn, class Args>
void run_tiles(const MtLifParams& p, const Geometry& g, TileFn tile, const Args& a) {
#pragma omp parallel if (parallel_worth_it(p))
  {
    LaneParams<A> shared;
    const bool uniform = uniform_lanes(p) && g.tiles > 0;
    if (uniform) {
      Tile whole;
      whole.seg_len = kLanes;
      fill_lane_params(p, whole, a.decay, a.syn, shared);
    }
#pragma omp for schedule(static)
    for (int64_t b = 0; b < g.tiles; ++b) tile(p, tile_at(g, b), a, uniform ? &shared : nullptr);
  }
}

// Sum each segment's lanes into its slot (double, lane order).
template <class A>
void lanes_to_slots(const Tile& tl, const A* lanes, double* slots) {
  for (int64_t q = 0; q < tl.segments; ++q) {
    double acc = 0;
    for (int64_t i = 0; i < tl.seg_len; ++i) acc += double(lanes[q * tl.seg_len + i]);
    slots[tl.first_slot + q] = acc;
  }
}

// Slots in index order: per channel (size C) or all of them (size 1).
template <class A>
void slots_to_param(const Geometry& g, const std::vector<double>& slots, int64_t size,
                    A* out) {
  const int64_t per_row = g.tiles_per_row;
  for (int64_t ch = 0; ch < size; ++ch) {
    double acc = 0;
    for (int64_t row = ch; row < g.rows; row += size) {  // size 1: every row
      for (int64_t k = 0; k < per_row; ++k) acc += slots[row * per_row + k];
    }
    out[ch] = A(acc);
  }
}

// ---------------------------------------------------------------- forward

template <class S, class A>
struct ForwardArgs {
  const S* x;
  const A *decay, *syn, *v0, *j0;
  S* s;
  void* saved;
  A *j, *u_t, *j_t;  // u_t / j_t: the final state, null unless asked for
};

template <int KMax, class S, class A>
FASTSNN_INLINE void store_sg_of(Surrogate kind, const StepConsts<A>& k, const A* h,
                                int64_t n, S* out) {
  switch (kind) {
    case Surrogate::Rect: return store_sg<Surrogate::Rect, KMax>(k, h, n, out);
    case Surrogate::Triangle: return store_sg<Surrogate::Triangle, KMax>(k, h, n, out);
    case Surrogate::Sigmoid: return store_sg<Surrogate::Sigmoid, KMax>(k, h, n, out);
    case Surrogate::Atan: return store_sg<Surrogate::Atan, KMax>(k, h, n, out);
    case Surrogate::FastSigmoid: return store_sg<Surrogate::FastSigmoid, KMax>(k, h, n, out);
  }
}

template <int KMax, class S, class A>
FASTSNN_CLONES void forward_tile(const MtLifParams& p, const Tile& tl,
                                 const ForwardArgs<S, A>& a, const LaneParams<A>* shared) {
  const StepConsts<A> k(p);
  const int64_t n = tl.len, step = p.step();
  LaneParams<A> own;
  const LaneParams<A>& lp = lane_params(p, tl, a.decay, a.syn, shared, own);
  alignas(64) A u[kLanes], j[kLanes], h[kLanes], j_scratch[kLanes];
  if (a.v0) std::copy_n(a.v0 + tl.e0, n, u); else std::fill_n(u, n, A(p.v_reset));
  if (a.j0) std::copy_n(a.j0 + tl.e0, n, j); else std::fill_n(j, n, A(0));
  for (int64_t t = 0; t < p.T; ++t) {
    const int64_t off = t * step + tl.e0;
    A* h_out = p.save == Save::H ? static_cast<A*>(a.saved) + off : h;
    A* j_out = p.save_j ? a.j + off : j_scratch;
    forward_step<KMax>(k, lp, a.x + off, n, u, j, a.s + off, h_out, j_out);
    if (p.save == Save::Sg) {
      store_sg_of<KMax>(p.surrogate, k, h, n, static_cast<S*>(a.saved) + off);
    }
  }
  if (a.u_t) std::copy_n(u, n, a.u_t + tl.e0);
  if (a.j_t) std::copy_n(j, n, a.j_t + tl.e0);
}

// ---------------------------------------------------------------- backward

template <class S, class A>
struct BackwardArgs {
  const S *grad_s, *s;
  const A *grad_u, *grad_j;  // the final state's gradients; null: zero
  const void* saved;
  const A *j, *decay, *syn, *v0, *j0;
  S* gx;
  A *gv0, *gj0;
  double *decay_slots, *syn_slots;  // one per row piece; null when not asked for
};

template <int KMax, bool DecayGrad, class S, class A>
FASTSNN_INLINE void backward_step_h_of(Surrogate kind, const StepConsts<A>& k,
                                       const LaneParams<A>& lp, const A* h, const A* hp,
                                       bool prev_from_h, const BackwardStep<S, A>& io,
                                       int64_t n, BackwardState<A>& st) {
  switch (kind) {
    case Surrogate::Rect:
      return backward_step_h<Surrogate::Rect, KMax, DecayGrad>(k, lp, h, hp, prev_from_h, io,
                                                               n, st);
    case Surrogate::Triangle:
      return backward_step_h<Surrogate::Triangle, KMax, DecayGrad>(k, lp, h, hp, prev_from_h,
                                                                   io, n, st);
    case Surrogate::Sigmoid:
      return backward_step_h<Surrogate::Sigmoid, KMax, DecayGrad>(k, lp, h, hp, prev_from_h,
                                                                  io, n, st);
    case Surrogate::Atan:
      return backward_step_h<Surrogate::Atan, KMax, DecayGrad>(k, lp, h, hp, prev_from_h, io,
                                                               n, st);
    case Surrogate::FastSigmoid:
      return backward_step_h<Surrogate::FastSigmoid, KMax, DecayGrad>(k, lp, h, hp,
                                                                      prev_from_h, io, n, st);
  }
}

template <int KMax, class S, class A>
FASTSNN_CLONES void backward_tile(const MtLifParams& p, const Tile& tl,
                                  const BackwardArgs<S, A>& a, const LaneParams<A>* shared) {
  const StepConsts<A> k(p);
  const int64_t n = tl.len, step = p.step();
  LaneParams<A> own;
  const LaneParams<A>& lp = lane_params(p, tl, a.decay, a.syn, shared, own);
  // Only what the loops read is filled: at T = 1 these fills cost as much as the step.
  BackwardState<A> st;
  if (a.grad_u) std::copy_n(a.grad_u + tl.e0, n, st.gu); else std::fill_n(st.gu, n, A(0));
  if (a.grad_j) std::copy_n(a.grad_j + tl.e0, n, st.gj); else std::fill_n(st.gj, n, A(0));
  std::fill_n(st.gsyn, n, A(0));
  if (p.decay_grad) std::fill_n(st.gdecay, n, A(0));  // read by the DecayGrad loop only
  alignas(64) static const A zeros[kLanes] = {};
  alignas(64) A rest[kLanes];
  if (p.decay_grad && !a.v0) std::fill_n(rest, n, A(p.v_reset));  // read as `first` only
  const A* first = a.v0 ? a.v0 + tl.e0 : rest;  // u before the first step
  const A* j_first = a.j0 ? a.j0 + tl.e0 : zeros;  // j before the first step
  const bool plif_decay = p.decay_grad && p.form == Form::Plif;
  for (int64_t t = p.T - 1; t >= 0; --t) {
    const int64_t off = t * step + tl.e0;
    const BackwardStep<S, A> io{a.grad_s + off, plif_decay ? a.j + off : zeros,
                                !a.syn_slots ? zeros : t > 0 ? a.j + off - step : j_first,
                                a.gx + off};
    if (p.save == Save::H) {
      const A* h = static_cast<const A*>(a.saved) + off;
      const A* hp = !p.decay_grad ? zeros : t > 0 ? h - step : first;
      if (p.decay_grad) {
        backward_step_h_of<KMax, true>(p.surrogate, k, lp, h, hp, t > 0, io, n, st);
      } else {  // u[t-1] and the decay accumulator are not needed: a lighter loop
        backward_step_h_of<KMax, false>(p.surrogate, k, lp, h, hp, false, io, n, st);
      }
    } else {
      const S* sg = static_cast<const S*>(a.saved) + off;
      if (p.reset == Reset::Hard) {
        backward_step_sg<true>(k, lp, sg, a.s + off, io, n, st);
      } else {
        backward_step_sg<false>(k, lp, sg, a.s + off, io, n, st);
      }
    }
  }
  if (a.gv0) std::copy_n(st.gu, n, a.gv0 + tl.e0);  // gv0 = lam * gh[0]
  if (a.gj0) std::copy_n(st.gj, n, a.gj0 + tl.e0);  // gj0 = alpha * gjt[0]
  if (a.decay_slots) lanes_to_slots(tl, st.gdecay, a.decay_slots);
  if (a.syn_slots) lanes_to_slots(tl, st.gsyn, a.syn_slots);
}

}  // namespace

// ---------------------------------------------------------------- entry points

template <class scalar_t, class acc_t>
void mt_lif_forward(const MtLifParams& p, const scalar_t* x, const acc_t* decay,
                    const acc_t* syn, const acc_t* v0, const acc_t* j0, scalar_t* s,
                    void* saved, acc_t* j, acc_t* u_t, acc_t* j_t) {
  const Geometry g = make_geometry(p);
  const bool has_syn = p.syn_size > 0;
  const ForwardArgs<scalar_t, acc_t> a{
      x, decay, has_syn ? syn : nullptr, p.has_v0 ? v0 : nullptr,
      has_syn && p.has_j0 ? j0 : nullptr, s, saved, j, p.return_state ? u_t : nullptr,
      p.return_state && has_syn ? j_t : nullptr};
  if (p.return_state && g.tiles == 0) {  // T, N*C or R is 0: the state is the initial one
    for (int64_t e = 0; e < p.step(); ++e) {
      u_t[e] = p.has_v0 ? v0[e] : acc_t(p.v_reset);
      if (has_syn) j_t[e] = p.has_j0 ? j0[e] : acc_t(0);
    }
  }
  const size_t n = size_t(p.T * p.step());
  advise_huge_pages(s, n * sizeof(scalar_t));  // fresh outputs: fewer page faults
  if (p.save == Save::H) advise_huge_pages(saved, n * sizeof(acc_t));
  if (p.save == Save::Sg) advise_huge_pages(saved, n * sizeof(scalar_t));
  if (p.save_j) advise_huge_pages(j, n * sizeof(acc_t));
  auto* tile = p.levels == 1   ? &forward_tile<1, scalar_t, acc_t>
               : p.levels <= 4 ? &forward_tile<4, scalar_t, acc_t>
                               : &forward_tile<0, scalar_t, acc_t>;
  run_tiles<acc_t>(p, g, tile, a);
}

template <class scalar_t, class acc_t>
void mt_lif_backward(const MtLifParams& p, const scalar_t* grad_s, const acc_t* grad_u,
                     const acc_t* grad_j, const scalar_t* s, const void* saved, const acc_t* j,
                     const acc_t* decay, const acc_t* syn, const acc_t* v0, const acc_t* j0,
                     scalar_t* gx, acc_t* gdecay, acc_t* gsyn, acc_t* gv0, acc_t* gj0) {
  const Geometry g = make_geometry(p);
  const bool has_syn = p.syn_size > 0;
  std::vector<double> decay_slots(p.decay_grad ? g.slots() : 0);
  std::vector<double> syn_slots(has_syn && p.syn_grad ? g.slots() : 0);
  const bool has_j0 = has_syn && p.has_j0;
  const BackwardArgs<scalar_t, acc_t> a{
      grad_s, s, p.has_grad_u ? grad_u : nullptr, has_syn && p.has_grad_j ? grad_j : nullptr,
      saved, j, decay, has_syn ? syn : nullptr, p.has_v0 ? v0 : nullptr,
      has_j0 ? j0 : nullptr, gx, p.has_v0 ? gv0 : nullptr, has_j0 ? gj0 : nullptr,
      p.decay_grad ? decay_slots.data() : nullptr,
      has_syn && p.syn_grad ? syn_slots.data() : nullptr};
  // T == 0: the initial state's gradient is the final state's (tiles still run when
  // T == 0 but N*C*R > 0, and overwrite these with the same values). Tested outside the
  // loop: GCC keeps an empty loop over every element otherwise (12 % of a T = 1 backward).
  if (p.has_v0) {
    for (int64_t e = 0; e < p.step(); ++e) gv0[e] = a.grad_u ? a.grad_u[e] : acc_t(0);
  }
  if (has_j0) {
    for (int64_t e = 0; e < p.step(); ++e) gj0[e] = a.grad_j ? a.grad_j[e] : acc_t(0);
  }
  advise_huge_pages(gx, size_t(p.T * p.step()) * sizeof(scalar_t));
  auto* tile = p.levels == 1   ? &backward_tile<1, scalar_t, acc_t>
               : p.levels <= 4 ? &backward_tile<4, scalar_t, acc_t>
                               : &backward_tile<0, scalar_t, acc_t>;
  run_tiles<acc_t>(p, g, tile, a);
  std::fill_n(gdecay, p.decay_size, acc_t(0));
  if (p.decay_grad) slots_to_param(g, decay_slots, p.decay_size, gdecay);
  if (has_syn) {
    std::fill_n(gsyn, p.syn_size, acc_t(0));
    if (p.syn_grad) slots_to_param(g, syn_slots, p.syn_size, gsyn);
  }
}

#define FASTSNN_MT_LIF_INSTANTIATE(S, A)                                                   \
  template void mt_lif_forward<S, A>(const MtLifParams&, const S*, const A*, const A*,     \
                                     const A*, const A*, S*, void*, A*, A*, A*);           \
  template void mt_lif_backward<S, A>(const MtLifParams&, const S*, const A*, const A*,    \
                                      const S*, const void*, const A*, const A*, const A*, \
                                      const A*, const A*, S*, A*, A*, A*, A*);
FASTSNN_MT_LIF_INSTANTIATE(float, float)
FASTSNN_MT_LIF_INSTANTIATE(double, double)
FASTSNN_MT_LIF_INSTANTIATE(half, float)
FASTSNN_MT_LIF_INSTANTIATE(bfloat16, float)

}  // namespace fastsnn::cpu
