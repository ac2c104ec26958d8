// The shared op of gennorm (SPEC.md section 5): declarations and argument checks shared by the
// CPU kernels (gennorm_ops.cpp) and the CUDA kernels (patch_moments.cu, moment_epilogue.cu).
//
//   patch_moments(x [N, C, Hp, Wp], kernel_size, stride, dilation, groups, eps) -> mean, rstd [N, g, Ho, Wo]
//   moment_epilogue(y [N, O, H, W], mean, rstd [N, g, H, W], S [O], bias [O]?) -> (y - mean * S) * rstd + bias
//
// The math (and its backward) is gennorm/ops/reference.py; every kernel here must agree with it.
// Output layouts match the fake kernels in gennorm/ops/library.py: mean/rstd contiguous,
// grad_x / out / grad_y `empty_like` the input (so channels_last stays channels_last).
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <tuple>

namespace gennorm {

// float16 / bfloat16 accumulate in float32; float32 and float64 keep their own precision.
inline at::ScalarType accumulation_type(at::ScalarType t) {
  return (t == at::kHalf || t == at::kBFloat16) ? at::kFloat : t;
}

inline int64_t output_size(int64_t size, int64_t kernel, int64_t stride, int64_t dilation) {
  return (size - dilation * (kernel - 1) - 1) / stride + 1;
}

// ---- argument checks (readable messages; the same on every device) -------------------------

inline void check_pair(at::IntArrayRef v, const char* name) {
  TORCH_CHECK(v.size() == 2, "gennorm::patch_moments: ", name, " must have 2 entries, got ", v.size());
  TORCH_CHECK(v[0] >= 1 && v[1] >= 1, "gennorm::patch_moments: ", name, " must be positive, got ", v);
}

inline void check_float(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(t.is_floating_point(), op, ": ", name,
              " must be a floating-point tensor (float32/float64/float16/bfloat16), got ", t.scalar_type());
}

inline void check_same_device(const at::Tensor& t, const at::Tensor& ref, const char* op, const char* name,
                              const char* ref_name) {
  TORCH_CHECK(t.device() == ref.device(), op, ": ", name, " is on ", t.device(), " but ", ref_name, " is on ",
              ref.device(), "; all inputs must be on the same device");
}

// Checks x and the window; returns {Ho, Wo}.
inline std::pair<int64_t, int64_t> check_patch_moments(const at::Tensor& x, at::IntArrayRef kernel_size,
                                                       at::IntArrayRef stride, at::IntArrayRef dilation,
                                                       int64_t groups) {
  const char* op = "gennorm::patch_moments";
  TORCH_CHECK(x.dim() == 4, op, ": x must have shape [N, C, H, W] (4 dims), got ", x.dim(), " dims: ", x.sizes());
  check_float(x, op, "x");
  check_pair(kernel_size, "kernel_size");
  check_pair(stride, "stride");
  check_pair(dilation, "dilation");
  TORCH_CHECK(groups >= 1, op, ": groups must be >= 1, got ", groups);
  TORCH_CHECK(x.size(1) % groups == 0, op, ": channels (", x.size(1), ") must be divisible by groups (", groups, ")");
  for (int axis = 0; axis < 2; ++axis) {
    const int64_t span = dilation[axis] * (kernel_size[axis] - 1) + 1;
    TORCH_CHECK(span <= x.size(2 + axis), op, ": kernel size ", kernel_size, " (dilation ", dilation,
                ") is larger than the padded input ", x.sizes().slice(2));
  }
  return {output_size(x.size(2), kernel_size[0], stride[0], dilation[0]),
          output_size(x.size(3), kernel_size[1], stride[1], dilation[1])};
}

inline void check_patch_moments_backward(const at::Tensor& grad_mean, const at::Tensor& grad_rstd, const at::Tensor& x,
                                         const at::Tensor& mean, const at::Tensor& rstd, at::IntArrayRef kernel_size,
                                         at::IntArrayRef stride, at::IntArrayRef dilation, int64_t groups) {
  const char* op = "gennorm::patch_moments_backward";
  auto [ho, wo] = check_patch_moments(x, kernel_size, stride, dilation, groups);
  const std::vector<int64_t> expected{x.size(0), groups, ho, wo};
  const std::pair<const at::Tensor*, const char*> stats[] = {
      {&grad_mean, "grad_mean"}, {&grad_rstd, "grad_rstd"}, {&mean, "mean"}, {&rstd, "rstd"}};
  for (const auto& [t, name] : stats) {
    check_float(*t, op, name);
    check_same_device(*t, x, op, name, "x");
    TORCH_CHECK(t->sizes() == at::IntArrayRef(expected), op, ": ", name, " must have shape ", at::IntArrayRef(expected),
                " (N, groups, Ho, Wo), got ", t->sizes());
  }
}

inline void check_moment_epilogue(const at::Tensor& y, const at::Tensor& mean, const at::Tensor& rstd,
                                  const at::Tensor& S, const c10::optional<at::Tensor>& bias,
                                  const char* op = "gennorm::moment_epilogue") {
  TORCH_CHECK(y.dim() == 4, op, ": y must have shape [N, O, H, W] (4 dims), got ", y.dim(), " dims: ", y.sizes());
  TORCH_CHECK(mean.dim() == 4, op, ": mean must have shape [N, g, H, W] (4 dims), got ", mean.sizes());
  TORCH_CHECK(mean.sizes() == rstd.sizes(), op, ": mean ", mean.sizes(), " and rstd ", rstd.sizes(),
              " must have the same shape");
  const int64_t o = y.size(1), g = mean.size(1);
  TORCH_CHECK(g >= 1 && mean.size(0) == y.size(0) && mean.size(2) == y.size(2) && mean.size(3) == y.size(3) &&
                  o % g == 0,
              op, ": mean ", mean.sizes(), " does not fit y ", y.sizes(), " (same N, H, W; O divisible by g)");
  TORCH_CHECK(S.dim() == 1 && S.size(0) == o, op, ": S must have shape [", o, "], got ", S.sizes());
  check_float(y, op, "y");
  check_float(mean, op, "mean");
  check_float(rstd, op, "rstd");
  check_float(S, op, "S");
  check_same_device(mean, y, op, "mean", "y");
  check_same_device(rstd, y, op, "rstd", "y");
  check_same_device(S, y, op, "S", "y");
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == o, op, ": bias must have shape [", o, "], got ", bias->sizes());
    check_float(*bias, op, "bias");
    check_same_device(*bias, y, op, "bias", "y");
  }
}

inline void check_moment_epilogue_backward(const at::Tensor& grad_out, const at::Tensor& y, const at::Tensor& mean,
                                           const at::Tensor& rstd, const at::Tensor& S) {
  const char* op = "gennorm::moment_epilogue_backward";
  check_moment_epilogue(y, mean, rstd, S, c10::nullopt, op);
  TORCH_CHECK(grad_out.sizes() == y.sizes(), op, ": grad_out ", grad_out.sizes(), " must have y's shape ", y.sizes());
  check_float(grad_out, op, "grad_out");
  check_same_device(grad_out, y, op, "grad_out", "y");
}

// ---- CUDA kernels (cuda/*.cu), registered by gennorm_ops.cpp when built with GENNORM_WITH_CUDA ----

std::tuple<at::Tensor, at::Tensor> patch_moments_cuda(const at::Tensor& x, at::IntArrayRef kernel_size,
                                                      at::IntArrayRef stride, at::IntArrayRef dilation, int64_t groups,
                                                      double eps);
at::Tensor patch_moments_backward_cuda(const at::Tensor& grad_mean, const at::Tensor& grad_rstd, const at::Tensor& x,
                                       const at::Tensor& mean, const at::Tensor& rstd, at::IntArrayRef kernel_size,
                                       at::IntArrayRef stride, at::IntArrayRef dilation, int64_t groups);
at::Tensor moment_epilogue_cuda(const at::Tensor& y, const at::Tensor& mean, const at::Tensor& rstd,
                                const at::Tensor& S, const c10::optional<at::Tensor>& bias);
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> moment_epilogue_backward_cuda(
    const at::Tensor& grad_out, const at::Tensor& y, const at::Tensor& mean, const at::Tensor& rstd,
    const at::Tensor& S);

}  // namespace gennorm
