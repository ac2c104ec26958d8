"""ConvNorm2d (Liu et al. 2021): placeholder being replaced by the full implementation."""
import torch.nn as nn


class ConvNorm2d(nn.Conv2d):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True, affine=True, eps=1e-5):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias=bias)
        raise NotImplementedError("ConvNorm2d is being implemented")
