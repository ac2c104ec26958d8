// moment_epilogue on CUDA: out[n, o] = (y[n, o] - mean[n, grp(o)] * S[o]) * rstd[n, grp(o)] + bias[o],
// grp(o) = o / (O / g). The math of gennorm/ops/reference.py, in the statistics' dtype (float32, or
// float64 for float64 statistics), output in y's dtype and y's layout.
//
// Forward: one elementwise kernel. Its thread order follows y's memory layout (NCHW, or NHWC for
//   channels_last) so neighbouring threads touch neighbouring addresses; y and out are addressed
//   through their strides. Traffic: read y, write out, plus the small mean/rstd planes (g/O of y).
// Backward, two kernels:
//   1. per (n, group, pixel): loop over the group's O/g channels, write grad_y = grad_out * rstd and
//      reduce grad_mean = -rstd * sum_o grad_out S[o], grad_rstd = sum_o grad_out (y - mean S[o]).
//      Traffic: read grad_out and y, write grad_y.
//   2. per channel o: grad_S[o] = -sum_{n,h,w} grad_out rstd mean, grad_bias[o] = sum grad_out. A 2-d grid
//      (channel x chunk of N*H*W) writes per-block partial sums, which a deterministic at::sum finishes
//      (no atomics, so results are run-to-run identical). With channels_last the reads of one channel
//      are strided by O (uncoalesced, served partly by L2); NCHW reads are coalesced.
#include "common.cuh"
#include "gennorm_ops.h"

#include <ATen/Dispatch.h>

namespace gennorm {
namespace {

struct Dims {
  int64_t N, O, G, H, W;
};

template <typename scalar_t, typename acc_t, bool channels_last>
__global__ void epilogue_kernel(const scalar_t* __restrict__ y, Strides4 ys, const acc_t* __restrict__ mean,
                                const acc_t* __restrict__ rstd, const acc_t* __restrict__ S,
                                const acc_t* __restrict__ bias, Dims d, scalar_t* __restrict__ out, Strides4 os) {
  GENNORM_GRID_STRIDE_LOOP(i, d.N * d.O * d.H * d.W) {
    int64_t n, o, h, w;
    if (channels_last) {  // i runs over [N, H, W, O]
      o = i % d.O;
      w = (i / d.O) % d.W;
      h = (i / (d.O * d.W)) % d.H;
      n = i / (d.O * d.W * d.H);
    } else {  // i runs over [N, O, H, W]
      w = i % d.W;
      h = (i / d.W) % d.H;
      o = (i / (d.W * d.H)) % d.O;
      n = i / (d.W * d.H * d.O);
    }
    const int64_t grp = o / (d.O / d.G);
    const int64_t m = ((n * d.G + grp) * d.H + h) * d.W + w;  // mean, rstd [N, g, H, W] contiguous
    acc_t v = (static_cast<acc_t>(y[offset(ys, n, o, h, w)]) - mean[m] * S[o]) * rstd[m];
    if (bias != nullptr) v += bias[o];
    out[offset(os, n, o, h, w)] = static_cast<scalar_t>(v);
  }
}

template <typename scalar_t, typename acc_t>
__global__ void epilogue_grad_kernel(const scalar_t* __restrict__ go, Strides4 gos, const scalar_t* __restrict__ y,
                                     Strides4 ys, const acc_t* __restrict__ mean, const acc_t* __restrict__ rstd,
                                     const acc_t* __restrict__ S, Dims d, scalar_t* __restrict__ grad_y,
                                     Strides4 gys, acc_t* __restrict__ grad_mean, acc_t* __restrict__ grad_rstd) {
  const int64_t og = d.O / d.G;
  GENNORM_GRID_STRIDE_LOOP(i, d.N * d.G * d.H * d.W) {  // i indexes mean [N, g, H, W]
    const int64_t w = i % d.W, h = (i / d.W) % d.H, grp = (i / (d.W * d.H)) % d.G, n = i / (d.W * d.H * d.G);
    const acc_t mu = mean[i], rs = rstd[i];
    acc_t a = 0, b = 0;
    for (int64_t k = 0; k < og; ++k) {
      const int64_t o = grp * og + k;
      const acc_t g = static_cast<acc_t>(go[offset(gos, n, o, h, w)]);
      const acc_t go_rs = g * rs;
      grad_y[offset(gys, n, o, h, w)] = static_cast<scalar_t>(go_rs);
      a += go_rs * S[o];
      b += g * (static_cast<acc_t>(y[offset(ys, n, o, h, w)]) - mu * S[o]);
    }
    grad_mean[i] = -a;
    grad_rstd[i] = b;
  }
}

// Per-channel partial sums over a chunk of the N*H*W positions: grid (O, chunks), kThreads threads.
// partial [2, O, chunks]: row 0 partial grad_S, row 1 partial grad_bias.
template <typename scalar_t, typename acc_t>
__global__ void channel_grads_kernel(const scalar_t* __restrict__ go, Strides4 gos, const acc_t* __restrict__ mean,
                                     const acc_t* __restrict__ rstd, Dims d, int64_t chunk,
                                     acc_t* __restrict__ partial) {
  __shared__ acc_t sa[kThreads];
  __shared__ acc_t sb[kThreads];
  const int64_t o = blockIdx.x, grp = o / (d.O / d.G), hw = d.H * d.W, total = d.N * hw;
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * chunk;
  const int64_t end = begin + chunk < total ? begin + chunk : total;
  acc_t a = 0, b = 0;
  for (int64_t j = begin + threadIdx.x; j < end; j += blockDim.x) {
    const int64_t n = j / hw, h = (j % hw) / d.W, w = j % d.W;
    const int64_t m = (n * d.G + grp) * hw + h * d.W + w;
    const acc_t g = static_cast<acc_t>(go[offset(gos, n, o, h, w)]);
    a += g * rstd[m] * mean[m];
    b += g;
  }
  sa[threadIdx.x] = a;
  sb[threadIdx.x] = b;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      sa[threadIdx.x] += sa[threadIdx.x + s];
      sb[threadIdx.x] += sb[threadIdx.x + s];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    partial[o * gridDim.y + blockIdx.y] = -sa[0];
    partial[(d.O + o) * gridDim.y + blockIdx.y] = sb[0];
  }
}

Dims dims_of(const at::Tensor& y, const at::Tensor& mean) {
  return {y.size(0), y.size(1), mean.size(1), y.size(2), y.size(3)};
}

}  // namespace

at::Tensor moment_epilogue_cuda(const at::Tensor& y, const at::Tensor& mean, const at::Tensor& rstd,
                                const at::Tensor& S, const c10::optional<at::Tensor>& bias) {
  check_moment_epilogue(y, mean, rstd, S, bias);
  TORCH_CHECK(GENNORM_ON_DEVICE(y), "gennorm::moment_epilogue (CUDA kernel): y must be a CUDA tensor, got ", y.device());
  const c10::cuda::CUDAGuard guard(y.device());
  auto out = at::empty_like(y);  // y's layout (the fake kernel says so too)
  if (out.numel() == 0) return out;
  // Statistics and the [O] vectors are small: bring them to one dtype, contiguous.
  const auto acc = stats_type(mean);
  auto mu = mean.to(acc).contiguous(), rs = rstd.to(acc).contiguous(), s = S.to(acc).contiguous();
  const bool has_bias = bias.has_value() && bias->defined();
  auto b = has_bias ? bias->to(acc).contiguous() : at::Tensor();
  const Dims d = dims_of(y, mean);
  const bool channels_last = y.suggest_memory_format() == at::MemoryFormat::ChannelsLast;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(acc, "gennorm_moment_epilogue_stats", [&] {
    using acc_t = scalar_t;
    const acc_t* bias_ptr = has_bias ? b.const_data_ptr<acc_t>() : nullptr;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, y.scalar_type(), "gennorm_moment_epilogue", [&] {
      auto kernel = channels_last ? epilogue_kernel<scalar_t, acc_t, true> : epilogue_kernel<scalar_t, acc_t, false>;
      GENNORM_LAUNCH(kernel, blocks_for(y.numel()), kThreads, stream,
          y.const_data_ptr<scalar_t>(), strides_of(y), mu.const_data_ptr<acc_t>(), rs.const_data_ptr<acc_t>(),
          s.const_data_ptr<acc_t>(), bias_ptr, d, out.mutable_data_ptr<scalar_t>(), strides_of(out));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> moment_epilogue_backward_cuda(
    const at::Tensor& grad_out_in, const at::Tensor& y, const at::Tensor& mean, const at::Tensor& rstd,
    const at::Tensor& S) {
  check_moment_epilogue_backward(grad_out_in, y, mean, rstd, S);
  TORCH_CHECK(GENNORM_ON_DEVICE(y), "gennorm::moment_epilogue_backward (CUDA kernel): y must be a CUDA tensor, got ",
              y.device());
  const c10::cuda::CUDAGuard guard(y.device());
  const auto acc = stats_type(mean);
  // grad_out normally has y's dtype already (autograd); otherwise one conversion pass.
  auto grad_out = grad_out_in.to(y.scalar_type());
  auto grad_y = at::empty_like(y);
  auto gm = at::empty(mean.sizes(), mean.options().dtype(acc));  // [N, g, H, W]
  auto gr = at::empty(mean.sizes(), mean.options().dtype(acc));
  auto mu = mean.to(acc).contiguous(), rs = rstd.to(acc).contiguous(), s = S.to(acc).contiguous();
  const Dims d = dims_of(y, mean);
  const int64_t positions = d.N * d.H * d.W;
  // Enough chunks per channel to fill the GPU when O is small; at most 64 partials per channel.
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(64, (positions + 16 * kThreads - 1) / (16 * kThreads)));
  const int64_t chunk = (positions + chunks - 1) / chunks;
  auto partial = at::zeros({2, d.O, chunks}, mean.options().dtype(acc));  // [2, O, chunks]
  auto stream = c10::cuda::getCurrentCUDAStream();
  if (y.numel() > 0) {
    AT_DISPATCH_FLOATING_TYPES(acc, "gennorm_moment_epilogue_backward_stats", [&] {
      using acc_t = scalar_t;
      AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, y.scalar_type(), "gennorm_moment_epilogue_backward", [&] {
        auto grad_kernel = epilogue_grad_kernel<scalar_t, acc_t>;
        GENNORM_LAUNCH(grad_kernel, blocks_for(mu.numel()), kThreads, stream,
            grad_out.const_data_ptr<scalar_t>(), strides_of(grad_out), y.const_data_ptr<scalar_t>(), strides_of(y),
            mu.const_data_ptr<acc_t>(), rs.const_data_ptr<acc_t>(), s.const_data_ptr<acc_t>(), d,
            grad_y.mutable_data_ptr<scalar_t>(), strides_of(grad_y), gm.mutable_data_ptr<acc_t>(),
            gr.mutable_data_ptr<acc_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        const dim3 grid(static_cast<unsigned int>(d.O), static_cast<unsigned int>(chunks));
        auto channel_kernel = channel_grads_kernel<scalar_t, acc_t>;
        GENNORM_LAUNCH(channel_kernel, grid, kThreads, stream,
            grad_out.const_data_ptr<scalar_t>(), strides_of(grad_out), mu.const_data_ptr<acc_t>(),
            rs.const_data_ptr<acc_t>(), d, chunk, partial.mutable_data_ptr<acc_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  } else {
    gm.zero_();
    gr.zero_();
  }
  auto sums = partial.sum(-1);  // [2, O]
  return {grad_y, at::empty_like(mean).copy_(gm), at::empty_like(rstd).copy_(gr),
          at::empty_like(S).copy_(sums[0]), at::empty_like(S).copy_(sums[1])};
}

}  // namespace gennorm
