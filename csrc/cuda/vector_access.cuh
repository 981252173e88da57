// Storage types (float32 / float16 / bfloat16) and V-wide vector loads and stores that
// convert to and from float32: the memory access of the elementwise-over-time kernels.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace fastsnn::cuda {

// 16-bit values are kept as raw bits, so no half/bfloat16 operators are needed.
struct F32 {
  using T = float;
  static __device__ __forceinline__ float load(T v) { return v; }
  static __device__ __forceinline__ T store(float f) { return f; }
};
struct F16 {
  using T = unsigned short;
  static __device__ __forceinline__ float load(T v) { return __half2float(__ushort_as_half(v)); }
  static __device__ __forceinline__ T store(float f) {
    return __half_as_ushort(__float2half_rn(f));
  }
};
struct BF16 {
  using T = unsigned short;
  static __device__ __forceinline__ float load(T v) {
    return __bfloat162float(__ushort_as_bfloat16(v));
  }
  static __device__ __forceinline__ T store(float f) {
    return __bfloat16_as_ushort(__float2bfloat16_rn(f));
  }
};

// V elements of one step are moved as one raw word of V * sizeof(T) bytes (2 to 16) through
// explicit vector intrinsics: left to itself the compiler sometimes splits a vector of
// 16-bit values into scalar accesses. Loads go through the read-only path (nothing a kernel
// reads is written by it).
template <int Bytes>
struct Word;
template <>
struct Word<2> {
  using type = unsigned short;
};
template <>
struct Word<4> {
  using type = unsigned;
};
template <>
struct Word<8> {
  using type = uint2;
};
template <>
struct Word<16> {
  using type = uint4;
};

// The 32-bit lanes of a word (a 2-byte word is one lane holding one 16-bit value).
template <int Bytes>
__device__ __forceinline__ void split_word(typename Word<Bytes>::type w, unsigned* lanes) {
  if constexpr (Bytes <= 4) {
    lanes[0] = w;
  } else if constexpr (Bytes == 8) {
    lanes[0] = w.x, lanes[1] = w.y;
  } else {
    lanes[0] = w.x, lanes[1] = w.y, lanes[2] = w.z, lanes[3] = w.w;
  }
}

template <int Bytes>
__device__ __forceinline__ typename Word<Bytes>::type join_word(const unsigned* lanes) {
  if constexpr (Bytes == 2) {
    return static_cast<unsigned short>(lanes[0]);
  } else if constexpr (Bytes == 4) {
    return lanes[0];
  } else if constexpr (Bytes == 8) {
    return make_uint2(lanes[0], lanes[1]);
  } else {
    return make_uint4(lanes[0], lanes[1], lanes[2], lanes[3]);
  }
}

// Element i of the V values packed in 32-bit lanes (float: one per lane; 16-bit: two, the
// lower address in the low half).
template <class St>
__device__ __forceinline__ float unpack(const unsigned* lanes, int i) {
  if constexpr (sizeof(typename St::T) == 4) {
    return St::load(__uint_as_float(lanes[i]));
  } else {
    const unsigned lane = lanes[i / 2];
    return St::load(static_cast<unsigned short>(i % 2 ? lane >> 16 : lane & 0xffffu));
  }
}

template <class St>
__device__ __forceinline__ unsigned pack_bits(float v) {
  if constexpr (sizeof(typename St::T) == 4) {
    return __float_as_uint(St::store(v));
  } else {
    return St::store(v);
  }
}

template <class St, int V>
__device__ __forceinline__ void load_pack(const typename St::T* p, float (&out)[V]) {
  constexpr int kBytes = V * sizeof(typename St::T);
  using W = typename Word<kBytes>::type;
  unsigned lanes[(kBytes + 3) / 4];
  split_word<kBytes>(__ldg(reinterpret_cast<const W*>(p)), lanes);
#pragma unroll
  for (int i = 0; i < V; ++i) out[i] = unpack<St>(lanes, i);
}

template <class St, int V>
__device__ __forceinline__ void store_pack(typename St::T* p, const float (&in)[V]) {
  constexpr int kBytes = V * sizeof(typename St::T);
  using W = typename Word<kBytes>::type;
  unsigned lanes[(kBytes + 3) / 4] = {};
#pragma unroll
  for (int i = 0; i < V; ++i) {
    const unsigned bits = pack_bits<St>(in[i]);
    if constexpr (sizeof(typename St::T) == 4) {
      lanes[i] = bits;
    } else {
      lanes[i / 2] |= i % 2 ? bits << 16 : bits;
    }
  }
  __stcg(reinterpret_cast<W*>(p), join_word<kBytes>(lanes));
}

}  // namespace fastsnn::cuda
