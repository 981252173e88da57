// events_to_current CPU kernel: torch-free, raw contiguous pointers (layout and meaning of
// every buffer in common/events.h and the kernel contract of fastsnn/ops/events.py).
#pragma once

#include <cstdint>

#include "common/events.h"

namespace fastsnn::cpu {

// The lowest invalid event and why (fault == None: every event is valid).
struct EventsFaultReport {
  int64_t index = -1;
  EventFault fault = EventFault::None;
};

// events: [E, 4] rows (x, y, t, p); offsets: [B+1], already checked to run from 0 to E
// without decreasing. Writes out [T, B, Pout, Hout, Wout] float32 (every element) and
// returns the first bad event; out holds no meaningful values when there is one.
// Parallel (OpenMP, at most `threads` threads; the binding passes torch's intra-op thread
// count, so torch.set_num_threads, e.g. 1 in DataLoader workers, governs it) over the B*T
// (stream, segment) pairs: each owns one output slab, so no two threads write the same
// element and the sums do not depend on the schedule.
template <class index_t>
EventsFaultReport events_to_current(const EventsParams& p, const index_t* events,
                                    const int64_t* offsets, float* out, int threads);

extern template EventsFaultReport events_to_current<int32_t>(const EventsParams&,
                                                             const int32_t*, const int64_t*,
                                                             float*, int);
extern template EventsFaultReport events_to_current<int64_t>(const EventsParams&,
                                                             const int64_t*, const int64_t*,
                                                             float*, int);

}  // namespace fastsnn::cpu
