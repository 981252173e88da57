// Memory hints shared by the CPU kernels.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace fastsnn::cpu {

// A large output is usually fresh memory that page-faults on first touch: transparent huge
// pages cut that cost (42 MB, [10, 32, 2, 128, 128]: ~50 ms of 4 KB faults vs ~10 ms on the
// 2-core VM this was measured on). Only a hint to the kernel, for the whole 2 MB pages
// inside the buffer (buffers under 4 MB are left alone); a no-op where unsupported.
inline void advise_huge_pages(void* data, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  const uintptr_t first = reinterpret_cast<uintptr_t>(data);
  const uintptr_t begin = (first + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (first + bytes) & ~(kHuge - 1);
  if (data != nullptr && bytes >= 2 * kHuge && end > begin) {
    madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
  }
#else
  (void)data;
  (void)bytes;
#endif
}

}  // namespace fastsnn::cpu
