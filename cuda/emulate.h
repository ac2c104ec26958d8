// Test-only: run the CUDA kernels' C++ on the CPU (tests/test_cuda_build.py compiles the .cu files
// with -DGENNORM_EMULATE as plain C++). Never part of a build.
//
// Each block's threads are cooperative fibers (ucontext) on one OS thread, from a pool reused for
// every block: a fiber runs until it reaches __syncthreads() or a warp shuffle, then the next one
// runs (in increasing, then decreasing thread order, alternating). So shared memory, __syncthreads() and __shfl_*_sync() have their GPU semantics (a barrier
// releases only when every thread of the block / every lane of the warp has arrived), threads
// interleave at every barrier, and a barrier that not every thread reaches (divergent
// __syncthreads, a lane missing from a shuffle) is reported as a deadlock instead of hanging.
// Blocks run one after another, in blockIdx order.
#pragma once

#include <ATen/ATen.h>

#include <ucontext.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __shared__ static  // one block at a time: a static array is that block's shared memory
#define C10_CUDA_KERNEL_LAUNCH_CHECK() ((void)0)

struct dim3 {
  unsigned int x, y, z;
  dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
// The running fiber's coordinates (set by the scheduler before it resumes a fiber).
inline dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace gennorm::emu {

constexpr int kWarp = 32;
constexpr size_t kStack = 128 * 1024;

struct Fiber {
  ucontext_t context;
  std::unique_ptr<char[]> stack;
  unsigned int tid = 0;
  bool done = false;
  int waiting = 0;         // 0: runnable, 1: at __syncthreads, 2: at a warp barrier
  uint64_t generation = 0;  // barrier generation it waits to pass
};

struct Scheduler {
  std::vector<Fiber> fibers;  // the pool: grows to the largest block, reused for every block
  ucontext_t main_context;
  const std::function<void()>* body = nullptr;
  int current = -1;
  unsigned int threads = 0;
  // Block barrier and one barrier (+ shuffle exchange slots) per warp.
  uint64_t block_generation = 0;
  unsigned int block_arrived = 0;
  std::vector<uint64_t> warp_generation;
  std::vector<unsigned int> warp_arrived;
  std::vector<unsigned int> warp_size;
  std::vector<unsigned char> exchange;  // [2 parities][threads][8 bytes]
  std::vector<int> parity;              // per thread: which exchange buffer its next shuffle uses
};

inline Scheduler& scheduler() {
  static Scheduler s;
  return s;
}

inline void fiber_entry() {
  Scheduler& s = scheduler();
  (*s.body)();
  s.fibers[s.current].done = true;
  swapcontext(&s.fibers[s.current].context, &s.main_context);
}

// Give control back to the scheduler (the fiber has set `waiting`).
inline void yield_to_scheduler() {
  Scheduler& s = scheduler();
  swapcontext(&s.fibers[s.current].context, &s.main_context);
}

inline bool runnable(const Scheduler& s, const Fiber& f) {
  if (f.done) return false;
  if (f.waiting == 1) return s.block_generation > f.generation;
  if (f.waiting == 2) return s.warp_generation[f.tid / kWarp] > f.generation;
  return true;
}

inline void run_block(dim3 grid, dim3 block, dim3 index, const std::function<void()>& body) {
  Scheduler& s = scheduler();
  const unsigned int n = block.x * block.y * block.z;
  if (s.fibers.size() < n) s.fibers.resize(n);
  s.body = &body;
  s.threads = n;
  s.block_generation = 0;
  s.block_arrived = 0;
  const unsigned int warps = (n + kWarp - 1) / kWarp;
  s.warp_generation.assign(warps, 0);
  s.warp_arrived.assign(warps, 0);
  s.warp_size.assign(warps, kWarp);
  if (n % kWarp) s.warp_size[warps - 1] = n % kWarp;
  s.exchange.assign(2 * n * 8, 0);
  s.parity.assign(n, 0);
  for (unsigned int t = 0; t < n; ++t) {
    Fiber& f = s.fibers[t];
    if (!f.stack) f.stack.reset(new char[kStack]);
    f.tid = t;
    f.done = false;
    f.waiting = 0;
    f.generation = 0;
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = f.stack.get();
    f.context.uc_stack.ss_size = kStack;
    f.context.uc_link = nullptr;
    makecontext(&f.context, fiber_entry, 0);
  }
  blockIdx = index, blockDim = block, gridDim = grid;
  unsigned int finished = 0;
  // Sweeps alternate direction (and start direction alternates by block), so a missing barrier
  // between a write and another thread's read shows up whichever thread index is the larger.
  bool backward = (index.x + index.y + index.z) % 2 == 1;
  while (finished < n) {
    bool progressed = false;
    for (unsigned int step = 0; step < n; ++step) {
      const unsigned int t = backward ? n - 1 - step : step;
      Fiber& f = s.fibers[t];
      if (!runnable(s, f)) continue;
      f.waiting = 0;
      s.current = static_cast<int>(t);
      threadIdx = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
      swapcontext(&s.main_context, &f.context);
      progressed = true;
      if (f.done) ++finished;
    }
    backward = !backward;
    if (!progressed && finished < n) {
      throw std::runtime_error("gennorm emulation: deadlock (a __syncthreads or warp shuffle that not every thread reaches)");
    }
  }
  s.current = -1;
}

// What the tests inspect: launches, blocks run, 16-byte vector accesses vs element-wise runs.
struct Counters {
  int64_t launches = 0, blocks = 0, vector_runs = 0, scalar_runs = 0;
};
inline Counters& counters() {
  static Counters c;
  return c;
}

// kernel<<<grid, block>>>(...) as fibers, one block after another.
inline void launch(dim3 grid, dim3 block, const std::function<void()>& body) {
  ++counters().launches;
  counters().blocks += int64_t(grid.x) * grid.y * grid.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) throw std::runtime_error("gennorm emulation: empty grid");
  if (grid.y > 65535 || grid.z > 65535) throw std::runtime_error("gennorm emulation: grid.y/z over 65535");
  if (block.x * block.y * block.z > 1024) throw std::runtime_error("gennorm emulation: block over 1024 threads");
  for (unsigned int bz = 0; bz < grid.z; ++bz)
    for (unsigned int by = 0; by < grid.y; ++by)
      for (unsigned int bx = 0; bx < grid.x; ++bx) run_block(grid, block, dim3(bx, by, bz), body);
}

inline unsigned int linear_tid() {
  return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}

inline void block_barrier() {
  Scheduler& s = scheduler();
  Fiber& f = s.fibers[s.current];
  f.waiting = 1;
  f.generation = s.block_generation;
  if (++s.block_arrived == s.threads) {
    s.block_arrived = 0;
    ++s.block_generation;
  }
  yield_to_scheduler();
}

inline void warp_barrier() {
  Scheduler& s = scheduler();
  Fiber& f = s.fibers[s.current];
  const unsigned int w = f.tid / kWarp;
  f.waiting = 2;
  f.generation = s.warp_generation[w];
  if (++s.warp_arrived[w] == s.warp_size[w]) {
    s.warp_arrived[w] = 0;
    ++s.warp_generation[w];
  }
  yield_to_scheduler();
}

// A full-warp shuffle: every lane publishes `value`, waits for the warp, reads lane `src`'s.
template <typename T>
T shuffle(T value, int src_lane) {
  static_assert(sizeof(T) <= 8, "shuffle of a type over 8 bytes");
  Scheduler& s = scheduler();
  const unsigned int tid = linear_tid();
  const int p = s.parity[tid];
  s.parity[tid] ^= 1;
  unsigned char* slots = s.exchange.data() + static_cast<size_t>(p) * s.threads * 8;
  std::memcpy(slots + tid * 8, &value, sizeof(T));
  warp_barrier();
  const unsigned int base = tid / kWarp * kWarp;
  const unsigned int src = base + static_cast<unsigned int>(src_lane);
  if (src_lane < 0 || src_lane >= kWarp || src >= s.threads) return value;  // out of range: own value, as on a GPU
  T out;
  std::memcpy(&out, slots + src * 8, sizeof(T));
  return out;
}

}  // namespace gennorm::emu

inline void __syncthreads() { gennorm::emu::block_barrier(); }
inline void __syncwarp(unsigned int = 0xffffffffu) { gennorm::emu::warp_barrier(); }
template <typename T>
T __shfl_xor_sync(unsigned int, T value, int mask, int width = 32) {
  const int lane = static_cast<int>(gennorm::emu::linear_tid() % 32);
  const int src = ((lane ^ mask) & (width - 1)) | (lane & ~(width - 1));
  return gennorm::emu::shuffle(value, src);
}
template <typename T>
T __shfl_sync(unsigned int, T value, int src_lane, int width = 32) {
  const int lane = static_cast<int>(gennorm::emu::linear_tid() % 32);
  return gennorm::emu::shuffle(value, (lane & ~(width - 1)) + (src_lane & (width - 1)));
}
template <typename T>
T __ldg(const T* p) {
  return *p;
}

using std::sqrt;  // sqrt(float) stays float, as in CUDA device code

namespace c10::cuda {
struct CUDAGuard {
  explicit CUDAGuard(c10::Device) {}
};
inline int getCurrentCUDAStream() { return 0; }
}  // namespace c10::cuda
