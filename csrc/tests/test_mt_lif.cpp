// C++ tests of the mt_lif CPU kernels (cpu/mt_lif.h), torch-free:
// hand-computed cases, multi-threshold counts at the exact thresholds, a sweep of random
// option sets against a naive per-element loop written from docs/mt_lif.md, determinism
// of the parameter gradients across OpenMP thread counts, and guard regions around every
// buffer (no write out of bounds). The Python tests compare the same kernels with the
// torch reference through the binding.
#include <omp.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "cpu/mt_lif.h"
#include "tests/check.h"

using namespace fastsnn;
using namespace fastsnn::cpu;

namespace {

// ------------------------------------------------------------ guarded buffers

constexpr size_t kGuard = 64;           // bytes either side
constexpr unsigned char kPattern = 0xA5;

// A buffer with sentinel bytes before and after: intact() says nothing wrote outside.
template <class T>
struct Guarded {
  std::vector<unsigned char> raw;
  size_t n;
  explicit Guarded(size_t count) : raw(count * sizeof(T) + 2 * kGuard, kPattern), n(count) {}
  Guarded(const std::vector<T>& v) : Guarded(v.size()) {
    if (!v.empty()) std::memcpy(data(), v.data(), v.size() * sizeof(T));
  }
  T* data() { return reinterpret_cast<T*>(raw.data() + kGuard); }
  T at(size_t i) const {
    T v;
    std::memcpy(&v, raw.data() + kGuard + i * sizeof(T), sizeof(T));
    return v;
  }
  bool intact() const {
    for (size_t i = 0; i < kGuard; ++i) {
      if (raw[i] != kPattern || raw[raw.size() - 1 - i] != kPattern) return false;
    }
    return true;
  }
};

// ------------------------------------------------------------ naive reference

// One threshold's bump, in the reference's order of operations (std::exp for sigmoid).
template <class A>
A naive_bump(Surrogate kind, A z, A a) {
  const A az = std::fabs(z);
  if (kind == Surrogate::Rect) return az < a / A(2) ? A(1) / a : A(0);
  if (kind == Surrogate::Triangle) return std::fmax(A(1) - az / a, A(0)) / a;
  const A sig = A(1) / (A(1) + std::exp(-((A(4) * z) / a)));
  return (A(4) / a) * sig * (A(1) - sig);
}

template <class A>
A naive_sg(const MtLifParams& p, A h) {
  A sg = 0;
  for (int k = 1; k <= p.levels; ++k) {
    sg = sg + naive_bump(p.surrogate, h - A(k) * A(p.threshold), A(p.width));
  }
  return sg;
}

template <class S, class A>
struct Problem {
  MtLifParams p;
  std::vector<S> x, grad_s;
  std::vector<A> decay, syn, v0;
};

template <class S, class A>
struct Result {
  std::vector<S> s, gx;
  std::vector<A> h, j, gdecay, gsyn, gv0;
};

// Forward and backward per element, straight from docs/mt_lif.md; parameter gradients summed in
// double over elements.
template <class S, class A>
Result<S, A> naive(const Problem<S, A>& pr) {
  const MtLifParams& p = pr.p;
  const int64_t step = p.step(), T = p.T;
  const A thr = A(p.threshold);
  Result<S, A> r;
  r.s.resize(T * step);
  r.gx.resize(T * step);
  r.h.resize(T * step);
  r.j.resize(T * step);
  r.gv0.assign(p.has_v0 ? step : 0, A(0));
  std::vector<double> gdecay(p.decay_size, 0.0), gsyn(p.syn_size, 0.0);
  std::vector<A> u(T + 1);
  for (int64_t e = 0; e < step; ++e) {
    const int64_t ch = (e / p.R) % p.C;
    const A lam = pr.decay[p.decay_size == 1 ? 0 : ch];
    const A c = p.form == Form::Plif ? A(1) - lam : A(1);
    const A alpha = p.syn_size ? pr.syn[p.syn_size == 1 ? 0 : ch] : A(0);
    u[0] = p.has_v0 ? pr.v0[e] : A(0);
    A j = 0;
    for (int64_t t = 0; t < T; ++t) {
      const A xv = widen(pr.x[t * step + e]);
      j = p.syn_size ? alpha * j + xv : xv;
      const A h = lam * u[t] + c * j;
      A s = 0;
      for (int k = 1; k <= p.levels; ++k) s = s + (h >= A(k) * thr ? A(1) : A(0));
      u[t + 1] = p.reset == Reset::Hard ? (h >= thr ? A(0) : h)
                 : p.reset == Reset::Soft ? h - thr * s : h;
      r.s[t * step + e] = narrow<S, A>(s);
      r.h[t * step + e] = h;
      r.j[t * step + e] = j;
    }
    A gu = 0, gj = 0, gdec = 0, gsy = 0;
    for (int64_t t = T - 1; t >= 0; --t) {
      const A h = r.h[t * step + e];
      A sg = naive_sg(p, h);
      if (p.save == Save::Sg) sg = widen(narrow<S, A>(sg));  // kept in S by the forward
      A dudh = 1;
      if (p.reset == Reset::Hard) {
        dudh = h >= thr ? A(0) : A(1);
        if (!p.detach_reset) dudh = dudh - h * naive_bump(p.surrogate, h - thr, A(p.width));
      } else if (p.reset == Reset::Soft && !p.detach_reset) {
        dudh = A(1) - thr * sg;
      }
      const A gh = widen(pr.grad_s[t * step + e]) * sg + gu * dudh;
      gu = lam * gh;
      gdec = gdec + gh * (p.form == Form::Plif ? u[t] - r.j[t * step + e] : u[t]);
      A gjt = c * gh;
      if (p.syn_size) {
        gjt = gjt + gj;
        gsy = gsy + gjt * (t > 0 ? r.j[(t - 1) * step + e] : A(0));
        gj = alpha * gjt;
      }
      r.gx[t * step + e] = narrow<S, A>(gjt);
    }
    if (p.has_v0) r.gv0[e] = gu;
    gdecay[p.decay_size == 1 ? 0 : ch] += double(gdec);
    if (p.syn_size) gsyn[p.syn_size == 1 ? 0 : ch] += double(gsy);
  }
  for (double v : gdecay) r.gdecay.push_back(p.decay_grad ? A(v) : A(0));
  for (double v : gsyn) r.gsyn.push_back(p.syn_grad ? A(v) : A(0));
  return r;
}

// ------------------------------------------------------------ running the kernels

template <class S, class A>
Result<S, A> run_kernels(const Problem<S, A>& pr, bool* guards_ok) {
  const MtLifParams& p = pr.p;
  const size_t total = size_t(p.T * p.step());
  Guarded<S> x(pr.x), grad_s(pr.grad_s), s(total), gx(total), saved_s(total);
  Guarded<A> decay(pr.decay), syn(pr.syn), v0(pr.v0), saved_a(total), j(total),
      gdecay(size_t(p.decay_size)), gsyn(size_t(p.syn_size)), gv0(pr.v0.size());
  void* saved = p.save == Save::Sg ? static_cast<void*>(saved_s.data())
                                   : static_cast<void*>(saved_a.data());
  // no streaming state here (j0, the final state and its gradients are null / unused)
  mt_lif_forward<S, A>(p, x.data(), decay.data(), syn.data(), v0.data(), nullptr, s.data(),
                       saved, p.save_j ? j.data() : nullptr, nullptr, nullptr);
  mt_lif_backward<S, A>(p, grad_s.data(), nullptr, nullptr, s.data(), saved,
                        p.save_j ? j.data() : nullptr, decay.data(), syn.data(), v0.data(),
                        nullptr, gx.data(), gdecay.data(), gsyn.data(), gv0.data(), nullptr);
  *guards_ok = x.intact() && grad_s.intact() && s.intact() && gx.intact() &&
               saved_s.intact() && decay.intact() && syn.intact() && v0.intact() &&
               saved_a.intact() && j.intact() && gdecay.intact() && gsyn.intact() &&
               gv0.intact();
  Result<S, A> r;
  for (size_t i = 0; i < total; ++i) {
    r.s.push_back(s.at(i));
    r.gx.push_back(gx.at(i));
    if (p.save == Save::H) r.h.push_back(saved_a.at(i));
    if (p.save_j) r.j.push_back(j.at(i));
  }
  for (size_t i = 0; i < gdecay.n; ++i) r.gdecay.push_back(gdecay.at(i));
  for (size_t i = 0; i < gsyn.n; ++i) r.gsyn.push_back(gsyn.at(i));
  for (size_t i = 0; i < gv0.n; ++i) r.gv0.push_back(gv0.at(i));
  return r;
}

template <class T>
uint64_t bits_of(T v) {
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}

template <class A>
bool close(A got, A want, double rtol, double atol) {
  return std::fabs(double(got) - double(want)) <= atol + rtol * std::fabs(double(want));
}

// ------------------------------------------------------------ hand-computed cases

MtLifParams one_element(int64_t T) {
  MtLifParams p;
  p.T = T;
  p.N = p.C = p.R = 1;
  p.save = Save::H;
  p.decay_grad = true;
  p.has_v0 = true;
  return p;
}

void hand_computed_hard_reset() {
  Problem<float, float> pr;
  pr.p = one_element(2);  // decay 0.5, threshold 1, rect width 1, hard reset
  pr.x = {0.8f, 0.9f};
  pr.grad_s = {1.0f, 1.0f};
  pr.decay = {0.5f};
  pr.v0 = {0.0f};
  bool guards = false;
  const auto r = run_kernels(pr, &guards);
  CHECK(guards);
  // h = 0.8 (no spike, u = 0.8), h = 0.4 + 0.9 = 1.3 (spike, reset to 0).
  CHECK(r.s[0] == 0.0f && r.s[1] == 1.0f);
  CHECK(close(r.h[0], 0.8f, 0, 1e-6) && close(r.h[1], 1.3f, 0, 1e-6));
  // t=2: sg = 1, gh = 1, gu = 0.5, gdecay += 1 * 0.8. t=1: sg = 1, du/dh = 1 - 0.8 * 1,
  // gh = 1 + 0.5 * 0.2 = 1.1, gdecay += 1.1 * v0 = 0, gv0 = 0.5 * 1.1.
  CHECK(close(r.gx[1], 1.0f, 0, 1e-6) && close(r.gx[0], 1.1f, 0, 1e-6));
  CHECK(close(r.gdecay[0], 0.8f, 0, 1e-6));
  CHECK(close(r.gv0[0], 0.55f, 0, 1e-6));
}

void multi_threshold_counts_at_exact_thresholds() {
  Problem<float, float> pr;
  pr.p.T = 2;
  pr.p.N = 1;
  pr.p.C = 1;
  pr.p.R = 8;
  pr.p.levels = 4;
  pr.p.threshold = 0.5;
  pr.p.width = 0.5;
  pr.p.reset = Reset::Soft;
  pr.x = {0.49f, 0.5f, 1.0f, 1.49f, 1.5f, 2.0f, 7.0f, -3.0f, 0, 0, 0, 0, 0, 0, 0, 0};
  pr.grad_s.assign(16, 1.0f);
  pr.decay = {1.0f};  // the second step sees exactly the membrane left by the first
  bool guards = false;
  const auto r = run_kernels(pr, &guards);
  CHECK(guards);
  const float first[8] = {0, 1, 2, 2, 3, 4, 4, 0};   // h = k * thr counts k; capped at K
  const float second[8] = {0, 0, 0, 0, 0, 0, 4, 0};  // soft reset: 7 - 2 = 5 is left
  for (int i = 0; i < 8; ++i) {
    CHECK(r.s[i] == first[i]);
    CHECK(r.s[8 + i] == second[i]);
  }
}

// ------------------------------------------------------------ random sweep

// Random options and data; a small random shape, or `shape`'s T, N, C, R when given.
template <class S, class A>
Problem<S, A> random_problem(std::mt19937& rng, const MtLifParams* shape = nullptr) {
  auto pick = [&](int n) { return int(rng() % unsigned(n)); };
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  Problem<S, A> pr;
  MtLifParams& p = pr.p;
  const int64_t Rs[] = {1, 3, 17, 255, 256, 300, 600};
  p.T = 1 + pick(5);
  p.N = pick(4);  // includes the empty batch
  p.C = 1 + pick(3);
  p.R = Rs[pick(7)];
  if (shape) {
    p.T = shape->T;
    p.N = shape->N;
    p.C = shape->C;
    p.R = shape->R;
  }
  p.levels = 1 + pick(4);
  p.reset = Reset(pick(3));
  p.surrogate = Surrogate(pick(3));
  p.form = Form(pick(2));
  p.detach_reset = pick(2);
  p.decay_grad = pick(2);
  p.has_v0 = pick(2);
  p.syn_size = pick(2) ? (pick(2) ? p.C : 1) : 0;
  p.syn_grad = p.syn_size && pick(2);
  p.decay_size = pick(2) ? p.C : 1;
  p.threshold = double(A(0.5 + unit(rng)));
  p.width = double(A(p.threshold * (0.5 + unit(rng))));
  // The save mode Python picks (fastsnn/ops/mt_lif.py, _save_mode), with j kept whenever
  // a plif decay gradient needs it.
  const bool hard_attached = p.reset == Reset::Hard && !p.detach_reset;
  p.save = hard_attached || p.decay_grad ? Save::H : Save::Sg;
  p.save_j = (p.syn_size && p.syn_grad) || (p.decay_grad && p.form == Form::Plif);
  std::normal_distribution<double> normal(0.0, 1.0);
  const int64_t total = p.T * p.step();
  for (int64_t i = 0; i < total; ++i) {
    pr.x.push_back(narrow<S, A>(A(normal(rng) * p.threshold * 1.5)));
    pr.grad_s.push_back(narrow<S, A>(A(normal(rng))));
  }
  for (int64_t c = 0; c < p.decay_size; ++c) pr.decay.push_back(A(0.2 + 0.8 * unit(rng)));
  for (int64_t c = 0; c < p.syn_size; ++c) pr.syn.push_back(A(0.1 + 0.8 * unit(rng)));
  if (p.has_v0) {
    for (int64_t e = 0; e < p.step(); ++e) pr.v0.push_back(A(normal(rng) * 0.5));
  }
  return pr;
}

// Tolerances: gx and gv0 relative + absolute; parameter gradients relative + absolute
// per element-step (their rounding error grows with the number of terms).
struct Tol {
  double grad, param;
};

template <class S, class A>
bool matches_naive(const Problem<S, A>& pr, const Result<S, A>& got, const Result<S, A>& want,
                   Tol tol) {
  bool ok = true;
  const auto& p = pr.p;
  for (size_t i = 0; i < want.s.size(); ++i) ok &= bits_of(got.s[i]) == bits_of(want.s[i]);
  for (size_t i = 0; i < got.h.size(); ++i) ok &= bits_of(got.h[i]) == bits_of(want.h[i]);
  for (size_t i = 0; i < got.j.size(); ++i) ok &= bits_of(got.j[i]) == bits_of(want.j[i]);
  for (size_t i = 0; i < want.gx.size(); ++i) {
    ok &= close(widen(got.gx[i]), widen(want.gx[i]), tol.grad, tol.grad);
  }
  for (size_t i = 0; i < want.gv0.size(); ++i) {
    ok &= close(got.gv0[i], want.gv0[i], tol.grad, tol.grad);
  }
  const double terms = double(p.T) * double(p.step()) + 1.0;
  for (size_t i = 0; i < want.gdecay.size(); ++i) {
    ok &= close(got.gdecay[i], want.gdecay[i], tol.param, tol.param * terms);
  }
  for (size_t i = 0; i < want.gsyn.size(); ++i) {
    ok &= close(got.gsyn[i], want.gsyn[i], tol.param, tol.param * terms);
  }
  return ok;
}

// exact: rect / triangle, where the kernels repeat the naive loop's operations (gx exact;
// parameter sums differ in grouping only). sigmoid: the kernels' exp_approx differs from
// std::exp by an ulp or two.
template <class S, class A>
void random_sweep(const char* name, int cases, Tol exact, Tol sigmoid) {
  std::mt19937 rng(12345);
  int failed = 0;
  for (int i = 0; i < cases; ++i) {
    const auto pr = random_problem<S, A>(rng);
    bool guards = false;
    const auto got = run_kernels(pr, &guards);
    const auto want = naive(pr);
    const Tol tol = pr.p.surrogate == Surrogate::Sigmoid ? sigmoid : exact;
    const bool ok = CHECK(guards) && CHECK(matches_naive(pr, got, want, tol));
    if (!ok && ++failed <= 5) {
      const auto& p = pr.p;
      std::fprintf(stderr,
                   "  %s case %d: T=%ld N=%ld C=%ld R=%ld K=%d reset=%d sg=%d form=%d "
                   "detach=%d save=%d decay=%ld/%d syn=%ld/%d v0=%d\n",
                   name, i, long(p.T), long(p.N), long(p.C), long(p.R), p.levels,
                   int(p.reset), int(p.surrogate), int(p.form), int(p.detach_reset),
                   int(p.save), long(p.decay_size), int(p.decay_grad), long(p.syn_size),
                   int(p.syn_grad), int(p.has_v0));
    }
  }
}

// ------------------------------------------------------------ determinism

// Shapes big enough for many tiles per thread: long rows cut in pieces, or short rows
// grouped.
void parameter_gradients_ignore_thread_count(int64_t N, int64_t C, int64_t R) {
  std::mt19937 rng(7);
  MtLifParams shape;
  shape.T = 4;
  shape.N = N;
  shape.C = C;
  shape.R = R;
  Problem<float, float> pr = random_problem<float, float>(rng, &shape);
  pr.p.decay_grad = true;
  pr.p.save = Save::H;
  pr.p.save_j = true;
  pr.p.syn_grad = pr.p.syn_size > 0;
  std::vector<Result<float, float>> results;
  for (int threads : {1, 2, 3, 5}) {
    omp_set_num_threads(threads);
    bool guards = false;
    results.push_back(run_kernels(pr, &guards));
    CHECK(guards);
  }
  omp_set_num_threads(omp_get_num_procs());
  for (const auto& r : results) {
    for (size_t i = 0; i < r.gdecay.size(); ++i) {
      CHECK(bits_of(r.gdecay[i]) == bits_of(results[0].gdecay[i]));
    }
    for (size_t i = 0; i < r.gsyn.size(); ++i) {
      CHECK(bits_of(r.gsyn[i]) == bits_of(results[0].gsyn[i]));
    }
  }
}

}  // namespace

int main() {
  hand_computed_hard_reset();
  multi_threshold_counts_at_exact_thresholds();
  random_sweep<float, float>("float", 300, {0, 1e-6}, {2e-5, 2e-5});
  random_sweep<double, double>("double", 150, {0, 1e-14}, {1e-14, 1e-14});
  random_sweep<half, float>("half", 150, {0, 1e-6}, {2e-3, 2e-5});
  random_sweep<bfloat16, float>("bfloat16", 150, {0, 1e-6}, {1e-2, 2e-5});
  parameter_gradients_ignore_thread_count(3, 5, 2000);
  parameter_gradients_ignore_thread_count(64, 128, 3);
  return fastsnn::test::report("test_mt_lif");
}
