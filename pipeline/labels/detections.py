"""Detections -> Cityscapes instanceIds: what every instance backend's output becomes.

An instance backend returns, per frame, masks, contiguous classes 0..7 (the 8 evaluated thing
classes in label-id order, as Detectron2 orders Cityscapes: reference/cityscapes.md section 3)
and scores. ``paint_instances`` turns them into an instanceIds map (encoding of
cityscapesscripts' json2instanceImg): start from the semantic labelId map, paint the masks in
ascending score (the most confident wins where they overlap) as ``labelId*1000+k``, only on
pixels whose semantic class is the detection's class, so instances never contradict the
semantic labels. ``k`` counts the surviving instances of a class from the most confident (0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.data.labels import THING_LABEL_IDS

__all__ = ["Detections", "paint_instances", "instance_classes"]


@dataclass(frozen=True)
class Detections:
    """One frame's detections: ``masks`` bool ``[N,H,W]``, ``classes`` 0..7 ``[N]``, ``scores`` ``[N]``."""

    masks: np.ndarray
    classes: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        count = len(self.scores)
        if self.masks.ndim != 3 or len(self.masks) != count or len(self.classes) != count:
            raise ValueError(f"detections disagree: masks {self.masks.shape}, classes "
                             f"{self.classes.shape}, scores {self.scores.shape}")
        if count and not (0 <= self.classes.min() and self.classes.max() < len(THING_LABEL_IDS)):
            raise ValueError(f"classes must be 0..{len(THING_LABEL_IDS) - 1}, got {self.classes}")

    @classmethod
    def empty(cls, height: int, width: int) -> "Detections":
        return cls(np.zeros((0, height, width), bool), np.zeros(0, np.int64), np.zeros(0, np.float32))


def instance_classes() -> np.ndarray:
    """Label id of each contiguous thing class 0..7 (24, 25, 26, 27, 28, 31, 32, 33)."""
    return np.asarray(THING_LABEL_IDS, dtype=np.int64)


def paint_instances(label_ids: np.ndarray, detections: Detections, score_threshold: float) -> np.ndarray:
    """The uint16 instanceIds map of a frame from its labelIds and its detections."""
    if detections.masks.shape[1:] != label_ids.shape:
        raise ValueError(f"masks are {detections.masks.shape[1:]}, labels {label_ids.shape}")
    owner = np.full(label_ids.shape, -1, dtype=np.int64)  # index of the detection painted last
    class_label_ids = instance_classes()[detections.classes]
    order = np.argsort(detections.scores, kind="stable")
    for index in order:
        if detections.scores[index] < score_threshold:
            continue
        owner[detections.masks[index] & (label_ids == class_label_ids[index])] = index
    survivors = set(np.unique(owner[owner >= 0]).tolist())
    value = np.zeros(len(order), dtype=np.uint16)  # instanceId of each surviving detection
    counts: dict[int, int] = {}
    for index in order[::-1]:  # most confident first: k = 0, 1, ... per class
        if index in survivors:
            label_id = int(class_label_ids[index])
            k = counts.get(label_id, 0)
            counts[label_id] = k + 1
            value[index] = label_id * 1000 + k
    painted = owner >= 0
    instance_ids = label_ids.astype(np.uint16)
    instance_ids[painted] = value[owner[painted]]
    return instance_ids
