// binary_conv2d CPU kernel: which popcount micro-kernel this CPU runs (FASTSNN_CPU_ISA
// selection; declared in cpu/binary_conv.h).
#include <string>
#include <vector>

#include "cpu/binary_conv_parts.h"

namespace fastsnn::cpu {

const char* popcount_isa_name(PopcountIsa isa) {
  switch (isa) {
    case PopcountIsa::Avx512: return "avx512";
    case PopcountIsa::Avx2: return "avx2";
    default: return "portable";
  }
}

bool popcount_isa_supported(PopcountIsa isa) {
  switch (isa) {
#if defined(FASTSNN_BCONV_X86)
    case PopcountIsa::Avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq");
    case PopcountIsa::Avx2: return __builtin_cpu_supports("avx2");
#endif
    case PopcountIsa::Portable: return true;
    default: return false;
  }
}

std::vector<PopcountIsa> supported_popcount_isas() {
  std::vector<PopcountIsa> out;
  for (PopcountIsa isa : {PopcountIsa::Avx512, PopcountIsa::Avx2, PopcountIsa::Portable})
    if (popcount_isa_supported(isa)) out.push_back(isa);
  return out;
}

bool select_popcount_isa(const char* request, PopcountIsa* isa, std::string* error) {
  const std::string name = request ? request : "";
  if (name.empty() || name == "auto") {
    *isa = supported_popcount_isas().front();
    return true;
  }
  for (PopcountIsa cand : {PopcountIsa::Avx512, PopcountIsa::Avx2, PopcountIsa::Portable}) {
    if (name != popcount_isa_name(cand)) continue;
    if (!popcount_isa_supported(cand)) {
      *error = "FASTSNN_CPU_ISA=" + name + ": this CPU does not support it";
      return false;
    }
    *isa = cand;
    return true;
  }
  *error = "FASTSNN_CPU_ISA must be avx512, avx2, portable or auto; got '" + name + "'";
  return false;
}

}  // namespace fastsnn::cpu
