"""FVD statistics: the thesis's number, the pooled FVD, and the spread the thesis never showed.

Thesis 4.5.4: an FVD for each batch of 16 videos (real batch b against synthesised batch b),
the mean over the 8 batches, then the mean over the 3 crops. Beside it, per crop, the pooled
FVD of all N = 128 videos, which is far less biased: at N = 16 the covariance of 400 logits has
rank at most 15, so the batch FVD is dominated by its small-sample bias (fvd.md 4.5, 5). FVDs
compare only at equal N.

The spread: standard deviations over batches and crops, and a percentile bootstrap of the
pooled FVD that resamples test sequences. Video i of a synthesised set is made from the labels
of real test video i, so a replicate draws one list of indices and applies it to both sets; the
indices come from (seed, N, replicates) alone, so every variant scored with the same settings
sees the same resamples and two variants' replicates can be compared pairwise
(:mod:`pipeline.fvd.table`). Resampling with replacement repeats videos, which lowers the rank
of the covariance and shifts every replicate upward (at N = 128 by more than the spread, so a
plain percentile interval can miss the pooled FVD itself). The interval reported is therefore
the replicates' spread centred on the estimate: estimate + the percentiles of (replicate -
mean of the replicates). The raw replicates and their mean are kept beside it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import stats

from pipeline.fvd.frechet import (
    feature_statistics,
    frechet_distance,
    frechet_distance_features,
    frechet_distance_from_grams,
)

__all__ = [
    "CONFIDENCE",
    "batch_fvds",
    "bootstrap_indices",
    "indices_digest",
    "bootstrap_fvds",
    "percentile_interval",
    "centred",
    "centred_interval",
    "paired_batch_interval",
    "score_crops",
]

CONFIDENCE = 0.95
BOOTSTRAP_CHUNK = 50  # replicates per stacked Gram block: bounded memory, vectorised SVDs


def batch_fvds(real: np.ndarray, fake: np.ndarray, batch_size: int) -> np.ndarray:
    """FVD of each batch: ``real[b*s:(b+1)*s]`` against ``fake[b*s:(b+1)*s]`` (thesis 4.5.4)."""
    if len(real) != len(fake) or len(real) % batch_size:
        raise ValueError(f"{len(real)} real and {len(fake)} synthesised videos: need equal numbers, "
                         f"a multiple of the batch size {batch_size}")
    starts = range(0, len(real), batch_size)
    return np.array([frechet_distance_features(real[s:s + batch_size], fake[s:s + batch_size]) for s in starts])


def bootstrap_indices(num_videos: int, replicates: int, seed: int) -> np.ndarray:
    """``[replicates, num_videos]`` video indices drawn with replacement from ``seed`` alone."""
    return np.random.default_rng(seed).integers(0, num_videos, size=(replicates, num_videos))


def indices_digest(indices: np.ndarray) -> str:
    """A hash of the resampling indices: equal digests mean two scores' replicates pair up."""
    return hashlib.sha256(np.ascontiguousarray(indices, dtype=np.int64).tobytes()).hexdigest()[:16]


def bootstrap_fvds(real: np.ndarray, fake: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Pooled FVD of each resample: ``real[idx]`` against ``fake[idx]`` for each row of ``indices``."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if len(real) >= real.shape[1]:
        # More videos than features: the covariance path is the smaller one.
        return np.array([frechet_distance(*feature_statistics(real[idx]), *feature_statistics(fake[idx]))
                         for idx in indices])
    # Gram matrices once; a resample is a block of their rows and columns (frechet.py docstring).
    shift = real.mean(axis=0)
    x, y = real - shift, fake - shift
    grams = (x @ x.T, y @ y.T, x @ y.T)
    values = []
    for start in range(0, len(indices), BOOTSTRAP_CHUNK):
        rows = indices[start:start + BOOTSTRAP_CHUNK]
        block = (rows[:, :, None], rows[:, None, :])
        values.append(frechet_distance_from_grams(*(gram[block] for gram in grams)))
    return np.concatenate(values) if values else np.zeros(0)


def percentile_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> list[float]:
    """The central ``confidence`` percentile interval of bootstrap replicates ``[low, high]``."""
    if len(values) == 0:
        return [float("nan"), float("nan")]
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return [float(low), float(high)]


def centred(estimate: float, values: np.ndarray) -> np.ndarray:
    """Bootstrap replicates moved to mean ``estimate``: their spread without the upward shift that
    repeated videos give each replicate (module docstring)."""
    values = np.asarray(values, dtype=np.float64)
    return values - values.mean() + estimate if len(values) else values


def centred_interval(estimate: float, values: np.ndarray, confidence: float = CONFIDENCE,
                     floor: float | None = None) -> list[float]:
    """The replicates' central ``confidence`` spread, centred on ``estimate`` (module docstring).

    ``floor`` bounds the interval below (0 for an FVD, which cannot be negative).
    """
    low, high = percentile_interval(centred(estimate, values), confidence)
    if floor is not None and not np.isnan(low):       # NaN: no replicates
        low = max(floor, low)
    return [low, high]


def paired_batch_interval(batches_a: np.ndarray, batches_b: np.ndarray,
                          confidence: float = CONFIDENCE) -> tuple[float, list[float]]:
    """The thesis protocol's change b - a and its t interval over the batches.

    ``batches_*``: [crops, batches] batch FVDs. Batch k of both variants holds the same real and
    test videos, so the differences pair: d_k = the crop mean of b's minus a's FVD at batch k;
    the change is their mean (the difference of the two ``fvd_thesis``), the interval Student's
    t over the (8) batches. NaN where there is a single batch.
    """
    differences = (np.asarray(batches_b, np.float64) - np.asarray(batches_a, np.float64)).mean(axis=0)
    change = float(differences.mean())
    if len(differences) < 2:
        return change, [float("nan"), float("nan")]
    standard_error = _std(differences) / np.sqrt(len(differences))
    half = stats.t.ppf((1.0 + confidence) / 2.0, len(differences) - 1) * standard_error
    return change, [change - half, change + half]


def _std(values: np.ndarray) -> float:
    """Sample standard deviation (N - 1); NaN for a single value."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def score_crops(real: Mapping[str, np.ndarray], fake: Mapping[str, np.ndarray], crops: list[str],
                batch_size: int, replicates: int, seed: int, confidence: float = CONFIDENCE) -> dict[str, Any]:
    """All FVD figures of one synthesised set against the real set, per crop and over crops.

    Returns a JSON-ready dict: ``fvd_thesis`` (mean over crops of the mean over batches),
    ``crops`` (per crop: batch FVDs, their mean and std, pooled FVD, its interval and
    replicates), ``crop_std``, ``batch_crop_std``, ``pooled_fvd`` (mean over crops) with its
    interval and replicates (the crop mean of each replicate), and the bootstrap's description.
    """
    num_videos = len(real[crops[0]])
    indices = bootstrap_indices(num_videos, replicates, seed)
    per_crop: dict[str, Any] = {}
    for name in crops:
        batches = batch_fvds(real[name], fake[name], batch_size)
        replicate_values = bootstrap_fvds(real[name], fake[name], indices)
        pooled = frechet_distance_features(real[name], fake[name])
        per_crop[name] = {
            "batch_fvd": batches.tolist(),
            "batch_mean": float(batches.mean()),
            "batch_std": _std(batches),
            "pooled": pooled,
            "pooled_ci": centred_interval(pooled, replicate_values, confidence, floor=0.0),
            "bootstrap_mean": float(replicate_values.mean()) if replicates else float("nan"),
            "bootstrap": replicate_values.tolist(),
        }
    crop_means = np.array([per_crop[name]["batch_mean"] for name in crops])
    all_batches = np.concatenate([per_crop[name]["batch_fvd"] for name in crops])
    pooled_replicates = np.mean([per_crop[name]["bootstrap"] for name in crops], axis=0) if replicates else np.zeros(0)
    pooled = float(np.mean([per_crop[name]["pooled"] for name in crops]))
    return {
        "fvd_thesis": float(crop_means.mean()),
        "crop_std": _std(crop_means),
        "batch_crop_std": _std(all_batches),
        "pooled_fvd": pooled,
        "pooled_ci": centred_interval(pooled, pooled_replicates, confidence, floor=0.0),
        "pooled_bootstrap_mean": float(pooled_replicates.mean()) if replicates else float("nan"),
        "pooled_bootstrap": pooled_replicates.tolist(),
        "num_videos": num_videos,
        "batch_size": batch_size,
        "batches": num_videos // batch_size,
        "bootstrap": {"replicates": replicates, "seed": seed, "confidence": confidence,
                      "method": "percentile spread centred on the estimate; videos resampled with replacement, "
                                "the same indices for real and synthesised videos, every crop and variant",
                      "indices_sha256": indices_digest(indices)},
        "crops": per_crop,
    }
