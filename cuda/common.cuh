// Small helpers shared by the CUDA kernels: accumulation types, strided 4-d indexing, launch sizes.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>

#ifdef GENNORM_EMULATE  // tests only: the kernels' C++ run on CPU threads (emulate.h)
#include "emulate.h"
#define GENNORM_LAUNCH(kernel, grid, block, stream, ...) \
  ::gennorm::emu::launch(grid, block, [&] { kernel(__VA_ARGS__); })
#define GENNORM_ON_DEVICE(t) true
#else
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>  // at::cuda::getCurrentCUDAStream is this; ATen/cuda/CUDAContext.h would pull in cuBLAS/cuSPARSE headers
// `kernel` is one name (alias a template instance first: the macro would split its commas).
#define GENNORM_LAUNCH(kernel, grid, block, stream, ...) kernel<<<grid, block, 0, stream>>>(__VA_ARGS__)
#define GENNORM_ON_DEVICE(t) (t).is_cuda()
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

// Element strides of a 4-d tensor, so kernels read NCHW, channels_last or any strided view directly
// (no .contiguous() copy of the big tensors).
struct Strides4 {
  int64_t n, c, h, w;
};

inline Strides4 strides_of(const at::Tensor& t) {
  return {t.stride(0), t.stride(1), t.stride(2), t.stride(3)};
}

__device__ __forceinline__ int64_t offset(const Strides4& s, int64_t n, int64_t c, int64_t h, int64_t w) {
  return n * s.n + c * s.c + h * s.h + w * s.w;
}

constexpr int kThreads = 256;

// Grid for a grid-stride loop over `total` items (the loops below tolerate any grid size).
inline unsigned int blocks_for(int64_t total) {
  return static_cast<unsigned int>(std::min<int64_t>((total + kThreads - 1) / kThreads, int64_t(1) << 20));
}

#define GENNORM_GRID_STRIDE_LOOP(i, total)                                                          \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (total);          \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)

template <typename acc_t>
__device__ __forceinline__ acc_t rsqrt_exact(acc_t v) {
  return acc_t(1) / sqrt(v);  // not rsqrtf: the reference is 1/sqrt to float rounding
}

// The statistics dtype of a backward / epilogue call: mean's dtype when it is float32/float64,
// float32 otherwise (half statistics are upcast; the reference would compute in half).
inline at::ScalarType stats_type(const at::Tensor& mean) {
  return mean.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

}  // namespace gennorm
