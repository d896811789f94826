"""What the labelling and fitting jobs read of the config's ``labels`` section, and where gtFine
labels are kept.

Torch-free: the workflow imports it to build the label and fit rules' ``--settings``, which are
also what Snakemake compares, so a job is given exactly what it reads and a change to anything
else reruns nothing (for a label job: the fits' ``fit`` settings, detectron2's ``config`` under the
torchvision backend, and ``keep_gtfine`` on a split that never keeps gtFine; for a fit: the
inference-only settings).

The inference batch size (``labels.<kind>.batch_size``, ``INFERENCE_KEYS``) is in neither: it
changes how a label job runs, not the labels it writes, so the rule passes it as a resource
(``--batch-size {resources.batch_size}``), which Snakemake does not compare, and a smaller batch
for a smaller GPU relabels nothing; the job records it in its provenance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.cli import INFERENCE_KEYS

__all__ = ["FIT_KEYS", "KEEP_GTFINE_SPLIT", "fit_settings", "keeps_gtfine", "label_settings"]

KEEP_GTFINE_SPLIT = "train"  # the only split whose annotated frames may keep their gtFine labels
# What fitting each labeller reads of labels.<kind>: the weights depend on these alone, so a change
# to an inference-only setting (batch size, score threshold, the checkpoint) does not refit it.
FIT_KEYS: dict[str, tuple[str, ...]] = {
    "semantic": ("encoder", "encoder_depth", "fit", "input_height", "input_width"),
    "instance": ("fit", "min_size", "max_size"),
}


def keeps_gtfine(keep_gtfine: bool, split: str) -> bool:
    """Whether the annotated frames of ``split`` keep gtFine: ``labels.keep_gtfine`` on the train
    split only. Val, test and held-out snippets are always pseudo-labelled (thesis-code.md: "Val
    and sampling always use the sequence val split with pseudo-labels")."""
    return bool(keep_gtfine) and split == KEEP_GTFINE_SPLIT


def fit_settings(config: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """The ``--settings`` of fit_segmenter (``semantic``) or fit_instances (``instance``), in the
    section's shape."""
    return {kind: {key: config["labels"][kind][key] for key in FIT_KEYS[kind]}}


def label_settings(config: Mapping[str, Any], kind: str, split: str) -> dict[str, Any]:
    """The ``--settings`` of label_``kind`` (``semantic`` or ``instance``) on ``split``:
    ``labels.<kind>`` less ``fit`` (the fit rule's: a fitted model reaches the job as its
    checkpoint input), less the batch size (``INFERENCE_KEYS``: the rule's resource) and, but for
    detectron2, less its ``config``; ``keep_gtfine`` as it applies to the split."""
    left_out = {"fit", *INFERENCE_KEYS}
    section = {key: value for key, value in config["labels"][kind].items() if key not in left_out}
    if kind == "instance" and section.get("backend") != "detectron2":
        section.pop("config", None)
    return {kind: section, "keep_gtfine": keeps_gtfine(config["labels"]["keep_gtfine"], split)}
