"""label_semantic: DeepLabV3+ label ids for every frame of a split's city.

DeepLabV3+ (Chen et al. 2018, "Encoder-Decoder with Atrous Separable Convolution"), the thesis's
semantic labeller (4.4), from segmentation-models-pytorch. It is built offline
(``encoder_weights=None``: smp would fetch weights and preprocessing from a hub) and the ImageNet
normalisation lives here (reference/cityscapes.md section 4). Frames are resized to
``input_height x input_width`` (multiples of 16, the output stride); the 19 class scores are
resized back to the frame (bilinear), and their argmax, a train id, is mapped to Cityscapes
label ids.

Usage::

    python -m pipeline.labels.semantic --subset results/data/subset/train.json --split train \\
        --city aachen --frames-root ROOT [--checkpoint FILE] --output results/labels/semantic/train/aachen \\
        --settings JSON --batch-size N   # config['labels'] (only keep_gtfine and semantic are read)

``--batch-size``: frames a batch, ``labels.semantic.batch_size``, which the rule passes as a resource
(how the job runs, not the labels: ``pipeline.cli.read_batch_size``); the provenance records it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.cli import (add_batch_size_argument, add_city_arguments, add_settings_arguments, read_batch_size,
                          read_settings, run_main)
from pipeline.data.labels import NUM_TRAIN_IDS, TRAIN_LABEL_IDS, train_id_to_label_id
from pipeline.data.subset import load_subset, subset_snippets
from pipeline.device import pick_device
from pipeline.errors import PipelineError
from pipeline.labels.checkpoint import check_meta, checkpoint_record, load_into, read_checkpoint
from pipeline.labels.frames import city_frames, label_city
from pipeline.provenance import code_version, provenance

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "NUM_CLASSES", "build_segmenter", "load_segmenter",
    "normalise", "SemanticLabeller", "semantic_labeller", "main",
]

NUM_CLASSES = NUM_TRAIN_IDS
# smp's preprocessing for every ImageNet encoder (get_preprocessing_params), kept here offline.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OUTPUT_STRIDE = 16


def build_segmenter(encoder: str, classes: int = NUM_CLASSES, depth: int = 5) -> nn.Module:
    """DeepLabV3+ with random weights (smp defaults: output stride 16, 256 decoder channels).

    ``depth`` is smp's ``encoder_depth``: 5 uses every stage of the encoder (the paper's and any
    published checkpoint's); 4 puts ASPP on the stride-16 stage and leaves the last one out,
    which halves a ResNet-18's training step (its last stage, dilated to keep stride 16, costs
    four times its usual share). The stride-4 features the decoder refines with are the same.
    """
    try:
        return smp.DeepLabV3Plus(encoder_name=encoder, encoder_weights=None, classes=classes,
                                 encoder_depth=depth)
    except KeyError as err:
        raise PipelineError(f"labels.semantic.encoder: unknown smp encoder {encoder!r}") from err


def load_segmenter(checkpoint: str | Path, encoder: str, classes: int = NUM_CLASSES, depth: int = 5
                   ) -> tuple[nn.Module, dict[str, Any]]:
    """DeepLabV3+ with the checkpoint's weights, and the checkpoint's record for provenance.

    Raises a PipelineError naming the file if it is missing or does not fit the encoder, its
    depth or the class count (its meta, missing/unexpected keys, or layers of another shape).
    """
    state, meta = read_checkpoint(checkpoint)
    check_meta(meta, {"encoder": encoder, "encoder_depth": depth, "classes": classes,
                      "architecture": "DeepLabV3Plus"}, checkpoint)
    if "label_ids" in meta and list(meta["label_ids"]) != list(TRAIN_LABEL_IDS[:classes]):
        raise PipelineError(f"checkpoint's classes are label ids {meta['label_ids']}, expected the "
                            f"Cityscapes train ids' {list(TRAIN_LABEL_IDS)}", checkpoint)
    model = build_segmenter(encoder, classes, depth)
    load_into(model, state, checkpoint, f"DeepLabV3+ ({encoder}, depth {depth}, {classes} classes)")
    return model.eval(), checkpoint_record(checkpoint, meta)


def normalise(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 ``[B,H,W,3]`` RGB -> ImageNet-normalised float ``[B,3,h,w]`` at the network's size.

    The fit uses the same function, so training and labelling see the same scale and filter.
    """
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    batch = images.permute(0, 3, 1, 2).float().div_(255.0)
    if tuple(batch.shape[-2:]) != tuple(size):
        batch = F.interpolate(batch, size=size, mode="bilinear", align_corners=False, antialias=True)
    return (batch - mean) / std


class SemanticLabeller:
    """Frames in, Cityscapes label ids out: ``labeller(images [B,H,W,3] uint8) -> [B,H,W] uint8``."""

    def __init__(self, model: nn.Module, input_size: tuple[int, int], device: torch.device | str = "cpu"):
        for side in input_size:
            if side % OUTPUT_STRIDE:
                raise PipelineError(f"labels.semantic input size {input_size} must be multiples of "
                                    f"{OUTPUT_STRIDE} (DeepLabV3+'s output stride)")
        self.device = torch.device(device)
        # channels_last lets oneDNN/cuDNN pick their fast convolutions; on the CPU it is what
        # makes a batch cheaper per frame than one frame at a time.
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        self.input_size = tuple(input_size)
        self.to_label_id = torch.from_numpy(train_id_to_label_id()).to(self.device)

    @torch.inference_mode()
    def logits(self, images: np.ndarray) -> torch.Tensor:
        """The 19 class scores ``[B,19,H,W]`` at the frames' own size.

        The network runs at its input size; its scores, not its argmax, are resampled to the
        frame (bilinear, antialiased when shrinking), so a class boundary can fall between the
        network's pixels. On frames labelled at twice their size this is worth about 0.01 mIoU
        over picking one of each 2x2 argmax pixels.
        """
        batch = normalise(torch.from_numpy(np.ascontiguousarray(images)).to(self.device), self.input_size)
        logits = self.model(batch.contiguous(memory_format=torch.channels_last))
        size = tuple(images.shape[1:3])
        if tuple(logits.shape[-2:]) != size:
            shrinking = logits.shape[-2] > size[0] or logits.shape[-1] > size[1]
            logits = F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False,
                                   antialias=shrinking)
        return logits

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.to_label_id[self.logits(images).argmax(dim=1)].cpu().numpy()


def semantic_labeller(semantic: dict[str, Any], checkpoint: str | Path | None = None,
                      device: torch.device | str | None = None) -> tuple[SemanticLabeller, dict[str, Any]]:
    """The labeller ``config['labels']['semantic']`` describes; ``checkpoint`` overrides its own."""
    checkpoint = checkpoint or semantic.get("checkpoint")
    if checkpoint is None:
        raise PipelineError("labels.semantic.checkpoint is null and no --checkpoint was given "
                            "(the graph runs fit_segmenter for it)")
    model, record = load_segmenter(checkpoint, semantic["encoder"], NUM_CLASSES, semantic["encoder_depth"])
    size = (semantic["input_height"], semantic["input_width"])
    return SemanticLabeller(model, size, device or pick_device()), record


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.labels.semantic", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_city_arguments(parser)
    parser.add_argument("--checkpoint", help="weights (overrides labels.semantic.checkpoint)")
    parser.add_argument("--output", required=True, help="directory of labelIds PNGs to write")
    add_batch_size_argument(parser, "frames", "labels.semantic.batch_size")
    add_settings_arguments(parser)
    args = parser.parse_args(argv)
    settings = read_settings(args, lambda config: config["labels"])
    try:
        semantic, keep_gtfine = settings["semantic"], settings["keep_gtfine"]
        batch_size = read_batch_size(args.batch_size, semantic, "labels.semantic.batch_size")
        labeller, weights = semantic_labeller(semantic, args.checkpoint)
    except KeyError as err:
        raise PipelineError(f"--settings lacks labels key {err}") from err
    snippets = subset_snippets(load_subset(args.subset, args.frames_root), args.split, args.city)
    record = provenance("label_semantic", settings, code_version("pipeline.labels.semantic"), None,
                        split=args.split, city=args.city, weights=weights, device=str(labeller.device),
                        batch_size=batch_size)
    label_city(city_frames(snippets), lambda images, _: labeller(images), args.output, "labelIds",
               batch_size, keep_gtfine, args.split, record, desc=f"semantic {args.split}/{args.city}")


if __name__ == "__main__":
    run_main(main)
