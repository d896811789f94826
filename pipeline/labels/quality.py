"""How good the pseudo-labels are where the truth is known (the synthetic city, all 30 frames).

- Semantic: mean IoU over the 19 evaluated classes (Cityscapes' pixel-level metric: pixels whose
  true class is ignored do not count; a prediction outside the 19 is a miss), averaged over the
  classes present in the truth; and Cityscapes' category IoU over its 7 categories.
- Instances: the share of true instances (the 8 evaluated thing classes) matched by a predicted
  instance of the same class at IoU >= 0.5; with disjoint masks at most one can match. Beside it,
  the same share over true instances of at least 100 pixels, the smallest region Cityscapes'
  instance evaluation counts (most of the synthetic city's instances at 128x256 are far smaller:
  distant people and cars of a few pixels, or slivers of them behind others).

Only the labellers' own labels are scored: a frame whose labels are the gtFine ones that
``labels.keep_gtfine`` kept (the annotated frames of the train split; the label directory's
``provenance.json`` lists them) is left out and counted in ``Quality.skipped``, as its perfect
score would say nothing of the pseudo-labels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.data.cityscapes import Snippet, read_label_png
from pipeline.data.labels import (IGNORE_TRAIN_ID, NUM_TRAIN_IDS, THING_LABEL_IDS, TRAIN_LABEL_IDS,
                                  label_id_to_train_id, label_table)
from pipeline.errors import PipelineError
from pipeline.io import read_json
from pipeline.labels.frames import FrameRef, city_frames

__all__ = ["Quality", "confusion", "mean_iou", "category_miou", "instance_matches", "read_truth",
           "kept_gtfine_frames", "evaluate_city"]

NUM_CLASSES = NUM_TRAIN_IDS
MATCH_IOU = 0.5
MIN_REGION = 100  # pixels: cityscapesscripts' evalInstanceLevelSemanticLabeling minRegionSizes[0]


def confusion(true_label_ids: np.ndarray, predicted_label_ids: np.ndarray) -> np.ndarray:
    """``[19, 20]`` pixel counts: true train id by predicted train id (column 19: any other id)."""
    to_train = label_id_to_train_id().astype(np.int64)
    truth, predicted = to_train[true_label_ids].ravel(), to_train[predicted_label_ids].ravel()
    counted = truth != IGNORE_TRAIN_ID
    predicted = np.where(predicted == IGNORE_TRAIN_ID, NUM_CLASSES, predicted)
    pairs = truth[counted] * (NUM_CLASSES + 1) + predicted[counted]
    return np.bincount(pairs, minlength=NUM_CLASSES * (NUM_CLASSES + 1)).reshape(NUM_CLASSES, NUM_CLASSES + 1)


def mean_iou(counts: np.ndarray) -> tuple[float, dict[int, float]]:
    """(mIoU over the classes present in the truth, {label id: IoU}) of a ``confusion`` sum."""
    hits = np.diag(counts[:, :NUM_CLASSES])
    union = counts.sum(axis=1) + counts[:, :NUM_CLASSES].sum(axis=0) - hits
    present = counts.sum(axis=1) > 0
    ious = {TRAIN_LABEL_IDS[c]: float(hits[c] / union[c]) for c in np.flatnonzero(present)}
    return (float(np.mean(list(ious.values()))) if ious else float("nan")), ious


def category_miou(counts: np.ndarray) -> float:
    """Cityscapes' "IoU category": the same confusion merged into its 7 categories (flat,
    construction, object, nature, sky, human, vehicle), averaged over those present."""
    by_id = {record["id"]: record["category"] for record in label_table()}
    categories = sorted({by_id[label_id] for label_id in TRAIN_LABEL_IDS})
    member = np.zeros((NUM_CLASSES + 1, len(categories) + 1))  # last row/column: no category
    for train_id, label_id in enumerate(TRAIN_LABEL_IDS):
        member[train_id, categories.index(by_id[label_id])] = 1
    member[NUM_CLASSES, len(categories)] = 1
    merged = (member[:NUM_CLASSES, :len(categories)].T @ counts @ member)  # [7 true, 8 predicted]
    hits = np.diag(merged[:, :len(categories)])
    union = merged.sum(axis=1) + merged[:, :len(categories)].sum(axis=0) - hits
    present = merged.sum(axis=1) > 0
    return float(np.mean(hits[present] / union[present])) if present.any() else float("nan")


def instance_matches(true_instance_ids: np.ndarray, predicted_instance_ids: np.ndarray,
                     min_area: int = 0) -> tuple[int, int]:
    """(true instances matched at IoU >= 0.5 by a predicted one of the same class, true instances),
    counting only true instances of at least ``min_area`` pixels."""
    true_areas, matched = _instance_areas(true_instance_ids, predicted_instance_ids)
    return int((true_areas[matched] >= min_area).sum()), int((true_areas >= min_area).sum())


def _instance_areas(true_instance_ids: np.ndarray, predicted_instance_ids: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The pixel area of every true thing instance, and whether a prediction matches it."""
    truth = true_instance_ids.astype(np.int64).ravel()
    predicted = predicted_instance_ids.astype(np.int64).ravel()
    things = np.isin(truth // 1000, THING_LABEL_IDS) & (truth >= 1000)
    true_ids, true_areas = np.unique(truth[things], return_counts=True)
    matched = np.zeros(len(true_ids), bool)
    predicted_things = predicted >= 1000
    pred_ids, pred_areas = np.unique(predicted[predicted_things], return_counts=True)
    both = things & predicted_things
    pairs, overlaps = np.unique(truth[both] * (1 << 20) + predicted[both], return_counts=True)
    for pair, overlap in zip(pairs.tolist(), overlaps.tolist()):
        true_id, pred_id = divmod(pair, 1 << 20)
        if true_id // 1000 != pred_id // 1000:
            continue
        index = np.searchsorted(true_ids, true_id)
        union = true_areas[index] + pred_areas[np.searchsorted(pred_ids, pred_id)] - overlap
        matched[index] |= overlap / union >= MATCH_IOU
    return true_areas, matched


@dataclass
class Quality:
    """Running totals over frames: the confusion matrix and instance match counts."""

    counts: np.ndarray = field(default_factory=lambda: np.zeros((NUM_CLASSES, NUM_CLASSES + 1), np.int64))
    matched: int = 0
    instances: int = 0
    matched_large: int = 0     # the same over true instances of at least MIN_REGION pixels
    instances_large: int = 0
    frames: int = 0            # frames scored
    skipped: int = 0           # frames left out: their labels are the kept gtFine, not the network's

    def add(self, true_labels: np.ndarray, labels: np.ndarray,
            true_instances: np.ndarray | None = None, instances: np.ndarray | None = None) -> None:
        self.counts += confusion(true_labels, labels)
        if true_instances is not None and instances is not None:
            areas, matched = _instance_areas(true_instances, instances)
            large = areas >= MIN_REGION
            self.matched += int(matched.sum())
            self.instances += len(areas)
            self.matched_large += int((matched & large).sum())
            self.instances_large += int(large.sum())
        self.frames += 1

    def merge(self, other: Quality) -> None:
        """Add another running total (another city's) to this one."""
        self.counts += other.counts
        for name in ("matched", "instances", "matched_large", "instances_large", "frames", "skipped"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def miou(self) -> float:
        return mean_iou(self.counts)[0]

    @property
    def category_miou(self) -> float:
        return category_miou(self.counts)

    @property
    def match_share(self) -> float:
        return self.matched / self.instances if self.instances else float("nan")

    @property
    def large_match_share(self) -> float:
        return self.matched_large / self.instances_large if self.instances_large else float("nan")


def read_truth(root: str | Path, snippet: Snippet) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic city's true ``labels`` [T,H,W] and ``instances`` [T,H,W] of a snippet."""
    path = Path(root) / "truth" / snippet.split / snippet.city / f"{snippet.id}.npz"
    if not path.is_file():
        raise PipelineError("no truth for this snippet (only the synthetic city has one)", path)
    with np.load(path) as truth:
        return truth["labels"], truth["instances"]


def kept_gtfine_frames(folder: str | Path, frames: Iterable[FrameRef], kind: str) -> set[str]:
    """The file names in a label directory that hold kept gtFine labels, from its provenance.json:
    ``kept_gtfine_frames``, or where an older record has only the count ``kept_gtfine``, the
    annotated frames. No provenance.json, or one without either key: none."""
    path = Path(folder) / "provenance.json"
    record = read_json(path) if path.is_file() else {}
    if "kept_gtfine_frames" in record:
        return set(record["kept_gtfine_frames"])
    if record.get("kept_gtfine"):
        return {frame.output_name(kind) for frame in frames if frame.annotated}
    return set()


def evaluate_city(snippets: Iterable[Snippet], semantic_dir: str | Path,
                  instance_dir: str | Path | None = None, quality: Quality | None = None) -> Quality:
    """Add every frame of the snippets (labels written by label_semantic / label_instance) but
    those whose labels are kept gtFine (counted in ``quality.skipped``)."""
    quality = quality or Quality()
    snippets = list(snippets)
    frames = city_frames(snippets)
    kept = kept_gtfine_frames(semantic_dir, frames, "labelIds")
    if instance_dir is not None:
        kept |= kept_gtfine_frames(instance_dir, frames, "instanceIds")
    truths = {snippet.id: read_truth(snippet.root, snippet) for snippet in snippets}
    for frame in frames:
        if frame.output_name("labelIds") in kept or frame.output_name("instanceIds") in kept:
            quality.skipped += 1
            continue
        true_labels, true_instances = (t[frame.index] for t in truths[frame.snippet.id])
        labels = read_label_png(Path(semantic_dir) / frame.output_name("labelIds"), true_labels.shape)
        instances = None
        if instance_dir is not None:
            instances = read_label_png(Path(instance_dir) / frame.output_name("instanceIds"),
                                       true_labels.shape)
        quality.add(true_labels, labels, true_instances, instances)
    return quality
