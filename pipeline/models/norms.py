"""Normalisation by name: layer, group, weight and instance (thesis ch. 4.5.2, thesis-code.md §3).

=========  ==========================================================================  ===========
name       what it computes                                                            source
=========  ==========================================================================  ===========
layer      per sample and channel, normalise over (H, W); affine per pixel (H, W)       thesis "half"
           (``nn.LayerNorm([H, W])``), so a layer is tied to its module's resolution    (default)
group      ``GroupNorm(1, C)``: normalise over (C, H, W), one gamma/beta per channel    official CRN
           (TF ``slim.layer_norm``; the thesis's "group"/"full" were mis-wired)
weight     weight normalisation of the conv (Salimans and Kingma 2016), no norm layer   thesis
instance   ``InstanceNorm2d`` without affine                                            pix2pixHD
=========  ==========================================================================  ===========

A norm never stands alone here: ``conv_norm`` wraps a conv in the norm of the given name, so
"weight" (a reparametrisation of the conv) and the others (a layer after it) share one call.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils.parametrizations import weight_norm

__all__ = ["NORMS", "check_norm", "make_norm", "conv_norm"]

NORMS: tuple[str, ...] = ("layer", "group", "weight", "instance")


def check_norm(name: str) -> str:
    """Return ``name`` if it is a known norm, else raise a ValueError listing the allowed ones."""
    if name not in NORMS:
        raise ValueError(f"unknown norm {name!r}; allowed: {', '.join(NORMS)}")
    return name


def make_norm(name: str, channels: int, size: tuple[int, int] | None = None) -> nn.Module:
    """The norm layer that follows a conv with ``channels`` outputs at resolution ``size``.

    "weight" has no layer of its own (``nn.Identity``); "layer" needs ``size`` = (H, W).
    """
    check_norm(name)
    if name == "layer":
        if size is None:
            raise ValueError("norm 'layer' normalises over (H, W) and needs the module's size")
        return nn.LayerNorm(list(size))
    if name == "group":
        return nn.GroupNorm(1, channels)
    if name == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    return nn.Identity()


def conv_norm(name: str, conv: nn.Conv2d | nn.ConvTranspose2d,
              size: tuple[int, int] | None = None) -> nn.Sequential:
    """``conv`` followed by the norm ``name``; for "weight" the conv itself is weight-normed.

    Initialise ``conv`` before calling: weight normalisation starts from the current weight.
    """
    check_norm(name)
    if name == "weight":
        return nn.Sequential(weight_norm(conv))
    return nn.Sequential(conv, make_norm(name, conv.out_channels, size))
