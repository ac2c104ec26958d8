// torch.ops.gennorm.*: the shared op's schemas, its CPU kernels and (with GENNORM_WITH_CUDA) the
// registration of the CUDA kernels in patch_moments.cu / moment_epilogue.cu.
//
// The CPU kernels are the reference math of gennorm/ops/reference.py written with ATen ops (the
// straightforward form of each formula; they agree with the Python reference to rounding). They
// are the kernels a CPU tensor gets when the compiled library is loaded.
//
// The same file builds without nvcc: gennorm/ops/extension.py passes -DGENNORM_WITH_CUDA only
// when it also compiles the .cu files. Autograd and fake (meta) kernels are registered from
// Python (gennorm/ops/library.py), once, for both builds.
#include "gennorm_ops.h"

#include <torch/library.h>

namespace gennorm {
namespace {

constexpr int64_t kZeros[2] = {0, 0};
const at::IntArrayRef kNoPadding(kZeros, 2);

// Sum of each window over the last two dims: t [N, G, Hp, Wp] -> [N, G, Ho, Wo].
at::Tensor window_sum(const at::Tensor& t, at::IntArrayRef k, at::IntArrayRef s, at::IntArrayRef d) {
  if (k[0] == 1 && k[1] == 1) {
    return t.slice(2, 0, c10::nullopt, s[0]).slice(3, 0, c10::nullopt, s[1]);
  }
  if (d[0] == 1 && d[1] == 1) {
    return at::avg_pool2d(t, k, s) * static_cast<double>(k[0] * k[1]);  // fastest box filter; undo its division
  }
  auto ones = at::ones({t.size(1), 1, k[0], k[1]}, t.options());
  return at::conv2d(t, ones, c10::nullopt, s, kNoPadding, d, t.size(1));
}

// Adjoint of window_sum: [N, G, Ho, Wo] -> [N, G, Hp, Wp]; rows/columns past the last window get 0.
at::Tensor window_sum_transposed(const at::Tensor& g, int64_t hp, int64_t wp, at::IntArrayRef k, at::IntArrayRef s,
                                 at::IntArrayRef d) {
  const int64_t extra_h = hp - ((g.size(2) - 1) * s[0] + d[0] * (k[0] - 1) + 1);
  const int64_t extra_w = wp - ((g.size(3) - 1) * s[1] + d[1] * (k[1] - 1) + 1);
  auto ones = at::ones({g.size(1), 1, k[0], k[1]}, g.options());
  auto out = at::conv_transpose2d(g, ones, c10::nullopt, s, kNoPadding, /*output_padding=*/kNoPadding, g.size(1), d);
  return (extra_h || extra_w) ? at::constant_pad_nd(out, {0, extra_w, 0, extra_h}) : out;
}

at::Tensor grouped(const at::Tensor& t, int64_t groups) {  // [N, O, H, W] -> [N, g, O/g, H, W]
  return t.unflatten(1, {groups, t.size(1) / groups});
}

std::tuple<at::Tensor, at::Tensor> patch_moments_cpu(const at::Tensor& x, at::IntArrayRef kernel_size,
                                                     at::IntArrayRef stride, at::IntArrayRef dilation, int64_t groups,
                                                     double eps) {
  check_patch_moments(x, kernel_size, stride, dilation, groups);
  const int64_t count = x.size(1) / groups * kernel_size[0] * kernel_size[1];
  auto xa = grouped(x.to(accumulation_type(x.scalar_type())), groups);  // [N, g, C/g, Hp, Wp]
  auto sums = at::cat({xa.sum(2), xa.square().sum(2)}, 1);                // [N, 2g, Hp, Wp]
  auto window = window_sum(sums, kernel_size, stride, dilation) / static_cast<double>(count);  // [N, 2g, Ho, Wo]
  auto mean = window.slice(1, 0, groups);
  auto var = (window.slice(1, groups, 2 * groups) - mean.square()).clamp_min(0);
  return {mean.contiguous(), (var + eps).rsqrt().contiguous()};
}

at::Tensor patch_moments_backward_cpu(const at::Tensor& grad_mean, const at::Tensor& grad_rstd, const at::Tensor& x,
                                      const at::Tensor& mean, const at::Tensor& rstd, at::IntArrayRef kernel_size,
                                      at::IntArrayRef stride, at::IntArrayRef dilation, int64_t groups) {
  check_patch_moments_backward(grad_mean, grad_rstd, x, mean, rstd, kernel_size, stride, dilation, groups);
  const double count = static_cast<double>(x.size(1) / groups * kernel_size[0] * kernel_size[1]);
  auto grad_var = -0.5 * grad_rstd * rstd.pow(3);  // d rstd / d var = -rstd^3 / 2
  auto grad_s1 = (grad_mean - 2 * mean * grad_var) / count;  // var = E[x^2] - mean^2
  auto grad_s2 = grad_var / count;
  auto both = window_sum_transposed(at::cat({grad_s1, grad_s2}, 1), x.size(2), x.size(3), kernel_size, stride,
                                    dilation);  // [N, 2g, Hp, Wp]
  auto g1 = both.slice(1, 0, groups).unsqueeze(2), g2 = both.slice(1, groups, 2 * groups).unsqueeze(2);
  auto xa = grouped(x.to(mean.scalar_type()), groups);
  return at::empty_like(x).copy_((g1 + 2 * xa * g2).flatten(1, 2));
}

at::Tensor moment_epilogue_cpu(const at::Tensor& y, const at::Tensor& mean, const at::Tensor& rstd, const at::Tensor& S,
                               const c10::optional<at::Tensor>& bias) {
  check_moment_epilogue(y, mean, rstd, S, bias);
  const int64_t o = y.size(1), g = mean.size(1);
  auto yg = grouped(y, g).to(mean.scalar_type());
  auto out = ((yg - mean.unsqueeze(2) * S.view({g, o / g, 1, 1}).to(mean.scalar_type())) * rstd.unsqueeze(2)).flatten(1, 2);
  if (bias.has_value() && bias->defined()) {
    out = out + bias->view({1, o, 1, 1}).to(out.scalar_type());
  }
  return at::empty_like(y).copy_(out);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> moment_epilogue_backward_cpu(
    const at::Tensor& grad_out, const at::Tensor& y, const at::Tensor& mean, const at::Tensor& rstd,
    const at::Tensor& S) {
  check_moment_epilogue_backward(grad_out, y, mean, rstd, S);
  const int64_t o = y.size(1), g = mean.size(1);
  const auto acc = mean.scalar_type();
  auto go = grouped(grad_out, g).to(acc);  // [N, g, O/g, H, W]
  auto rs = rstd.unsqueeze(2), mu = mean.unsqueeze(2);
  auto Sg = S.view({g, o / g, 1, 1}).to(acc);
  auto go_rs = go * rs;
  auto grad_y = at::empty_like(y).copy_(go_rs.flatten(1, 2));
  auto grad_mean = at::empty_like(mean).copy_(-(go_rs * Sg).sum(2));
  auto grad_rstd = at::empty_like(rstd).copy_((go * (grouped(y, g).to(acc) - mu * Sg)).sum(2));
  auto grad_S = at::empty_like(S).copy_(-(go_rs * mu).sum({0, 3, 4}).flatten());
  auto grad_bias = at::empty_like(S).copy_(go.sum({0, 3, 4}).flatten());
  return {grad_y, grad_mean, grad_rstd, grad_S, grad_bias};
}

}  // namespace

// Keep these strings identical to SCHEMAS in gennorm/ops/library.py (tests compare them).
TORCH_LIBRARY(gennorm, m) {
  m.def("patch_moments(Tensor x, int[2] kernel_size, int[2] stride, int[2] dilation, int groups, float eps) -> (Tensor, Tensor)");
  m.def("patch_moments_backward(Tensor grad_mean, Tensor grad_rstd, Tensor x, Tensor mean, Tensor rstd, int[2] kernel_size, int[2] stride, int[2] dilation, int groups) -> Tensor");
  m.def("moment_epilogue(Tensor y, Tensor mean, Tensor rstd, Tensor S, Tensor? bias) -> Tensor");
  m.def("moment_epilogue_backward(Tensor grad_out, Tensor y, Tensor mean, Tensor rstd, Tensor S) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(gennorm, CPU, m) {
  m.impl("patch_moments", &patch_moments_cpu);
  m.impl("patch_moments_backward", &patch_moments_backward_cpu);
  m.impl("moment_epilogue", &moment_epilogue_cpu);
  m.impl("moment_epilogue_backward", &moment_epilogue_backward_cpu);
}

#ifdef GENNORM_WITH_CUDA
TORCH_LIBRARY_IMPL(gennorm, CUDA, m) {
  m.impl("patch_moments", &patch_moments_cuda);
  m.impl("patch_moments_backward", &patch_moments_backward_cuda);
  m.impl("moment_epilogue", &moment_epilogue_cuda);
  m.impl("moment_epilogue_backward", &moment_epilogue_backward_cuda);
}
#endif

}  // namespace gennorm
