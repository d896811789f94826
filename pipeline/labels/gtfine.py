"""The fits' training data: the gtFine frames of the train split (the annotated frame of every
snippet of every train city, not only the cities the study takes).

This is how Cityscapes checkpoints are made: DeepLabV3+ on the annotated frames' labelIds turned
into train ids (255 ignored), Mask R-CNN on their instanceIds (one instance per
``labelId*1000+k`` value of the 8 evaluated thing classes; groups and ``caravan``/``trailer``
are not instances to learn, as in Detectron2's Cityscapes loader).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from pipeline.data.cityscapes import read_frame
from pipeline.data.labels import THING_LABEL_IDS, label_id_to_train_id
from pipeline.data.subset import gtfine_train_snippets, load_subset
from pipeline.errors import PipelineError
from pipeline.labels.frames import FrameRef, read_gtfine

__all__ = ["annotated_frames", "segmentation_sample", "instance_targets", "instance_sample", "sample_store"]

S = TypeVar("S")
CACHE_BYTES = 2 << 30  # keep decoded samples in memory up to this much (the demo's all fit)


def annotated_frames(subset_path: str | Path, frames_root: str | Path | None = None) -> list[FrameRef]:
    """The annotated frame of every train snippet the subset lists in ``gtfine_train`` (read from
    ``frames_root``, default the subset's root)."""
    snippets = gtfine_train_snippets(load_subset(subset_path, frames_root), subset_path)
    if not snippets:
        raise PipelineError("the subset lists no annotated train snippets to fit on", subset_path)
    return [FrameRef(snippet, snippet.annotated_index) for snippet in snippets]


def segmentation_sample(frame: FrameRef) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 ``[H,W,3]``, train ids uint8 ``[H,W]`` with 255 = ignore) of an annotated frame."""
    image = read_frame(frame.path)
    train_ids = label_id_to_train_id()[read_gtfine(frame, "labelIds", image.shape[:2])]
    return image, train_ids


def instance_targets(instance_ids: np.ndarray) -> dict[str, torch.Tensor]:
    """torchvision's Mask R-CNN target of an instanceIds map: ``boxes`` (x1, y1, x2, y2, pixel
    edges), ``labels`` 1..8 (0 is background), ``masks`` uint8 ``[N,H,W]``."""
    values = np.unique(instance_ids[instance_ids >= 1000])
    values = [int(v) for v in values if v // 1000 in THING_LABEL_IDS]
    height, width = instance_ids.shape
    boxes, labels, masks = [], [], []
    for value in values:
        mask = instance_ids == value
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        boxes.append([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1])
        labels.append(THING_LABEL_IDS.index(value // 1000) + 1)
        masks.append(mask)
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "masks": torch.from_numpy(np.stack(masks) if masks else np.zeros((0, height, width), bool)
                                  ).to(torch.uint8),
    }


def instance_sample(frame: FrameRef) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 ``[H,W,3]``, instanceIds uint16 ``[H,W]``) of an annotated frame."""
    image = read_frame(frame.path)
    return image, read_gtfine(frame, "instanceIds", image.shape[:2])


def sample_store(frames: Sequence[FrameRef], load: Callable[[FrameRef], S]) -> Callable[[int], S]:
    """``sample(i)`` of the i-th frame: all decoded once where they fit in ``CACHE_BYTES``
    (the synthetic city), else read again at each use (Cityscapes at 1024x2048)."""
    first = load(frames[0])
    size = sum(part.nbytes for part in first)
    if size * len(frames) <= CACHE_BYTES:
        cached = [first] + [load(frame) for frame in frames[1:]]
        return cached.__getitem__
    return lambda index: load(frames[index])
