// A minimal assertion harness for the torch-free C++ tests (no gtest dependency): CHECK
// records a failure with its location and keeps going; main returns report().
#pragma once

#include <cstdio>

namespace fastsnn::test {

inline int& failures() {
  static int n = 0;
  return n;
}

inline bool check(bool ok, const char* what, const char* file, int line) {
  if (!ok && ++failures() <= 50) {
    std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, what);
  }
  return ok;
}

inline int report(const char* name) {
  if (failures()) {
    std::fprintf(stderr, "%s: %d check(s) failed\n", name, failures());
    return 1;
  }
  std::printf("%s: all checks passed\n", name);
  return 0;
}

}  // namespace fastsnn::test

#define CHECK(cond) ::fastsnn::test::check(static_cast<bool>(cond), #cond, __FILE__, __LINE__)
