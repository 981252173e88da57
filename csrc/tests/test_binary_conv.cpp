// binary_conv2d CPU kernel against a direct convolution, for every popcount ISA this CPU
// supports, over random shapes (channel counts around the 32/64-bit word edges, stride,
// padding, dilation, both activations, 1..3 bit-planes). Torch-free: builds with
//   g++ -std=c++20 -O2 -fopenmp -Icsrc csrc/tests/test_binary_conv.cpp csrc/cpu/binary_conv.cpp
// and returns non-zero on the first mismatch.
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "cpu/binary_conv.h"

using fastsnn::BinaryActivation;
using fastsnn::BinaryConvParams;
using fastsnn::cpu::PopcountIsa;

namespace {

struct Case {
  BinaryConvParams p;
  std::vector<float> x;           // [N, Cin, H, W]
  std::vector<int8_t> sign;       // [Cout, Cin, KH, KW], +1 / -1
  std::vector<uint32_t> wpacked;  // contract layout [Cout, KH*KW, ceil(Cin/32)]
  std::vector<float> alpha, bias;
};

Case random_case(std::mt19937& rng) {
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  Case c;
  BinaryConvParams& p = c.p;
  const int channel_choices[] = {1, 3, 31, 32, 33, 63, 64, 65, 100, 130};
  p.N = pick(1, 3);
  p.Cin = channel_choices[pick(0, 9)];
  p.Cout = pick(1, 19);
  p.KH = pick(1, 4);
  p.KW = pick(1, 4);
  p.stride_h = pick(1, 3);
  p.stride_w = pick(1, 3);
  p.dil_h = pick(1, 2);
  p.dil_w = pick(1, 2);
  p.pad_h = pick(0, 3);
  p.pad_w = pick(0, 3);
  p.H = pick(1, 9) + p.dil_h * (p.KH - 1);
  p.W = pick(1, 9) + p.dil_w * (p.KW - 1);
  p.Hout = (p.H + 2 * p.pad_h - p.dil_h * (p.KH - 1) - 1) / p.stride_h + 1;
  p.Wout = (p.W + 2 * p.pad_w - p.dil_w * (p.KW - 1) - 1) / p.stride_w + 1;
  p.activation = pick(0, 1) ? BinaryActivation::Sign : BinaryActivation::Spike;
  const int levels = p.activation == BinaryActivation::Sign ? 1 : pick(1, 7);
  p.bits = 1;
  while ((1 << p.bits) <= levels) ++p.bits;

  c.x.resize(size_t(p.N * p.Cin * p.H * p.W));
  for (float& v : c.x) {
    if (p.activation == BinaryActivation::Sign) v = pick(0, 1) ? 1.f : -1.f;
    else v = pick(0, 4) == 0 ? float(pick(0, levels)) : 0.f;  // sparse, like spikes
  }
  const int64_t KK = p.KH * p.KW, words = p.words();
  c.sign.resize(size_t(p.Cout * p.Cin * KK));
  c.wpacked.assign(size_t(p.Cout * KK * words), 0u);
  for (int64_t o = 0; o < p.Cout; ++o)
    for (int64_t ci = 0; ci < p.Cin; ++ci)
      for (int64_t t = 0; t < KK; ++t) {
        const bool pos = pick(0, 1);
        c.sign[size_t((o * p.Cin + ci) * KK + t)] = pos ? 1 : -1;
        if (pos) c.wpacked[size_t((o * KK + t) * words + ci / 32)] |= 1u << (ci % 32);
      }
  if (pick(0, 1)) {
    for (int64_t o = 0; o < p.Cout; ++o) c.alpha.push_back(0.25f * float(pick(1, 8)));
  }
  if (pick(0, 1)) {
    for (int64_t o = 0; o < p.Cout; ++o) c.bias.push_back(0.5f * float(pick(-4, 4)));
  }
  return c;
}

// Direct convolution: the integer dot over in-bounds taps, then alpha * dot + bias.
std::vector<float> direct(const Case& c) {
  const BinaryConvParams& p = c.p;
  std::vector<float> out(size_t(p.N * p.Cout * p.Hout * p.Wout));
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t o = 0; o < p.Cout; ++o)
      for (int64_t oy = 0; oy < p.Hout; ++oy)
        for (int64_t ox = 0; ox < p.Wout; ++ox) {
          int64_t dot = 0;
          for (int64_t ci = 0; ci < p.Cin; ++ci)
            for (int64_t ky = 0; ky < p.KH; ++ky)
              for (int64_t kx = 0; kx < p.KW; ++kx) {
                const int64_t iy = oy * p.stride_h - p.pad_h + ky * p.dil_h;
                const int64_t ix = ox * p.stride_w - p.pad_w + kx * p.dil_w;
                if (iy < 0 || iy >= p.H || ix < 0 || ix >= p.W) continue;
                const auto xv = int64_t(c.x[size_t(((n * p.Cin + ci) * p.H + iy) * p.W + ix)]);
                dot += xv * c.sign[size_t(((o * p.Cin + ci) * p.KH + ky) * p.KW + kx)];
              }
          const float a = c.alpha.empty() ? 1.f : c.alpha[size_t(o)];
          const float b = c.bias.empty() ? 0.f : c.bias[size_t(o)];
          out[size_t(((n * p.Cout + o) * p.Hout + oy) * p.Wout + ox)] = float(dot) * a + b;
        }
  return out;
}

}  // namespace

int main() {
  std::mt19937 rng(20240601);
  int checked = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const Case c = random_case(rng);
    const std::vector<float> want = direct(c);
    for (PopcountIsa isa : fastsnn::cpu::supported_popcount_isas()) {
      std::vector<float> got(want.size(), -12345.f);
      fastsnn::cpu::binary_conv2d_forward(c.p, c.x.data(), c.wpacked.data(),
                                          c.alpha.empty() ? nullptr : c.alpha.data(),
                                          c.bias.empty() ? nullptr : c.bias.data(), got.data(),
                                          isa);
      for (size_t i = 0; i < want.size(); ++i) {
        if (got[i] != want[i]) {
          const BinaryConvParams& p = c.p;
          std::printf("FAIL trial %d isa %s at %zu: got %g want %g (N%lld Cin%lld Cout%lld "
                      "H%lld W%lld k%lldx%lld s%lld,%lld p%lld,%lld d%lld,%lld bits%d %s)\n",
                      trial, fastsnn::cpu::popcount_isa_name(isa), i, got[i], want[i],
                      (long long)p.N, (long long)p.Cin, (long long)p.Cout, (long long)p.H,
                      (long long)p.W, (long long)p.KH, (long long)p.KW, (long long)p.stride_h,
                      (long long)p.stride_w, (long long)p.pad_h, (long long)p.pad_w,
                      (long long)p.dil_h, (long long)p.dil_w, p.bits,
                      p.activation == BinaryActivation::Sign ? "sign" : "spike");
          return 1;
        }
      }
      ++checked;
    }
  }
  std::printf("binary_conv2d: %d (case, isa) pairs match the direct convolution\n", checked);
  return 0;
}
