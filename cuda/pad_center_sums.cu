// pad_center_sums and pad_center_sums_backward on CUDA (contract sections 1 and 4).
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
#include "kernels.cuh"

namespace gennorm {

std::tuple<at::Tensor, at::Tensor> pad_center_sums_cuda(const at::Tensor& x, at::IntArrayRef pad,
                                                        c10::string_view mode, int64_t groups) {
  const int m = check_pad_center_sums(x, pad, mode, groups);
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t left = pad[0], right = pad[1], top = pad[2], bottom = pad[3];
  const int64_t Hp = H + top + bottom, Wp = W + left + right;
  const auto format = is_channels_last(x) ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  auto xc = at::empty({N, C, Hp, Wp}, x.options().memory_format(format));
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
  const auto format = is_channels_last(xc) ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  auto grad_x = at::empty({xc.size(0), xc.size(1), H, W}, xc.options().memory_format(format));
  if (grad_x.numel() == 0) return grad_x;
  // The small window gradients in acc, contiguous; grad_xc normally has xc's dtype already.
  auto gw = grad_window.to(accumulation_type(xc.scalar_type())).contiguous();
  auto grad_xc = grad_xc_in.to(xc.scalar_type());
  launch_gather(grad_xc, xc, gw, grad_x, groups, kernel_size, stride, dilation, left, right, top, bottom, m);
  return grad_x;
}

}  // namespace gennorm
