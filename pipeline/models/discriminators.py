"""Multi-scale PatchGAN discriminators (Isola et al. 2017; pix2pixHD, Wang et al. 2018) as the
thesis built them (thesis-code.md §4, §6), shared by the CRN and pix2pixHD variants.

One scale: four 4x4 stride-2 convs (zero padding 2; 64, 128, 256, 512 channels; the first
without norm, the rest instance norm without affine; LeakyReLU 0.2), then a 4x4 stride-1 conv
(padding 2) to one channel; the four convs N(0, 0.02) with PyTorch's default bias, the last
conv PyTorch's default (the thesis initialised only its ``CCILBlock`` convs). The thesis kept
stride 2 on the fourth conv; pix2pixHD's has stride 1 (``last_stride=1``). Each further scale
sees the input average-pooled once more (3x3, stride 2, padding 1 not counted); scale 0 sees
full resolution.

A scale returns its raw input, the four activations and the prediction, so the losses can pick
what they match (the thesis's feature matching includes the raw input; pix2pixHD's does not).

The temporal discriminator of the flow variants is the same network on other inputs (vid2vid
mode): the image, the 2 prior images, the reference flow and the previous reference flow
(3 + 6 + 2 + 2 = 13 channels), at the same spatial scales and with no frame-rate scales.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.blocks import LEAKY_SLOPE, init_conv_

__all__ = ["PatchDiscriminator", "MultiscaleDiscriminator", "TEMPORAL_CHANNELS"]

TEMPORAL_CHANNELS = 3 + 2 * 3 + 2 + 2


class PatchDiscriminator(nn.Module):
    """One PatchGAN scale; forward returns [input, act1, act2, act3, act4, prediction]."""

    def __init__(self, in_channels: int, ndf: int = 64, layers: int = 4, last_stride: int = 2,
                 max_channels: int = 512):
        super().__init__()
        stages: list[nn.Module] = []
        channels = in_channels
        for index in range(layers):
            out = min(ndf * 2 ** index, max_channels)
            stride = last_stride if index == layers - 1 else 2
            conv = init_conv_(nn.Conv2d(channels, out, 4, stride=stride, padding=2))
            norm = [] if index == 0 else [nn.InstanceNorm2d(out)]
            stages.append(nn.Sequential(conv, *norm, nn.LeakyReLU(LEAKY_SLOPE, True)))
            channels = out
        # The thesis's final conv was a plain nn.Conv2d: PyTorch's default init, not N(0, 0.02).
        stages.append(nn.Conv2d(channels, 1, 4, stride=1, padding=2))
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = [x]
        for stage in self.stages:
            outputs.append(stage(outputs[-1]))
        return outputs


class MultiscaleDiscriminator(nn.Module):
    """``scales`` independent ``PatchDiscriminator``s on successively average-pooled inputs.

    forward(x) -> one output list per scale, full resolution first.
    """

    def __init__(self, in_channels: int, scales: int, ndf: int = 64, layers: int = 4, last_stride: int = 2):
        super().__init__()
        if scales < 1:
            raise ValueError(f"a multi-scale discriminator needs at least one scale, got {scales}")
        self.in_channels = in_channels
        self.scales = nn.ModuleList(
            PatchDiscriminator(in_channels, ndf, layers, last_stride) for _ in range(scales))

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        if x.shape[1] != self.in_channels:
            raise ValueError(f"discriminator takes {self.in_channels} channels, got {x.shape[1]}")
        results = []
        for index, scale in enumerate(self.scales):
            if index:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            results.append(scale(x))
        return results
