"""The generators' named inputs and their channel counts (thesis-code.md §2-6).

A generator's forward takes a dict:

==============  ====================  ===================================================
key             shape                 present when
==============  ====================  ===================================================
labels          [B, L, H, W] one-hot  always
edge            [B, 1, H, W]          the variant's ``edge`` (``edges.edge_map``)
features        [B, 3, H, W]          the variant's ``feature_encoder`` (``encoder``)
prior_labels    [B, 2L, H, W]         a prior mode (``prior.PriorFrames``), newest first
prior_images    [B, 2*3, H, W]        a prior mode, shifted by the mode, newest first
==============  ====================  ===================================================

The *semantic* input is labels, edge, features and prior labels concatenated in that order; the
prior images are a separate group, because twin networks feed them to their second half only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline.models.prior import PRIOR_FRAMES, check_prior_mode

__all__ = ["FEATURE_CHANNELS", "InputSpec"]

FEATURE_CHANNELS = 3  # pix2pixHD's feat_num


@dataclass(frozen=True)
class InputSpec:
    """Which named inputs a generator takes, and how many channels each has."""

    label_channels: int
    edge: bool = False
    features: bool = False
    prior: str | None = None
    prior_frames: int = PRIOR_FRAMES

    def __post_init__(self) -> None:
        check_prior_mode(self.prior)
        if self.label_channels < 1:
            raise ValueError(f"label_channels must be positive, got {self.label_channels}")

    def channels(self) -> dict[str, int]:
        """Channels of each named input this spec takes (absent inputs are left out)."""
        counts = {"labels": self.label_channels}
        if self.edge:
            counts["edge"] = 1
        if self.features:
            counts["features"] = FEATURE_CHANNELS
        if self.prior is not None:
            counts["prior_labels"] = self.prior_frames * self.label_channels
            counts["prior_images"] = self.prior_frames * 3
        return counts

    @property
    def semantic_keys(self) -> tuple[str, ...]:
        return tuple(key for key in self.channels() if key != "prior_images")

    @property
    def semantic_channels(self) -> int:
        counts = self.channels()
        return sum(counts[key] for key in self.semantic_keys)

    @property
    def prior_image_channels(self) -> int:
        return self.channels().get("prior_images", 0)

    def _take(self, inputs: dict[str, torch.Tensor], key: str,
              size: tuple[int, int] | None) -> torch.Tensor:
        if key not in inputs or inputs[key] is None:
            raise ValueError(f"generator input {key!r} is missing; this generator takes "
                             f"{', '.join(self.channels())}")
        tensor = inputs[key]
        expected = self.channels()[key]
        if tensor.dim() != 4 or tensor.shape[1] != expected:
            raise ValueError(f"generator input {key!r} must be [B, {expected}, H, W], got {tuple(tensor.shape)}")
        if size is not None and tuple(tensor.shape[-2:]) != tuple(size):
            raise ValueError(f"generator input {key!r} is {tuple(tensor.shape[-2:])}, the generator was "
                             f"built for {tuple(size)}")
        return tensor

    def semantic(self, inputs: dict[str, torch.Tensor], size: tuple[int, int] | None = None) -> torch.Tensor:
        """Labels, edge, features and prior labels concatenated along channels."""
        return torch.cat([self._take(inputs, key, size) for key in self.semantic_keys], 1)

    def prior_images(self, inputs: dict[str, torch.Tensor],
                     size: tuple[int, int] | None = None) -> torch.Tensor | None:
        """The prior images [B, 2*3, H, W] (newest first), or None without a prior mode."""
        return None if self.prior is None else self._take(inputs, "prior_images", size)
