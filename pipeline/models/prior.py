"""Prior frames as generator input (thesis ch. 4.5.2 "Prior frame usage", thesis-code.md §6).

Two prior frames (vid2vid's choice), newest first, with their one-hot labels: the last two
*generated* outputs, clamped to [0, 1] and detached (no teacher forcing; one-step truncation).
At the start of a sequence they are placeholder zeros. Table 5.1's two modes:

- ``"ext"``: prior images as they are, in [0, 1]; the placeholder 0 is an extremum (black).
- ``"adj"``: prior images shifted by -0.5 into [-0.5, 0.5]; the placeholder 0 is mid-grey.

Label placeholders are 0 in both modes. ``shift_prior``/``unshift_prior`` convert between image
space and the input space (the generator unshifts the newest prior before warping it).
"""

from __future__ import annotations

import torch

__all__ = ["PRIOR_MODES", "PRIOR_FRAMES", "check_prior_mode", "shift_prior", "unshift_prior", "PriorFrames"]

PRIOR_MODES: tuple[str, ...] = ("ext", "adj")
PRIOR_FRAMES = 2
_SHIFT = {"ext": 0.0, "adj": -0.5}


def check_prior_mode(mode: str | None) -> str | None:
    """Return ``mode`` if it is None or a known prior mode, else raise listing the allowed ones."""
    if mode is not None and mode not in PRIOR_MODES:
        raise ValueError(f"unknown prior mode {mode!r}; allowed: null, {', '.join(PRIOR_MODES)}")
    return mode


def shift_prior(image: torch.Tensor, mode: str) -> torch.Tensor:
    """An image in [0, 1] as a prior input of ``mode``."""
    return image + _SHIFT[check_prior_mode(mode)]


def unshift_prior(prior: torch.Tensor, mode: str) -> torch.Tensor:
    """A prior input of ``mode`` back in image space [0, 1] (an "adj" placeholder becomes grey)."""
    return prior - _SHIFT[check_prior_mode(mode)]


class PriorFrames:
    """A rolling buffer of the last ``count`` outputs and labels, newest first.

    ``reset`` fills it with placeholders at a sequence start; ``push`` adds the newest generated
    frame; ``inputs`` gives the generator's ``prior_images`` [B, 3*count, H, W] and
    ``prior_labels`` [B, L*count, H, W].
    """

    def __init__(self, mode: str, count: int = PRIOR_FRAMES):
        if check_prior_mode(mode) is None:
            raise ValueError("PriorFrames needs a prior mode (ext or adj)")
        self.mode = mode
        self.count = count
        self.images: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []

    def reset(self, image_like: torch.Tensor, labels_like: torch.Tensor) -> None:
        """Placeholder zeros shaped like one image [B, 3, H, W] and one label map [B, L, H, W]."""
        self.images = [torch.zeros_like(image_like) for _ in range(self.count)]
        self.labels = [torch.zeros_like(labels_like) for _ in range(self.count)]

    def push(self, image: torch.Tensor, labels: torch.Tensor) -> None:
        """Add the newest frame (in [0, 1]; clamped, detached and kept in the placeholders' dtype
        here: a bf16 frame from autocast would make a compiled generator recompile per dtype).
        The clamp makes a new tensor: a CUDA graph's replay reuses its output's memory."""
        if not self.images:
            raise RuntimeError("PriorFrames.push before reset")
        newest = shift_prior(image.detach().clamp(0.0, 1.0).to(self.images[0].dtype), self.mode)
        self.images = [newest] + self.images[: self.count - 1]
        self.labels = [labels.detach()] + self.labels[: self.count - 1]

    def inputs(self) -> dict[str, torch.Tensor]:
        if not self.images:
            raise RuntimeError("PriorFrames.inputs before reset")
        return {"prior_images": torch.cat(self.images, 1), "prior_labels": torch.cat(self.labels, 1)}
