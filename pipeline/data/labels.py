"""The label table: the one home of label ids, train ids, instance classes and colours.

Everything comes from ``cityscapesscripts.helpers.labels`` (never a hand-written copy). The
networks take one-hot label channels chosen by a *label set*:

- ``train19_other`` (the thesis): the 19 evaluated classes, one channel each in train-id order,
  plus one channel for every other label id (the thesis's "cruft" channel): 20 channels.
- ``train19``: the 19 evaluated classes only; other ids give an all-zero pixel.
- ``all34``: one channel per label id 0..33 (pix2pixHD's 35-channel encoding less id -1).
"""

from __future__ import annotations

import numpy as np
from cityscapesscripts.helpers import labels as cs_labels

__all__ = [
    "LABEL_SETS", "NUM_LABEL_IDS", "NUM_TRAIN_IDS", "TRAIN_LABEL_IDS", "THING_LABEL_IDS", "IGNORE_TRAIN_ID",
    "num_channels", "channel_lut", "train_id_to_label_id", "label_id_to_train_id",
    "label_colors", "colorize", "label_table",
]

IGNORE_TRAIN_ID = 255
NUM_LABEL_IDS = 34  # ids 0..33; license plate (-1) is never drawn
_LABELS = [label for label in cs_labels.labels if 0 <= label.id < NUM_LABEL_IDS]
NUM_TRAIN_IDS = 19  # the evaluated classes, train ids 0..18
# Their label ids in train-id order (7, 8, 11, ..., 33).
TRAIN_LABEL_IDS: tuple[int, ...] = tuple(
    cs_labels.trainId2label[t].id for t in range(NUM_TRAIN_IDS)
)
# The 8 evaluated instance classes (person ... bicycle) in label-id order, as Detectron2 orders
# its contiguous Cityscapes classes.
THING_LABEL_IDS: tuple[int, ...] = tuple(
    label.id for label in _LABELS if label.hasInstances and not label.ignoreInEval
)
LABEL_SETS = ("train19_other", "train19", "all34")


def num_channels(label_set: str) -> int:
    return {"train19_other": NUM_TRAIN_IDS + 1, "train19": NUM_TRAIN_IDS, "all34": NUM_LABEL_IDS}[_check(label_set)]


def channel_lut(label_set: str) -> np.ndarray:
    """A 256-entry lookup from label id to one-hot channel; -1 means no channel (all zero)."""
    _check(label_set)
    lut = np.full(256, -1, dtype=np.int64)
    if label_set == "all34":
        lut[:NUM_LABEL_IDS] = np.arange(NUM_LABEL_IDS)
        return lut
    lut[list(TRAIN_LABEL_IDS)] = np.arange(NUM_TRAIN_IDS)
    if label_set == "train19_other":
        lut[lut < 0] = NUM_TRAIN_IDS
    return lut


def train_id_to_label_id() -> np.ndarray:
    """A 256-entry lookup from train id (0..18, 255) to label id; 255 maps to 0 (unlabeled)."""
    lut = np.zeros(256, dtype=np.uint8)
    lut[:NUM_TRAIN_IDS] = TRAIN_LABEL_IDS
    return lut


def label_id_to_train_id() -> np.ndarray:
    """A 256-entry lookup from label id to train id; ids outside the 19 classes map to 255."""
    lut = np.full(256, IGNORE_TRAIN_ID, dtype=np.uint8)
    lut[list(TRAIN_LABEL_IDS)] = np.arange(NUM_TRAIN_IDS)
    return lut


def label_colors() -> np.ndarray:
    """A 256x3 uint8 palette indexed by label id (Cityscapes' own colours; black elsewhere)."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for label in _LABELS:
        palette[label.id] = label.color
    return palette


def colorize(label_ids: np.ndarray) -> np.ndarray:
    """An RGB picture of a label-id map."""
    return label_colors()[label_ids]


def label_table() -> list[dict]:
    """The table as plain records, for provenance and the HDF5 attributes."""
    return [
        {"id": label.id, "name": label.name, "train_id": label.trainId, "category": label.category,
         "has_instances": bool(label.hasInstances), "color": list(label.color)}
        for label in _LABELS
    ]


def _check(label_set: str) -> str:
    if label_set not in LABEL_SETS:
        raise ValueError(f"unknown label set {label_set!r}; choose one of {', '.join(LABEL_SETS)}")
    return label_set
