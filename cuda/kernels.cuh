// The kernels of the shared op and the host helpers that size and launch them. The .cu files
// (pad_center_sums.cu, window_epilogue.cu, patch_moments.cu) describe each kernel's grid, thread
// work and bytes; this header holds the code they share.
//
// Conventions: every block has kThreads = 256 threads (8 warps of 32 lanes). "Runs" are V
// consecutive elements along a tensor's unit-stride axis (V = 16 bytes / element size), read and
// written as one 16-byte vector when whole and aligned, element by element otherwise (odd widths,
// misaligned rows, strided views). Block-level work items and thread-level items are walked with
// stride loops, so any grid (capped at Tuning::max_blocks) covers any size. Reductions have a fixed
// order (butterfly shuffles, shared-memory folds in warp order, per-chunk partials folded by index),
// never atomics: results are bit-identical run to run and independent of the grid.
#pragma once

#include "common.cuh"
#include "gennorm_ops.h"

#include <ATen/Dispatch.h>

namespace gennorm {
namespace {

template <typename I>
struct Win {
  I kh, kw, sh, sw, dh, dw;
};

template <typename I>
Win<I> window_of(at::IntArrayRef k, at::IntArrayRef s, at::IntArrayRef d) {
  return {static_cast<I>(k[0]), static_cast<I>(k[1]), static_cast<I>(s[0]),
          static_cast<I>(s[1]), static_cast<I>(d[0]), static_cast<I>(d[1])};
}

template <typename F>
void dispatch_index(bool small, F&& f) {
  if (small) {
    f(int32_t{});
  } else {
    f(int64_t{});
  }
}

template <typename I>
__device__ __forceinline__ I min_of(I a, I b) {
  return a < b ? a : b;
}

// Gradients of the two window sums from the per-window sums A = sum_o grad_out S[o] and
// B = sum_o grad_out (y - mean S[o]) (contract section 3).
template <typename A>
__device__ __forceinline__ void window_grads(A a, A b, A mean, A rstd, A count, A& g1, A& g2) {
  const A gm = -rstd * a;
  const A gvar = A(-0.5) * b * (rstd * rstd * rstd);
  g1 = (gm - A(2) * mean * gvar) / count;
  g2 = gvar / count;
}

// mean and rstd of one window from the two sum planes (taps a-major, b-minor).
template <typename A, typename I>
__device__ __forceinline__ void window_stats(const A* __restrict__ p1, const A* __restrict__ p2, I Wp,
                                             const Win<I>& w, A count, A eps, A& mean, A& rstd) {
  A s1 = 0, s2 = 0;
  for (I a = 0; a < w.kh; ++a) {
    for (I b = 0; b < w.kw; ++b) {
      const I off = a * w.dh * Wp + b * w.dw;
      s1 += p1[off];
      s2 += p2[off];
    }
  }
  mean = s1 / count;
  const A var = s2 / count - mean * mean;
  rstd = rstd_of<A>(var > A(0) ? var : A(0), eps);
}

// ================================================================================================
// Channel sums (pad_center_sums; patch_moments with no padding and no shift)
// ================================================================================================

template <typename T, typename I>
struct SumsArgs {
  using A = typename Acc<T>::type;
  const T* x;
  Strides4<I> xs;
  T* xc;   // null: not written (patch_moments). NCHW kernel: contiguous; NHWC kernel: channels_last
  A* out;  // sums [N, 2g, Hp, Wp], or per-chunk partials [chunks][N][2g][Hp][Wp]
  I N, C, H, W, G, Cg, Hp, Wp, top, left;
  int mode;
  bool center;
  I chunk, chunks, tiles, nseg, phase;  // NCHW kernel only
};

// The shift c[n, j] of one group: mean of its channels at the centre pixel. `width` lanes (an aligned
// group of a warp) cooperate; every lane of the warp must call it; all lanes of the group get the same
// value, and every call for the same (n, j) with the same width computes it in the same order.
template <typename T, typename I, int V>
__device__ __forceinline__ typename Acc<T>::type centre_shift(const SumsArgs<T, I>& a, I n, I j, int sub, int width,
                                                             bool active) {
  using A = typename Acc<T>::type;
  A c = 0;
  if (active) {
    for (I i = static_cast<I>(sub) * V; i < a.Cg; i += static_cast<I>(width) * V) {
      A v[V];
      load_run<V>(a.x + a.xs.at(n, j * a.Cg + i, a.H / 2, a.W / 2), a.xs.c, static_cast<int>(min_of<I>(V, a.Cg - i)),
                  v);
#pragma unroll
      for (int e = 0; e < V; ++e) c += v[e];
    }
  }
  return group_sum(c, width) / static_cast<A>(a.Cg);
}

// NCHW (any strides; xc contiguous): block item = (n, group, channel chunk, tile of 32 row segments).
// Lane = one V-wide segment of a padded row; warp = every 8th channel of the chunk.
template <typename T, typename I>
__global__ void __launch_bounds__(kThreads) sums_nchw_kernel(const SumsArgs<T, I> a) {
  using A = typename Acc<T>::type;
  constexpr int V = vec_of<T>();
  constexpr int P = kWarp * V;
  __shared__ A red[2][kWarps][P];
  __shared__ A shift_s;
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const I plane = a.Hp * a.Wp;
  const int64_t items = int64_t(a.N) * a.G * a.chunks * a.tiles;
  GENNORM_BLOCK_LOOP(item, items) {
    const I t = static_cast<I>(item % a.tiles);
    const I k = static_cast<I>((item / a.tiles) % a.chunks);
    const I j = static_cast<I>((item / (int64_t(a.tiles) * a.chunks)) % a.G);
    const I n = static_cast<I>(item / (int64_t(a.tiles) * a.chunks * a.G));
    if (warp == 0) {
      const A c = a.center ? centre_shift<T, I, V>(a, n, j, lane, kWarp, true) : A(0);
      if (lane == 0) shift_s = c;
    }
    __syncthreads();
    const A c = shift_s;
    const I slot = t * kWarp + lane;
    const I row = slot / a.nseg;
    const bool active = row < a.Hp;
    Run<I> r{0, 0};
    I h = -1;
    bool interior = false;
    if (active) {
      r = segment<I>(slot % a.nseg, V, a.phase, a.Wp);
      h = pad_source<I>(row - a.top, a.H, a.mode);
      interior = r.start - a.left >= 0 && r.start + r.count - a.left <= a.W;
    }
    A s1[V], s2[V];
#pragma unroll
    for (int e = 0; e < V; ++e) s1[e] = s2[e] = A(0);
    const I c_end = min_of<I>((k + 1) * a.chunk, a.Cg);
    if (active) {
      GENNORM_UNROLL
      for (I i = k * a.chunk + warp; i < c_end; i += kWarps) {
        const I ch = j * a.Cg + i;
        A v[V];
        if (h < 0) {
#pragma unroll
          for (int e = 0; e < V; ++e) v[e] = A(0);
        } else if (interior) {
          load_run<V>(a.x + a.xs.at(n, ch, h, r.start - a.left), a.xs.w, r.count, v);
        } else {
#pragma unroll
          for (int e = 0; e < V; ++e) {
            const I w = e < r.count ? pad_source<I>(r.start + e - a.left, a.W, a.mode) : I(-1);
            v[e] = w >= 0 ? static_cast<A>(a.x[a.xs.at(n, ch, h, w)]) : A(0);
          }
        }
        T q[V];
#pragma unroll
        for (int e = 0; e < V; ++e) q[e] = static_cast<T>(v[e] - c);
        if (a.xc != nullptr) store_run<V>(a.xc + ((n * a.C + ch) * a.Hp + row) * a.Wp + r.start, I(1), r.count, q);
#pragma unroll
        for (int e = 0; e < V; ++e) {
          const A u = static_cast<A>(q[e]);
          s1[e] += u;
          s2[e] += u * u;
        }
      }
    }
#pragma unroll
    for (int e = 0; e < V; ++e) {
      red[0][warp][lane * V + e] = s1[e];
      red[1][warp][lane * V + e] = s2[e];
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < 2 * P; idx += kThreads) {
      const int which = idx / P, pos = idx % P;
      A s = 0;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) s += red[which][w][pos];
      const I sl = t * kWarp + pos / V;
      const int e = pos % V;
      const I rw = sl / a.nseg;
      if (rw < a.Hp) {
        const Run<I> rr = segment<I>(sl % a.nseg, V, a.phase, a.Wp);
        if (e < rr.count) {
          const I off = (k * a.N + n) * 2 * a.G * plane + (which * a.G + j) * plane + rw * a.Wp + rr.start + e;
          a.out[off] = s;
        }
      }
    }
    __syncthreads();
  }
}

// NHWC (xc channels_last): a slot of L lanes per (n, padded pixel, group) task, lanes over the
// group's channels; butterfly sums within the slot. No shared memory, no block barriers.
template <typename T, typename I>
__global__ void __launch_bounds__(kThreads) sums_nhwc_kernel(const SumsArgs<T, I> a, int L) {
  using A = typename Acc<T>::type;
  constexpr int V = vec_of<T>();
  const int lane = threadIdx.x % kWarp, sub = lane % L;
  const I per_warp = kWarp / L;
  const I warp_global = static_cast<I>(blockIdx.x) * kWarps + threadIdx.x / kWarp;
  const I warps = static_cast<I>(gridDim.x) * kWarps;
  const I tasks = a.N * a.Hp * a.Wp * a.G;
  for (I base = warp_global * per_warp; base < tasks; base += warps * per_warp) {
    const I task = base + lane / L;
    const bool active = task < tasks;
    I j = 0, wp = 0, hp = 0, n = 0;
    if (active) {
      j = task % a.G;
      wp = (task / a.G) % a.Wp;
      hp = (task / (a.G * a.Wp)) % a.Hp;
      n = task / (a.G * a.Wp * a.Hp);
    }
    const A c = a.center ? centre_shift<T, I, V>(a, n, j, sub, L, active) : A(0);
    const I h = active ? pad_source<I>(hp - a.top, a.H, a.mode) : I(-1);
    const I w = active ? pad_source<I>(wp - a.left, a.W, a.mode) : I(-1);
    A s1 = 0, s2 = 0;
    if (active) {
      for (I i = static_cast<I>(sub) * V; i < a.Cg; i += static_cast<I>(L) * V) {
        const int count = static_cast<int>(min_of<I>(V, a.Cg - i));
        A v[V];
        if (h >= 0 && w >= 0) {
          load_run<V>(a.x + a.xs.at(n, j * a.Cg + i, h, w), a.xs.c, count, v);
        } else {
#pragma unroll
          for (int e = 0; e < V; ++e) v[e] = A(0);
        }
        T q[V];
#pragma unroll
        for (int e = 0; e < V; ++e) q[e] = static_cast<T>(v[e] - c);
        if (a.xc != nullptr) store_run<V>(a.xc + ((n * a.Hp + hp) * a.Wp + wp) * a.C + j * a.Cg + i, I(1), count, q);
#pragma unroll
        for (int e = 0; e < V; ++e) {
          if (e < count) {
            const A u = static_cast<A>(q[e]);
            s1 += u;
            s2 += u * u;
          }
        }
      }
    }
    s1 = group_sum(s1, L);
    s2 = group_sum(s2, L);
    if (active && sub == 0) {
      a.out[((n * 2 * a.G + j) * a.Hp + hp) * a.Wp + wp] = s1;
      a.out[((n * 2 * a.G + a.G + j) * a.Hp + hp) * a.Wp + wp] = s2;
    }
  }
}

// out[i] = sum_k partial[k * total + i], k in order.
template <typename A, typename I>
__global__ void __launch_bounds__(kThreads) fold_chunks_kernel(const A* __restrict__ partial, I chunks, I total,
                                                               A* __restrict__ out) {
  GENNORM_THREAD_LOOP(I, i, total) {
    A s = 0;
    for (I k = 0; k < chunks; ++k) s += partial[k * total + i];
    out[i] = s;
  }
}

// Host: channel sums of x (padded by index arithmetic, shifted when `center`) into sums
// [N, 2g, Hp, Wp] (acc, contiguous), writing xc when it is defined. Launches 1 kernel, or 2 when the
// channels are split into chunks (small N*H*W) and the per-chunk partials need folding.
// (A template so that only the .cu files that call it instantiate its kernels.)
template <int = 0>
void launch_channel_sums(const at::Tensor& x, const at::Tensor& xc, const at::Tensor& sums, int64_t G,
                                int64_t top, int64_t left, int mode, bool center) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), Cg = C / G;
  const int64_t Hp = sums.size(2), Wp = sums.size(3);
  auto stream = c10::cuda::getCurrentCUDAStream();
  const bool nhwc = xc.defined() ? is_channels_last(xc) : is_channels_last(x);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "gennorm_channel_sums", [&] {
    using A = typename Acc<scalar_t>::type;
    constexpr int V = vec_of<scalar_t>();
    if (nhwc) {
      const int L = pow2_at_least((Cg + V - 1) / V, kWarp);
      const int64_t tasks = N * Hp * Wp * G;
      const int64_t per_block = int64_t(kWarps) * (kWarp / L);
      const bool small = fits_int32({&x, &xc, &sums}, {tasks + per_block * tuning().max_blocks});
      dispatch_index(small, [&](auto tag) {
        using I = decltype(tag);
        SumsArgs<scalar_t, I> a{x.const_data_ptr<scalar_t>(), strides_of<I>(x),
                                xc.defined() ? xc.mutable_data_ptr<scalar_t>() : nullptr, sums.mutable_data_ptr<A>(),
                                I(N), I(C), I(H), I(W), I(G), I(Cg), I(Hp), I(Wp), I(top), I(left), mode, center,
                                I(0), I(1), I(0), I(0), I(0)};
        auto kernel = sums_nhwc_kernel<scalar_t, I>;
        GENNORM_LAUNCH(kernel, grid_for((tasks + per_block - 1) / per_block), kThreads, stream, a, L);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
      return;
    }
    const int64_t phase = (V - left % V) % V;  // input column wp - left of a segment start is V-aligned
    const int64_t nseg = segments<int64_t>(Wp, V, phase);
    const int64_t tiles = (Hp * nseg + kWarp - 1) / kWarp;
    const int64_t chunk = chunk_size(Cg, N * G * tiles, x);
    const int64_t chunks = std::max<int64_t>(1, (Cg + chunk - 1) / chunk);
    at::Tensor target = chunks > 1 ? at::empty({chunks, N, 2 * G, Hp, Wp}, sums.options()) : sums;
    const bool small = fits_int32({&x, &xc, &target}, {N * G * chunks * tiles, target.numel()});
    dispatch_index(small, [&](auto tag) {
      using I = decltype(tag);
      SumsArgs<scalar_t, I> a{x.const_data_ptr<scalar_t>(), strides_of<I>(x),
                              xc.defined() ? xc.mutable_data_ptr<scalar_t>() : nullptr, target.mutable_data_ptr<A>(),
                              I(N), I(C), I(H), I(W), I(G), I(Cg), I(Hp), I(Wp), I(top), I(left), mode, center,
                              I(chunk), I(chunks), I(tiles), I(nseg), I(phase)};
      auto kernel = sums_nchw_kernel<scalar_t, I>;
      GENNORM_LAUNCH(kernel, grid_for(N * G * chunks * tiles), kThreads, stream, a);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      if (chunks > 1) {
        auto fold = fold_chunks_kernel<A, I>;
        GENNORM_LAUNCH(fold, grid_for_threads(sums.numel()), kThreads, stream, target.const_data_ptr<A>(), I(chunks),
                       I(sums.numel()), sums.mutable_data_ptr<A>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
    });
  });
}

// ================================================================================================
// Window statistics + epilogue (window_epilogue; patch_moments' statistics)
// ================================================================================================

// mean, rstd [N, g, Ho, Wo] of the windows of sums [N, 2g, Hp, Wp]: one thread per output.
template <typename A, typename I>
__global__ void __launch_bounds__(kThreads) window_moments_kernel(const A* __restrict__ sums, I N, I G, I Hp, I Wp,
                                                                  I Ho, I Wo, Win<I> w, A count, A eps,
                                                                  A* __restrict__ mean, A* __restrict__ rstd) {
  GENNORM_THREAD_LOOP(I, i, N * G * Ho * Wo) {
    const I wo = i % Wo, ho = (i / Wo) % Ho, j = (i / (Wo * Ho)) % G, n = i / (Wo * Ho * G);
    const A* p1 = sums + ((n * 2 * G + j) * Hp + ho * w.sh) * Wp + wo * w.sw;
    window_stats<A, I>(p1, p1 + G * Hp * Wp, Wp, w, count, eps, mean[i], rstd[i]);
  }
}

template <typename T, typename I>
struct EpilogueArgs {
  using A = typename Acc<T>::type;
  const T* y;
  Strides4<I> ys;
  T* out;
  Strides4<I> os;
  const A* sums;  // [N, 2g, Hp, Wp] contiguous
  const A* S;
  const A* bias;  // null: no bias
  A* mean;        // [N, g, Ho, Wo] contiguous
  A* rstd;
  I N, O, G, Og, Ho, Wo, Hp, Wp;
  Win<I> win;
  A count, eps;
  I chunk, chunks, tiles, nseg;  // NCHW kernel only
};

// NCHW (any strides): block item = (n, group, channel chunk, tile of 32 row segments of V outputs).
// The block first computes the tile's window statistics into shared memory (the chunk-0 block also
// writes them out), then each warp applies the epilogue to every 8th channel of the chunk.
template <typename T, typename I>
__global__ void __launch_bounds__(kThreads) epilogue_nchw_kernel(const EpilogueArgs<T, I> a) {
  using A = typename Acc<T>::type;
  constexpr int V = vec_of<T>();
  constexpr int P = kWarp * V;
  __shared__ A mean_s[P];
  __shared__ A rstd_s[P];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int64_t items = int64_t(a.N) * a.G * a.chunks * a.tiles;
  const I splane = a.Hp * a.Wp;
  GENNORM_BLOCK_LOOP(item, items) {
    const I t = static_cast<I>(item % a.tiles);
    const I k = static_cast<I>((item / a.tiles) % a.chunks);
    const I j = static_cast<I>((item / (int64_t(a.tiles) * a.chunks)) % a.G);
    const I n = static_cast<I>(item / (int64_t(a.tiles) * a.chunks * a.G));
    for (int idx = threadIdx.x; idx < P; idx += kThreads) {
      const I sl = t * kWarp + idx / V;
      const I row = sl / a.nseg, wo = (sl % a.nseg) * V + idx % V;
      A m = 0, r = 0;
      if (row < a.Ho && wo < a.Wo) {
        const A* p1 = a.sums + ((n * 2 * a.G + j) * a.Hp + row * a.win.sh) * a.Wp + wo * a.win.sw;
        window_stats<A, I>(p1, p1 + a.G * splane, a.Wp, a.win, a.count, a.eps, m, r);
        if (k == 0) {
          const I off = ((n * a.G + j) * a.Ho + row) * a.Wo + wo;
          a.mean[off] = m;
          a.rstd[off] = r;
        }
      }
      mean_s[idx] = m;
      rstd_s[idx] = r;
    }
    __syncthreads();
    const I sl = t * kWarp + lane;
    const I row = sl / a.nseg;
    if (row < a.Ho) {
      const Run<I> r = segment<I>(sl % a.nseg, V, I(0), a.Wo);
      A m[V], rs[V];
#pragma unroll
      for (int e = 0; e < V; ++e) m[e] = mean_s[lane * V + e], rs[e] = rstd_s[lane * V + e];
      const I c_end = min_of<I>((k + 1) * a.chunk, a.Og);
      GENNORM_UNROLL
      for (I i = k * a.chunk + warp; i < c_end; i += kWarps) {
        const I o = j * a.Og + i;
        A v[V];
        load_run<V>(a.y + a.ys.at(n, o, row, r.start), a.ys.w, r.count, v);
        const A so = a.S[o], bo = a.bias != nullptr ? a.bias[o] : A(0);
        T q[V];
#pragma unroll
        for (int e = 0; e < V; ++e) {
          A val = (v[e] - m[e] * so) * rs[e];
          if (a.bias != nullptr) val += bo;
          q[e] = static_cast<T>(val);
        }
        store_run<V>(a.out + a.os.at(n, o, row, r.start), a.os.w, r.count, q);
      }
    }
    __syncthreads();
  }
}

// NHWC (y channels_last): a slot of L lanes per (n, output pixel, group) task. The lanes split the
// window's taps (butterfly sum: every lane gets the statistics), then the group's output channels.
template <typename T, typename I>
__global__ void __launch_bounds__(kThreads) epilogue_nhwc_kernel(const EpilogueArgs<T, I> a, int L) {
  using A = typename Acc<T>::type;
  constexpr int V = vec_of<T>();
  const int lane = threadIdx.x % kWarp, sub = lane % L;
  const I per_warp = kWarp / L;
  const I warp_global = static_cast<I>(blockIdx.x) * kWarps + threadIdx.x / kWarp;
  const I warps = static_cast<I>(gridDim.x) * kWarps;
  const I tasks = a.N * a.Ho * a.Wo * a.G;
  const I taps = a.win.kh * a.win.kw;
  for (I base = warp_global * per_warp; base < tasks; base += warps * per_warp) {
    const I task = base + lane / L;
    const bool active = task < tasks;
    I j = 0, wo = 0, ho = 0, n = 0;
    if (active) {
      j = task % a.G;
      wo = (task / a.G) % a.Wo;
      ho = (task / (a.G * a.Wo)) % a.Ho;
      n = task / (a.G * a.Wo * a.Ho);
    }
    A s1 = 0, s2 = 0;
    if (active) {
      const A* p1 = a.sums + ((n * 2 * a.G + j) * a.Hp + ho * a.win.sh) * a.Wp + wo * a.win.sw;
      const A* p2 = p1 + a.G * a.Hp * a.Wp;
      for (I tap = sub; tap < taps; tap += L) {
        const I off = (tap / a.win.kw) * a.win.dh * a.Wp + (tap % a.win.kw) * a.win.dw;
        s1 += p1[off];
        s2 += p2[off];
      }
    }
    s1 = group_sum(s1, L);
    s2 = group_sum(s2, L);
    if (!active) continue;  // after the last shuffle: no lane of this warp shuffles again this round
    const A m = s1 / a.count;
    const A var = s2 / a.count - m * m;
    const A rs = rstd_of<A>(var > A(0) ? var : A(0), a.eps);
    if (sub == 0) {
      const I off = ((n * a.G + j) * a.Ho + ho) * a.Wo + wo;
      a.mean[off] = m;
      a.rstd[off] = rs;
    }
    for (I i = static_cast<I>(sub) * V; i < a.Og; i += static_cast<I>(L) * V) {
      const int count = static_cast<int>(min_of<I>(V, a.Og - i));
      const I o = j * a.Og + i;
      A v[V];
      load_run<V>(a.y + a.ys.at(n, o, ho, wo), a.ys.c, count, v);
      T q[V];
#pragma unroll
      for (int e = 0; e < V; ++e) {
        const A so = e < count ? a.S[o + e] : A(0);
        A val = (v[e] - m * so) * rs;
        if (a.bias != nullptr && e < count) val += a.bias[o + e];
        q[e] = static_cast<T>(val);
      }
      store_run<V>(a.out + a.os.at(n, o, ho, wo), a.os.c, count, q);
    }
  }
}

// ================================================================================================
// Epilogue backward (window_epilogue_backward)
// ================================================================================================

template <typename T, typename I>
struct EpilogueGradArgs {
  using A = typename Acc<T>::type;
  const T* go;
  Strides4<I> gos;
  const T* y;
  Strides4<I> ys;
  T* gy;
  Strides4<I> gys;
  const A* mean;  // [N, g, Ho, Wo] contiguous
  const A* rstd;
  const A* S;
  A* gw;    // grad_window [N, 2g, Ho, Wo], written here when chunks == 1
  A* pix;   // per-chunk pixel partials [chunks][N][2][g][Ho*Wo] (A and B), when chunks > 1
  A* chan;  // per-tile channel partials [2][O][P]: sum grad_out*rstd*mean, sum grad_out
  I N, O, G, Og, Ho, Wo;
  A count;
  I chunk, chunks, tiles, nseg, P;
};

template <typename T, typename I>
__device__ __forceinline__ void put_pixel_sums(const EpilogueGradArgs<T, I>& a, I k, I n, I j, I p,
                                               typename Acc<T>::type sa, typename Acc<T>::type sb) {
  using A = typename Acc<T>::type;
  const I hw = a.Ho * a.Wo;
  if (a.chunks == 1) {
    const I m = (n * a.G + j) * hw + p;
    A g1, g2;
    window_grads<A>(sa, sb, a.mean[m], a.rstd[m], a.count, g1, g2);
    a.gw[(n * 2 * a.G + j) * hw + p] = g1;
    a.gw[(n * 2 * a.G + a.G + j) * hw + p] = g2;
  } else {
    a.pix[(((k * a.N + n) * 2 + 0) * a.G + j) * hw + p] = sa;
    a.pix[(((k * a.N + n) * 2 + 1) * a.G + j) * hw + p] = sb;
  }
}

// NCHW (any strides): block item = (n, group, channel chunk, tile of 32 row segments). Each warp takes
// every 8th channel of the chunk: writes grad_y for its run, adds the run's pixel sums A, B, and
// reduces the channel's tile sums over its lanes (one partial per (channel, n, tile)). The pixel
// sums are folded over the warps in shared memory.
template <typename T, typename I>
__global__ void __launch_bounds__(kThreads) epilogue_grad_nchw_kernel(const EpilogueGradArgs<T, I> a) {
  using A = typename Acc<T>::type;
  constexpr int V = vec_of<T>();
  constexpr int P = kWarp * V;
  __shared__ A red[2][kWarps][P];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int64_t items = int64_t(a.N) * a.G * a.chunks * a.tiles;
  GENNORM_BLOCK_LOOP(item, items) {
    const I t = static_cast<I>(item % a.tiles);
    const I k = static_cast<I>((item / a.tiles) % a.chunks);
    const I j = static_cast<I>((item / (int64_t(a.tiles) * a.chunks)) % a.G);
    const I n = static_cast<I>(item / (int64_t(a.tiles) * a.chunks * a.G));
    const I sl = t * kWarp + lane;
    const I row = sl / a.nseg;
    const bool active = row < a.Ho;
    Run<I> r{0, 0};
    A mu[V], rs[V];
    if (active) {
      r = segment<I>(sl % a.nseg, V, I(0), a.Wo);
      const I m = ((n * a.G + j) * a.Ho + row) * a.Wo + r.start;
      load_run<V>(a.mean + m, I(1), r.count, mu);
      load_run<V>(a.rstd + m, I(1), r.count, rs);
    } else {
#pragma unroll
      for (int e = 0; e < V; ++e) mu[e] = rs[e] = A(0);
    }
    A sa[V], sb[V];
#pragma unroll
    for (int e = 0; e < V; ++e) sa[e] = sb[e] = A(0);
    const I pidx = n * a.tiles + t;
    const I c_end = min_of<I>((k + 1) * a.chunk, a.Og);
    for (I i = k * a.chunk + warp; i < c_end; i += kWarps) {  // the same trip count on every lane of a warp
      const I o = j * a.Og + i;
      A g[V], v[V];
      if (active) {
        load_run<V>(a.go + a.gos.at(n, o, row, r.start), a.gos.w, r.count, g);
        load_run<V>(a.y + a.ys.at(n, o, row, r.start), a.ys.w, r.count, v);
      } else {
#pragma unroll
        for (int e = 0; e < V; ++e) g[e] = v[e] = A(0);
      }
      const A so = a.S[o];
      A cs = 0, cb = 0;
      T q[V];
#pragma unroll
      for (int e = 0; e < V; ++e) {
        const A grs = g[e] * rs[e];
        q[e] = static_cast<T>(grs);
        sa[e] += g[e] * so;
        sb[e] += g[e] * (v[e] - mu[e] * so);
        cs += grs * mu[e];
        cb += g[e];
      }
      if (active) store_run<V>(a.gy + a.gys.at(n, o, row, r.start), a.gys.w, r.count, q);
      cs = group_sum(cs, kWarp);
      cb = group_sum(cb, kWarp);
      if (lane == 0) {
        a.chan[o * a.P + pidx] = cs;
        a.chan[(a.O + o) * a.P + pidx] = cb;
      }
    }
#pragma unroll
    for (int e = 0; e < V; ++e) {
      red[0][warp][lane * V + e] = sa[e];
      red[1][warp][lane * V + e] = sb[e];
    }
    __syncthreads();
    for (int pos = threadIdx.x; pos < P; pos += kThreads) {
      A s_a = 0, s_b = 0;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) {
        s_a += red[0][w][pos];
        s_b += red[1][w][pos];
      }
      const I sl2 = t * kWarp + pos / V;
      const I row2 = sl2 / a.nseg, wo = (sl2 % a.nseg) * V + pos % V;
      if (row2 < a.Ho && wo < a.Wo) put_pixel_sums(a, k, n, j, row2 * a.Wo + wo, s_a, s_b);
    }
    __syncthreads();
  }
}

constexpr int kPixelsPerSlot = 4;

// NHWC (grad_out / y channels_last): block item = (tile of pixels over N*Ho*Wo, group, chunk of
// L*V channels). A slot of L lanes owns V channels per lane and walks kPixelsPerSlot pixels of the
// tile: grad_y, the pixel sums (butterfly over the slot), and per-lane channel sums in registers,
// folded over the slots in shared memory (one partial per (channel, tile)).
template <typename T, typename I>
__global__ void __launch_bounds__(kThreads) epilogue_grad_nhwc_kernel(const EpilogueGradArgs<T, I> a, int L) {
  using A = typename Acc<T>::type;
  constexpr int V = vec_of<T>();
  __shared__ A red[2][kThreads * V];
  const int sub = threadIdx.x % L;
  const I slot = threadIdx.x / L, slots = kThreads / L;
  const I cw = static_cast<I>(L) * V;
  const I per_group = (a.Og + cw - 1) / cw;
  const I hw = a.Ho * a.Wo, pixels = a.N * hw;
  const int64_t items = int64_t(a.tiles) * a.G * per_group;
  GENNORM_BLOCK_LOOP(item, items) {
    const I kc = static_cast<I>(item % per_group);
    const I j = static_cast<I>((item / per_group) % a.G);
    const I t = static_cast<I>(item / (int64_t(per_group) * a.G));
    const I i0 = kc * cw + static_cast<I>(sub) * V;
    const int count = i0 < a.Og ? static_cast<int>(min_of<I>(V, a.Og - i0)) : 0;
    const I o0 = j * a.Og + i0;
    A so[V], cs[V], cb[V];
#pragma unroll
    for (int e = 0; e < V; ++e) {
      so[e] = e < count ? a.S[o0 + e] : A(0);
      cs[e] = cb[e] = A(0);
    }
    for (int r = 0; r < kPixelsPerSlot; ++r) {
      const I pix = (t * kPixelsPerSlot + r) * slots + slot;
      const bool active = pix < pixels;
      const I n = active ? pix / hw : I(0), p = active ? pix % hw : I(0);
      const I ho = p / a.Wo, wo = p % a.Wo;
      A mu = 0, rs = 0;
      A g[V], v[V];
#pragma unroll
      for (int e = 0; e < V; ++e) g[e] = v[e] = A(0);
      if (active) {
        mu = a.mean[(n * a.G + j) * hw + p];
        rs = a.rstd[(n * a.G + j) * hw + p];
        if (count > 0) {
          load_run<V>(a.go + a.gos.at(n, o0, ho, wo), a.gos.c, count, g);
          load_run<V>(a.y + a.ys.at(n, o0, ho, wo), a.ys.c, count, v);
        }
      }
      A sa = 0, sb = 0;
      T q[V];
#pragma unroll
      for (int e = 0; e < V; ++e) {
        const A grs = g[e] * rs;
        q[e] = static_cast<T>(grs);
        sa += g[e] * so[e];
        sb += g[e] * (v[e] - mu * so[e]);
        cs[e] += grs * mu;
        cb[e] += g[e];
      }
      if (active && count > 0) store_run<V>(a.gy + a.gys.at(n, o0, ho, wo), a.gys.c, count, q);
      sa = group_sum(sa, L);
      sb = group_sum(sb, L);
      if (active && sub == 0) put_pixel_sums(a, kc, n, j, p, sa, sb);
    }
#pragma unroll
    for (int e = 0; e < V; ++e) {
      red[0][threadIdx.x * V + e] = cs[e];  // = [slot][sub * V + e]
      red[1][threadIdx.x * V + e] = cb[e];
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < 2 * cw; idx += kThreads) {
      const int which = static_cast<int>(idx / cw);
      const I pos = idx % cw;
      A s = 0;
      for (I sl = 0; sl < slots; ++sl) s += red[which][sl * cw + pos];
      const I ic = kc * cw + pos;
      if (ic < a.Og) a.chan[(which * a.O + j * a.Og + ic) * a.P + t] = s;
    }
    __syncthreads();
  }
}

// The tiny fold: blocks [0, chan_blocks) give one warp per channel (grad_S = -sum of its partials,
// grad_bias = sum, lanes over the partials in order + butterfly); the other blocks (when the channels
// were chunked) add the per-chunk pixel sums in chunk order and write grad_window.
template <typename A, typename I>
__global__ void __launch_bounds__(kThreads) epilogue_grad_fold_kernel(
    const A* __restrict__ chan, I O, I P, A* __restrict__ grad_S, A* __restrict__ grad_bias, I chan_blocks,
    const A* __restrict__ pix, I chunks, I N, I G, I hw, const A* __restrict__ mean, const A* __restrict__ rstd, A count,
    A* __restrict__ gw) {
  if (static_cast<I>(blockIdx.x) < chan_blocks) {
    const int lane = threadIdx.x % kWarp;
    const I wid = static_cast<I>(blockIdx.x) * kWarps + threadIdx.x / kWarp, nw = chan_blocks * kWarps;
    for (I o = wid; o < O; o += nw) {
      A s = 0, b = 0;
      for (I i = lane; i < P; i += kWarp) {
        s += chan[o * P + i];
        b += chan[(O + o) * P + i];
      }
      s = group_sum(s, kWarp);
      b = group_sum(b, kWarp);
      if (lane == 0) {
        grad_S[o] = -s;
        grad_bias[o] = b;
      }
    }
    return;
  }
  if (chunks <= 1) return;
  const I total = N * G * hw;
  const I step = (static_cast<I>(gridDim.x) - chan_blocks) * kThreads;
  for (I i = (static_cast<I>(blockIdx.x) - chan_blocks) * kThreads + threadIdx.x; i < total; i += step) {
    const I p = i % hw, j = (i / hw) % G, n = i / (hw * G);
    A sa = 0, sb = 0;
    for (I k = 0; k < chunks; ++k) {
      sa += pix[(((k * N + n) * 2 + 0) * G + j) * hw + p];
      sb += pix[(((k * N + n) * 2 + 1) * G + j) * hw + p];
    }
    A g1, g2;
    window_grads<A>(sa, sb, mean[i], rstd[i], count, g1, g2);
    gw[(n * 2 * G + j) * hw + p] = g1;
    gw[(n * 2 * G + G + j) * hw + p] = g2;
  }
}

// ================================================================================================
// Window gradients back to the input (pad_center_sums_backward; patch_moments_backward)
// ================================================================================================

// grad_window [N, 2g, Ho, Wo] from patch_moments' grad_mean / grad_rstd (one thread per window).
template <typename A, typename I>
__global__ void __launch_bounds__(kThreads) moment_grads_kernel(const A* __restrict__ grad_mean,
                                                                const A* __restrict__ grad_rstd,
                                                                const A* __restrict__ mean, const A* __restrict__ rstd,
                                                                I N, I G, I hw, A count, A* __restrict__ gw) {
  GENNORM_THREAD_LOOP(I, i, N * G * hw) {
    const I p = i % hw, j = (i / hw) % G, n = i / (hw * G);
    const A r = rstd[i];
    const A gvar = A(-0.5) * grad_rstd[i] * (r * r * r);  // d rstd / d var = -rstd^3 / 2
    gw[(n * 2 * G + j) * hw + p] = (grad_mean[i] - A(2) * mean[i] * gvar) / count;
    gw[(n * 2 * G + G + j) * hw + p] = gvar / count;
  }
}

// G [N, 2g, Hp, Wp]: transposed window sums of grad_window (each padded position gets the sum over
// the windows whose taps land on it; 0 past the last window). One thread per position.
template <typename A, typename I>
__global__ void __launch_bounds__(kThreads) window_transpose_kernel(const A* __restrict__ gw, I planes, I Ho, I Wo,
                                                                    I Hp, I Wp, Win<I> w, A* __restrict__ out) {
  GENNORM_THREAD_LOOP(I, i, planes * Hp * Wp) {
    const I wp = i % Wp, hp = (i / Wp) % Hp, pl = i / (Wp * Hp);
    const A* q = gw + pl * Ho * Wo;
    A s = 0;
    for (I a = 0; a < w.kh; ++a) {
      const I t = hp - a * w.dh;
      if (t < 0) break;
      if (t % w.sh) continue;
      const I ho = t / w.sh;
      if (ho >= Ho) continue;
      for (I b = 0; b < w.kw; ++b) {
        const I u = wp - b * w.dw;
        if (u < 0) break;
        if (u % w.sw) continue;
        const I wo = u / w.sw;
        if (wo >= Wo) continue;
        s += q[ho * Wo + wo];
      }
    }
    out[i] = s;
  }
}

template <typename T, typename I>
struct GatherArgs {
  using A = typename Acc<T>::type;
  const T* gxc;  // the conv's input gradient; null: none (patch_moments_backward)
  Strides4<I> gxcs;
  const T* xc;
  Strides4<I> xcs;
  const A* G12;  // [N, 2g, Hp, Wp] contiguous
  T* gx;
  Strides4<I> gxs;
  I N, C, G, Cg, H, W, Hp, Wp, top, bottom, left, right;
  int mode;
  I nseg, phase, cpt, ncc;  // NCHW kernel only
};

// total at one padded position (contract section 4), summed over every preimage of (h, w): the
// interior position first, then the padding rows / columns that copy it (border pixels only).
template <typename T, typename I>
__device__ __forceinline__ typename Acc<T>::type gathered(const GatherArgs<T, I>& a, I n, I ch, I h, I w) {
  using A = typename Acc<T>::type;
  const I j = ch / a.Cg;
  const A* g1 = a.G12 + (n * 2 * a.G + j) * a.Hp * a.Wp;
  const A* g2 = g1 + a.G * a.Hp * a.Wp;
  // candidate r: 0 -> the interior position, 1..lo -> padding 0..lo-1, lo+1.. -> padding past the end
  const I rh = copied_into_pad<I>(h, a.H, a.top, a.bottom, a.mode) ? 1 + a.top + a.bottom : 1;
  const I rw = copied_into_pad<I>(w, a.W, a.left, a.right, a.mode) ? 1 + a.left + a.right : 1;
  A s = 0;
  for (I r = 0; r < rh; ++r) {
    const I qh = r == 0 ? h + a.top : (r <= a.top ? r - 1 : a.H + r - 1);
    if (r > 0 && pad_source<I>(qh - a.top, a.H, a.mode) != h) continue;
    for (I t = 0; t < rw; ++t) {
      const I qw = t == 0 ? w + a.left : (t <= a.left ? t - 1 : a.W + t - 1);
      if (t > 0 && pad_source<I>(qw - a.left, a.W, a.mode) != w) continue;
      const A gv = a.gxc != nullptr ? static_cast<A>(a.gxc[a.gxcs.at(n, ch, qh, qw)]) : A(0);
      s += gv + g1[qh * a.Wp + qw] + A(2) * static_cast<A>(a.xc[a.xcs.at(n, ch, qh, qw)]) * g2[qh * a.Wp + qw];
    }
  }
  return s;
}

// NCHW (grad_x contiguous or any dense layout but channels_last): one thread per (n, group, run of
// cpt channels, input row, V-wide segment). Pixels that are not copied into the padding (all but a
// thin border) have one preimage: G1/G2 loaded once as runs, then per channel one run each of
// grad_xc and xc and one of grad_x. Border pixels add up their preimages element by element.
template <typename T, typename I>
__global__ void __launch_bounds__(kThreads) gather_nchw_kernel(const GatherArgs<T, I> a) {
  using A = typename Acc<T>::type;
  constexpr int V = vec_of<T>();
  const I total = a.N * a.G * a.ncc * a.H * a.nseg;
  const I plane = a.Hp * a.Wp;
  GENNORM_THREAD_LOOP(I, it, total) {
    const I seg = it % a.nseg, h = (it / a.nseg) % a.H;
    const I rest = it / (a.nseg * a.H);
    const I cc = rest % a.ncc, j = (rest / a.ncc) % a.G, n = rest / (a.ncc * a.G);
    const Run<I> r = segment<I>(seg, V, a.phase, a.W);
    const I c0 = j * a.Cg + cc * a.cpt, c1 = j * a.Cg + min_of<I>((cc + 1) * a.cpt, a.Cg);
    bool multi = copied_into_pad<I>(h, a.H, a.top, a.bottom, a.mode);
    for (int e = 0; e < r.count; ++e) multi = multi || copied_into_pad<I>(r.start + e, a.W, a.left, a.right, a.mode);
    if (!multi) {
      const I qh = h + a.top, qw = r.start + a.left;
      const A* g1p = a.G12 + (n * 2 * a.G + j) * plane + qh * a.Wp + qw;
      A g1[V], g2[V];
      load_run<V>(g1p, I(1), r.count, g1);
      load_run<V>(g1p + a.G * plane, I(1), r.count, g2);
      GENNORM_UNROLL2
      for (I ch = c0; ch < c1; ++ch) {
        A xv[V], gv[V];
        load_run<V>(a.xc + a.xcs.at(n, ch, qh, qw), a.xcs.w, r.count, xv);
        if (a.gxc != nullptr) {
          load_run<V>(a.gxc + a.gxcs.at(n, ch, qh, qw), a.gxcs.w, r.count, gv);
        } else {
#pragma unroll
          for (int e = 0; e < V; ++e) gv[e] = A(0);
        }
        T q[V];
#pragma unroll
        for (int e = 0; e < V; ++e) q[e] = static_cast<T>(gv[e] + g1[e] + A(2) * xv[e] * g2[e]);
        store_run<V>(a.gx + a.gxs.at(n, ch, h, r.start), a.gxs.w, r.count, q);
      }
    } else {
      for (I ch = c0; ch < c1; ++ch) {
        T q[V];
        for (int e = 0; e < V; ++e) q[e] = e < r.count ? static_cast<T>(gathered(a, n, ch, h, r.start + e)) : static_cast<T>(A(0));
        store_run<V>(a.gx + a.gxs.at(n, ch, h, r.start), a.gxs.w, r.count, q);
      }
    }
  }
}

// NHWC (grad_x channels_last): one thread per (pixel, run of V channels).
template <typename T, typename I>
__global__ void __launch_bounds__(kThreads) gather_nhwc_kernel(const GatherArgs<T, I> a) {
  using A = typename Acc<T>::type;
  constexpr int V = vec_of<T>();
  const I ncs = (a.C + V - 1) / V;
  const I total = a.N * a.H * a.W * ncs;
  const I plane = a.Hp * a.Wp;
  GENNORM_THREAD_LOOP(I, it, total) {
    const I cs = it % ncs, pix = it / ncs;
    const I w = pix % a.W, h = (pix / a.W) % a.H, n = pix / (a.W * a.H);
    const I c0 = cs * V;
    const int count = static_cast<int>(min_of<I>(V, a.C - c0));
    const I j = c0 / a.Cg;
    const bool one_group = (c0 + count - 1) / a.Cg == j;
    const bool multi = copied_into_pad<I>(h, a.H, a.top, a.bottom, a.mode) ||
                       copied_into_pad<I>(w, a.W, a.left, a.right, a.mode);
    T q[V];
    if (!multi && one_group) {
      const I qh = h + a.top, qw = w + a.left;
      const I gi = (n * 2 * a.G + j) * plane + qh * a.Wp + qw;
      const A g1 = a.G12[gi], g2 = a.G12[gi + a.G * plane];
      A xv[V], gv[V];
      load_run<V>(a.xc + a.xcs.at(n, c0, qh, qw), a.xcs.c, count, xv);
      if (a.gxc != nullptr) {
        load_run<V>(a.gxc + a.gxcs.at(n, c0, qh, qw), a.gxcs.c, count, gv);
      } else {
#pragma unroll
        for (int e = 0; e < V; ++e) gv[e] = A(0);
      }
#pragma unroll
      for (int e = 0; e < V; ++e) q[e] = static_cast<T>(gv[e] + g1 + A(2) * xv[e] * g2);
    } else {
      for (int e = 0; e < V; ++e) q[e] = e < count ? static_cast<T>(gathered(a, n, c0 + e, h, w)) : static_cast<T>(A(0));
    }
    store_run<V>(a.gx + a.gxs.at(n, c0, h, w), a.gxs.c, count, q);
  }
}

// Host: grad_x = adjoint of the padding applied to grad_xc (if defined) + G1 + 2 xc G2, with G the
// transposed window sums of gw [N, 2g, Ho, Wo] (acc, contiguous). Launches 2 kernels: the small
// transposed window sum (N*2g*Hp*Wp values), then the gather over grad_x.
template <int = 0>
void launch_gather(const at::Tensor& grad_xc, const at::Tensor& xc, const at::Tensor& gw, at::Tensor& grad_x,
                          int64_t G, at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef dilation,
                          int64_t left, int64_t right, int64_t top, int64_t bottom, int mode) {
  const int64_t N = xc.size(0), C = xc.size(1), Hp = xc.size(2), Wp = xc.size(3);
  const int64_t H = grad_x.size(2), W = grad_x.size(3), Ho = gw.size(2), Wo = gw.size(3), Cg = C / G;
  auto stream = c10::cuda::getCurrentCUDAStream();
  auto G12 = at::empty({N, 2 * G, Hp, Wp}, gw.options());
  const bool nhwc = is_channels_last(grad_x);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, xc.scalar_type(), "gennorm_gather", [&] {
    using A = typename Acc<scalar_t>::type;
    constexpr int V = vec_of<scalar_t>();
    const int64_t cpt = 8;  // channels per thread in the NCHW kernel: G1/G2 are loaded once per 8 channels
    const int64_t phase = left % V;  // padded column w + left of a segment start is V-aligned
    const int64_t nseg = segments<int64_t>(W, V, phase);
    const int64_t ncc = std::max<int64_t>(1, (Cg + cpt - 1) / cpt);
    const int64_t items = nhwc ? N * H * W * ((C + V - 1) / V) : N * G * ncc * H * nseg;
    const int64_t grid_step = int64_t(kThreads) * tuning().max_blocks;
    const bool small = fits_int32({&grad_xc, &xc, &gw, &grad_x, &G12}, {items + grid_step, G12.numel() + grid_step});
    dispatch_index(small, [&](auto tag) {
      using I = decltype(tag);
      auto transpose = window_transpose_kernel<A, I>;
      GENNORM_LAUNCH(transpose, grid_for_threads(G12.numel()), kThreads, stream, gw.const_data_ptr<A>(), I(N * 2 * G),
                     I(Ho), I(Wo), I(Hp), I(Wp), window_of<I>(kernel_size, stride, dilation), G12.mutable_data_ptr<A>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      GatherArgs<scalar_t, I> a{grad_xc.defined() ? grad_xc.const_data_ptr<scalar_t>() : nullptr,
                                grad_xc.defined() ? strides_of<I>(grad_xc) : Strides4<I>{0, 0, 0, 0},
                                xc.const_data_ptr<scalar_t>(), strides_of<I>(xc), G12.const_data_ptr<A>(),
                                grad_x.mutable_data_ptr<scalar_t>(), strides_of<I>(grad_x),
                                I(N), I(C), I(G), I(Cg), I(H), I(W), I(Hp), I(Wp), I(top), I(bottom), I(left), I(right),
                                mode, I(nseg), I(phase), I(cpt), I(ncc)};
      if (nhwc) {
        auto kernel = gather_nhwc_kernel<scalar_t, I>;
        GENNORM_LAUNCH(kernel, grid_for_threads(items), kThreads, stream, a);
      } else {
        auto kernel = gather_nchw_kernel<scalar_t, I>;
        GENNORM_LAUNCH(kernel, grid_for_threads(items), kThreads, stream, a);
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
}

}  // namespace
}  // namespace gennorm
