// Runs the CUDA binary_conv2d kernel bodies (csrc/cuda/binary_conv_*.cuh) on the host with
// the emulated execution model of host_env.h, in the order binary_conv2d_forward launches
// them. Driven by tests/test_binary_conv_cuda_emu.py:
//   binary_conv_emu IN OUT popc|mma
// IN: int64 header (N Cin H W Cout KH KW sh sw ph pw dh dw Hout Wout bits activation
// has_alpha has_bias), then float32 x, int32 wpacked, float32 alpha?, float32 bias?.
// OUT: float32 [N, Cout, Hout, Wout]. Buffers have their exact sizes, so a sanitizer build
// flags any out-of-bounds access.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/binary_conv_mma.cuh"
#include "cuda/binary_conv_pack.cuh"
#include "cuda/binary_conv_popc.cuh"
#include "host_env.h"

using namespace fastsnn;
using namespace fastsnn::cuda::bconv;

namespace {

template <class T>
std::vector<T> take(const std::vector<char>& buf, size_t& pos, int64_t count) {
  std::vector<T> v(static_cast<size_t>(count));
  if (pos + v.size() * sizeof(T) > buf.size()) throw std::runtime_error("input too short");
  if (!v.empty()) std::memcpy(v.data(), buf.data() + pos, v.size() * sizeof(T));
  pos += v.size() * sizeof(T);
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s IN OUT popc|mma\n", argv[0]);
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  const std::vector<char> buf((std::istreambuf_iterator<char>(in)), {});
  size_t pos = 0;
  const auto h = take<int64_t>(buf, pos, 19);
  BinaryConvParams p;
  p.N = h[0], p.Cin = h[1], p.H = h[2], p.W = h[3], p.Cout = h[4], p.KH = h[5], p.KW = h[6];
  p.stride_h = h[7], p.stride_w = h[8], p.pad_h = h[9], p.pad_w = h[10];
  p.dil_h = h[11], p.dil_w = h[12], p.Hout = h[13], p.Wout = h[14];
  p.bits = static_cast<int>(h[15]);
  p.activation = static_cast<BinaryActivation>(h[16]);
  const auto x = take<float>(buf, pos, p.N * p.Cin * p.H * p.W);
  const auto w = take<uint32_t>(buf, pos, p.Cout * p.KH * p.KW * p.words());
  const auto alpha = take<float>(buf, pos, h[17] ? p.Cout : 0);
  const auto bias = take<float>(buf, pos, h[18] ? p.Cout : 0);
  if (pos != buf.size()) {
    std::fprintf(stderr, "input size mismatch\n");
    return 2;
  }
  std::vector<float> out(static_cast<size_t>(p.N * p.Cout * p.Hout * p.Wout));
  std::vector<uint32_t> ws(workspace_bytes(p) / sizeof(uint32_t));
  const ConvArgs a = make_args(p, x.data(), w.data(), h[17] ? alpha.data() : nullptr,
                               h[18] ? bias.data() : nullptr, out.data(), ws.data());
  const std::string path = argv[3];
  if (p.N * p.Hout * p.Wout > 0 && p.Cout > 0) {
    emu::launch<PackSmem>((p.N * p.H * p.W + 31) / 32, 1, 32 * pack_warps(a.words),
                          [&](const auto& env, PackSmem& s) { pack_body(env, a, s); });
    const int64_t m = p.N * p.Hout * p.Wout;
    if (path == "mma") {
      emu::launch<MmaSmem>((m + kMmaBM - 1) / kMmaBM, (p.Cout + kMmaBN - 1) / kMmaBN,
                           kMmaThreads, [&](const auto& env, MmaSmem& s) { mma_body(env, a, s); });
    } else if (path == "popc") {
      emu::launch<PopcSmem>((m + kPopcBM - 1) / kPopcBM, (p.Cout + kPopcBN - 1) / kPopcBN,
                            kPopcThreads,
                            [&](const auto& env, PopcSmem& s) { popc_body(env, a, s); });
    } else {
      std::fprintf(stderr, "unknown path %s\n", path.c_str());
      return 2;
    }
  }
  std::ofstream(argv[2], std::ios::binary)
      .write(reinterpret_cast<const char*>(out.data()),
             static_cast<std::streamsize>(out.size() * sizeof(float)));
  return 0;
}
