// Packed spikes, internal: the binary_conv2d tile machinery (cpu/binary_conv_parts.h) set up
// for input that is already packed (cpu/binary_conv_packed.cpp; used by
// cpu/binary_snn_layer.cpp too).
#pragma once

#include <cstdint>
#include <vector>

#include "cpu/binary_conv_parts.h"

namespace fastsnn::cpu::bconv {

// The zero-bordered image the gather reads, from xw [N, H, W, bits, W32]: xw itself when
// there is no padding, else a bordered copy (whole words copied, no bit is repacked); and
// each pixel's popcount sum_b 2^b popc(x_b).
struct PackedInput {
  std::vector<uint32_t> bordered;
  std::vector<int32_t> pixpop;
};

// Fills s (spike activation) for p and the packed image; `in` must outlive s.
void setup_packed(Shared& s, const BinaryConvParams& p, const uint32_t* xw,
                  const uint32_t* wpacked, PopcountIsa isa, PackedInput& in);

// The integer dot 2 S + offset of the tile's count pixels for the nr channels of block blk
// (after s.kernel ran every plane into tb.acc), as float32(dot) * scale + bias into
// dst[j * dst_stride + q] for channel blk * nr + j < Cout.
void store_current(const Shared& s, int64_t count, int64_t blk, const TileBuffers& tb,
                   const float* scale, const float* bias, float* dst, int64_t dst_stride);

// Tile buffers of one thread (spike activation).
void init_buffers(const Shared& s, TileBuffers& tb);

// Runs every plane of the tile (gathered in tb) against block blk; S lands in tb.acc.
void run_block(const Shared& s, int64_t blk, TileBuffers& tb);

// (groups, blocks per group) for `tiles` tiles: enough groups to feed every thread, each a
// multiple of `align` blocks.
std::pair<int64_t, int64_t> channel_groups(const Shared& s, int64_t tiles, int64_t align);

}  // namespace fastsnn::cpu::bconv
