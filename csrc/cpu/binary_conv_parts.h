// binary_conv2d CPU kernel, internal: the types and steps shared by its source files
// (binary_conv.cpp drives the call; the steps are in binary_conv_{isa,input,weights,tiles,
// gather}.cpp). Not part of the kernel's interface, which is cpu/binary_conv.h.
#pragma once

#include <cstdint>
#include <vector>

#include "cpu/binary_conv.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define FASTSNN_BCONV_X86 1
#endif

#if defined(FASTSNN_BCONV_X86) && !defined(__clang__) && !defined(FASTSNN_NO_CLONES)
#define FASTSNN_BCONV_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FASTSNN_BCONV_CLONES
#endif

namespace fastsnn::cpu::bconv {

constexpr int64_t kTile = 64;  // output pixels per tile: a multiple of every kernel's width

struct Layout {
  int64_t W32 = 0;     // 32-bit words per pixel and plane
  int64_t KK = 0;      // taps
  int64_t K32 = 0;     // 32-bit units of one im2col row and plane: KK * W32
  int64_t K64 = 0;     // 64-bit words of one im2col row and plane
  int64_t Hp = 0, Wp = 0, HWo = 0;
  int64_t pixel = 0;   // words per packed-image pixel: bits * W32
};

Layout make_layout(const BinaryConvParams& p);
// Throws std::invalid_argument unless p is consistent (binary_conv_input.cpp).
void check_params(const BinaryConvParams& p);

// Bit count without libgcc's call (the baseline ISA has no popcnt instruction).
inline int popcount32(uint32_t v) {
  v = v - ((v >> 1) & 0x55555555u);
  v = (v & 0x33333333u) + ((v >> 2) & 0x33333333u);
  return int((((v + (v >> 4)) & 0x0f0f0f0fu) * 0x01010101u) >> 24);
}

// ---------------------------------------------------------------- 1. packing the input

// Packing is split into tasks of whole rows of one image (all channels), so that each task
// also finishes its pixels' popcounts (no second pass over the packed image).
struct PackTasks {
  int64_t rows = 1, per_image = 1;  // rows per task, tasks per image
};

PackTasks pack_tasks(const BinaryConvParams& p);
// Packs rows [y0, y0 + rows) of image n. img [N, Hp, Wp, bits, W32] and pixpop [N, Hp, Wp]
// are zero on entry (the border stays zero); planes holds bits * rows * W words.
void pack_rows(const BinaryConvParams& p, const Layout& L, const float* x, int64_t n,
               int64_t y0, int64_t rows, uint32_t* planes, uint32_t* img, int32_t* pixpop);

// ---------------------------------------------------------------- weights

struct Weights {
  int nr = 8;                     // output channels per micro-kernel call
  int64_t blocks = 0;             // ceil(Cout / nr)
  std::vector<uint64_t> w, w2;    // [blocks][K64][nr], zero beyond Cout; w2: avx2 high nibbles
  std::vector<int32_t> prefix;    // sign: [Cout][(KH+1)(KW+1)] prefix sums of tap popcounts
};

Weights pack_weights(const BinaryConvParams& p, const Layout& L, const uint32_t* wpacked,
                     PopcountIsa isa);

// ---------------------------------------------------------------- 2. micro-kernels

// acc[j * kTile + q] (+)= (sum_k popc(xt[k * kTile + q] & w[k * nr + j])) << shift for the
// nr channels of one block and all kTile pixels of the tile; the first plane overwrites acc
// (accumulate = false), the others add to it.
using TileKernel = void (*)(const uint64_t* xt, const uint64_t* w, const uint64_t* w2,
                            int64_t K, int shift, bool accumulate, int64_t* acc);

TileKernel tile_kernel(PopcountIsa isa);

// ---------------------------------------------------------------- gather + epilogue

// Valid taps of an output row / column: [lo, hi) of ky (kx); a rectangle per pixel.
struct TapRange {
  int32_t lo = 0, hi = 0;
};

std::vector<TapRange> tap_ranges(int64_t out, int64_t in, int64_t k, int64_t stride,
                                 int64_t pad, int64_t dil);

struct Shared {
  const BinaryConvParams* p;
  Layout L;
  const uint32_t* img;
  const int32_t* pixpop;
  Weights wts;
  std::vector<int64_t> taps;         // tap offsets in packed-image pixels, row-major
  std::vector<int64_t> unit_lo, unit_hi;  // per im2col word: its 32-bit units' offsets
  std::vector<TapRange> rows, cols;  // sign only
  TileKernel kernel;
};

// The packed weights, tile kernel, tap offsets and im2col word offsets of s (s.p and s.L
// set): what the float-input and the packed-input convolutions share.
void plan_gather(Shared& s, const uint32_t* wpacked, PopcountIsa isa);

struct TileBuffers {
  std::vector<uint64_t> xt;      // [bits][K64][kTile]
  std::vector<int64_t> acc;      // [nr][kTile]
  std::vector<int64_t> origin;   // [kTile] offset of each pixel's packed words in img
  std::vector<int64_t> offset;   // [kTile] dot - mult * S, less the sign mode's weight term
  std::vector<int64_t> scratch;  // [kTile] sign: offset less the weight term of one channel
  std::vector<int32_t> corner;   // sign: [kTile][4] prefix-table corners of the valid taps
};

// The tile's im2col rows (xt, k-major) and the per-pixel terms of the dot that do not depend
// on the output channel.
void gather_tile(const Shared& s, int64_t n, int64_t pix0, int64_t count, TileBuffers& tb);
// out for the nr channels of block blk and the tile's count pixels.
void epilogue(const Shared& s, int64_t n, int64_t pix0, int64_t count, int64_t blk,
              TileBuffers& tb, const float* alpha, const float* bias, float* out);

}  // namespace fastsnn::cpu::bconv
