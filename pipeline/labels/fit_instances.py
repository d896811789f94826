"""fit_instances: train torchvision's Mask R-CNN on the gtFine instances of every train city.

The ``torchvision`` instance backend's weights where no checkpoint is configured (the demo): the
annotated frames, each instance of the 8 evaluated thing classes from the instanceIds PNG as a
box and mask (``pipeline.labels.gtfine.instance_targets``), horizontal flips, SGD with a linear
warm-up and poly decay, gradients clipped (random weights, small batches), bfloat16 autocast
where the hardware has it. The model's own
transform resizes to ``min_size``/``max_size`` as labelling does. The checkpoint's meta says it is
self-trained.

With ``--resume FOLDER`` (the rule passes ``results/resume/fit_instances``) the fit saves its
state there every ``--checkpoint-minutes`` and on SIGTERM, exits 143, and a resubmitted job goes
on from it to the same weights (``pipeline.labels.resume``).

Usage::

    python -m pipeline.labels.fit_instances --subset results/data/subset/gtfine_train.json --frames-root ROOT \\
        --output results/labels/instances.pt --settings JSON \\
        [--resume results/resume/fit_instances --checkpoint-minutes 30]    # --settings: config['labels']
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.cli import add_frames_root_argument, add_settings_arguments, read_settings, run_main
from pipeline.data.labels import THING_LABEL_IDS
from pipeline.device import pick_device
from pipeline.errors import PipelineError
from pipeline.labels.checkpoint import save_checkpoint
from pipeline.labels.frames import FrameRef
from pipeline.labels.gtfine import annotated_frames, instance_sample, instance_targets, sample_store
from pipeline.labels.resume import (DEFAULT_CHECKPOINT_MINUTES, FitResume, add_resume_arguments, frames_identity,
                                    run_fit)
from pipeline.labels.runtime import EpochBatches, autocast, fit_steps, seed_everything
from pipeline.labels.torchvision_backend import NUM_CLASSES, build_mask_rcnn, frames_to_tensors
from pipeline.provenance import code_version, provenance

__all__ = ["flip_sample", "fit_instances", "instances_meta", "main"]

MOMENTUM, WEIGHT_DECAY = 0.9, 1e-4   # torchvision's detection reference recipe
WARMUP_FRACTION = 0.1
GRAD_CLIP = 10.0                     # random weights and batches of 2: keep early steps bounded


def flip_sample(image: np.ndarray, instance_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The left-right mirror of a training pair (instances stay whole, so targets follow)."""
    return image[:, ::-1].copy(), instance_ids[:, ::-1].copy()


def fit_instances(frames: Sequence[FrameRef], instance: dict[str, Any], device: torch.device | str = "cpu",
                  resume_dir: str | Path | None = None, checkpoint_minutes: float = DEFAULT_CHECKPOINT_MINUTES
                  ) -> tuple[nn.Module, dict[str, Any]]:
    """Train Mask R-CNN from random weights on the annotated frames; return it and a summary.

    ``resume_dir``: where the fit saves its state every ``checkpoint_minutes`` and on SIGTERM,
    and goes on from (``pipeline.labels.resume``); None saves nothing."""
    if not frames:
        raise PipelineError("fit_instances: no gtFine frames to train on")
    fit = instance["fit"]
    # Everything the weights depend on (not the labelling-only keys of labels.instance): a resume
    # from other settings or frames is refused.
    reads = {"fit": dict(fit), "min_size": instance["min_size"], "max_size": instance["max_size"],
             "frames": frames_identity(frames)}
    resume = FitResume(resume_dir, "fit_instances", reads, checkpoint_minutes)
    rng = seed_everything(fit["seed"])
    sample = sample_store(frames, instance_sample)
    model = build_mask_rcnn(instance["min_size"], instance["max_size"]).to(device).train()
    # RoIs sampled per image for the box and mask heads (Detectron2's and torchvision's 512):
    # fewer keep a CPU step affordable; the weights do not depend on it.
    model.roi_heads.fg_bg_sampler.batch_size_per_image = fit["rois_per_image"]
    optimiser = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=fit["lr"],
                                momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)

    def loss_of(picks: list[int]) -> torch.Tensor:
        pairs = [sample(i) for i in picks]
        pairs = [flip_sample(*pair) if rng.random() < 0.5 else pair for pair in pairs]
        images = frames_to_tensors(np.stack([image for image, _ in pairs]), torch.device(device))
        targets = [{k: v.to(device) for k, v in instance_targets(ids).items()} for _, ids in pairs]
        with autocast(device, fit["amp"]):
            return sum(model(images, targets).values())

    summary = run_fit("fit_instances", model, optimiser, EpochBatches(len(frames), fit["batch_size"], rng), resume,
                      fit_steps(fit["epochs"], len(frames), fit["batch_size"]), fit["lr"], WARMUP_FRACTION, loss_of,
                      grad_clip=GRAD_CLIP)
    return model.eval(), summary


def instances_meta(instance: dict[str, Any], summary: dict[str, Any],
                   record: dict[str, Any]) -> dict[str, Any]:
    """What the checkpoint says about itself: the network, its classes, that it is self-trained."""
    return {
        "architecture": "maskrcnn_resnet50_fpn", "classes": NUM_CLASSES,
        "thing_label_ids": list(THING_LABEL_IDS), "min_size": instance["min_size"],
        "max_size": instance["max_size"], "self_trained": True,
        "source": (f"fit_instances: trained from random weights on the instances of "
                   f"{summary['train_frames']} gtFine frames of the train split (no pretrained weights)"),
        "fit": summary, "provenance": record,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.labels.fit_instances", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subset", required=True,
                        help="results/data/subset/gtfine_train.json (or results/data/subset.json)")
    add_frames_root_argument(parser)
    parser.add_argument("--output", required=True, help="checkpoint file to write (.pt)")
    add_settings_arguments(parser)
    add_resume_arguments(parser)
    args = parser.parse_args(argv)
    settings = read_settings(args, lambda config: config["labels"])
    try:
        instance = settings["instance"]
        seed = instance["fit"]["seed"]
    except KeyError as err:
        raise PipelineError(f"--settings lacks labels key {err}") from err
    frames = annotated_frames(args.subset, args.frames_root)
    model, summary = fit_instances(frames, instance, pick_device(), args.resume, args.checkpoint_minutes)
    record = provenance("fit_instances", settings, code_version("pipeline.labels.fit_instances"), seed)
    save_checkpoint(args.output, model.state_dict(), instances_meta(instance, summary, record))


if __name__ == "__main__":
    run_main(main)
