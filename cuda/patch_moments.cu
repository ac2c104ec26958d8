// patch_moments and patch_moments_backward on CUDA (PONO, KernelNorm2d): mean and rstd of every
// (C/g) x kh x kw window of an already padded x [N, C, Hp, Wp], and the gradient back to x. The same
// kernels as pad_center_sums / window_epilogue (kernels.cuh), without padding, shift or epilogue.
//
// Sizes: x of element size b bytes (acc: 4 bytes, 8 for float64), g groups, windows Ho x Wo.
//
// patch_moments: 2 launches (3 when the channels are chunked).
//   sums_nchw_kernel / sums_nhwc_kernel (pad_center_sums.cu): per-group channel sums of x and x^2
//     into a workspace [N, 2g, Hp, Wp] (acc): pixel segments x channel chunks in the grid (NCHW,
//     16-byte runs along rows, warps over channels, shared-memory fold) or lanes over channels
//     (channels_last); fold_chunks_kernel adds per-chunk partials when the channels were split.
//   window_moments_kernel: one thread per (n, group, window): kh*kw taps of both planes.
//   Bytes: reads x N*C*Hp*Wp*b; writes + reads the workspace 2 * N*2g*Hp*Wp*acc; writes
//     2*N*g*Ho*Wo*acc. For C >> g one pass over x.
//
// patch_moments_backward: 3 launches.
//   moment_grads_kernel: grad_window [N, 2g, Ho, Wo] = the gradients of the two window sums
//     (tiny); window_transpose_kernel: G [N, 2g, Hp, Wp] (tiny); gather_nchw_kernel /
//     gather_nhwc_kernel (pad_center_sums.cu) with no padding and no conv gradient:
//     grad_x = G1 + 2 x G2. Bytes: reads x, writes grad_x (2 * N*C*Hp*Wp*b) + the small planes.
#include "kernels.cuh"

namespace gennorm {

std::tuple<at::Tensor, at::Tensor> patch_moments_cuda(const at::Tensor& x, at::IntArrayRef kernel_size,
                                                      at::IntArrayRef stride, at::IntArrayRef dilation, int64_t groups,
                                                      double eps) {
  auto [ho, wo] = check_patch_moments(x, kernel_size, stride, dilation, groups);
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t N = x.size(0), C = x.size(1), Hp = x.size(2), Wp = x.size(3), G = groups;
  const auto acc = accumulation_type(x.scalar_type());
  auto opts = x.options().dtype(acc);
  auto mean = at::empty({N, G, ho, wo}, opts), rstd = at::empty({N, G, ho, wo}, opts);
  if (mean.numel() == 0) return {mean, rstd};
  auto sums = at::empty({N, 2 * G, Hp, Wp}, opts);
  if (C == 0) {
    sums.zero_();
  } else {
    launch_channel_sums(x, at::Tensor(), sums, G, 0, 0, kZeros, /*center=*/false);
  }
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(acc, "gennorm_patch_moments", [&] {
    using A = scalar_t;
    const A count = static_cast<A>(C / G * kernel_size[0] * kernel_size[1]);
    const bool small = fits_int32({&sums, &mean}, {mean.numel() + int64_t(kThreads) * tuning().max_blocks});
    dispatch_index(small, [&](auto tag) {
      using I = decltype(tag);
      auto kernel = window_moments_kernel<A, I>;
      GENNORM_LAUNCH(kernel, grid_for_threads(mean.numel()), kThreads, stream, sums.const_data_ptr<A>(), I(N), I(G),
                     I(Hp), I(Wp), I(ho), I(wo), window_of<I>(kernel_size, stride, dilation), count,
                     static_cast<A>(eps), mean.mutable_data_ptr<A>(), rstd.mutable_data_ptr<A>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return {mean, rstd};
}

at::Tensor patch_moments_backward_cuda(const at::Tensor& grad_mean, const at::Tensor& grad_rstd, const at::Tensor& x,
                                       const at::Tensor& mean, const at::Tensor& rstd, at::IntArrayRef kernel_size,
                                       at::IntArrayRef stride, at::IntArrayRef dilation, int64_t groups) {
  check_patch_moments_backward(grad_mean, grad_rstd, x, mean, rstd, kernel_size, stride, dilation, groups);
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t N = x.size(0), C = x.size(1), G = groups, ho = mean.size(2), wo = mean.size(3);
  auto grad_x = at::empty_like(x);  // x's layout
  if (grad_x.numel() == 0) return grad_x;
  const auto acc = accumulation_type(x.scalar_type());
  auto gm = grad_mean.to(acc).contiguous(), gr = grad_rstd.to(acc).contiguous();
  auto mu = mean.to(acc).contiguous(), rs = rstd.to(acc).contiguous();
  auto gw = at::empty({N, 2 * G, ho, wo}, x.options().dtype(acc));
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(acc, "gennorm_patch_moments_backward", [&] {
    using A = scalar_t;
    const A count = static_cast<A>(C / G * kernel_size[0] * kernel_size[1]);
    const bool small = fits_int32({&gw}, {gw.numel() + int64_t(kThreads) * tuning().max_blocks});
    dispatch_index(small, [&](auto tag) {
      using I = decltype(tag);
      auto kernel = moment_grads_kernel<A, I>;
      GENNORM_LAUNCH(kernel, grid_for_threads(mu.numel()), kThreads, stream, gm.const_data_ptr<A>(),
                     gr.const_data_ptr<A>(), mu.const_data_ptr<A>(), rs.const_data_ptr<A>(), I(N), I(G), I(ho * wo),
                     count, gw.mutable_data_ptr<A>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  launch_gather(at::Tensor(), x, gw, grad_x, G, kernel_size, stride, dilation, 0, 0, 0, 0, kZeros);
  return grad_x;
}

}  // namespace gennorm
