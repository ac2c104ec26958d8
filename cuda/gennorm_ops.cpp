// torch.ops.gennorm.*: adds the CUDA kernels (cuda/*.cu) to the ops whose schemas, CPU / reference
// kernels, fake kernels and autograd are defined in Python (gennorm/ops/library.py). No
// TORCH_LIBRARY and no CPU kernels here: loading this library only adds CUDA kernels.
#include "gennorm_ops.h"

#include <torch/library.h>

TORCH_LIBRARY_IMPL(gennorm, CUDA, m) {
  m.impl("pad_center_sums", &gennorm::pad_center_sums_cuda);
  m.impl("window_epilogue", &gennorm::window_epilogue_cuda);
  m.impl("window_epilogue_backward", &gennorm::window_epilogue_backward_cuda);
  m.impl("pad_center_sums_backward", &gennorm::pad_center_sums_backward_cuda);
  m.impl("patch_moments", &gennorm::patch_moments_cuda);
  m.impl("patch_moments_backward", &gennorm::patch_moments_backward_cuda);
}
