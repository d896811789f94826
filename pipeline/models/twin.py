"""Twin-network outputs: flow and weight-mask heads, and the merge with the warped prior frame.

vid2vid (Wang et al. 2018) as the thesis used it (ch. 3.3.1, 4.5.2; thesis-code.md §6): the
second half of a twin generator ends in a flow head (reflection pad 3, 7x7 conv to 2 channels,
no activation) and a mask head (reflection pad 3, 7x7 conv to 1 channel, sigmoid). The newest
prior frame P is warped by the flow with the shared ``pipeline.flow.warp.warp`` and merged with
the candidate S as the thesis code did::

    image = mask * S + (1 - mask) * warp(P, flow)

i.e. the mask weights the *candidate* (the thesis's equation 3.1 names the weight of P w; the
code's mask is 1 - w). vid2vid scales its flow head by 20; the thesis's CRN did not, nor here.

Init: the thesis's CRN built both head convs as plain ``nn.Conv2d`` (PyTorch's default init;
``FlowHeads(channels, std=None)``). The pix2pixHD twin's code is not available; its heads keep
vid2vid's ``weights_init``: weights N(0, 0.02), PyTorch's default bias.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.flow.warp import warp
from pipeline.models.blocks import INIT_STD, reflect_conv
from pipeline.models.prior import unshift_prior

__all__ = ["FlowHeads", "merge_with_prior"]


class FlowHeads(nn.Module):
    """Flow [B, 2, H, W] in pixels and mask [B, 1, H, W] in (0, 1) from a feature map; the
    convs' weights N(0, ``std``), or PyTorch's default for ``std=None`` (the CRN's)."""

    def __init__(self, channels: int, std: float | None = INIT_STD):
        super().__init__()
        self.to_flow = reflect_conv(channels, 2, 7, std)
        self.to_mask = reflect_conv(channels, 1, 7, std)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.to_flow(features), torch.sigmoid(self.to_mask(features))


def merge_with_prior(candidate: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor,
                     prior_images: torch.Tensor, prior_mode: str) -> dict[str, torch.Tensor]:
    """The twin generator's output dict: ``image``, ``hallucinated``, ``flow``, ``mask``, ``warped``.

    ``prior_images`` is the generator input (newest first, shifted by ``prior_mode``); its first
    three channels, back in image space, are warped.
    """
    newest = unshift_prior(prior_images[:, :3], prior_mode)
    warped = warp(newest, flow)
    image = mask * candidate + (1.0 - mask) * warped
    return {"image": image, "hallucinated": candidate, "flow": flow, "mask": mask, "warped": warped}
