// Test-only: run the CUDA kernels' C++ on the CPU (tests/test_cuda_build.py compiles the .cu files
// with -DGENNORM_EMULATE as plain C++). Each block's threads are real std::threads, so shared
// memory and __syncthreads() behave as on a GPU; blocks run one after another. Never part of a build.
#pragma once

#include <ATen/ATen.h>

#include <barrier>
#include <cmath>
#include <functional>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__ static  // one block at a time: a static array is that block's shared memory
#define C10_CUDA_KERNEL_LAUNCH_CHECK() ((void)0)

struct dim3 {
  unsigned int x, y, z;
  dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace gennorm::emu {
inline std::barrier<>* block_barrier = nullptr;

// kernel<<<grid, block>>>(...) as CPU threads.
inline void launch(dim3 grid, dim3 block, const std::function<void()>& body) {
  for (unsigned int by = 0; by < grid.y; ++by) {
    for (unsigned int bx = 0; bx < grid.x; ++bx) {
      std::barrier<> barrier(block.x);
      block_barrier = &barrier;
      std::vector<std::thread> threads;
      for (unsigned int t = 0; t < block.x; ++t) {
        threads.emplace_back([&, t] {
          threadIdx = dim3(t), blockIdx = dim3(bx, by), blockDim = block, gridDim = grid;
          body();
        });
      }
      for (auto& th : threads) th.join();
    }
  }
}
}  // namespace gennorm::emu

inline void __syncthreads() { gennorm::emu::block_barrier->arrive_and_wait(); }

namespace c10::cuda {
struct CUDAGuard {
  explicit CUDAGuard(c10::Device) {}
};
inline int getCurrentCUDAStream() { return 0; }
}  // namespace c10::cuda
