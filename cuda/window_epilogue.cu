// window_epilogue and window_epilogue_backward on CUDA (contract sections 2 and 3).
//
// Sizes: y [N, O, Ho, Wo] of element size b bytes (acc: 4 bytes, 8 for float64), g groups,
// Og = O / g, sums [N, 2g, Hp, Wp], window kh x kw. Blocks are 256 threads; V = 16 / b.
//
// window_epilogue: 1 launch.
//   NCHW (y any strides but channels_last; out contiguous), epilogue_nchw_kernel: block item =
//     (n, group, channel chunk, tile of 32 V-wide segments of output rows), block-stride loop. The
//     block computes the tile's mean / rstd from the kh*kw taps of the two sum planes (L1/L2 hits) into
//     shared memory (the chunk-0 block writes mean, rstd), then each warp takes every 8th channel:
//     one 16-byte run of y in, (y - mean S[o]) rstd + bias[o] out. Channels are chunked (>= 32 per
//     chunk) only when N*g*tiles blocks would not fill the GPU; each chunk recomputes the statistics.
//   NHWC (y channels_last), epilogue_nhwc_kernel: a slot of L = pow2(Og / V) <= 32 lanes per
//     (n, pixel, group): the lanes split the taps (butterfly sum), then the group's channels.
//   Bytes: reads y N*O*Ho*Wo*b, writes out the same, writes mean + rstd 2*N*g*Ho*Wo*acc, reads the
//     sums (N*2g*Hp*Wp*acc once from DRAM; the kh*kw-fold tap re-reads hit the caches).
//
// window_epilogue_backward: 2 launches (the main kernel, then a tiny fold).
//   NCHW, epilogue_grad_nchw_kernel: block item as in the forward. Per warp and channel: reads runs of
//     grad_out and y, writes grad_y = grad_out rstd, adds the pixel sums A = sum_o grad_out S[o] and
//     B = sum_o grad_out (y - mean S[o]) in registers, and reduces the channel's
//     sum grad_out rstd mean and sum grad_out over its 32 lanes into one partial per (channel, n, tile)
//     (no atomics). A, B are folded over the warps in shared memory; with one chunk the kernel writes
//     grad_window directly, else per-chunk partials.
//   NHWC, epilogue_grad_nhwc_kernel: block item = (tile of 4 * 256/L pixels, group, chunk of L*V
//     channels); lanes own V channels and keep their channel sums in registers over the tile's pixels,
//     folded over the slots in shared memory; pixel sums by butterfly within the slot.
//   epilogue_grad_fold_kernel: one warp per channel adds its partials in order (grad_S = -sum,
//     grad_bias = sum); other blocks add per-chunk pixel sums in chunk order into grad_window.
//   Bytes: reads grad_out and y (2 * N*O*Ho*Wo*b), writes grad_y N*O*Ho*Wo*b; reads mean, rstd, writes
//     grad_window (4 * N*g*Ho*Wo*acc); partials 2*O*P*acc with P = N*Ho*Wo / (32 V) (NCHW) or
//     N*Ho*Wo / (4 * 256 / L) (NHWC): under 1/100 of y's bytes at 256 channels.
#include "kernels.cuh"

namespace gennorm {

std::tuple<at::Tensor, at::Tensor, at::Tensor> window_epilogue_cuda(
    const at::Tensor& y, const at::Tensor& sums_in, const at::Tensor& S_in, const c10::optional<at::Tensor>& bias_in,
    at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef dilation, int64_t cg, double eps) {
  const int64_t G = check_window_epilogue(y, sums_in, S_in, bias_in, kernel_size, stride, dilation, cg, eps);
  const c10::cuda::CUDAGuard guard(y.device());
  const int64_t N = y.size(0), O = y.size(1), Ho = y.size(2), Wo = y.size(3), Og = O / G;
  const int64_t Hp = sums_in.size(2), Wp = sums_in.size(3);
  const auto acc = accumulation_type(y.scalar_type());
  auto out = at::empty(y.sizes(), y.options().memory_format(format_of(y)));
  auto mean = at::empty({N, G, Ho, Wo}, y.options().dtype(acc));
  auto rstd = at::empty({N, G, Ho, Wo}, y.options().dtype(acc));
  if (mean.numel() == 0) return {out, mean, rstd};
  // The small inputs in acc, contiguous (no-ops when they already are).
  auto sums = sums_in.to(acc).contiguous(), S = S_in.to(acc).contiguous();
  const bool has_bias = bias_in.has_value() && bias_in->defined();
  auto bias = has_bias ? bias_in->to(acc).contiguous() : at::Tensor();
  const bool nhwc = is_channels_last(y) && is_channels_last(out);
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, y.scalar_type(), "gennorm_window_epilogue", [&] {
    using A = typename Acc<scalar_t>::type;
    constexpr int V = vec_of<scalar_t>();
    const A count = static_cast<A>(cg * kernel_size[0] * kernel_size[1]);
    const int L = pow2_at_least((Og + V - 1) / V, kWarp);
    const int64_t nseg = segments<int64_t>(Wo, V, 0);
    const int64_t tiles = (Ho * nseg + kWarp - 1) / kWarp;
    const int64_t chunk = nhwc ? 1 : chunk_size(Og, N * G * tiles, y);
    const int64_t chunks = nhwc ? 1 : std::max<int64_t>(1, (Og + chunk - 1) / chunk);
    const int64_t per_block = int64_t(kWarps) * (kWarp / L);
    const int64_t tasks = N * Ho * Wo * G;
    const bool small = fits_int32({&y, &out, &sums, &mean}, {N * G * chunks * tiles, tasks + per_block * tuning().max_blocks});
    dispatch_index(small, [&](auto tag) {
      using I = decltype(tag);
      EpilogueArgs<scalar_t, I> a{y.const_data_ptr<scalar_t>(), strides_of<I>(y), out.mutable_data_ptr<scalar_t>(),
                                  strides_of<I>(out), sums.const_data_ptr<A>(), S.const_data_ptr<A>(),
                                  has_bias ? bias.const_data_ptr<A>() : nullptr, mean.mutable_data_ptr<A>(),
                                  rstd.mutable_data_ptr<A>(), I(N), I(O), I(G), I(Og), I(Ho), I(Wo), I(Hp), I(Wp),
                                  window_of<I>(kernel_size, stride, dilation), count, static_cast<A>(eps),
                                  I(chunk), I(chunks), I(tiles), I(nseg)};
      if (nhwc) {
        auto kernel = epilogue_nhwc_kernel<scalar_t, I>;
        GENNORM_LAUNCH(kernel, grid_for((tasks + per_block - 1) / per_block), kThreads, stream, a, L);
      } else {
        auto kernel = epilogue_nchw_kernel<scalar_t, I>;
        GENNORM_LAUNCH(kernel, grid_for(N * G * chunks * tiles), kThreads, stream, a);
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  if (sums_in.scalar_type() != acc) {  // the statistics follow sums' dtype (acc when it comes from pad_center_sums)
    return {out, mean.to(sums_in.scalar_type()), rstd.to(sums_in.scalar_type())};
  }
  return {out, mean, rstd};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> window_epilogue_backward_cuda(
    const at::Tensor& grad_out_in, const at::Tensor& y, const at::Tensor& mean_in, const at::Tensor& rstd_in,
    const at::Tensor& S_in, int64_t cg, at::IntArrayRef kernel_size) {
  const int64_t G = check_window_epilogue_backward(grad_out_in, y, mean_in, rstd_in, S_in, cg, kernel_size);
  const c10::cuda::CUDAGuard guard(y.device());
  const int64_t N = y.size(0), O = y.size(1), Ho = y.size(2), Wo = y.size(3), Og = O / G, hw = Ho * Wo;
  const auto acc = accumulation_type(y.scalar_type());
  auto grad_y = at::empty(y.sizes(), y.options().memory_format(format_of(y)));
  auto grad_window = at::empty({N, 2 * G, Ho, Wo}, y.options().dtype(acc));
  auto grad_S = at::empty({O}, y.options().dtype(acc));
  auto grad_bias = at::empty({O}, y.options().dtype(acc));
  if (N * hw == 0 || O == 0) return {grad_y, grad_window.zero_(), grad_S.zero_(), grad_bias.zero_()};
  auto grad_out = grad_out_in.to(y.scalar_type());  // normally a no-op
  auto mean = mean_in.to(acc).contiguous(), rstd = rstd_in.to(acc).contiguous(), S = S_in.to(acc).contiguous();
  // NHWC kernel when the big tensors are channels_last (grad_y follows y).
  const bool nhwc = is_channels_last(y) && is_channels_last(grad_y) && is_channels_last(grad_out);
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, y.scalar_type(), "gennorm_window_epilogue_backward", [&] {
    using A = typename Acc<scalar_t>::type;
    constexpr int V = vec_of<scalar_t>();
    const A count = static_cast<A>(cg * kernel_size[0] * kernel_size[1]);
    int64_t chunk = 1, chunks = 1, tiles = 0, nseg = 0, P = 0, items = 0;
    const int L = pow2_at_least((Og + V - 1) / V, kWarp);
    if (nhwc) {
      const int64_t cw = int64_t(L) * V;
      chunks = std::max<int64_t>(1, (Og + cw - 1) / cw);
      tiles = (N * hw + kPixelsPerSlot * (kThreads / L) - 1) / (kPixelsPerSlot * (kThreads / L));
      P = tiles;
      items = tiles * G * chunks;
    } else {
      nseg = segments<int64_t>(Wo, V, 0);
      tiles = (Ho * nseg + kWarp - 1) / kWarp;
      chunk = chunk_size(Og, N * G * tiles, y);
      chunks = std::max<int64_t>(1, (Og + chunk - 1) / chunk);
      P = N * tiles;
      items = N * G * chunks * tiles;
    }
    auto chan = at::empty({2, O, P}, mean.options());
    auto pix = chunks > 1 ? at::empty({chunks, N, 2, G, hw}, mean.options()) : at::Tensor();
    const int64_t chan_blocks = std::max<int64_t>(1, std::min<int64_t>((O + kWarps - 1) / kWarps, tuning().max_blocks));
    const int64_t pix_blocks = chunks > 1 ? grid_for_threads(N * G * hw) : 0;
    const bool small = fits_int32({&grad_out, &y, &grad_y, &chan, &pix, &grad_window},
                                  {items, N * G * hw + int64_t(kThreads) * tuning().max_blocks});
    dispatch_index(small, [&](auto tag) {
      using I = decltype(tag);
      EpilogueGradArgs<scalar_t, I> a{grad_out.const_data_ptr<scalar_t>(), strides_of<I>(grad_out),
                                      y.const_data_ptr<scalar_t>(), strides_of<I>(y),
                                      grad_y.mutable_data_ptr<scalar_t>(), strides_of<I>(grad_y),
                                      mean.const_data_ptr<A>(), rstd.const_data_ptr<A>(), S.const_data_ptr<A>(),
                                      grad_window.mutable_data_ptr<A>(), chunks > 1 ? pix.mutable_data_ptr<A>() : nullptr,
                                      chan.mutable_data_ptr<A>(), I(N), I(O), I(G), I(Og), I(Ho), I(Wo), count,
                                      I(chunk), I(chunks), I(tiles), I(nseg), I(P)};
      if (nhwc) {
        auto kernel = epilogue_grad_nhwc_kernel<scalar_t, I>;
        GENNORM_LAUNCH(kernel, grid_for(items), kThreads, stream, a, L);
      } else {
        auto kernel = epilogue_grad_nchw_kernel<scalar_t, I>;
        GENNORM_LAUNCH(kernel, grid_for(items), kThreads, stream, a);
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      auto fold = epilogue_grad_fold_kernel<A, I>;
      GENNORM_LAUNCH(fold, static_cast<unsigned int>(chan_blocks + pix_blocks), kThreads, stream,
                     chan.const_data_ptr<A>(), I(O), I(P), grad_S.mutable_data_ptr<A>(),
                     grad_bias.mutable_data_ptr<A>(), I(chan_blocks), chunks > 1 ? pix.const_data_ptr<A>() : nullptr,
                     I(chunks), I(N), I(G), I(hw), mean.const_data_ptr<A>(), rstd.const_data_ptr<A>(), count,
                     grad_window.mutable_data_ptr<A>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  if (mean_in.scalar_type() != acc) {  // the gradients follow mean's dtype (acc when it comes from window_epilogue)
    const auto t = mean_in.scalar_type();
    return {grad_y, grad_window.to(t), grad_S.to(t), grad_bias.to(t)};
  }
  return {grad_y, grad_window, grad_S, grad_bias};
}

}  // namespace gennorm
