// binary_conv2d CPU kernel: torch-free, raw contiguous pointers. Layout and meaning of every
// buffer: common/binary_conv.h (and the kernel contract in fastsnn/ops/binary_conv.py).
//
// The popcount inner loop exists in three versions picked at run time: AVX-512 VPOPCNTDQ,
// AVX2 (nibble-table vpshufb popcount) and a portable __builtin_popcountll loop. Every one
// computes the same integers; each can be forced (FASTSNN_CPU_ISA) so all are testable on a
// machine that has the best one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/binary_conv.h"

namespace fastsnn::cpu {

enum class PopcountIsa : int { Portable = 0, Avx2 = 1, Avx512 = 2 };

const char* popcount_isa_name(PopcountIsa isa);
bool popcount_isa_supported(PopcountIsa isa);
// The ISAs this CPU runs, best first (Portable always last).
std::vector<PopcountIsa> supported_popcount_isas();
// "" / "auto" / null -> the best supported; "avx512" | "avx2" | "portable" -> that one.
// Returns false (and sets *error) for an unknown name or one this CPU lacks.
bool select_popcount_isa(const char* request, PopcountIsa* isa, std::string* error);

// out[N, Cout, Hout, Wout] = alpha[o] * dot + bias[o] (alpha / bias may be null), dot the
// exact integer sum of the contract. p must be consistent (Hout/Wout from the conv
// arithmetic, bits in 1..8); x [N, Cin, H, W], wpacked [Cout, KH*KW, ceil(Cin/32)] contiguous.
// Allocates its scratch (packed input image, one tile buffer per thread) itself.
void binary_conv2d_forward(const BinaryConvParams& p, const float* x, const uint32_t* wpacked,
                           const float* alpha, const float* bias, float* out, PopcountIsa isa);

// The contract's wpacked from a float weight [Cout, Cin, KK] (KK = KH*KW taps, contiguous):
// bit i of word w at (o, tap) is 1 iff weight[o, 32w+i, tap] >= 0 (NaN: 0), unused bits 0.
// out [Cout, KK, ceil(Cin/32)]; OpenMP over output channels (binary_conv_weights.cpp).
// isa Avx2 / Avx512: float32 by gather + compare + movemask (avx2); otherwise a portable loop.
void binary_pack_weight(const float* weight, int64_t Cout, int64_t Cin, int64_t KK,
                        uint32_t* out, PopcountIsa isa);
void binary_pack_weight(const double* weight, int64_t Cout, int64_t Cin, int64_t KK,
                        uint32_t* out, PopcountIsa isa);

}  // namespace fastsnn::cpu
