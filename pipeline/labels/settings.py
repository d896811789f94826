"""What a labelling job reads of the config's ``labels`` section, and where gtFine labels are kept.

Torch-free: the workflow imports it to build the label rules' ``--settings``, which are also what
Snakemake compares, so a job is given exactly what it reads and a change to anything else reruns
nothing (the fits' ``fit`` settings, detectron2's ``config`` under the torchvision backend, and
``keep_gtfine`` on a split that never keeps gtFine).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["KEEP_GTFINE_SPLIT", "keeps_gtfine", "label_settings"]

KEEP_GTFINE_SPLIT = "train"  # the only split whose annotated frames may keep their gtFine labels


def keeps_gtfine(keep_gtfine: bool, split: str) -> bool:
    """Whether the annotated frames of ``split`` keep gtFine: ``labels.keep_gtfine`` on the train
    split only. Val, test and held-out snippets are always pseudo-labelled (thesis-code.md: "Val
    and sampling always use the sequence val split with pseudo-labels")."""
    return bool(keep_gtfine) and split == KEEP_GTFINE_SPLIT


def label_settings(config: Mapping[str, Any], kind: str, split: str) -> dict[str, Any]:
    """The ``--settings`` of label_``kind`` (``semantic`` or ``instance``) on ``split``:
    ``labels.<kind>`` less ``fit`` (the fit rule's: a fitted model reaches the job as its
    checkpoint input) and, but for detectron2, less its ``config``; ``keep_gtfine`` as it applies
    to the split."""
    section = {key: value for key, value in config["labels"][kind].items() if key != "fit"}
    if kind == "instance" and section.get("backend") != "detectron2":
        section.pop("config", None)
    return {kind: section, "keep_gtfine": keeps_gtfine(config["labels"]["keep_gtfine"], split)}
