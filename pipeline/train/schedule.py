"""The thesis's schedules (thesis 4.5.3; reference/thesis-code.md section 7).

- CRN: Adam lr 1e-4, betas (0.9, 0.999); 200 epochs at 256x512, then one refinement module is
  added and 50 epochs follow at 512x1024.
- pix2pixHD: Adam lr 2e-4, betas (0.5, 0.999); 200 epochs, the lr decaying linearly over the
  last half. CRN variants that take pix2pixHD parts (edge map, feature encoder or
  discriminator) get the same decay over the second half of each stage.
- Prior-frame variants train on windows of 6 frames with one optimiser step per frame, for 60%
  of the epochs (120 + 30, and 120).
- Decay, as the thesis code computed it for 1-based epoch e >= s of a stage ending at E:
  ``lr = base * (1 - (e - s + 1) / (E - s + 2))``, so it never reaches 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

__all__ = ["StagePlan", "plan_stages", "uses_decay", "lr_factor", "optimizer_steps"]


@dataclass(frozen=True)
class StagePlan:
    """One training stage of a variant."""

    index: int
    height: int
    width: int
    epochs: float              # may be fractional for demos: a share of the first epoch's samples
    max_steps: int | None      # cap on the windows (samples) trained in the stage, not optimiser steps (demo)
    output_images: int
    decay: bool

    def lr_factor(self, epoch: int) -> float:
        return lr_factor(epoch, math.ceil(self.epochs)) if self.decay else 1.0


def uses_decay(entry: Mapping[str, Any]) -> bool:
    """pix2pixHD decays its lr; so do CRN variants with a ported pix2pixHD component."""
    return entry["network"] == "pix2pixhd" or entry["edge"] or entry["feature_encoder"] or entry["discriminator"] > 0


def plan_stages(entry: Mapping[str, Any], train: Mapping[str, Any]) -> list[StagePlan]:
    """The stages a variant trains through, with prior-frame variants at the reduced epochs."""
    schedule = train[entry["network"]]
    fraction = train["prior_epoch_fraction"] if entry["prior"] else 1.0
    plans = []
    for index, stage in enumerate(schedule["stages"]):
        images = entry["output_images"]
        if index > 0 and entry.get("output_images_stage2"):
            images = entry["output_images_stage2"]
        plans.append(StagePlan(index, stage["height"], stage["width"], stage["epochs"] * fraction,
                               stage.get("max_steps"), images, uses_decay(entry)))
    return plans


def optimizer_steps(plan: StagePlan, entry: Mapping[str, Any], train: Mapping[str, Any], samples: int) -> int:
    """Generator steps of a stage over ``samples`` training samples: one per sample, or one per
    frame of the window for prior-frame variants; ``max_steps`` caps the samples (demo)."""
    per_sample = train["window"] if entry["prior"] else 1
    taken = math.ceil(plan.epochs * samples)
    if plan.max_steps is not None:
        taken = min(taken, plan.max_steps)
    return taken * per_sample


def lr_factor(epoch: int, epochs: int) -> float:
    """Multiplier of the base lr at 0-based ``epoch`` of ``epochs``: 1, then linear decay.

    The thesis code's formula, lr = base * (1 - (e - s + 1) / (epochs - s + 2)) from 1-based epoch
    s on, with s = epochs // 2 + 1 so that exactly the second half decays (the thesis: "decaying
    over the last 100"; 226 for the CRN's second stage, as thesis-code.md derives). The code's
    default DECAY_STARTING_EPOCH was 100, one epoch earlier for pix2pixHD's 200: its lr then
    differs by under 1% of the base in each epoch of the decay.
    """
    start = epochs // 2 + 1           # 1-based first decaying epoch
    current = epoch + 1
    if current < start:
        return 1.0
    return 1.0 - (current - start + 1) / (epochs - start + 2)
