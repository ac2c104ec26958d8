// The shared op of gennorm (docs/SPEC.md section 5 and 5.1): the CUDA host functions and
// every argument check, once. The schemas are defined in Python (gennorm/ops/library.py, with the
// plain-PyTorch reference as the CPU kernel); gennorm_ops.cpp adds these functions as the CUDA
// kernels with TORCH_LIBRARY_IMPL(gennorm, CUDA, m).
//
//   pad_center_sums(x, pad[4], mode, groups)                         -> xc [N,C,Hp,Wp], sums [N,2g,Hp,Wp]
//   window_epilogue(y, sums, S, bias?, kernel, stride, dilation, cg, eps) -> out, mean, rstd [N,g,Ho,Wo]
//   window_epilogue_backward(grad_out, y, mean, rstd, S, cg, kernel)  -> grad_y, grad_window [N,2g,Ho,Wo], grad_S, grad_bias
//   pad_center_sums_backward(grad_xc, xc, grad_window, kernel, stride, dilation, pad, mode, groups) -> grad_x
//   patch_moments(x_padded, kernel, stride, dilation, groups, eps)    -> mean, rstd (PONO, KernelNorm2d)
//   patch_moments_backward(grad_mean, grad_rstd, x, mean, rstd, kernel, stride, dilation, groups) -> grad_x
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <string>
#include <tuple>
#include <vector>

namespace gennorm {

// float16 / bfloat16 accumulate in float32; float32 and float64 keep their own precision.
inline at::ScalarType accumulation_type(at::ScalarType t) {
  return (t == at::kHalf || t == at::kBFloat16) ? at::kFloat : t;
}

inline int64_t output_size(int64_t size, int64_t kernel, int64_t stride, int64_t dilation) {
  return (size - dilation * (kernel - 1) - 1) / stride + 1;
}

// channels_last when x is (and is not also plain contiguous), else contiguous NCHW: the layout rule
// of xc and grad_x.
inline bool is_channels_last(const at::Tensor& t) {
  return t.dim() == 4 && t.is_contiguous(at::MemoryFormat::ChannelsLast) && !t.is_contiguous();
}

inline at::MemoryFormat format_of(const at::Tensor& t) {
  return is_channels_last(t) ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

// ---- argument checks (one place; messages name the op and the problem) ---------------------------

inline void check_pair(at::IntArrayRef v, const char* op, const char* name) {
  TORCH_CHECK(v.size() == 2, op, ": ", name, " must have 2 entries, got ", v.size());
  TORCH_CHECK(v[0] >= 1 && v[1] >= 1, op, ": ", name, " must be positive, got ", v);
}

inline void check_float(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(t.is_floating_point(), op, ": ", name,
              " must be a floating-point tensor (float32/float64/float16/bfloat16), got ", t.scalar_type());
}

inline void check_4d(const at::Tensor& t, const char* op, const char* name, const char* dims) {
  TORCH_CHECK(t.dim() == 4, op, ": ", name, " must have shape ", dims, " (4 dims), got ", t.dim(), " dims: ",
              t.sizes());
}

#ifdef GENNORM_EMULATE
constexpr bool kRequireCuda = false;  // tests: the emulated kernels take CPU tensors
#else
constexpr bool kRequireCuda = true;
#endif

inline void check_cuda(const at::Tensor& t, const char* op, const char* name, const at::Tensor& ref) {
  TORCH_CHECK(!kRequireCuda || t.is_cuda(), op, " (CUDA kernel): ", name, " must be a CUDA tensor, got ", t.device());
  TORCH_CHECK(t.device() == ref.device(), op, ": ", name, " is on ", t.device(), " but the first input is on ",
              ref.device(), "; all inputs must be on the same device");
}

inline void check_shape(const at::Tensor& t, at::IntArrayRef expected, const char* op, const char* name,
                        const char* dims) {
  TORCH_CHECK(t.sizes() == expected, op, ": ", name, " must have shape ", expected, " ", dims, ", got ", t.sizes());
}

inline void check_window(at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef dilation, int64_t hp,
                         int64_t wp, const char* op, const char* what) {
  check_pair(kernel_size, op, "kernel_size");
  check_pair(stride, op, "stride");
  check_pair(dilation, op, "dilation");
  for (int axis = 0; axis < 2; ++axis) {
    const int64_t span = dilation[axis] * (kernel_size[axis] - 1) + 1;
    TORCH_CHECK(span <= (axis == 0 ? hp : wp), op, ": kernel size ", kernel_size, " (dilation ", dilation,
                ") is larger than the ", what, " [", hp, ", ", wp, "]");
  }
}

// The padding mode's number (common.cuh PadMode).
inline int pad_mode(c10::string_view mode, const char* op) {
  if (mode == "zeros") return 0;
  if (mode == "reflect") return 1;
  if (mode == "replicate") return 2;
  if (mode == "circular") return 3;
  TORCH_CHECK(false, op, ": mode must be one of zeros, reflect, replicate, circular; got '", std::string(mode), "'");
  return 0;
}

// pad = (left, right, top, bottom) on an unpadded [H, W]; F.pad's limits per mode.
inline void check_padding(at::IntArrayRef pad, int mode, int64_t h, int64_t w, const char* op) {
  TORCH_CHECK(pad.size() == 4, op, ": pad must have 4 entries (left, right, top, bottom), got ", pad.size());
  TORCH_CHECK(pad[0] >= 0 && pad[1] >= 0 && pad[2] >= 0 && pad[3] >= 0, op, ": pad must be non-negative, got ", pad);
  TORCH_CHECK(h >= 1 && w >= 1, op, ": the unpadded input must have H, W >= 1, got [", h, ", ", w, "]");
  const int64_t size[4] = {w, w, h, h};
  for (int i = 0; i < 4; ++i) {
    if (mode == 1) {
      TORCH_CHECK(pad[i] < size[i], op, ": reflect padding ", pad, " must be smaller than the input size [", h,
                  ", ", w, "]");
    } else if (mode == 3) {
      TORCH_CHECK(pad[i] <= size[i], op, ": circular padding ", pad, " must not exceed the input size [", h, ", ",
                  w, "]");
    }
  }
}

inline void check_groups(int64_t channels, int64_t groups, const char* op, const char* what) {
  TORCH_CHECK(groups >= 1, op, ": groups must be >= 1, got ", groups);
  TORCH_CHECK(channels % groups == 0, op, ": ", what, " (", channels, ") must be divisible by groups (", groups, ")");
}

// pad_center_sums: returns the mode number.
inline int check_pad_center_sums(const at::Tensor& x, at::IntArrayRef pad, c10::string_view mode, int64_t groups) {
  const char* op = "gennorm::pad_center_sums";
  check_4d(x, op, "x", "[N, C, H, W]");
  check_float(x, op, "x");
  check_cuda(x, op, "x", x);
  const int m = pad_mode(mode, op);
  check_padding(pad, m, x.size(2), x.size(3), op);
  check_groups(x.size(1), groups, op, "channels");
  return m;
}

// window_epilogue: returns g.
inline int64_t check_window_epilogue(const at::Tensor& y, const at::Tensor& sums, const at::Tensor& S,
                                     const c10::optional<at::Tensor>& bias, at::IntArrayRef kernel_size,
                                     at::IntArrayRef stride, at::IntArrayRef dilation, int64_t cg, double eps) {
  const char* op = "gennorm::window_epilogue";
  check_4d(y, op, "y", "[N, O, Ho, Wo]");
  check_4d(sums, op, "sums", "[N, 2g, Hp, Wp]");
  check_float(y, op, "y");
  check_float(sums, op, "sums");
  check_float(S, op, "S");
  check_cuda(y, op, "y", y);
  check_cuda(sums, op, "sums", y);
  check_cuda(S, op, "S", y);
  TORCH_CHECK(cg >= 1, op, ": cg (input channels per group) must be >= 1, got ", cg);
  TORCH_CHECK(eps >= 0, op, ": eps must be >= 0, got ", eps);
  TORCH_CHECK(sums.size(1) >= 2 && sums.size(1) % 2 == 0, op, ": sums must have 2g planes (an even number >= 2), got ",
              sums.size(1));
  const int64_t g = sums.size(1) / 2;
  TORCH_CHECK(sums.size(0) == y.size(0), op, ": sums has batch ", sums.size(0), " but y has ", y.size(0));
  TORCH_CHECK(y.size(1) % g == 0, op, ": y's channels (", y.size(1), ") must be divisible by the groups of sums (", g,
              ")");
  check_window(kernel_size, stride, dilation, sums.size(2), sums.size(3), op, "padded input of sums");
  const int64_t ho = output_size(sums.size(2), kernel_size[0], stride[0], dilation[0]);
  const int64_t wo = output_size(sums.size(3), kernel_size[1], stride[1], dilation[1]);
  TORCH_CHECK(y.size(2) == ho && y.size(3) == wo, op, ": y ", y.sizes(), " must have the window grid [", ho, ", ", wo,
              "] of sums ", sums.sizes(), " (kernel ", kernel_size, ", stride ", stride, ", dilation ", dilation, ")");
  TORCH_CHECK(S.dim() == 1 && S.size(0) == y.size(1), op, ": S must have shape [", y.size(1), "], got ", S.sizes());
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == y.size(1), op, ": bias must have shape [", y.size(1), "], got ",
                bias->sizes());
    check_float(*bias, op, "bias");
    check_cuda(*bias, op, "bias", y);
  }
  return g;
}

// window_epilogue_backward: returns g.
inline int64_t check_window_epilogue_backward(const at::Tensor& grad_out, const at::Tensor& y, const at::Tensor& mean,
                                              const at::Tensor& rstd, const at::Tensor& S, int64_t cg,
                                              at::IntArrayRef kernel_size) {
  const char* op = "gennorm::window_epilogue_backward";
  check_4d(y, op, "y", "[N, O, Ho, Wo]");
  check_4d(mean, op, "mean", "[N, g, Ho, Wo]");
  for (const auto& [t, name] : {std::pair<const at::Tensor*, const char*>{&grad_out, "grad_out"}, {&y, "y"},
                                {&mean, "mean"}, {&rstd, "rstd"}, {&S, "S"}}) {
    check_float(*t, op, name);
    check_cuda(*t, op, name, grad_out);
  }
  check_shape(grad_out, y.sizes(), op, "grad_out", "(y's shape)");
  const int64_t g = mean.size(1);
  TORCH_CHECK(g >= 1 && y.size(1) % g == 0, op, ": y's channels (", y.size(1), ") must be divisible by g (", g, ")");
  const std::vector<int64_t> stats{y.size(0), g, y.size(2), y.size(3)};
  check_shape(mean, stats, op, "mean", "[N, g, Ho, Wo]");
  check_shape(rstd, stats, op, "rstd", "[N, g, Ho, Wo]");
  TORCH_CHECK(S.dim() == 1 && S.size(0) == y.size(1), op, ": S must have shape [", y.size(1), "], got ", S.sizes());
  TORCH_CHECK(cg >= 1, op, ": cg (input channels per group) must be >= 1, got ", cg);
  check_pair(kernel_size, op, "kernel_size");
  return g;
}

// pad_center_sums_backward: returns the mode number.
inline int check_pad_center_sums_backward(const at::Tensor& grad_xc, const at::Tensor& xc,
                                          const at::Tensor& grad_window, at::IntArrayRef kernel_size,
                                          at::IntArrayRef stride, at::IntArrayRef dilation, at::IntArrayRef pad,
                                          c10::string_view mode, int64_t groups) {
  const char* op = "gennorm::pad_center_sums_backward";
  check_4d(xc, op, "xc", "[N, C, Hp, Wp]");
  check_4d(grad_window, op, "grad_window", "[N, 2g, Ho, Wo]");
  for (const auto& [t, name] : {std::pair<const at::Tensor*, const char*>{&grad_xc, "grad_xc"}, {&xc, "xc"},
                                {&grad_window, "grad_window"}}) {
    check_float(*t, op, name);
    check_cuda(*t, op, name, xc);
  }
  check_shape(grad_xc, xc.sizes(), op, "grad_xc", "(xc's shape)");
  check_groups(xc.size(1), groups, op, "channels");
  const int m = pad_mode(mode, op);
  TORCH_CHECK(pad.size() == 4, op, ": pad must have 4 entries (left, right, top, bottom), got ", pad.size());
  const int64_t h = xc.size(2) - pad[2] - pad[3], w = xc.size(3) - pad[0] - pad[1];
  check_padding(pad, m, h, w, op);
  check_window(kernel_size, stride, dilation, xc.size(2), xc.size(3), op, "padded input xc");
  const std::vector<int64_t> expected{xc.size(0), 2 * groups,
                                      output_size(xc.size(2), kernel_size[0], stride[0], dilation[0]),
                                      output_size(xc.size(3), kernel_size[1], stride[1], dilation[1])};
  check_shape(grad_window, expected, op, "grad_window", "[N, 2g, Ho, Wo]");
  return m;
}

// patch_moments: returns {Ho, Wo}.
inline std::pair<int64_t, int64_t> check_patch_moments(const at::Tensor& x, at::IntArrayRef kernel_size,
                                                       at::IntArrayRef stride, at::IntArrayRef dilation,
                                                       int64_t groups, const char* op = "gennorm::patch_moments") {
  check_4d(x, op, "x", "[N, C, H, W]");
  check_float(x, op, "x");
  check_cuda(x, op, "x", x);
  check_groups(x.size(1), groups, op, "channels");
  check_window(kernel_size, stride, dilation, x.size(2), x.size(3), op, "padded input");
  return {output_size(x.size(2), kernel_size[0], stride[0], dilation[0]),
          output_size(x.size(3), kernel_size[1], stride[1], dilation[1])};
}

inline void check_patch_moments_backward(const at::Tensor& grad_mean, const at::Tensor& grad_rstd, const at::Tensor& x,
                                         const at::Tensor& mean, const at::Tensor& rstd, at::IntArrayRef kernel_size,
                                         at::IntArrayRef stride, at::IntArrayRef dilation, int64_t groups) {
  const char* op = "gennorm::patch_moments_backward";
  auto [ho, wo] = check_patch_moments(x, kernel_size, stride, dilation, groups, op);
  const std::vector<int64_t> expected{x.size(0), groups, ho, wo};
  for (const auto& [t, name] : {std::pair<const at::Tensor*, const char*>{&grad_mean, "grad_mean"},
                                {&grad_rstd, "grad_rstd"}, {&mean, "mean"}, {&rstd, "rstd"}}) {
    check_float(*t, op, name);
    check_cuda(*t, op, name, x);
    check_shape(*t, expected, op, name, "(N, groups, Ho, Wo)");
  }
}

// ---- the CUDA host functions (cuda/*.cu), registered by gennorm_ops.cpp ---------------------------

std::tuple<at::Tensor, at::Tensor> pad_center_sums_cuda(const at::Tensor& x, at::IntArrayRef pad,
                                                        c10::string_view mode, int64_t groups);
std::tuple<at::Tensor, at::Tensor, at::Tensor> window_epilogue_cuda(
    const at::Tensor& y, const at::Tensor& sums, const at::Tensor& S, const c10::optional<at::Tensor>& bias,
    at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef dilation, int64_t cg, double eps);
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> window_epilogue_backward_cuda(
    const at::Tensor& grad_out, const at::Tensor& y, const at::Tensor& mean, const at::Tensor& rstd,
    const at::Tensor& S, int64_t cg, at::IntArrayRef kernel_size);
at::Tensor pad_center_sums_backward_cuda(const at::Tensor& grad_xc, const at::Tensor& xc,
                                         const at::Tensor& grad_window, at::IntArrayRef kernel_size,
                                         at::IntArrayRef stride, at::IntArrayRef dilation, at::IntArrayRef pad,
                                         c10::string_view mode, int64_t groups);
std::tuple<at::Tensor, at::Tensor> patch_moments_cuda(const at::Tensor& x, at::IntArrayRef kernel_size,
                                                      at::IntArrayRef stride, at::IntArrayRef dilation, int64_t groups,
                                                      double eps);
at::Tensor patch_moments_backward_cuda(const at::Tensor& grad_mean, const at::Tensor& grad_rstd, const at::Tensor& x,
                                       const at::Tensor& mean, const at::Tensor& rstd, at::IntArrayRef kernel_size,
                                       at::IntArrayRef stride, at::IntArrayRef dilation, int64_t groups);

}  // namespace gennorm
