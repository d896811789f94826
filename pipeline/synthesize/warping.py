"""Temporal consistency beside FVD: the flow-warping error of a video.

FVD mixes image quality with temporal consistency; this measures the second alone. Consecutive
synthesised frames are warped with the *reference* flow of the real test video (the shared
``warp``) and compared where that flow is trustworthy: pixels whose real previous frame, warped
the same way, lands inside the frame and matches the real frame within ``threshold`` (an
occlusion test by photometric consistency, since only one flow direction is stored).
"""

from __future__ import annotations

import torch

from pipeline.flow.warp import warp

__all__ = ["non_occluded", "warping_error"]


def non_occluded(real: torch.Tensor, flow: torch.Tensor, threshold: float = 0.05) -> torch.Tensor:
    """Mask [T-1, H, W] of pixels of frames 1..T-1 that the flow explains (real: [T, 3, H, W] in [0, 1])."""
    warped = warp(real[:-1], flow[1:])
    inside = warp(torch.ones_like(real[:-1, :1]), flow[1:])[:, 0] > 0.999
    return inside & ((warped - real[1:]).abs().mean(1) < threshold)


def warping_error(video: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean |warp(frame t-1, flow t) - frame t| over masked pixels (video: [T, 3, H, W] in [0, 1])."""
    difference = (warp(video[:-1], flow[1:]) - video[1:]).abs().mean(1)
    count = mask.sum()
    return float((difference * mask).sum() / count) if count > 0 else float("nan")
