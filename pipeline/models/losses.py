"""GAN, feature-matching, flow and warp losses (pix2pixHD, vid2vid, thesis-code.md §4, §6).

Every criterion is an ``nn.Module`` that returns its term already multiplied by its ``weight``
(the config's ``losses:`` section), so a trainer logs ``name -> value`` and sums.

- ``LSGANLoss`` (Mao et al. 2017, pix2pixHD's default): one MSE against 1 (real) or 0 (fake)
  over every patch of every scale, as the thesis code took it (the scales' flattened predictions
  concatenated), so a scale weighs by its patch count (pix2pixHD summed per-scale means);
  ``discriminator`` gives 0.5 (real + fake).
- ``FeatureMatchingLoss``: L1 between the discriminator activations on fake and (detached) real
  inputs. Thesis: each scale's 4 activations *plus its raw input*, every term weighted
  (1/D)(4/(5D)) x weight (x2 per term at 2 scales, x8 at 1). pix2pixHD (``style="pix2pixhd"``):
  the 4 activations only, (1/D)(4/4) x weight.
- ``FlowLoss``: L1 between generated and reference flow (as the thesis code and vid2vid did;
  the thesis text says end-point error), x weight; ``end_point_error`` is reported beside it.
- ``WarpLoss``: L1 between the previous real frame warped by the generated flow and the current
  real frame, x weight (skipped by the trainer while the prior is a placeholder).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.flow.warp import warp

__all__ = [
    "FEATURE_MATCHING_STYLES", "LSGANLoss", "FeatureMatchingLoss", "FlowLoss", "WarpLoss",
    "end_point_error",
]

FEATURE_MATCHING_STYLES: tuple[str, ...] = ("thesis", "pix2pixhd")
Outputs = list[list[torch.Tensor]]  # per scale: [input, act1..act4, prediction]


class LSGANLoss(nn.Module):
    """Least-squares GAN loss: one mean over the patches of every discriminator scale's prediction."""

    def __init__(self, weight: float = 1.0):
        super().__init__()
        self.weight = weight

    def forward(self, outputs: Outputs, real: bool) -> torch.Tensor:
        """The generator's term (``real=True`` on fake inputs) or one half of the discriminator's.

        One MSE over all scales' patches together (thesis code), not a sum of per-scale means:
        at 512x1024 the full-resolution scale's 34x66 patches outweigh the next scale's 18x34.
        """
        target = 1.0 if real else 0.0
        predictions = torch.cat([scale[-1].reshape(-1) for scale in outputs])
        return self.weight * F.mse_loss(predictions, torch.full_like(predictions, target))

    def discriminator(self, real_outputs: Outputs, fake_outputs: Outputs) -> torch.Tensor:
        """0.5 (loss(real, 1) + loss(fake, 0)); give it outputs on *detached* fakes."""
        return 0.5 * (self.forward(real_outputs, True) + self.forward(fake_outputs, False))


class FeatureMatchingLoss(nn.Module):
    """Discriminator feature matching; see the module docstring for the two styles."""

    def __init__(self, scales: int, weight: float = 10.0, style: str = "thesis"):
        super().__init__()
        if style not in FEATURE_MATCHING_STYLES:
            raise ValueError(f"unknown feature-matching style {style!r}; allowed: "
                             f"{', '.join(FEATURE_MATCHING_STYLES)}")
        self.scales = scales
        self.weight = weight
        self.style = style

    def term_weight(self, activations: int = 4) -> float:
        """The weight of one L1 term."""
        if self.style == "thesis":
            return (1.0 / self.scales) * (activations / ((activations + 1) * self.scales)) * self.weight
        return (1.0 / self.scales) * (activations / activations) * self.weight

    def forward(self, fake_outputs: Outputs, real_outputs: Outputs) -> torch.Tensor:
        total = fake_outputs[0][-1].new_zeros(())
        for fake_scale, real_scale in zip(fake_outputs, real_outputs):
            # Outputs are [input, act1..act4, prediction]; the thesis also matched the input.
            first = 0 if self.style == "thesis" else 1
            terms = list(zip(fake_scale[first:-1], real_scale[first:-1]))
            weight = self.term_weight(len(fake_scale) - 2)
            for fake, real in terms:
                total = total + weight * F.l1_loss(fake, real.detach())
        return total


def end_point_error(flow: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean distance between two flows [B, 2, H, W] (pixels)."""
    return (flow - reference).pow(2).sum(1).sqrt().mean()


class FlowLoss(nn.Module):
    """weight x L1(flow, reference flow)."""

    def __init__(self, weight: float = 10.0):
        super().__init__()
        self.weight = weight

    def forward(self, flow: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return self.weight * F.l1_loss(flow, reference)


class WarpLoss(nn.Module):
    """weight x L1(warp(previous real frame, generated flow), current real frame)."""

    def __init__(self, weight: float = 10.0):
        super().__init__()
        self.weight = weight

    def forward(self, previous: torch.Tensor, current: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        return self.weight * F.l1_loss(warp(previous, flow), current)
