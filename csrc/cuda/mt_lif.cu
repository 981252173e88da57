// mt_lif CUDA kernels (docs/mt_lif.md): the launchers declared in mt_lif.h.
//
// Layout: one thread owns V consecutive elements of one time step (V = 4, 2 or 1, picked per
// call from the size and the pointers' alignment) and walks all T steps with the state in
// registers; consecutive threads own consecutive elements, so every load and store of a step
// is coalesced (and a V-wide vector access). The arithmetic and the time loops live in
// mt_lif_step.cuh; this file adds the memory access, the launch geometry and the
// deterministic reduction of the parameter gradients:
//   * shared parameter ([1]): each block sums its threads (block_sum, fixed tree) into one
//     partial; segment_sum_kernel adds the partials in a fixed order;
//   * per-channel parameter ([C]): each element's sum over time goes to the workspace
//     ([N, C*R] floats); column_sum_kernel sums it over N in row splits, segment_sum_kernel
//     sums the splits and R per channel.
// The reduction order depends only on the sizes and on V (so on the call, never on timing).
#include "cuda/mt_lif.h"

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "cuda/deterministic_sum.cuh"
#include "cuda/mt_lif_step.cuh"
#include "cuda/vector_access.cuh"

namespace fastsnn::cuda {
namespace {

constexpr int kThreads = kSumThreads;  // the backward kernel calls block_sum
// Below this many threads a call uses narrower vectors, so that small tensors still spread
// over every SM (roughly one full wave of resident threads on an H100).
constexpr int64_t kWideMinThreads = int64_t{1} << 17;
constexpr size_t kWsAlign = 256;

// ---- per-thread IO for the loops of mt_lif_step.cuh ----------------------------------------

struct FwdArgs {
  const void* x;
  const float* decay;
  const float* syn;
  const float* v0;
  const float* j0;
  void* s;
  void* saved;
  float* j;
  float* u_final;  // streaming: the state after the last step
  float* j_final;
};

template <class St, int V>
struct FwdIO {
  using T = typename St::T;
  FwdArgs a;  // by value: a reference to a kernel parameter would force a local copy
  int64_t M, e0;
  __device__ int64_t at(int64_t t) const { return t * M + e0; }
  __device__ void load_x(int64_t t, float (&v)[V]) {
    load_pack<St, V>(static_cast<const T*>(a.x) + at(t), v);
  }
  __device__ void load_v0(float (&v)[V]) { load_pack<F32, V>(a.v0 + e0, v); }
  __device__ void load_j0(float (&v)[V]) { load_pack<F32, V>(a.j0 + e0, v); }
  __device__ void store_u_final(const float (&v)[V]) { store_pack<F32, V>(a.u_final + e0, v); }
  __device__ void store_j_final(const float (&v)[V]) { store_pack<F32, V>(a.j_final + e0, v); }
  __device__ void store_s(int64_t t, const float (&v)[V]) {
    store_pack<St, V>(static_cast<T*>(a.s) + at(t), v);
  }
  __device__ void store_h(int64_t t, const float (&v)[V]) {
    store_pack<F32, V>(static_cast<float*>(a.saved) + at(t), v);
  }
  __device__ void store_sg(int64_t t, const float (&v)[V]) {
    store_pack<St, V>(static_cast<T*>(a.saved) + at(t), v);
  }
  __device__ void store_j(int64_t t, const float (&v)[V]) { store_pack<F32, V>(a.j + at(t), v); }
};

struct BwdArgs {
  const void* grad_s;
  const void* s;
  const void* saved;
  const float* j;
  const float* decay;
  const float* syn;
  const float* v0;
  const float* j0;
  const float* grad_u;  // streaming: the final state's gradients
  const float* grad_j;
  void* gx;
  float* gv0;
  float* gj0;
  float* decay_elem;  // workspace: per-element sums (per-channel parameter)
  float* decay_part;  // workspace: per-block partials (shared parameter)
  float* syn_elem;
  float* syn_part;
};

template <class St, int V>
struct BwdIO {
  using T = typename St::T;
  BwdArgs a;
  int64_t M, e0;
  __device__ int64_t at(int64_t t) const { return t * M + e0; }
  __device__ void load_gs(int64_t t, float (&v)[V]) {
    load_pack<St, V>(static_cast<const T*>(a.grad_s) + at(t), v);
  }
  __device__ void load_h(int64_t t, float (&v)[V]) {
    load_pack<F32, V>(static_cast<const float*>(a.saved) + at(t), v);
  }
  __device__ void load_sg(int64_t t, float (&v)[V]) {
    load_pack<St, V>(static_cast<const T*>(a.saved) + at(t), v);
  }
  __device__ void load_s(int64_t t, float (&v)[V]) {
    load_pack<St, V>(static_cast<const T*>(a.s) + at(t), v);
  }
  __device__ void load_j(int64_t t, float (&v)[V]) { load_pack<F32, V>(a.j + at(t), v); }
  __device__ void load_v0(float (&v)[V]) { load_pack<F32, V>(a.v0 + e0, v); }
  __device__ void load_j0(float (&v)[V]) { load_pack<F32, V>(a.j0 + e0, v); }
  __device__ void load_grad_u(float (&v)[V]) { load_pack<F32, V>(a.grad_u + e0, v); }
  __device__ void load_grad_j(float (&v)[V]) { load_pack<F32, V>(a.grad_j + e0, v); }
  __device__ void store_gj0(const float (&v)[V]) { store_pack<F32, V>(a.gj0 + e0, v); }
  __device__ void store_gx(int64_t t, const float (&v)[V]) {
    store_pack<St, V>(static_cast<T*>(a.gx) + at(t), v);
  }
  __device__ void store_gv0(const float (&v)[V]) { store_pack<F32, V>(a.gv0 + e0, v); }
};

// ---- kernels ------------------------------------------------------------------------------

template <class St, int V>
__global__ void __launch_bounds__(kThreads) forward_kernel(step::Consts k, FwdArgs a) {
  const int64_t e0 = (static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x) * V;
  if (e0 >= k.M) return;
  step::Coef cf[V];
  step::coefs_from<V>(k, a.decay, a.syn, e0, cf);
  FwdIO<St, V> io{a, k.M, e0};
  step::forward_thread<V>(k, cf, io);
}

// One parameter's per-thread sums: stored per element (per-channel parameter) or summed over
// the block into one partial (shared parameter). Uniform branch; all threads reach block_sum.
template <int V>
__device__ __forceinline__ void emit_param_sums(bool per_channel, bool active, int64_t e0,
                                                const float (&v)[V], float* elem, float* part) {
  if (per_channel) {
    if (active) store_pack<F32, V>(elem + e0, v);
    return;
  }
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < V; ++i) sum = __fadd_rn(sum, v[i]);
  sum = block_sum(active ? sum : 0.0f);
  if (threadIdx.x == 0) part[blockIdx.x] = sum;
}

template <class St, int V>
__global__ void __launch_bounds__(kThreads) backward_kernel(step::Consts k, BwdArgs a) {
  const int64_t e0 = (static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x) * V;
  const bool active = e0 < k.M;
  step::BackwardAcc<V> acc;
#pragma unroll
  for (int i = 0; i < V; ++i) acc.gdecay[i] = acc.gsyn[i] = 0.0f;
  if (active) {
    step::Coef cf[V];
    step::coefs_from<V>(k, a.decay, a.syn, e0, cf);
    BwdIO<St, V> io{a, k.M, e0};
    step::backward_thread<V>(k, cf, io, acc);
  }
  if (k.decay_grad) {
    emit_param_sums<V>(k.decay_per_channel, active, e0, acc.gdecay, a.decay_elem, a.decay_part);
  }
  if (k.syn_grad) {
    emit_param_sums<V>(k.syn_per_channel, active, e0, acc.gsyn, a.syn_elem, a.syn_part);
  }
}

// ---- host side ----------------------------------------------------------------------------

void check_launch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("fastsnn mt_lif: ") + what + " failed: " +
                             cudaGetErrorString(err));
  }
}

void check_call(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("fastsnn mt_lif: ") + what + " failed: " +
                             cudaGetErrorString(err));
  }
}

void require(bool ok, const char* message) {
  if (!ok) throw std::invalid_argument(std::string("fastsnn mt_lif: ") + message);
}

void check_params(const MtLifParams& p) {
  require(p.T >= 0 && p.N >= 0 && p.C >= 0 && p.R >= 0, "negative size");
  require(p.decay_size == 1 || p.decay_size == p.C, "decay_size must be 1 or C");
  require(p.syn_size == 0 || p.syn_size == 1 || p.syn_size == p.C, "syn_size must be 0, 1 or C");
  require(p.levels >= 1, "levels must be >= 1");
  require(p.threshold > 0 && p.width > 0, "threshold and width must be > 0");
  require(static_cast<unsigned>(p.reset) <= 2 && static_cast<unsigned>(p.surrogate) <= 2 &&
              static_cast<unsigned>(p.form) <= 1 && static_cast<unsigned>(p.save) <= 2,
          "enum out of range");
  // Grid x is at most 2^31 - 1 blocks of kThreads threads, one element each at worst.
  require(p.step() / kThreads < (int64_t{1} << 31) - 1, "too many elements per step");
}

bool aligned(const void* ptr, size_t bytes) {
  return reinterpret_cast<uintptr_t>(ptr) % bytes == 0;
}

// Widest V in {4, 2, 1} such that every row start stays aligned (M % V == 0), every pointer
// allows V-wide accesses, and the grid still has enough threads to fill the GPU.
int choose_vec(int64_t M, size_t esize, std::initializer_list<const void*> dtype_ptrs,
               std::initializer_list<const void*> f32_ptrs) {
  for (int v : {4, 2}) {
    if (M % v != 0 || M / v < kWideMinThreads) continue;
    bool ok = true;
    for (const void* ptr : dtype_ptrs) ok = ok && aligned(ptr, std::min<size_t>(16, v * esize));
    for (const void* ptr : f32_ptrs) ok = ok && aligned(ptr, std::min<size_t>(16, v * 4));
    if (ok) return v;
  }
  return 1;
}

unsigned grid_for(int64_t M, int vec) {
  return static_cast<unsigned>((M / vec + kThreads - 1) / kThreads);
}

size_t element_size(DType dtype) { return dtype == DType::F32 ? 4 : 2; }

// Calls `f.template operator()<St, V>()` for the storage type and vector width.
template <class F>
void dispatch(DType dtype, int vec, F&& f) {
  auto with_vec = [&]<class St>() {
    if (vec == 4) {
      f.template operator()<St, 4>();
    } else if (vec == 2) {
      f.template operator()<St, 2>();
    } else {
      f.template operator()<St, 1>();
    }
  };
  switch (dtype) {
    case DType::F32:
      return with_vec.template operator()<F32>();
    case DType::F16:
      return with_vec.template operator()<F16>();
    case DType::BF16:
      return with_vec.template operator()<BF16>();
  }
  throw std::invalid_argument("fastsnn mt_lif: unknown dtype");
}

// Where each parameter gradient's scratch lives in the backward workspace (byte offsets).
struct ParamSlots {
  bool used = false, per_channel = false;
  size_t elem = 0, cols = 0, part = 0;
};

struct WorkspacePlan {
  int64_t splits = 1, rows_per_split = 1;  // column_sum_kernel's row splits
  ParamSlots decay, syn;
  size_t bytes = 0;
};

WorkspacePlan plan_workspace(const MtLifParams& p) {
  WorkspacePlan w;
  const int64_t M = p.step(), cols = p.C * p.R;
  if (p.T == 0 || M == 0) return w;
  // About 1024 blocks in the column pass, with at least 8 rows per split.
  const int64_t col_blocks = (cols + kSumThreads - 1) / kSumThreads;
  const int64_t want = std::max<int64_t>(1, (1024 + col_blocks - 1) / col_blocks);
  w.splits = std::clamp<int64_t>(std::min(want, p.N / 8), 1, 65535);
  w.rows_per_split = (p.N + w.splits - 1) / w.splits;
  w.splits = (p.N + w.rows_per_split - 1) / w.rows_per_split;
  auto take = [&](int64_t floats) {
    const size_t at = w.bytes;
    w.bytes += (static_cast<size_t>(floats) * sizeof(float) + kWsAlign - 1) / kWsAlign * kWsAlign;
    return at;
  };
  auto place = [&](ParamSlots& s, bool used, int64_t size) {
    s.used = used;
    s.per_channel = size > 1;
    if (!used) return;
    if (s.per_channel) {
      s.elem = take(M);
      s.cols = take(w.splits * cols);
    } else {
      s.part = take((M + kThreads - 1) / kThreads);  // blocks at V = 1, the most there are
    }
  };
  place(w.decay, p.decay_grad, p.decay_size);
  place(w.syn, p.syn_grad && p.syn_size > 0, p.syn_size);
  return w;
}

float* slot(void* ws, const ParamSlots& s, size_t offset) {
  return s.used ? reinterpret_cast<float*>(static_cast<char*>(ws) + offset) : nullptr;
}

// Reduce one parameter's scratch to its gradient `out` ([1] or [C]), in a fixed order.
void reduce_param(const MtLifParams& p, const WorkspacePlan& w, const ParamSlots& s, void* ws,
                  unsigned blocks, float* out, cudaStream_t stream) {
  if (!s.per_channel) {
    segment_sum_kernel<<<1, kSumThreads, 0, stream>>>(slot(ws, s, s.part), 1, 0, 0, blocks, out);
    check_launch("partial sum kernel");
    return;
  }
  const int64_t cols = p.C * p.R;
  const dim3 grid(static_cast<unsigned>((cols + kSumThreads - 1) / kSumThreads),
                  static_cast<unsigned>(w.splits));
  float* col_sums = slot(ws, s, s.cols);
  column_sum_kernel<<<grid, kSumThreads, 0, stream>>>(slot(ws, s, s.elem), p.N, cols,
                                                      w.rows_per_split, col_sums);
  check_launch("column sum kernel");
  segment_sum_kernel<<<static_cast<unsigned>(p.C), kSumThreads, 0, stream>>>(
      col_sums, w.splits, cols, p.R, p.R, out);
  check_launch("channel sum kernel");
}

void zero(float* ptr, int64_t count, cudaStream_t stream) {
  if (ptr == nullptr || count <= 0) return;
  check_call(cudaMemsetAsync(ptr, 0, static_cast<size_t>(count) * sizeof(float), stream),
             "cudaMemsetAsync");
}

// dst[0, count) = src, or zeros when src is null.
void copy_or_zero(float* dst, const float* src, int64_t count, cudaStream_t stream) {
  if (dst == nullptr || count <= 0) return;
  if (src == nullptr) return zero(dst, count, stream);
  check_call(cudaMemcpyAsync(dst, src, static_cast<size_t>(count) * sizeof(float),
                             cudaMemcpyDeviceToDevice, stream),
             "cudaMemcpyAsync");
}

void check_backward_args(const MtLifParams& p, const void* grad_s, const void* s,
                         const void* saved, const float* j, const float* decay,
                         const float* syn, const float* v0, const void* gx, const float* gdecay,
                         const float* gsyn, const float* gv0) {
  const bool syn_grad = p.syn_grad && p.syn_size > 0;
  require(p.save == Save::Sg || p.save == Save::H, "backward needs save == Sg or H");
  require(p.save == Save::H || (!p.decay_grad && (p.reset != Reset::Hard || p.detach_reset)),
          "save == Sg cannot give the decay gradient or an attached hard reset");
  require(gdecay != nullptr || p.decay_size == 0, "gdecay is null");
  require(gsyn != nullptr || p.syn_size == 0, "gsyn is null");
  require(gv0 != nullptr || !p.has_v0, "gv0 is null");
  if (p.T == 0 || p.step() == 0) return;
  require(grad_s && saved && decay && gx, "grad_s, saved, decay and gx must not be null");
  require(syn != nullptr || p.syn_size == 0, "syn is null");
  require(v0 != nullptr || !p.has_v0, "v0 is null");
  require(s != nullptr || p.save != Save::Sg || p.reset != Reset::Hard,
          "s is needed (reset mask) with save == Sg and reset == hard");
  require(j != nullptr || !(syn_grad || (p.form == Form::Plif && p.decay_grad)),
          "j is needed for the syn_decay gradient and for a plif decay gradient");
}

}  // namespace

void mt_lif_forward(const MtLifParams& p, DType dtype, const void* x, const float* decay,
                    const float* syn, StateIn init, void* s, void* saved, float* j,
                    StateOut final_state, cudaStream_t stream) {
  check_params(p);
  const int64_t M = p.step();
  // T == 0: the binding gives the initial state as the final one (no kernel runs)
  if (p.T == 0 || M == 0) return;
  const float* v0 = init.u;
  require(x && decay && s, "x, decay and s must not be null");
  require(syn != nullptr || p.syn_size == 0, "syn is null");
  require(v0 != nullptr || !p.has_v0, "v0 is null");
  require(init.j != nullptr || !(p.has_j0 && p.syn_size), "j0 is null");
  require(final_state.u != nullptr || !p.return_state, "u_final is null");
  require(final_state.j != nullptr || !(p.return_state && p.syn_size), "j_final is null");
  require(saved != nullptr || p.save == Save::None, "saved is null");
  require(j != nullptr || !p.save_j, "j is null");
  const step::Consts k = step::make_consts(p);
  const int vec = choose_vec(M, element_size(dtype),
                             {x, s, p.save == Save::Sg ? saved : nullptr},
                             {p.save == Save::H ? saved : nullptr, j, v0, init.j,
                              final_state.u, final_state.j});
  const FwdArgs a{x, decay, syn, v0, init.j, s, saved, j, final_state.u, final_state.j};
  dispatch(dtype, vec, [&]<class St, int V>() {
    forward_kernel<St, V><<<grid_for(M, V), kThreads, 0, stream>>>(k, a);
  });
  check_launch("forward kernel");
}

size_t mt_lif_backward_workspace_bytes(const MtLifParams& p) {
  check_params(p);
  return plan_workspace(p).bytes;
}

void mt_lif_backward(const MtLifParams& p, DType dtype, const void* grad_s,
                     StateIn grad_final, const void* s, const void* saved, const float* j,
                     const float* decay, const float* syn, StateIn init, void* gx,
                     float* gdecay, float* gsyn, StateOut grad_init, void* workspace,
                     cudaStream_t stream) {
  check_params(p);
  const float* v0 = init.u;
  float* gv0 = grad_init.u;
  const bool has_j0 = p.has_j0 && p.syn_size > 0;
  check_backward_args(p, grad_s, s, saved, j, decay, syn, v0, gx, gdecay, gsyn, gv0);
  require(init.j != nullptr || !has_j0, "j0 is null");
  require(grad_init.j != nullptr || !has_j0, "gj0 is null");
  require(grad_final.u != nullptr || !p.has_grad_u, "grad_u is null");
  require(grad_final.j != nullptr || !(p.has_grad_j && p.syn_size), "grad_j is null");
  const int64_t M = p.step();
  const bool syn_grad = p.syn_grad && p.syn_size > 0;
  if (!p.decay_grad) zero(gdecay, p.decay_size, stream);
  if (!syn_grad) zero(gsyn, p.syn_size, stream);
  if (p.T == 0 || M == 0) {  // nothing flows: every gradient is zero, gx is empty
    if (p.decay_grad) zero(gdecay, p.decay_size, stream);
    if (syn_grad) zero(gsyn, p.syn_size, stream);
    // the initial state's gradient is the final state's
    copy_or_zero(gv0, p.has_v0 && p.has_grad_u ? grad_final.u : nullptr, p.has_v0 ? M : 0,
                 stream);
    copy_or_zero(grad_init.j, has_j0 && p.has_grad_j ? grad_final.j : nullptr,
                 has_j0 ? M : 0, stream);
    return;
  }
  const WorkspacePlan w = plan_workspace(p);
  require(workspace != nullptr || w.bytes == 0, "workspace is null");
  require(aligned(workspace, kWsAlign), "workspace must be 256-byte aligned");
  const step::Consts k = step::make_consts(p);
  const bool sg_mode = p.save == Save::Sg;
  const int vec = choose_vec(
      M, element_size(dtype),
      {grad_s, gx, sg_mode ? saved : nullptr, sg_mode && p.reset == Reset::Hard ? s : nullptr},
      {sg_mode ? nullptr : saved, j, v0, gv0, init.j, grad_init.j, grad_final.u,
       grad_final.j});
  const BwdArgs a{grad_s, s, saved, j, decay, syn, v0, init.j, grad_final.u, grad_final.j,
                  gx, gv0, grad_init.j,
                  slot(workspace, w.decay, w.decay.elem), slot(workspace, w.decay, w.decay.part),
                  slot(workspace, w.syn, w.syn.elem), slot(workspace, w.syn, w.syn.part)};
  const unsigned blocks = grid_for(M, vec);
  dispatch(dtype, vec, [&]<class St, int V>() {
    backward_kernel<St, V><<<blocks, kThreads, 0, stream>>>(k, a);
  });
  check_launch("backward kernel");
  if (p.decay_grad) reduce_param(p, w, w.decay, workspace, blocks, gdecay, stream);
  if (syn_grad) reduce_param(p, w, w.syn, workspace, blocks, gsyn, stream);
}

}  // namespace fastsnn::cuda
