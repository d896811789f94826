"""How good a flow backend is where the true motion is known: the synthetic city.

Two measures (the standard ones of Baker et al., IJCV 2011):

- end-point error (EPE): mean Euclidean distance in pixels between computed and true flow,
  over the pixels whose true flow is valid (visible in both frames);
- warping error: mean absolute difference (RGB in [0, 1]) between frame t and frame t-1 warped
  onto it with :func:`pipeline.flow.warp.warp`, over the same pixels; reported for the computed,
  the true and the zero flow, so a backend that tracks the motion has a ratio to zero flow well
  below 1.

The truth is ``{root}/truth/{split}/{city}/{snippet_id}.npz`` with ``flow`` ``[T, H, W, 2]``
(``flow[t]`` warps frame t-1 onto t) and ``valid`` ``[T, H, W]``, written by
:mod:`pipeline.data.synthetic`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.data.cityscapes import Snippet, find_snippets, read_frame
from pipeline.errors import PipelineError
from pipeline.flow.backends import FlowBackend
from pipeline.flow.warp import warp

__all__ = ["end_point_error", "warp_frames", "warp_error", "load_truth", "evaluate_on_truth"]


def end_point_error(flow: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Mean end-point error in pixels of ``flow`` against ``truth`` (``[..., 2]``) on ``valid``."""
    error = np.linalg.norm(np.asarray(flow, np.float64) - np.asarray(truth, np.float64), axis=-1)
    if valid is not None:
        error = error[np.asarray(valid, bool)]
    return float(error.mean()) if error.size else float("nan")


def warp_frames(prev_rgb: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Frames t-1 ``[B, H, W, 3]`` uint8 warped by ``flow`` ``[B, H, W, 2]``: float ``[B, H, W, 3]`` in [0, 1].

    Border padding: a pixel sampled outside frame t-1 takes the nearest edge value, so the
    measure is not dominated by the black band zero padding would leave.
    """
    image = torch.from_numpy(np.ascontiguousarray(prev_rgb)).permute(0, 3, 1, 2).float() / 255.0
    motion = torch.from_numpy(np.ascontiguousarray(flow, dtype=np.float32)).permute(0, 3, 1, 2)
    return warp(image, motion, padding_mode="border").permute(0, 2, 3, 1).numpy()


def warp_error(prev_rgb: np.ndarray, next_rgb: np.ndarray, flow: np.ndarray,
               valid: np.ndarray | None = None) -> float:
    """Mean absolute RGB difference in [0, 1] between frame t and frame t-1 warped by ``flow``.

    A check of the flow (how well it explains the real frames), border-padded and unmasked. Not
    ``pipeline.synthesize.warping.warping_error``, the temporal-consistency measure of a
    synthesised video reported beside FVD, which leaves out occluded pixels and those the flow
    brings in from outside the frame."""
    warped = warp_frames(prev_rgb, flow)
    error = np.abs(warped - np.asarray(next_rgb, np.float32) / 255.0).mean(axis=-1)
    if valid is not None:
        error = error[np.asarray(valid, bool)]
    return float(error.mean()) if error.size else float("nan")


def load_truth(root: str | Path, snippet: Snippet) -> dict[str, np.ndarray]:
    """The synthetic city's true ``flow`` and ``valid`` of a snippet."""
    path = Path(root) / "truth" / snippet.split / snippet.city / f"{snippet.id}.npz"
    if not path.is_file():
        raise PipelineError("no true motion for this snippet (not the synthetic city?)", path)
    with np.load(path) as truth:
        return {"flow": truth["flow"].astype(np.float32), "valid": truth["valid"].astype(bool)}


def evaluate_on_truth(backend: FlowBackend, root: str | Path, split: str, city: str,
                      max_snippets: int | None = None, frames: int = 30,
                      annotated_index: int = 19) -> dict[str, Any]:
    """EPE and warping errors of ``backend`` on the synthetic city, at the frames' own size.

    Returns the means over all pairs of the first ``max_snippets`` snippets: ``epe`` (px),
    ``warp_error`` (computed flow), ``warp_error_true``, ``warp_error_zero`` and
    ``warp_ratio`` = computed / zero, plus ``pairs`` and the mean true flow length.
    """
    snippets = find_snippets(root, split, city, frames, annotated_index)[:max_snippets]
    sums: dict[str, float] = {"epe": 0.0, "warp_error": 0.0, "warp_error_true": 0.0,
                              "warp_error_zero": 0.0, "true_length": 0.0}
    pairs = 0
    for snippet in snippets:
        frames_rgb = np.stack([read_frame(path) for path in snippet.frame_paths])
        truth = load_truth(root, snippet)
        flow = backend(frames_rgb[:-1], frames_rgb[1:])
        for t in range(1, len(frames_rgb)):
            prev, nxt, valid = frames_rgb[t - 1:t], frames_rgb[t:t + 1], truth["valid"][t][None]
            true_flow = truth["flow"][t][None]
            sums["epe"] += end_point_error(flow[t - 1:t], true_flow, valid)
            sums["warp_error"] += warp_error(prev, nxt, flow[t - 1:t], valid)
            sums["warp_error_true"] += warp_error(prev, nxt, true_flow, valid)
            sums["warp_error_zero"] += warp_error(prev, nxt, np.zeros_like(true_flow), valid)
            sums["true_length"] += float(np.linalg.norm(true_flow, axis=-1)[valid].mean())
            pairs += 1
    if pairs == 0:
        raise PipelineError(f"no snippets in {split}/{city}", Path(root))
    result: dict[str, Any] = {key: value / pairs for key, value in sums.items()}
    result["warp_ratio"] = result["warp_error"] / max(result["warp_error_zero"], 1e-12)
    result["pairs"] = pairs
    result["backend"] = backend.describe()
    return result
