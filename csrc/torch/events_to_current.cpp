// events_to_current binding: the CPU and CUDA implementations of
// fastsnn::events_to_current_forward (schema declared in fastsnn/ops/events_to_current.py,
// whose docstring is the contract), with the checks that keep the kernels in bounds when
// called directly. Invalid events and offsets raise ValueError (TORCH_CHECK_VALUE) with the
// first bad index; the messages match fastsnn/reference/events_to_current.py word for word.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cstdint>
#include <limits>
#include <string>

#include "checks.h"
#include "common/events.h"
#include "cpu/events.h"

#ifdef FASTSNN_WITH_CUDA
#include "cuda/events.h"
#endif

namespace fastsnn {
namespace {

constexpr int64_t kMaxT = std::numeric_limits<int32_t>::max();
constexpr const char* kOp = "events_to_current";

void check_tensors(const at::Tensor& events, const at::Tensor& offsets, c10::DeviceType dev) {
  TORCH_CHECK_VALUE(events.dim() == 2 && events.size(1) == 4,
                    "events must be an [E, 4] tensor (x, y, t, p), got shape ",
                    events.sizes());
  checks::dtype(events, kOp, "events", {at::kInt, at::kLong});
  checks::contiguous(events, kOp, "events");
  TORCH_CHECK_VALUE(events.device().type() == dev, "events must be on ", dev);
  checks::dtype(offsets, kOp, "offsets", {at::kLong});
  TORCH_CHECK_VALUE(offsets.dim() == 1 && offsets.numel() >= 1,
                    "offsets must be a 1-d tensor [B+1], got shape ", offsets.sizes());
  TORCH_CHECK_VALUE(offsets.device() == events.device(),
                    "offsets must be on the device of events");
}

// offsets run from 0 to E without decreasing (host copy).
void check_offsets(const at::Tensor& offsets_host, int64_t E) {
  const int64_t* off = offsets_host.data_ptr<int64_t>();
  const int64_t n = offsets_host.numel();
  TORCH_CHECK_VALUE(off[0] == 0, "offsets[0] must be 0, got ", off[0]);
  for (int64_t k = 1; k < n; ++k) {
    TORCH_CHECK_VALUE(off[k] >= off[k - 1], "offsets must be non-decreasing: offsets[", k,
                      "] = ", off[k], " < offsets[", k - 1, "] = ", off[k - 1]);
  }
  TORCH_CHECK_VALUE(off[n - 1] == E, "offsets[-1] = ", off[n - 1],
                    " must equal the number of events E = ", E);
}

EventsParams make_params(const at::Tensor& events, const at::Tensor& offsets, int64_t T,
                         int64_t width, int64_t height, int64_t polarities, int64_t split,
                         int64_t weighting, double tau, int64_t frac_bits, int64_t factor,
                         bool merge) {
  TORCH_CHECK_VALUE(T >= 1 && T <= kMaxT, "T must be in [1, 2^31), got ", T);
  TORCH_CHECK_VALUE(width >= 1 && height >= 1, "sensor_size must be positive, got W = ",
                    width, ", H = ", height);
  TORCH_CHECK_VALUE(polarities == 1 || polarities == 2,
                    "sensor_size P must be 1 or 2, got ", polarities);
  TORCH_CHECK_VALUE(split == 0 || split == 1, "split must be 0 (number) or 1 (time)");
  TORCH_CHECK_VALUE(weighting == 0 || weighting == 1, "weighting must be 0 (count) or 1 (exp)");
  TORCH_CHECK_VALUE(weighting == 0 || tau > 0, "tau_syn must be > 0, got ", tau);
  TORCH_CHECK_VALUE(frac_bits >= 0 && frac_bits <= 62, "frac_bits must be in [0, 62]");
  TORCH_CHECK_VALUE(factor >= 1, "spatial_factor must be >= 1, got ", factor);
  EventsParams p;
  p.E = events.size(0);
  p.B = offsets.numel() - 1;
  p.T = T;
  p.W = width;
  p.H = height;
  p.P = polarities;
  p.factor = factor;
  p.merge = merge;
  p.split = static_cast<EventSplit>(split);
  p.weighting = static_cast<EventWeighting>(weighting);
  p.tau = tau;
  p.frac_bits = static_cast<int>(frac_bits);
  // int32 counters: no output element can exceed E.
  TORCH_CHECK_VALUE(p.E <= std::numeric_limits<int32_t>::max(),
                    "at most 2^31 - 1 events per call are supported, got ", p.E);
  // Exp sums stay below 2^62: E * 2^frac_bits.
  TORCH_CHECK_VALUE(weighting == 0 || (p.E >> (62 - frac_bits)) == 0,
                    "frac_bits too large for ", p.E, " events");
  return p;
}

at::Tensor empty_output(const EventsParams& p, const at::Tensor& events) {
  return at::empty({p.T, p.B, p.Pout(), p.Hout(), p.Wout()},
                   events.options().dtype(at::kFloat));
}

// Raises the ValueError for event `index` (rows: a host int64 [2, 4] copy of events
// index - 1 and index; row 0 unused when index == 0).
[[noreturn]] void throw_fault(const EventsParams& p, EventFault fault, int64_t index,
                              const at::Tensor& rows) {
  const auto r = rows.accessor<int64_t, 2>();
  switch (fault) {
    case EventFault::X:
      TORCH_CHECK_VALUE(false, "events: x = ", r[1][0], " at index ", index,
                        " is outside the sensor width [0, ", p.W, ")");
    case EventFault::Y:
      TORCH_CHECK_VALUE(false, "events: y = ", r[1][1], " at index ", index,
                        " is outside the sensor height [0, ", p.H, ")");
    case EventFault::P:
      TORCH_CHECK_VALUE(false, "events: polarity p = ", r[1][3], " at index ", index,
                        " is outside [0, ", p.P, ") (sensor_size has P = ", p.P, ")");
    default:
      TORCH_CHECK_VALUE(false, "events: t = ", r[1][2], " at index ", index,
                        " is smaller than t = ", r[0][2], " at index ", index - 1,
                        ": timestamps must be sorted within each stream");
  }
}

[[noreturn]] void raise_fault(const EventsParams& p, EventFault fault, int64_t index,
                              const at::Tensor& events) {
  const int64_t lo = index > 0 ? index - 1 : 0;
  at::Tensor rows = at::zeros({2, 4}, at::kLong);
  rows.narrow(0, 2 - (index - lo + 1), index - lo + 1)
      .copy_(events.narrow(0, lo, index - lo + 1).to(at::kCPU, at::kLong));
  throw_fault(p, fault, index, rows);
}

at::Tensor events_to_current_cpu(const at::Tensor& events, const at::Tensor& offsets, int64_t T,
                                 int64_t width, int64_t height, int64_t polarities,
                                 int64_t split, int64_t weighting, double tau,
                                 int64_t frac_bits, int64_t factor, bool merge) {
  check_tensors(events, offsets, c10::DeviceType::CPU);
  const at::Tensor off = offsets.contiguous();
  check_offsets(off, events.size(0));
  const EventsParams p = make_params(events, off, T, width, height, polarities, split,
                                     weighting, tau, frac_bits, factor, merge);
  at::Tensor out = empty_output(p, events);
  const int threads = at::get_num_threads();  // torch.set_num_threads governs the kernel
  const cpu::EventsFaultReport report =
      events.scalar_type() == at::kLong
          ? cpu::events_to_current(p, events.data_ptr<int64_t>(), off.data_ptr<int64_t>(),
                                   out.data_ptr<float>(), threads)
          : cpu::events_to_current(p, events.data_ptr<int32_t>(), off.data_ptr<int64_t>(),
                                   out.data_ptr<float>(), threads);
  if (report.fault != EventFault::None) raise_fault(p, report.fault, report.index, events);
  return out;
}

#ifdef FASTSNN_WITH_CUDA
at::Tensor events_to_current_cuda(const at::Tensor& events, const at::Tensor& offsets,
                                  int64_t T, int64_t width, int64_t height, int64_t polarities,
                                  int64_t split, int64_t weighting, double tau,
                                  int64_t frac_bits, int64_t factor, bool merge) {
  check_tensors(events, offsets, c10::DeviceType::CUDA);
  const CudaLaunch launch(events);
  const at::Tensor off = offsets.contiguous();
  check_offsets(off.to(at::kCPU), events.size(0));
  const EventsParams p = make_params(events, off, T, width, height, polarities, split,
                                     weighting, tau, frac_bits, factor, merge);
  at::Tensor out = empty_output(p, events);
  const auto i64 = events.options().dtype(at::kLong);
  at::Tensor starts = at::empty({p.B * p.T + 1}, i64);
  at::Tensor faults = at::empty({kEventFaultKinds}, i64);
  at::Tensor acc = p.weighting == EventWeighting::Exp ? at::empty({out.numel()}, i64)
                                                      : at::Tensor();
  cuda::EventsBuffers buf;
  buf.events = events.data_ptr();
  buf.events_int64 = events.scalar_type() == at::kLong;
  buf.offsets = off.data_ptr<int64_t>();
  buf.starts = starts.data_ptr<int64_t>();
  buf.faults = faults.data_ptr<int64_t>();
  buf.acc = acc.defined() ? acc.data_ptr<int64_t>() : nullptr;
  buf.out = out.data_ptr<float>();
  cuda::events_to_current(p, buf, launch.stream());
  const at::Tensor faults_host = faults.to(at::kCPU);  // waits for the kernels
  const int64_t* f = faults_host.data_ptr<int64_t>();
  int best = -1;
  for (int k = 0; k < kEventFaultKinds; ++k) {
    if (f[k] != std::numeric_limits<int64_t>::max() && (best < 0 || f[k] < f[best])) best = k;
  }
  if (best >= 0) raise_fault(p, static_cast<EventFault>(best), f[best], events);
  return out;
}
#endif

}  // namespace
}  // namespace fastsnn

TORCH_LIBRARY_FRAGMENT(fastsnn, m) {
  fastsnn::register_impl(m, "events_to_current_forward", &fastsnn::events_to_current_cpu,
                         FASTSNN_CUDA_ONLY(&fastsnn::events_to_current_cuda));
}
