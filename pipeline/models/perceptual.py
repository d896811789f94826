"""Perceptual loss and the CRN's diversity loss over a VGG-19 or MobileNetV2 backbone
(Chen and Koltun 2017 §3.3-3.4; thesis ch. 3.2.1, 4.5.2; thesis-code.md §5, networks.md §2, §5).

Backbones are torchvision's, frozen and always in eval mode (BatchNorm uses running stats); images
in [0, 1] are normalised with ImageNet mean and std once, and that normalised tensor feeds both the
backbone and the pixel term (as the thesis's Perceptual_Loss did: the pixel term is
mean_c |fake - real| / std_c, not the raw [0, 1] difference). Taps, as the thesis cut them:

- VGG-19 ``features`` cut at 4, 9, 14, 23, 32: relu1_2, relu2_2, relu3_2, relu4_2, relu5_2.
- MobileNetV2 ``features`` cut at 4, 6, 8, 13, 17: blocks 3 (24 ch, /4), 5 (32, /8), 7 (64, /16),
  12 (96, /16), 16 (160, /32).

Each tap's mean absolute error is *divided* by the official CRN constants 1.6, 2.3, 1.8, 2.8,
0.08 (used for both backbones and both networks, as the thesis did), plus a pixel term / 1.
pix2pixHD's own VGG weights (1/32 .. 1 on relu*_1, x10) are not used by the thesis.

Diversity loss (K images): per tap, the channel-mean absolute difference is masked by every label
channel (resized to the tap with mode "nearest", as the thesis code did; the official CRN
area-resized), averaged over space and divided by the divisor: a [B, K, L] matrix of errors.
Loss = sum over classes of 0.999 min over images + 0.001 mean over images, averaged over the
batch. With K = 1 the plain loss is used (equal to it when the label channels sum to 1
everywhere).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from pipeline.models.weights import load_pretrained

__all__ = [
    "BACKBONES", "TAPS", "LAYER_DIVISORS", "Backbone", "load_backbone", "PerceptualLoss",
]

TAPS: dict[str, tuple[int, ...]] = {
    "vgg19": (4, 9, 14, 23, 32),
    "mobilenet_v2": (4, 6, 8, 13, 17),
}
_ARCHITECTURES = {"vgg19": torchvision.models.vgg19, "mobilenet_v2": torchvision.models.mobilenet_v2}
BACKBONES: tuple[str, ...] = tuple(TAPS)
LAYER_DIVISORS: tuple[float, ...] = (1.6, 2.3, 1.8, 2.8, 0.08)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DIVERSITY_MIN_WEIGHT = 0.999


class Backbone(nn.Module):
    """A frozen feature extractor: forward(images in [0, 1]) -> the tapped activations
    (``taps(normalise(images))``)."""

    def __init__(self, name: str, features: nn.Sequential, cuts: Sequence[int], weights_source: str):
        super().__init__()
        starts = (0, *cuts[:-1])
        self.name = name
        self.weights_source = weights_source
        self.slices = nn.ModuleList(features[start:end] for start, end in zip(starts, cuts))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "Backbone":
        # Frozen means eval always: BatchNorm on batch statistics would change the loss.
        return super().train(False)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """ImageNet normalisation of images in [0, 1]."""
        return (images - self.mean) / self.std

    def taps(self, normalised: torch.Tensor) -> list[torch.Tensor]:
        """The tapped activations of already normalised images."""
        taps = []
        x = normalised
        for block in self.slices:
            x = block(x)
            taps.append(x)
        return taps

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.taps(self.normalise(images))


def load_backbone(name: str, path: str | Path | None = None, allow_random: bool = False) -> Backbone:
    """torchvision's ``name`` with weights from ``path`` (or random with ``allow_random``), tapped."""
    if name not in TAPS:
        raise ValueError(f"unknown perceptual backbone {name!r}; allowed: {', '.join(BACKBONES)}")
    model, source = load_pretrained(lambda: _ARCHITECTURES[name](weights=None), name, path, allow_random)
    return Backbone(name, model.features, TAPS[name], source)


class PerceptualLoss(nn.Module):
    """``weight`` x (pixel L1 / ``pixel_divisor`` + sum over taps of L1 / divisor), or the
    diversity loss for K > 1 images; see the module docstring. The pixel L1 is taken between the
    ImageNet-normalised images, the backbone's own input.

    forward(fake [B, 3, H, W] or [B, K, 3, H, W], real [B, 3, H, W], labels [B, L, H, W]).
    """

    def __init__(self, backbone: Backbone, layer_divisors: Sequence[float] = LAYER_DIVISORS,
                 pixel_divisor: float | None = 1.0, weight: float = 1.0):
        super().__init__()
        if len(layer_divisors) != len(backbone.slices):
            raise ValueError(f"{len(layer_divisors)} layer divisors for {len(backbone.slices)} taps")
        self.backbone = backbone
        self.layer_divisors = tuple(float(d) for d in layer_divisors)
        self.pixel_divisor = pixel_divisor
        self.weight = weight

    @property
    def weights_source(self) -> str:
        return self.backbone.weights_source

    def _features(self, images: torch.Tensor) -> list[tuple[torch.Tensor, float]]:
        """(activation, divisor) pairs: the pixel term first where it is on. ``images`` in [0, 1]
        are normalised once; the pixel term and the backbone both take the normalised tensor."""
        normalised = self.backbone.normalise(images)
        pairs = [] if self.pixel_divisor is None else [(normalised, float(self.pixel_divisor))]
        return pairs + list(zip(self.backbone.taps(normalised), self.layer_divisors))

    def forward(self, fake: torch.Tensor, real: torch.Tensor,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        if fake.dim() == 5 and fake.shape[1] > 1:
            if labels is None:
                raise ValueError("the diversity loss over K > 1 images needs the labels")
            return self.weight * self.diversity(self.class_errors(fake, real, labels))
        if fake.dim() == 5:
            fake = fake[:, 0]
        return self.weight * self.plain(fake, real)

    def plain(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """Sum over the pixel term and the taps of mean |fake - real| / divisor."""
        with torch.no_grad():
            targets = self._features(real)
        total = fake.new_zeros(())
        for (fake_tap, divisor), (real_tap, _) in zip(self._features(fake), targets):
            total = total + (fake_tap - real_tap).abs().mean() / divisor
        return total

    def class_errors(self, fake: torch.Tensor, real: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Errors [B, K, L]: per image and class, the label-masked error summed over taps."""
        batch, count = fake.shape[:2]
        with torch.no_grad():
            targets = self._features(real)
        errors = fake.new_zeros(batch, count, labels.shape[1])
        for (fake_tap, divisor), (real_tap, _) in zip(self._features(fake.flatten(0, 1)), targets):
            fake_tap = fake_tap.view(batch, count, *fake_tap.shape[1:])
            difference = (fake_tap - real_tap[:, None]).abs().mean(2)  # [B, K, h, w]
            # Nearest, as the thesis code (the official CRN used area): a mask stays one-hot.
            masks = F.interpolate(labels.to(difference.dtype), size=difference.shape[-2:], mode="nearest")
            errors = errors + torch.einsum("bkhw,blhw->bkl", difference, masks) / (
                difference.shape[-1] * difference.shape[-2] * divisor)
        return errors

    @staticmethod
    def diversity(errors: torch.Tensor) -> torch.Tensor:
        """sum over classes of (0.999 min_k + 0.001 mean_k) of ``errors`` [B, K, L], batch mean."""
        best = errors.min(1).values
        average = errors.mean(1)
        per_class = DIVERSITY_MIN_WEIGHT * best + (1.0 - DIVERSITY_MIN_WEIGHT) * average
        return per_class.sum(1).mean()
