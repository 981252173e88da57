// events_to_current CUDA kernels: a torch-free launcher over raw device pointers (contract:
// common/events.h and the docstring of fastsnn/ops/events_to_current.py; the binding
// csrc/torch/events_to_current.cpp allocates the buffers). The launcher enqueues everything
// on `stream`
// and never synchronises; it throws std::runtime_error when a launch fails.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/events.h"

namespace fastsnn::cuda {

struct EventsBuffers {
  const void* events = nullptr;      // [E, 4] int64 (events_int64) or int32, rows (x, y, t, p)
  bool events_int64 = true;
  const int64_t* offsets = nullptr;  // [B+1], checked by the caller: 0 .. E, non-decreasing
  int64_t* starts = nullptr;         // [B*T + 1] scratch: first event of every segment
  int64_t* faults = nullptr;         // [kEventFaultKinds] out: lowest bad index per kind,
                                     // INT64_MAX when none (read it after the stream syncs)
  int64_t* acc = nullptr;            // [T*B*frame] scratch, exp weighting only (else null)
  float* out = nullptr;              // [T, B, Pout, Hout, Wout]
};

// Launches, in order on `stream`: zero fill, segment boundaries (one thread per stream),
// accumulation (one pass over all events of the batch: integer atomics, deterministic),
// conversion to float32.
void events_to_current(const EventsParams& p, const EventsBuffers& buf, cudaStream_t stream);

}  // namespace fastsnn::cuda
