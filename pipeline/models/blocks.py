"""Small building blocks shared by the generators (thesis-code.md §3-4, networks.md §1, §4).

- ``ConvNormAct``: 3x3 conv, norm, LeakyReLU(0.2): the CRN's half refinement module.
- ``ResNeXtBlock``: the thesis's ResNeXt block (appendix A.1 as its code built it): 1x1 C->C/2,
  LeakyReLU, grouped 3x3 (cardinality 32), LeakyReLU, 1x1 C/2->C, all weight-normed, output
  (out + x) / 2. (Xie et al. 2017 use BN and ReLU and x + out; the thesis did not.)
- ``ProcessingBlock``: norm, LeakyReLU, 3x3 conv after ResNeXt modules, conv, norm, LeakyReLU
  after plain ones (the thesis's CRN_NUM_RESNET_PROCESSING_RMS).
- ``ResnetBlock``: pix2pixHD's residual block (Wang et al. 2018): reflection pad, 3x3 conv,
  instance norm, ReLU, twice (no ReLU after the second), output x + block.
- ``reflect_conv``: reflection pad k//2 then a k x k conv (stems and 7x7 heads).

Init follows the thesis code (``Block.init_conv_weights`` with its default ``zero_bias=False``)
and pix2pixHD's ``weights_init``: conv weights N(0, 0.02), biases left at PyTorch's default
(``init_conv_``). The convs the thesis left alone keep PyTorch's default entirely: the
discriminator's last conv and the CRN's flow and mask heads; the CRN's image head is Xavier with
zero bias.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from pipeline.models.norms import conv_norm, make_norm

__all__ = [
    "INIT_STD", "LEAKY_SLOPE", "init_conv_", "ConvNormAct", "ResNeXtBlock", "PROCESSING_ORDERS",
    "ProcessingBlock", "ResnetBlock", "reflect_conv", "grouped_cardinality",
]

INIT_STD = 0.02
LEAKY_SLOPE = 0.2


def init_conv_(conv: nn.Conv2d | nn.ConvTranspose2d, std: float | None = INIT_STD) -> nn.Module:
    """N(0, std) weights, in place; the bias keeps PyTorch's default (thesis ``init_conv_weights``
    with ``zero_bias=False``, pix2pixHD ``weights_init``). ``std=None`` leaves the weights at
    PyTorch's default too."""
    if std is not None:
        nn.init.normal_(conv.weight, 0.0, std)
    return conv


class ConvNormAct(nn.Sequential):
    """3x3 conv (stride 1, zero padding) -> norm ``norm`` -> LeakyReLU(0.2) (Chen and Koltun 2017)."""

    def __init__(self, in_channels: int, out_channels: int, norm: str,
                 size: tuple[int, int] | None = None, kernel_size: int = 3):
        conv = init_conv_(nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2))
        super().__init__(*conv_norm(norm, conv, size), nn.LeakyReLU(LEAKY_SLOPE))


def grouped_cardinality(channels: int, cardinality: int) -> int:
    """The group count for a grouped conv over ``channels``: ``cardinality`` where it divides them.

    At full width (C/2 >= 64) this is the thesis's 32; narrowed demo networks get the largest
    common divisor so every group keeps at least one channel.
    """
    return math.gcd(channels, cardinality)


def _wn_conv(in_channels: int, out_channels: int, kernel_size: int, groups: int = 1) -> nn.Module:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, groups=groups)
    return weight_norm(init_conv_(conv))


class ResNeXtBlock(nn.Module):
    """The thesis's ResNeXt block: (x + f(x)) / 2, f = 1x1 -> LReLU -> grouped 3x3 -> LReLU -> 1x1."""

    def __init__(self, channels: int, cardinality: int = 32):
        super().__init__()
        inner = max(channels // 2, 1)
        self.body = nn.Sequential(
            _wn_conv(channels, inner, 1),
            nn.LeakyReLU(LEAKY_SLOPE),
            _wn_conv(inner, inner, 3, groups=grouped_cardinality(inner, cardinality)),
            nn.LeakyReLU(LEAKY_SLOPE),
            _wn_conv(inner, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The thesis averages rather than adds: the output keeps the scale of x.
        return (self.body(x) + x) / 2


PROCESSING_ORDERS: tuple[str, ...] = ("before", "after")


class ProcessingBlock(nn.Sequential):
    """A C -> C 3x3 conv with norm and LeakyReLU(0.2), the thesis's ``RMBlock`` as its final
    modules call it (``Refinement_Module.py``: ``relu_loc="before"`` after ResNeXt modules,
    ``"after"`` after plain ones):

    - ``order="before"``: norm -> LeakyReLU -> conv;
    - ``order="after"``: conv -> norm -> LeakyReLU (``ConvNormAct``).

    For norm "weight" the conv is weight-normed and there is no norm layer.
    """

    def __init__(self, channels: int, norm: str, size: tuple[int, int] | None = None,
                 order: str = "before"):
        if order not in PROCESSING_ORDERS:
            raise ValueError(f"unknown processing block order {order!r}; allowed: {', '.join(PROCESSING_ORDERS)}")
        if order == "after":
            super().__init__(*ConvNormAct(channels, channels, norm, size))
            return
        conv = init_conv_(nn.Conv2d(channels, channels, 3, padding=1))
        layers: list[nn.Module] = [] if norm == "weight" else [make_norm(norm, channels, size)]
        layers += [nn.LeakyReLU(LEAKY_SLOPE), weight_norm(conv) if norm == "weight" else conv]
        super().__init__(*layers)


def reflect_conv(in_channels: int, out_channels: int, kernel_size: int = 7,
                 std: float | None = INIT_STD) -> nn.Sequential:
    """Reflection pad ``kernel_size // 2`` and a ``kernel_size`` conv, ``init_conv_(std)``."""
    conv = init_conv_(nn.Conv2d(in_channels, out_channels, kernel_size), std)
    return nn.Sequential(nn.ReflectionPad2d(kernel_size // 2), conv)


class ResnetBlock(nn.Module):
    """pix2pixHD's residual block (instance norm, ReLU, reflection padding; x + block(x))."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            reflect_conv(channels, channels, 3), nn.InstanceNorm2d(channels), nn.ReLU(True),
            reflect_conv(channels, channels, 3), nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)
