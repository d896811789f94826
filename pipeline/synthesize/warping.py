"""Temporal consistency beside FVD: the flow-warping error of a video.

FVD mixes image quality with temporal consistency; this measures the second alone. Consecutive
synthesised frames are warped with the *reference* flow of the real test video (the shared
``warp``) and compared where that flow is trustworthy: pixels whose real previous frame, warped
the same way, lands inside the frame and matches the real frame within ``OCCLUSION_THRESHOLD``
(an occlusion test by photometric consistency, since only one flow direction is stored).

The real video's own error under the same mask is the reference: real video changes along its
flow too (lighting, resampling, flow error), so that is the floor a perfect synthesis would
reach. By construction it lies below the threshold, since the mask keeps only pixels whose real
error does.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from pipeline.flow.warp import warp

__all__ = ["OCCLUSION_THRESHOLD", "non_occluded", "warping_error", "warping_figures", "warping_summary"]

# Mean absolute RGB difference (in [0, 1]; 0.05 is about 13 of 255 levels) above which a real
# pixel counts as occluded or wrongly flowed. Not from the thesis, a choice: above what bilinear
# resampling, 8-bit rounding and small flow errors leave (on the demo's synthetic city at 64x128,
# three quarters of the pixels differ by under 6 levels along the reference flow) and below the
# tail uncovered regions and wrong flow make (there the top 5% differ by over 25 levels); there it
# keeps about 87% of the pixels.
# Each warping JSON records the threshold and the share kept.
OCCLUSION_THRESHOLD = 0.05


def non_occluded(real: torch.Tensor, flow: torch.Tensor, threshold: float = OCCLUSION_THRESHOLD) -> torch.Tensor:
    """Mask [T-1, H, W] of pixels of frames 1..T-1 that the flow explains (real: [T, 3, H, W] in [0, 1])."""
    warped = warp(real[:-1], flow[1:])
    inside = warp(torch.ones_like(real[:-1, :1]), flow[1:])[:, 0] > 0.999
    return inside & ((warped - real[1:]).abs().mean(1) < threshold)


def warping_error(video: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean |warp(frame t-1, flow t) - frame t| over masked pixels (video: [T, 3, H, W] in [0, 1])."""
    difference = (warp(video[:-1], flow[1:]) - video[1:]).abs().mean(1)
    count = mask.sum()
    return float((difference * mask).sum() / count) if count > 0 else float("nan")


def warping_figures(video: torch.Tensor, real: torch.Tensor, flow: torch.Tensor) -> dict[str, float]:
    """One synthesised video against its real one: its warping error, the real video's own under
    the same mask, and the share of pixels the mask kept."""
    mask = non_occluded(real, flow)
    return {"error": warping_error(video, flow, mask), "real_error": warping_error(real, flow, mask),
            "mask_kept_share": float(mask.float().mean())}


def warping_summary(variant: str, figures: Sequence[Mapping[str, float]], record: Mapping[str, Any]) -> dict:
    """The warping JSON of a variant from each video's :func:`warping_figures` and the videos'
    provenance ``record``: means over videos (std: the sample std, N - 1, as FVD's spread beside
    it in the report) and each video's figures."""
    def column(key: str) -> np.ndarray:
        return np.asarray([video[key] for video in figures], dtype=np.float64)

    errors, real = column("error"), column("real_error")
    with warnings.catch_warnings():     # all videos unmeasured: NaN, written null, is the answer
        warnings.simplefilter("ignore", RuntimeWarning)
        figures_of = {"warping_error": np.nanmean(errors), "warping_error_std": np.nanstd(errors, ddof=1),
                      "per_video": errors, "real_warping_error": np.nanmean(real), "real_per_video": real,
                      "mask_kept_share": column("mask_kept_share").mean()}
    return {"variant": variant, **{key: _null_for_nan(value) for key, value in figures_of.items()},
            "occlusion_threshold": OCCLUSION_THRESHOLD, "provenance": dict(record)}


def _null_for_nan(values: np.ndarray | float) -> list[float | None] | float | None:
    """A figure (or each of an array's) as a float, None where it is NaN: JSON has no NaN, and
    Python's bare ``NaN`` token is refused by strict readers (jq, JavaScript, most other languages)."""
    if np.ndim(values):
        return [_null_for_nan(value) for value in values]
    return None if np.isnan(values) else float(values)
