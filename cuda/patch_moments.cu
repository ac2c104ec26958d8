// patch_moments on CUDA: mean and rstd of every (C/g) x kh x kw window of an already padded x.
//
// Forward, two kernels (the math of gennorm/ops/reference.py, float32 accumulation; float64 for double):
//   1. channel_sums:   one thread per (n, group, pixel) sums its C/g channels of x and x^2 into a
//                      workspace ws [N, 2g, Hp, Wp] (first g planes: sums, last g: sums of squares).
//                      x is read through its strides, so NCHW and channels_last need no copy.
//   2. window_moments: one thread per (n, group, output pixel) adds the kh*kw (dilated, strided)
//                      taps of both planes and writes mean, rstd [N, g, Ho, Wo].
// Memory traffic: one read of x (N*C*Hp*Wp elements), a workspace of 2*N*g*Hp*Wp floats written
// once and read kh*kw times per output (neighbouring threads share taps, so L1/L2 serve most of
// those reads), and 2*N*g*Ho*Wo outputs. For C >> g this is ~one pass over x: the op is
// bandwidth bound and the workspace costs 2*g/C of x's traffic (x4 bytes/elem). A fused kernel
// with a shared-memory tile of channel sums would save the workspace round trip; not done
// because the workspace is small next to x.
//
// Backward (grad_x = d/dx of mean, rstd), two kernels:
//   1. window_grads:   per window, the gradients of the two window sums,
//                      g_s1 = (grad_mean - 2 mean grad_var) / K, g_s2 = grad_var / K,
//                      grad_var = -rstd^3 grad_rstd / 2, K = (C/g) kh kw; into gw [N, 2g, Ho, Wo].
//   2. patch_grad:     one thread per (n, group, input pixel) gathers the windows that cover the
//                      pixel (the transposed window sum: G1, G2) and writes
//                      grad_x[n, c] = G1 + 2 x[n, c] G2 for its C/g channels.
// Traffic: one read of x and one write of grad_x, plus the small gw.
#include "common.cuh"
#include "gennorm_ops.h"

#include <ATen/Dispatch.h>

namespace gennorm {
namespace {

struct Window {
  int64_t kh, kw, sh, sw, dh, dw;
};

Window window_of(at::IntArrayRef k, at::IntArrayRef s, at::IntArrayRef d) {
  return {k[0], k[1], s[0], s[1], d[0], d[1]};
}

template <typename scalar_t, typename acc_t>
__global__ void channel_sums_kernel(const scalar_t* __restrict__ x, Strides4 xs, int64_t N, int64_t G, int64_t Cg,
                                    int64_t H, int64_t W, acc_t* __restrict__ ws) {
  const int64_t plane = H * W;
  GENNORM_GRID_STRIDE_LOOP(i, N * G * plane) {
    const int64_t w = i % W, h = (i / W) % H, grp = (i / plane) % G, n = i / (plane * G);
    const scalar_t* p = x + offset(xs, n, grp * Cg, h, w);
    acc_t s1 = 0, s2 = 0;
    for (int64_t c = 0; c < Cg; ++c) {
      const acc_t v = static_cast<acc_t>(p[c * xs.c]);
      s1 += v;
      s2 += v * v;
    }
    ws[(n * 2 * G + grp) * plane + h * W + w] = s1;       // [N, 2g, Hp, Wp], plane grp
    ws[(n * 2 * G + G + grp) * plane + h * W + w] = s2;   // plane g + grp
  }
}

template <typename acc_t>
__global__ void window_moments_kernel(const acc_t* __restrict__ ws, int64_t N, int64_t G, int64_t H, int64_t W,
                                      int64_t Ho, int64_t Wo, Window win, acc_t count, acc_t eps,
                                      acc_t* __restrict__ mean, acc_t* __restrict__ rstd) {
  GENNORM_GRID_STRIDE_LOOP(i, N * G * Ho * Wo) {
    const int64_t wo = i % Wo, ho = (i / Wo) % Ho, grp = (i / (Ho * Wo)) % G, n = i / (Ho * Wo * G);
    const acc_t* p1 = ws + ((n * 2 * G + grp) * H + ho * win.sh) * W + wo * win.sw;
    const acc_t* p2 = p1 + G * H * W;
    acc_t s1 = 0, s2 = 0;
    for (int64_t a = 0; a < win.kh; ++a) {
      for (int64_t b = 0; b < win.kw; ++b) {
        const int64_t off = a * win.dh * W + b * win.dw;
        s1 += p1[off];
        s2 += p2[off];
      }
    }
    const acc_t m = s1 / count;
    const acc_t var = s2 / count - m * m;
    mean[i] = m;
    rstd[i] = rsqrt_exact<acc_t>((var > acc_t(0) ? var : acc_t(0)) + eps);  // biased variance, clamped at 0
  }
}

template <typename acc_t>
__global__ void window_grads_kernel(const acc_t* __restrict__ grad_mean, const acc_t* __restrict__ grad_rstd,
                                    const acc_t* __restrict__ mean, const acc_t* __restrict__ rstd, int64_t N,
                                    int64_t G, int64_t plane, acc_t count, acc_t* __restrict__ gw) {
  GENNORM_GRID_STRIDE_LOOP(i, N * G * plane) {
    const int64_t p = i % plane, grp = (i / plane) % G, n = i / (plane * G);
    const acc_t r = rstd[i];
    const acc_t grad_var = acc_t(-0.5) * grad_rstd[i] * (r * r * r);  // d rstd / d var = -rstd^3 / 2
    gw[(n * 2 * G + grp) * plane + p] = (grad_mean[i] - acc_t(2) * mean[i] * grad_var) / count;
    gw[(n * 2 * G + G + grp) * plane + p] = grad_var / count;
  }
}

template <typename scalar_t, typename acc_t>
__global__ void patch_grad_kernel(const scalar_t* __restrict__ x, Strides4 xs, const acc_t* __restrict__ gw,
                                  int64_t N, int64_t G, int64_t Cg, int64_t H, int64_t W, int64_t Ho, int64_t Wo,
                                  Window win, scalar_t* __restrict__ gx, Strides4 gs) {
  const int64_t plane = H * W;
  GENNORM_GRID_STRIDE_LOOP(i, N * G * plane) {
    const int64_t w = i % W, h = (i / W) % H, grp = (i / plane) % G, n = i / (plane * G);
    const acc_t* q1 = gw + (n * 2 * G + grp) * Ho * Wo;
    const acc_t* q2 = q1 + G * Ho * Wo;
    acc_t g1 = 0, g2 = 0;
    // Windows (ho, wo) whose tap (a, b) lands on (h, w): h = ho*sh + a*dh, w = wo*sw + b*dw.
    for (int64_t a = 0; a < win.kh; ++a) {
      const int64_t t = h - a * win.dh;
      if (t < 0) break;
      if (t % win.sh) continue;
      const int64_t ho = t / win.sh;
      if (ho >= Ho) continue;
      for (int64_t b = 0; b < win.kw; ++b) {
        const int64_t u = w - b * win.dw;
        if (u < 0) break;
        if (u % win.sw) continue;
        const int64_t wo = u / win.sw;
        if (wo >= Wo) continue;
        g1 += q1[ho * Wo + wo];
        g2 += q2[ho * Wo + wo];
      }
    }
    const scalar_t* xp = x + offset(xs, n, grp * Cg, h, w);
    scalar_t* gp = gx + offset(gs, n, grp * Cg, h, w);
    for (int64_t c = 0; c < Cg; ++c) {
      gp[c * gs.c] = static_cast<scalar_t>(g1 + acc_t(2) * static_cast<acc_t>(xp[c * xs.c]) * g2);
    }
  }
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> patch_moments_cuda(const at::Tensor& x, at::IntArrayRef kernel_size,
                                                      at::IntArrayRef stride, at::IntArrayRef dilation, int64_t groups,
                                                      double eps) {
  auto [ho, wo] = check_patch_moments(x, kernel_size, stride, dilation, groups);
  TORCH_CHECK(GENNORM_ON_DEVICE(x), "gennorm::patch_moments (CUDA kernel): x must be a CUDA tensor, got ", x.device());
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), G = groups;
  const auto acc = accumulation_type(x.scalar_type());
  auto opts = x.options().dtype(acc);
  auto mean = at::empty({N, G, ho, wo}, opts), rstd = at::empty({N, G, ho, wo}, opts);
  if (mean.numel() == 0) return {mean, rstd};
  auto ws = at::empty({N, 2 * G, H, W}, opts);  // [N, 2g, Hp, Wp] channel sums of x and x^2
  const Window win = window_of(kernel_size, stride, dilation);
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "gennorm_patch_moments", [&] {
    using acc_t = typename Acc<scalar_t>::type;
    auto sums_kernel = channel_sums_kernel<scalar_t, acc_t>;
    GENNORM_LAUNCH(sums_kernel, blocks_for(N * G * H * W), kThreads, stream,
        x.const_data_ptr<scalar_t>(), strides_of(x), N, G, C / G, H, W, ws.mutable_data_ptr<acc_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const acc_t count = static_cast<acc_t>(C / G * win.kh * win.kw);
    auto moments_kernel = window_moments_kernel<acc_t>;
    GENNORM_LAUNCH(moments_kernel, blocks_for(mean.numel()), kThreads, stream,
        ws.const_data_ptr<acc_t>(), N, G, H, W, ho, wo, win, count, static_cast<acc_t>(eps),
        mean.mutable_data_ptr<acc_t>(), rstd.mutable_data_ptr<acc_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {mean, rstd};
}

at::Tensor patch_moments_backward_cuda(const at::Tensor& grad_mean, const at::Tensor& grad_rstd, const at::Tensor& x,
                                       const at::Tensor& mean, const at::Tensor& rstd, at::IntArrayRef kernel_size,
                                       at::IntArrayRef stride, at::IntArrayRef dilation, int64_t groups) {
  check_patch_moments_backward(grad_mean, grad_rstd, x, mean, rstd, kernel_size, stride, dilation, groups);
  TORCH_CHECK(GENNORM_ON_DEVICE(x), "gennorm::patch_moments_backward (CUDA kernel): x must be a CUDA tensor, got ", x.device());
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), G = groups;
  const int64_t ho = mean.size(2), wo = mean.size(3);
  auto grad_x = at::empty_like(x);  // same layout as x (the fake kernel says so too)
  if (grad_x.numel() == 0) return grad_x;
  if (mean.numel() == 0) return grad_x.zero_();
  // The small [N, g, Ho, Wo] statistics are made contiguous in the statistics dtype (cheap).
  const auto acc = stats_type(mean);
  auto gm = grad_mean.to(acc).contiguous(), gr = grad_rstd.to(acc).contiguous();
  auto mu = mean.to(acc).contiguous(), rs = rstd.to(acc).contiguous();
  auto gw = at::empty({N, 2 * G, ho, wo}, x.options().dtype(acc));  // [N, 2g, Ho, Wo]
  const Window win = window_of(kernel_size, stride, dilation);
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(acc, "gennorm_patch_moments_backward_stats", [&] {
    using acc_t = scalar_t;
    const acc_t count = static_cast<acc_t>(C / G * win.kh * win.kw);
    auto grads_kernel = window_grads_kernel<acc_t>;
    GENNORM_LAUNCH(grads_kernel, blocks_for(mu.numel()), kThreads, stream,
        gm.const_data_ptr<acc_t>(), gr.const_data_ptr<acc_t>(), mu.const_data_ptr<acc_t>(),
        rs.const_data_ptr<acc_t>(), N, G, ho * wo, count, gw.mutable_data_ptr<acc_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "gennorm_patch_moments_backward", [&] {
      auto grad_kernel = patch_grad_kernel<scalar_t, acc_t>;
      GENNORM_LAUNCH(grad_kernel, blocks_for(N * G * H * W), kThreads, stream,
          x.const_data_ptr<scalar_t>(), strides_of(x), gw.const_data_ptr<acc_t>(), N, G, C / G, H, W, ho, wo, win,
          grad_x.mutable_data_ptr<scalar_t>(), strides_of(grad_x));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return grad_x;
}

}  // namespace gennorm
