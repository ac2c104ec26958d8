// pad_center_sums, pad_center_sums_backward, patch_moments, patch_moments_backward on CUDA.
// (docs/SPEC.md 5.1, ops 1 and 4)
//
// Sizes: x [N, C, H, W] of element size b bytes (acc: 4 bytes, 8 for float64), g groups, Cg = C / g,
// padded Hp x Wp, windows Ho x Wo. Blocks are 256 threads; V = 16 / b elements per vector.
//
// pad_center_sums: 1 launch (2 when the channels are chunked, see below).
//   NCHW (x any strides, xc contiguous), sums_nchw_kernel: block item = (n, group, channel chunk,
//     tile of 32 V-wide segments of padded rows), looped with a block stride. Warp 0 first computes
//     the group's shift c (centre pixel, butterfly sum, the same on every block). Lane = a segment;
//     the 8 warps take every 8th channel of the chunk: read the source pixels by index arithmetic
//     (reflect / replicate / circular / zeros, no padded copy; one 16-byte load when the segment is
//     interior and aligned: segments are phased so that input column 0 starts one), write xc =
//     round(x - c) and add xc, xc^2 per pixel; the 8 warps' sums are folded in warp order in shared
//     memory. When N*g*tiles blocks would not fill the GPU (4 x SMs), the channels are split into
//     chunks of >= 32 (more blocks); the per-chunk partials [chunks, N, 2g, Hp, Wp] are then added in
//     chunk order by fold_chunks_kernel (second launch).
//   NHWC (xc channels_last), sums_nhwc_kernel: a slot of L = pow2(Cg / V) <= 32 lanes per
//     (n, padded pixel, group); lanes over the group's contiguous channels (16-byte runs), butterfly
//     sums within the slot; every slot recomputes its group's shift from the centre pixel (L1/L2 hits).
//   Bytes: reads N*C*H*W*b (+ the centre pixel), writes N*C*Hp*Wp*b (xc) + N*2g*Hp*Wp*acc (sums);
//     chunked: + 2 * chunks*N*2g*Hp*Wp*acc for the partials.
//
// pad_center_sums_backward: 2 launches.
//   window_transpose_kernel: G [N, 2g, Hp, Wp] = transposed window sums of grad_window, one thread
//     per position (kh*kw taps from grad_window, L2 hits). Reads/writes ~2g/C of the big tensors.
//   gather_nchw_kernel: one thread per (n, group, 8 channels, input row, V-wide segment; phased so
//     that the padded reads are aligned): pixels with one padded preimage (all but the border rows /
//     columns that reflect / replicate / circular copy) load G1, G2 once and then per channel one run
//     of grad_xc and xc and write grad_x = grad_xc + G1 + 2 xc G2; border pixels add up every
//     preimage (the adjoint of the padding) element by element.
//   gather_nhwc_kernel (grad_x channels_last): one thread per (pixel, V channels).
//   Bytes: reads grad_xc and xc (2 * N*C*Hp*Wp*b, the border ones twice), writes grad_x N*C*H*W*b,
//     plus G (N*2g*Hp*Wp*acc written, read once per 8 channels, mostly from L2).
//
// patch_moments and patch_moments_backward (PONO, KernelNorm2d): mean and rstd of every
// (C/g) x kh x kw window of an already padded x [N, C, Hp, Wp], and the gradient back to x. The same
// kernels as pad_center_sums above and window_epilogue (kernels.cuh), without padding, shift or epilogue.
//
// Sizes: x of element size b bytes (acc: 4 bytes, 8 for float64), g groups, windows Ho x Wo.
//
// patch_moments: 2 launches (3 when the channels are chunked).
//   sums_nchw_kernel / sums_nhwc_kernel (above): per-group channel sums of x and x^2
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
//     gather_nhwc_kernel (above) with no padding and no conv gradient:
//     grad_x = G1 + 2 x G2. Bytes: reads x, writes grad_x (2 * N*C*Hp*Wp*b) + the small planes.
//
// (One translation unit for both: they share the channel-sum and gather kernels, compiled once.)
#include "kernels.cuh"

namespace gennorm {

std::tuple<at::Tensor, at::Tensor> pad_center_sums_cuda(const at::Tensor& x, at::IntArrayRef pad,
                                                        c10::string_view mode, int64_t groups) {
  const int m = check_pad_center_sums(x, pad, mode, groups);
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t left = pad[0], right = pad[1], top = pad[2], bottom = pad[3];
  const int64_t Hp = H + top + bottom, Wp = W + left + right;
  auto xc = at::empty({N, C, Hp, Wp}, x.options().memory_format(format_of(x)));
  auto sums = at::empty({N, 2 * groups, Hp, Wp}, x.options().dtype(accumulation_type(x.scalar_type())));
  if (xc.numel() == 0) return {xc, sums.zero_()};
  launch_channel_sums(x, xc, sums, groups, top, left, m, /*center=*/true);
  return {xc, sums};
}

at::Tensor pad_center_sums_backward_cuda(const at::Tensor& grad_xc_in, const at::Tensor& xc,
                                         const at::Tensor& grad_window, at::IntArrayRef kernel_size,
                                         at::IntArrayRef stride, at::IntArrayRef dilation, at::IntArrayRef pad,
                                         c10::string_view mode, int64_t groups) {
  const int m = check_pad_center_sums_backward(grad_xc_in, xc, grad_window, kernel_size, stride, dilation, pad, mode,
                                               groups);
  const c10::cuda::CUDAGuard guard(xc.device());
  const int64_t left = pad[0], right = pad[1], top = pad[2], bottom = pad[3];
  const int64_t H = xc.size(2) - top - bottom, W = xc.size(3) - left - right;
  auto grad_x = at::empty({xc.size(0), xc.size(1), H, W}, xc.options().memory_format(format_of(xc)));
  if (grad_x.numel() == 0) return grad_x;
  // The small window gradients in acc, contiguous; grad_xc normally has xc's dtype already.
  auto gw = grad_window.to(accumulation_type(xc.scalar_type())).contiguous();
  auto grad_xc = grad_xc_in.to(xc.scalar_type());
  launch_gather(grad_xc, xc, gw, grad_x, groups, kernel_size, stride, dilation, left, right, top, bottom, m);
  return grad_x;
}

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
