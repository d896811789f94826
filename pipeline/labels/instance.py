"""label_instance: Cityscapes instanceIds for every frame of a split's city.

One interface over two backends (thesis 4.4 used Detectron2): a detector's
``detect(images) -> [Detections]``, then ``paint_instances`` over the frame's semantic labelIds
(from ``label_semantic``), so ``InstanceLabeller(images, label_ids) -> instanceIds`` whatever
the backend. ``torchvision`` runs everywhere (the demo's); ``detectron2`` where it is installed.

Usage::

    python -m pipeline.labels.instance --subset results/data/subset/train.json --split train \\
        --city aachen --frames-root ROOT --semantic results/labels/semantic/train/aachen \\
        [--checkpoint FILE] --output results/labels/instance/train/aachen \\
        --settings JSON --batch-size N   # config['labels'] (only keep_gtfine and instance are read)

``--batch-size``: frames a batch, ``labels.instance.batch_size``, which the rule passes as a resource
(how the job runs, not the labels: ``pipeline.cli.read_batch_size``); the provenance records it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from pipeline.cli import (add_batch_size_argument, add_city_arguments, add_settings_arguments, read_batch_size,
                          read_settings, run_main)
from pipeline.data.cityscapes import read_label_png
from pipeline.data.subset import load_subset, subset_snippets
from pipeline.device import pick_device
from pipeline.errors import PipelineError
from pipeline.labels.detections import Detections, paint_instances
from pipeline.labels.frames import FrameRef, city_frames, label_city
from pipeline.provenance import code_version, provenance

__all__ = ["Detector", "InstanceLabeller", "instance_labeller", "main"]

BACKENDS = ("torchvision", "detectron2")


class Detector(Protocol):
    backend: str
    device: torch.device

    def detect(self, images: np.ndarray) -> list[Detections]: ...


class InstanceLabeller:
    """``labeller(images [B,H,W,3] uint8, label_ids [B,H,W] uint8) -> instanceIds [B,H,W] uint16``."""

    def __init__(self, detector: Detector, score_threshold: float):
        self.detector = detector
        self.score_threshold = score_threshold

    @property
    def device(self) -> torch.device:
        return self.detector.device

    def __call__(self, images: np.ndarray, label_ids: np.ndarray) -> np.ndarray:
        detections = self.detector.detect(images)
        return np.stack([paint_instances(labels, found, self.score_threshold)
                         for labels, found in zip(label_ids, detections, strict=True)])


def instance_labeller(instance: dict[str, Any], checkpoint: str | Path | None = None,
                      device: torch.device | str | None = None) -> tuple[InstanceLabeller, dict[str, Any]]:
    """The labeller ``config['labels']['instance']`` describes, and its weights' record."""
    backend = instance["backend"]
    if backend not in BACKENDS:
        raise PipelineError(f"labels.instance.backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    checkpoint = checkpoint or instance.get("checkpoint")
    if checkpoint is None:
        raise PipelineError(f"labels.instance.checkpoint is null and no --checkpoint was given "
                            f"(the {backend} backend needs weights"
                            + ("; the graph runs fit_instances for them)" if backend == "torchvision"
                               else ")"))
    device = torch.device(device) if device is not None else pick_device()
    if backend == "torchvision":
        from pipeline.labels.torchvision_backend import TorchvisionDetector, load_mask_rcnn

        model, record = load_mask_rcnn(checkpoint, instance["min_size"], instance["max_size"])
        detector: Detector = TorchvisionDetector(model, instance["score_threshold"], device)
    else:
        from pipeline.labels.detectron2_backend import Detectron2Detector, detectron2_config, load_detectron2

        cfg = detectron2_config(instance["config"], device, instance["score_threshold"],
                                instance["min_size"], instance["max_size"])
        model, record = load_detectron2(cfg, checkpoint)
        detector = Detectron2Detector(model, cfg)
    return InstanceLabeller(detector, instance["score_threshold"]), dict(record, backend=backend)


def _semantic_of(folder: Path, batch: list[FrameRef], size: tuple[int, int]) -> np.ndarray:
    """The label_semantic labelIds of a batch of frames."""
    return np.stack([read_label_png(folder / frame.output_name("labelIds"), size) for frame in batch])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.labels.instance", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_city_arguments(parser)
    parser.add_argument("--semantic", required=True, help="this city's label_semantic directory")
    parser.add_argument("--checkpoint", help="weights (overrides labels.instance.checkpoint)")
    parser.add_argument("--output", required=True, help="directory of instanceIds PNGs to write")
    add_batch_size_argument(parser, "frames", "labels.instance.batch_size")
    add_settings_arguments(parser)
    args = parser.parse_args(argv)
    settings = read_settings(args, lambda config: config["labels"])
    try:
        instance, keep_gtfine = settings["instance"], settings["keep_gtfine"]
        batch_size = read_batch_size(args.batch_size, instance, "labels.instance.batch_size")
        labeller, weights = instance_labeller(instance, args.checkpoint)
    except KeyError as err:
        raise PipelineError(f"--settings lacks labels key {err}") from err
    semantic = Path(args.semantic)
    if not semantic.is_dir():
        raise PipelineError("semantic label directory not found (run label_semantic first)", semantic)
    snippets = subset_snippets(load_subset(args.subset, args.frames_root), args.split, args.city)
    record = provenance("label_instance", settings, code_version("pipeline.labels.instance"), None,
                        split=args.split, city=args.city, weights=weights, device=str(labeller.device),
                        semantic=str(semantic), batch_size=batch_size)

    def label_batch(images: np.ndarray, batch: list[FrameRef]) -> np.ndarray:
        return labeller(images, _semantic_of(semantic, batch, images.shape[1:3]))

    label_city(city_frames(snippets), label_batch, args.output, "instanceIds", batch_size,
               keep_gtfine, args.split, record, desc=f"instance {args.split}/{args.city}")


if __name__ == "__main__":
    run_main(main)
