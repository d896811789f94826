"""Synthesise a variant's test videos and extract the real ones (see the package docstring)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from pipeline.errors import PipelineError
from pipeline.models.encoder import choose_centres, paint_features
from pipeline.models.prior import PriorFrames
from pipeline.pack.dataset import WindowDataset
from pipeline.synthesize.warping import non_occluded, warping_error
from pipeline.train.loop import load_trained

__all__ = ["video_count", "real_videos", "synthesize_videos"]


def video_count(settings: Mapping[str, Any], available: int, path: Path) -> int:
    wanted = settings["batches"] * settings["batch_size"]
    if available < wanted:
        raise PipelineError(f"fvd needs {wanted} test videos (batches x batch_size) but the packed file has "
                            f"{available} snippets; raise subset.test_sequences", path)
    return wanted


def _to_uint8(frames: torch.Tensor) -> np.ndarray:
    """[T, 3, H, W] in [0, 1] -> [T, H, W, 3] uint8."""
    return (frames.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def real_videos(data_path: str | Path, settings: Mapping[str, Any]) -> tuple[np.ndarray, dict]:
    """The real test videos at the scoring size, from the same start frame as every variant."""
    dataset = WindowDataset(data_path, (settings["height"], settings["width"]), window=settings["frames"],
                            start=settings["start_frame"], expand=False)
    count = video_count(settings, len(dataset), Path(data_path))
    videos = np.stack([dataset[i]["image"].numpy() for i in range(count)])
    return videos, {"snippets": dataset.packed.snippets[:count]}


@torch.inference_mode()
def synthesize_videos(model_path: str | Path, data_path: str | Path, settings: Mapping[str, Any],
                      clusters_path: str | Path | None = None, device: str = "cpu") -> tuple[np.ndarray, dict]:
    """uint8 videos [N, T, H, W, 3] at the scoring size, a record of how they were made, and the
    warping error of each video."""
    models, checkpoint = load_trained(model_path, device)
    entry = checkpoint["entry"]
    warmup = settings["warmup_frames"] if entry["prior"] else 0
    start = settings["start_frame"] - warmup
    if start < 0:
        raise PipelineError(f"fvd.start_frame {settings['start_frame']} leaves no room for "
                            f"{warmup} warm-up frames of variant {checkpoint['variant']!r}")
    model_size = (checkpoint["height"], checkpoint["width"])
    score_size = (settings["height"], settings["width"])
    inputs = WindowDataset(data_path, model_size, window=settings["frames"] + warmup, start=start,
                           label_set=checkpoint["label_set"])
    reference = WindowDataset(data_path, score_size, window=settings["frames"], start=settings["start_frame"],
                              label_set=checkpoint["label_set"])
    count = video_count(settings, len(inputs), Path(data_path))
    bank = _bank(clusters_path, models)
    videos, errors, draws = [], [], []
    for index in tqdm(range(count), desc=f"synthesize {checkpoint['variant']}", unit="video"):
        sample = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in inputs[index].items()}
        chosen = None
        if bank is not None:
            generator = torch.Generator().manual_seed(settings["seed"] * 1_000_003 + index)
            chosen = choose_centres(bank, generator)
            draws.append({str(cls): centre.tolist() for cls, centre in chosen.items()})
        frames = _synthesize(models, entry, sample, chosen)[warmup:]
        frames = F.interpolate(frames, size=score_size, mode="bilinear", align_corners=False, antialias=True)
        videos.append(_to_uint8(frames))
        real = reference[index]
        mask = non_occluded(real["image"], real["flow"])
        errors.append(warping_error(frames.float().cpu().clamp(0, 1), real["flow"], mask))
    record = {"variant": checkpoint["variant"], "model_provenance": checkpoint["provenance"],
              "start_frame": start, "warmup_frames": warmup, "model_size": list(model_size),
              "features": "cluster draw" if bank is not None else ("encoded real frame" if models.encoder else None),
              "feature_draws": draws, "snippets": inputs.packed.snippets[:count]}
    return np.stack(videos), {"record": record, "warping_errors": errors}


def _bank(clusters_path: str | Path | None, models) -> dict | None:
    if models.encoder is None or clusters_path is None:
        return None
    path = Path(clusters_path)
    if not path.is_file():
        raise PipelineError("feature cluster bank not found (run the cluster_features rule)", path)
    return torch.load(path, map_location="cpu", weights_only=False)["bank"]


def _synthesize(models, entry, sample: dict, chosen: dict | None) -> torch.Tensor:
    """Frames [T, 3, H, W] of one video; prior variants feed back their own frames."""
    priors = PriorFrames(entry["prior"]) if entry["prior"] else None
    image, labels = sample["image"][:, None], sample["labels"][:, None]    # [T, 1, ...]
    if priors is not None:
        priors.reset(image[0], labels[0])
    outputs = []
    for t in range(image.shape[0]):
        inputs = {"labels": labels[t]}
        if entry["edge"]:
            inputs["edge"] = sample["edge"][t][None]
        if models.encoder is not None:
            instances = sample["instances"][t][None]
            inputs["features"] = (paint_features(instances, labels[t], chosen) if chosen is not None
                                  else models.encoder(image[t] * 2.0 - 1.0, instances))
        if priors is not None:
            inputs.update(priors.inputs())
        frame = models.generator(inputs)["image"]
        if priors is not None:
            priors.push(frame, labels[t])
        outputs.append(frame)
    return torch.cat(outputs)
