"""The ``torchvision`` instance backend: Mask R-CNN R50-FPN with the 8 Cityscapes thing classes.

Mask R-CNN (He et al. 2017) as torchvision builds it, with random weights (nothing downloads) and
``num_classes=9``: background plus the 8 evaluated thing classes in label-id order, the order of
Detectron2's Cityscapes config. Weights come from a state-dict checkpoint (``fit_instances`` makes
one). torchvision's own transform normalises (ImageNet mean and std) and resizes to
``min_size``/``max_size``; masks come back at the frame's size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.models.detection import maskrcnn_resnet50_fpn

from pipeline.data.labels import THING_LABEL_IDS
from pipeline.labels.checkpoint import check_meta, checkpoint_record, load_into, read_checkpoint
from pipeline.labels.detections import Detections

__all__ = ["NUM_CLASSES", "build_mask_rcnn", "load_mask_rcnn", "TorchvisionDetector", "frames_to_tensors"]

NUM_CLASSES = 1 + len(THING_LABEL_IDS)  # background + 8 thing classes
MASK_THRESHOLD = 0.5  # torchvision's masks are probabilities; 0.5 as its reference evaluation


def build_mask_rcnn(min_size: int, max_size: int) -> nn.Module:
    """torchvision's Mask R-CNN R50-FPN for Cityscapes' things, random weights."""
    return maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=NUM_CLASSES,
                                 min_size=min_size, max_size=max_size)


def load_mask_rcnn(checkpoint: str | Path, min_size: int, max_size: int) -> tuple[nn.Module, dict[str, Any]]:
    """The model with the checkpoint's weights and the checkpoint's record (PipelineError on misfit)."""
    state, meta = read_checkpoint(checkpoint)
    check_meta(meta, {"architecture": "maskrcnn_resnet50_fpn", "classes": NUM_CLASSES}, checkpoint)
    model = build_mask_rcnn(min_size, max_size)
    load_into(model, state, checkpoint, f"torchvision Mask R-CNN R50-FPN ({NUM_CLASSES} classes: "
                                        "background + 8 Cityscapes things)")
    return model.eval(), checkpoint_record(checkpoint, meta)


def frames_to_tensors(images: np.ndarray, device: torch.device) -> list[torch.Tensor]:
    """uint8 ``[B,H,W,3]`` RGB -> the list of float ``[3,H,W]`` in [0, 1] torchvision takes."""
    batch = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    return list(batch)


class TorchvisionDetector:
    """``detect(images [B,H,W,3] uint8 RGB) -> [Detections]`` with torchvision's Mask R-CNN."""

    backend = "torchvision"

    def __init__(self, model: nn.Module, score_threshold: float, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        # channels_last: oneDNN's faster convolutions and RoIAlign reads; 1.18x per frame on a
        # 2-core CPU at 256x512 (benchmarks/bench_labels.py), the same detections.
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        # Drop weak boxes before the mask head: its four 3x3 convolutions per detection are most
        # of the cost on a CPU, and painting would discard those masks anyway.
        self.model.roi_heads.score_thresh = score_threshold

    @torch.inference_mode()
    def detect(self, images: np.ndarray) -> list[Detections]:
        outputs = self.model(frames_to_tensors(images, self.device))
        return [Detections(masks=(out["masks"][:, 0] > MASK_THRESHOLD).cpu().numpy(),
                           classes=(out["labels"] - 1).cpu().numpy(),
                           scores=out["scores"].float().cpu().numpy())
                for out in outputs]
