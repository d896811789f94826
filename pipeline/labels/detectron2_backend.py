"""The ``detectron2`` instance backend: Detectron2's Cityscapes Mask R-CNN R50-FPN (Wu et al. 2019).

The thesis's instance labeller (4.4). The network is whatever the model-zoo config names
(``Cityscapes/mask_rcnn_R_50_FPN.yaml``: 8 thing classes, BGR input, test size 1024/2048;
reference/cityscapes.md section 3), its weights come through ``DetectionCheckpointer`` (the
official ``model_final_af9cf5.pkl`` or a ``.pth`` Detectron2 saved), and inference does what
``DefaultPredictor`` does (BGR uint8 in, ``ResizeShortestEdge`` to the test size, outputs at the
frame's size) for a batch of frames at once. detectron2 is imported only here and only when this
backend is configured: it has no working PyPI release and is built from its source.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.errors import PipelineError
from pipeline.labels.checkpoint import checkpoint_record
from pipeline.labels.detections import Detections

__all__ = ["INSTALL_HINT", "import_detectron2", "detectron2_config", "load_detectron2",
           "Detectron2Detector", "instances_to_detections"]

INSTALL_HINT = (
    "detectron2 has no working PyPI release; build it from its official source into this "
    "environment (about 2 minutes on a CPU, needs a C++ compiler): "
    "git clone https://github.com/facebookresearch/detectron2 /tmp/detectron2 && "
    "pip install --no-build-isolation /tmp/detectron2 ; or set labels.instance.backend: torchvision"
)


def import_detectron2() -> Any:
    """The detectron2 package, or a PipelineError that says how to install it."""
    try:
        import detectron2
        importlib.import_module("detectron2.model_zoo")  # fails where the build is incomplete
    except ImportError as err:
        raise PipelineError(f"labels.instance.backend is detectron2 but it is not importable "
                            f"({err}). {INSTALL_HINT}") from err
    return detectron2


def detectron2_config(config: str, device: torch.device | str, score_threshold: float,
                      min_size: int | None = None, max_size: int | None = None) -> Any:
    """The frozen Detectron2 config: a model-zoo name (or a YAML path), device and test settings."""
    import_detectron2()
    from detectron2 import model_zoo
    from detectron2.config import get_cfg

    if os.path.isfile(config):
        config_file = config
    else:
        try:
            config_file = model_zoo.get_config_file(config)
        except RuntimeError as err:
            raise PipelineError(f"labels.instance.config: {config!r} is neither a file nor in "
                                f"Detectron2's model zoo") from err
    cfg = get_cfg()
    cfg.merge_from_file(config_file)
    cfg.MODEL.WEIGHTS = ""  # loaded by load_detectron2 with its checks, never from the zoo's URL
    cfg.MODEL.DEVICE = str(device)
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = float(score_threshold)
    if min_size is not None:
        cfg.INPUT.MIN_SIZE_TEST = int(min_size)
    if max_size is not None:
        cfg.INPUT.MAX_SIZE_TEST = int(max_size)
    cfg.freeze()
    return cfg


def load_detectron2(cfg: Any, checkpoint: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model of ``cfg`` with the checkpoint's weights; PipelineError naming any misfit."""
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise PipelineError("checkpoint not found", checkpoint)

    class _Checked(DetectionCheckpointer):
        """Detectron2's own loading, keeping the mismatches it would only log."""

        def _load_model(self, loaded: Any) -> Any:
            self.incompatible = super()._load_model(loaded)
            return self.incompatible

    model = build_model(cfg).eval()
    checker = _Checked(model)
    try:
        checker.load(str(checkpoint))
    except Exception as err:  # pickle, zip or assertion errors of a file that is no checkpoint
        raise PipelineError(f"not a Detectron2 checkpoint ({type(err).__name__}: {err})", checkpoint) from err
    _raise_on_misfit(checker.incompatible, checkpoint, cfg)
    meta = {"architecture": cfg.MODEL.META_ARCHITECTURE, "classes": cfg.MODEL.ROI_HEADS.NUM_CLASSES}
    return model, checkpoint_record(checkpoint, meta)


def _raise_on_misfit(incompatible: Any, checkpoint: Path, cfg: Any) -> None:
    problems = []
    if incompatible.incorrect_shapes:
        problems.append("shape mismatch: " + ", ".join(
            f"{key} is {list(saved)} in the file, {list(wanted)} in the model"
            for key, saved, wanted in incompatible.incorrect_shapes[:4]))
    if incompatible.missing_keys:
        problems.append(f"{len(incompatible.missing_keys)} missing keys: "
                        + ", ".join(incompatible.missing_keys[:4]))
    if incompatible.unexpected_keys:
        problems.append(f"{len(incompatible.unexpected_keys)} unexpected keys: "
                        + ", ".join(incompatible.unexpected_keys[:4]))
    if problems:
        raise PipelineError(f"checkpoint does not fit Detectron2 {cfg.MODEL.META_ARCHITECTURE} with "
                            f"{cfg.MODEL.ROI_HEADS.NUM_CLASSES} classes: " + "; ".join(problems), checkpoint)


def instances_to_detections(instances: Any) -> Detections:
    """Detectron2 ``Instances`` (pred_masks, pred_classes 0..7, scores) -> ``Detections``."""
    return Detections(masks=instances.pred_masks.cpu().numpy().astype(bool),
                      classes=instances.pred_classes.cpu().numpy().astype(np.int64),
                      scores=instances.scores.float().cpu().numpy())


class Detectron2Detector:
    """``detect(images [B,H,W,3] uint8 RGB) -> [Detections]``, DefaultPredictor's steps batched."""

    backend = "detectron2"

    def __init__(self, model: torch.nn.Module, cfg: Any):
        from detectron2.data import transforms as T

        self.model = model.eval()
        self.device = torch.device(cfg.MODEL.DEVICE)
        self.input_format = cfg.INPUT.FORMAT
        self.resize = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)

    def inputs(self, images: np.ndarray) -> list[dict[str, Any]]:
        """The model's input dicts for RGB frames, as DefaultPredictor makes them from BGR."""
        batch = []
        for rgb in images:
            image = np.ascontiguousarray(rgb if self.input_format == "RGB" else rgb[:, :, ::-1])
            height, width = image.shape[:2]
            resized = self.resize.get_transform(image).apply_image(image)
            tensor = torch.as_tensor(resized.astype("float32").transpose(2, 0, 1))
            batch.append({"image": tensor.to(self.device), "height": height, "width": width})
        return batch

    @torch.inference_mode()
    def detect(self, images: np.ndarray) -> list[Detections]:
        outputs = self.model(self.inputs(images))
        return [instances_to_detections(output["instances"]) for output in outputs]
