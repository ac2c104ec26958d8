// Helpers shared by the CUDA kernels: launch macros (real or emulated), accumulation types, index
// types, 16-byte vector runs, padding index arithmetic, warp reductions, grid sizing.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <initializer_list>

#ifdef GENNORM_EMULATE  // tests only: the kernels' C++ run on CPU fibers (emulate.h)
#include "emulate.h"
#define GENNORM_LAUNCH(kernel, grid, block, stream, ...) \
  ::gennorm::emu::launch(grid, block, [&] { kernel(__VA_ARGS__); })
#define GENNORM_ON_DEVICE(t) true
#define GENNORM_UNROLL
#define GENNORM_UNROLL2
#else
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>  // not ATen/cuda/CUDAContext.h: that pulls in the cuBLAS/cuSPARSE headers
#include <cuda_runtime.h>
// `kernel` is one name (alias a template instance first: the macro would split its commas).
#define GENNORM_LAUNCH(kernel, grid, block, stream, ...) kernel<<<grid, block, 0, stream>>>(__VA_ARGS__)
#define GENNORM_ON_DEVICE(t) (t).is_cuda()
#define GENNORM_UNROLL _Pragma("unroll 4")
#define GENNORM_UNROLL2 _Pragma("unroll 2")
#endif

namespace gennorm {

// float16 / bfloat16 / float32 accumulate in float32, float64 in float64.
template <typename T>
struct Acc {
  using type = float;
};
template <>
struct Acc<double> {
  using type = double;
};

// Elements per 16-byte vector: 4 float, 2 double, 8 half / bfloat16.
template <typename T>
constexpr int vec_of() {
  return static_cast<int>(16 / sizeof(T));
}

constexpr int kThreads = 256;  // every kernel's block
constexpr int kWarp = 32;
constexpr int kWarps = kThreads / kWarp;

// Element strides of a 4-d tensor in the kernel's index type: kernels read NCHW, channels_last or
// any strided view directly (no .contiguous() copy of the big tensors).
template <typename I>
struct Strides4 {
  I n, c, h, w;
  __device__ __forceinline__ I at(I n_, I c_, I h_, I w_) const { return n_ * n + c_ * c + h_ * h + w_ * w; }
};

template <typename I>
inline Strides4<I> strides_of(const at::Tensor& t) {
  return {static_cast<I>(t.stride(0)), static_cast<I>(t.stride(1)), static_cast<I>(t.stride(2)),
          static_cast<I>(t.stride(3))};
}

// ---- 16-byte runs: V consecutive elements along one axis -----------------------------------------

template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

template <int V, typename T>
__device__ __forceinline__ bool vector_ok(const T* p, int count, int64_t step) {
  const bool ok = count == V && step == 1 && (reinterpret_cast<uintptr_t>(p) % (sizeof(T) * V)) == 0;
#ifdef GENNORM_EMULATE
  ++(ok ? emu::counters().vector_runs : emu::counters().scalar_runs);
#endif
  return ok;
}

// out[e] = p[e * step] for e < count, 0 past it; one 16-byte load when the run is whole, unit-stride
// and aligned.
template <int V, typename T, typename A, typename I>
__device__ __forceinline__ void load_run(const T* __restrict__ p, I step, int count, A (&out)[V]) {
  if (vector_ok<V>(p, count, step)) {
    const Pack<T, V> pk = *reinterpret_cast<const Pack<T, V>*>(p);
#pragma unroll
    for (int e = 0; e < V; ++e) out[e] = static_cast<A>(pk.v[e]);
  } else {
#pragma unroll
    for (int e = 0; e < V; ++e) out[e] = e < count ? static_cast<A>(p[e * step]) : A(0);
  }
}

template <int V, typename T, typename I>
__device__ __forceinline__ void store_run(T* __restrict__ p, I step, int count, const T (&in)[V]) {
  if (vector_ok<V>(p, count, step)) {
    Pack<T, V> pk;
#pragma unroll
    for (int e = 0; e < V; ++e) pk.v[e] = in[e];
    *reinterpret_cast<Pack<T, V>*>(p) = pk;
  } else {
#pragma unroll
    for (int e = 0; e < V; ++e) {
      if (e < count) p[e * step] = in[e];
    }
  }
}

// A run of a row of length `len` cut into V-wide segments with phase `phase` (segment k covers
// [k V - phase, (k + 1) V - phase) clipped to [0, len)), so that position `phase`-shifted indices
// are V-aligned: the kernels pick the phase that aligns their biggest unit-stride reads.
template <typename I>
struct Run {
  I start;
  int count;
};

template <typename I>
__device__ __forceinline__ Run<I> segment(I k, int V, I phase, I len) {
  const I lo = k * V - phase;
  const I a = lo > 0 ? lo : I(0);
  const I b = lo + V < len ? lo + V : len;
  return {a, static_cast<int>(b - a)};
}

template <typename I>
inline I segments(I len, int V, I phase) {
  return (len + phase + V - 1) / V;
}

// ---- padding (F.pad's modes) by index arithmetic ----------------------------------------------------

enum PadMode : int { kZeros = 0, kReflect = 1, kReplicate = 2, kCircular = 3 };

// The unpadded index a padded position copies (i = padded index - low pad), or -1 (zeros mode, outside).
// Valid for the pad sizes the checks allow (reflect: pad < n; circular: pad <= n).
template <typename I>
__device__ __forceinline__ I pad_source(I i, I n, int mode) {
  if (i >= 0 && i < n) return i;
  switch (mode) {
    case kReflect:
      return i < 0 ? -i : 2 * (n - 1) - i;
    case kReplicate:
      return i < 0 ? I(0) : n - 1;
    case kCircular:
      return i < 0 ? i + n : i - n;
    default:
      return -1;
  }
}

// Whether unpadded index s is copied into the padding (so it has more than one padded preimage).
template <typename I>
__device__ __forceinline__ bool copied_into_pad(I s, I n, I lo, I hi, int mode) {
  if (mode == kZeros || (lo == 0 && hi == 0)) return false;
  return s <= lo || s < hi || s >= n - 1 - hi || s >= n - lo;  // superset of every mode's source rows
}

// ---- warp reductions ----------------------------------------------------------------------------------

// Sum over aligned groups of `width` lanes (a power of two <= 32). Butterfly: every lane of the group
// ends with the same value (a + b == b + a exactly), and the order is fixed, so results are
// bit-reproducible. Every lane of the warp must call it.
template <typename A>
__device__ __forceinline__ A group_sum(A v, int width) {
  for (int o = width / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o, width);
  return v;
}

inline int pow2_at_least(int64_t v, int cap) {
  int p = 1;
  while (p < v && p < cap) p <<= 1;
  return p;
}

// ---- grid sizing --------------------------------------------------------------------------------------

// Launch heuristics. The emulation tests shrink them (tiny grids that wrap, many channel chunks).
struct Tuning {
  int64_t max_blocks = int64_t(1) << 20;  // grid cap: kernels loop (grid-stride / block-stride) past it
  int64_t target_blocks = 0;              // blocks worth launching before splitting channels; 0: 4 x SMs
  int64_t min_chunk = 32;                 // fewest channels in one channel chunk
  bool force_int64 = false;               // 64-bit indexing even where 32 bits suffice
};

inline Tuning& tuning() {
  static Tuning t;
  return t;
}

// 32-bit indexing when every offset, item count and grid-stride step stays below 2^30.
inline bool fits_int32(std::initializer_list<const at::Tensor*> tensors, std::initializer_list<int64_t> counts) {
  constexpr int64_t limit = int64_t(1) << 30;
  if (tuning().force_int64) return false;
  for (const at::Tensor* t : tensors) {
    if (t == nullptr || !t->defined() || t->numel() == 0) continue;
    int64_t span = 1;
    for (int64_t d = 0; d < t->dim(); ++d) span += (t->size(d) - 1) * std::abs(t->stride(d));
    if (span >= limit || t->numel() >= limit) return false;
  }
  for (int64_t c : counts) {
    if (c >= limit) return false;
  }
  return true;
}

inline int64_t sm_count(const at::Tensor& t) {
#ifdef GENNORM_EMULATE
  (void)t;
  return 4;
#else
  static std::atomic<int> cache[64] = {};
  const int device = t.get_device();
  if (device < 0 || device >= 64) return 132;
  int v = cache[device].load(std::memory_order_relaxed);
  if (v == 0) {
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, device));
    cache[device].store(v, std::memory_order_relaxed);
  }
  return v;
#endif
}

inline int64_t target_blocks(const at::Tensor& t) {
  return tuning().target_blocks > 0 ? tuning().target_blocks : 4 * sm_count(t);
}

// Blocks for `items` block-level work items (kernels loop over items with a block stride).
inline unsigned int grid_for(int64_t items) {
  return static_cast<unsigned int>(std::max<int64_t>(1, std::min<int64_t>(items, tuning().max_blocks)));
}

// Blocks for `total` thread-level items (grid-stride loops).
inline unsigned int grid_for_threads(int64_t total) { return grid_for((total + kThreads - 1) / kThreads); }

// Channel chunks: split `channels` into chunks of >= min_chunk when `items` blocks alone are fewer
// than the target; returns the chunk size (channels per chunk).
inline int64_t chunk_size(int64_t channels, int64_t items, const at::Tensor& t) {
  const int64_t target = target_blocks(t);
  int64_t chunks = 1;
  if (items < target) chunks = (target + items - 1) / std::max<int64_t>(items, 1);
  const int64_t most = std::max<int64_t>(1, channels / std::max<int64_t>(tuning().min_chunk, 1));
  chunks = std::max<int64_t>(1, std::min(chunks, most));
  return std::max<int64_t>(1, (channels + chunks - 1) / chunks);
}

#define GENNORM_BLOCK_LOOP(item, count) \
  for (int64_t item = blockIdx.x; item < static_cast<int64_t>(count); item += gridDim.x)

#define GENNORM_THREAD_LOOP(I, i, total)                                                             \
  for (I i = static_cast<I>(blockIdx.x) * static_cast<I>(blockDim.x) + static_cast<I>(threadIdx.x); \
       i < (total); i += static_cast<I>(blockDim.x) * static_cast<I>(gridDim.x))

template <typename A>
__device__ __forceinline__ A rstd_of(A var, A eps) {
  return A(1) / sqrt(var + eps);  // 1/sqrt, not rsqrtf: the reference rounds like this
}

}  // namespace gennorm
