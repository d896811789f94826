"""The ``detectron2`` instance backend: Detectron2's Cityscapes Mask R-CNN R50-FPN (Wu et al. 2019).

The thesis's instance labeller (4.4). The network is whatever the model-zoo config names
(``Cityscapes/mask_rcnn_R_50_FPN.yaml``: 8 thing classes, BGR input, test size 1024/2048;
reference/cityscapes.md section 3). Its weights come through Detectron2's own
``DetectionCheckpointer``: the model zoo's ``model_final_af9cf5.pkl`` (a pickled
``{"model": {name: ndarray}, "__author__": ..}``; the same dict without ``__author__`` is read
too) or a ``.pth`` Detectron2 saved. Whatever Detectron2 would only log as a misfit (other class
count, other architecture, normalisation other than the config's) stops the run naming the file.
Inference does what ``DefaultPredictor`` does (BGR uint8 in, ``ResizeShortestEdge`` to the test
size, outputs at the frame's size) for a batch of frames at once; classes stay Detectron2's
contiguous 0..7, which ``paint_instances`` maps to Cityscapes labelIds. detectron2 is imported
only here and only when this backend is configured: it has no working PyPI release and is built
from its source (README, "Detectron2").
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.errors import PipelineError
from pipeline.labels.checkpoint import checkpoint_record
from pipeline.labels.detections import Detections

__all__ = ["DETECTRON2_COMMIT", "INSTALL_HINT", "import_detectron2", "detectron2_config",
           "load_detectron2", "Detectron2Detector", "model_input", "instances_to_detections"]

DETECTRON2_COMMIT = "02b5c4e295e990042a714712c21dc79b731e8833"  # the source the tests ran against
INSTALL_HINT = (
    "detectron2 has no working PyPI release; build its official source into this environment "
    "as README.md's Detectron2 section shows (about 2 minutes on a CPU, needs a C++ compiler): "
    "pip install -c requirements/constraints.txt fvcore==0.1.5.post20221221 iopath==0.1.9 "
    "yacs==0.1.8 pycocotools==2.0.11 cloudpickle==3.1.3 && "
    "git clone https://github.com/facebookresearch/detectron2 /tmp/detectron2 && "
    f"git -C /tmp/detectron2 checkout {DETECTRON2_COMMIT} && "
    "pip install --no-build-isolation --no-deps /tmp/detectron2 ; "
    "or set labels.instance.backend: torchvision"
)
SHOWN_KEYS = 4  # keys listed per kind of misfit; the count says how many more
NORMALISATION_BUFFERS = ("pixel_mean", "pixel_std")


def import_detectron2() -> Any:
    """The detectron2 package, or a PipelineError that says how to install it."""
    try:
        import detectron2
        # `import detectron2` alone loads none of its dependencies; the model zoo pulls in
        # fvcore, iopath, yacs, pycocotools, omegaconf and pkg_resources (setuptools < 82)
        importlib.import_module("detectron2.model_zoo")
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
    from detectron2.modeling import build_model

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise PipelineError("checkpoint not found", checkpoint)
    model = build_model(cfg).eval()
    checker = _checking_checkpointer(model)
    try:
        checker.load(str(checkpoint))
    except Exception as err:  # pickle, zip, type or assertion errors of a file that is no checkpoint
        raise PipelineError(f"not a Detectron2 checkpoint ({type(err).__name__}: {err})", checkpoint) from err
    problems = _misfits(checker.incompatible, checker.saved_normalisation, model)
    if problems:
        raise PipelineError(f"checkpoint does not fit Detectron2 {cfg.MODEL.META_ARCHITECTURE} with "
                            f"{cfg.MODEL.ROI_HEADS.NUM_CLASSES} classes: " + "; ".join(problems), checkpoint)
    meta = {"architecture": cfg.MODEL.META_ARCHITECTURE, "classes": cfg.MODEL.ROI_HEADS.NUM_CLASSES}
    return model, checkpoint_record(checkpoint, meta)


def _checking_checkpointer(model: torch.nn.Module) -> Any:
    """A ``DetectionCheckpointer`` that keeps what Detectron2 would only log."""
    from detectron2.checkpoint import DetectionCheckpointer

    class CheckingCheckpointer(DetectionCheckpointer):
        incompatible: Any = None
        saved_normalisation: dict[str, list[float]] = {}

        def _load_file(self, filename: str) -> dict[str, Any]:
            return _untagged_pickle_as_zoo(super()._load_file(filename))

        def _load_model(self, checkpoint: dict[str, Any]) -> Any:
            self.saved_normalisation = _saved_normalisation(checkpoint["model"], self.model)
            self.incompatible = super()._load_model(checkpoint)
            return self.incompatible

    return CheckingCheckpointer(model)


def _untagged_pickle_as_zoo(loaded: dict[str, Any]) -> dict[str, Any]:
    """A pickled ``{"model": arrays}`` lacking the zoo's ``__author__``, read as the zoo's format.

    Detectron2 takes any ``.pkl`` without ``__author__`` for Caffe2 blobs, nests it under
    ``"model"`` and then fails on that nested dict ("Unsupported type found in checkpoint").
    """
    blobs = loaded.get("model")
    if loaded.get("__author__") == "Caffe2" and isinstance(blobs, Mapping) \
            and isinstance(blobs.get("model"), Mapping):
        return {"model": dict(blobs["model"]), "__author__": "pickle without __author__"}
    return loaded


def _saved_normalisation(state: Mapping[str, Any], model: torch.nn.Module) -> dict[str, list[float]]:
    """The file's pixel_mean / pixel_std, where it has them.

    Detectron2 saved these buffers from April 2020 to February 2021; now they come from the
    config, and the library reports the file's as unexpected keys and ignores their values.
    They are compared with the config's instead: other values mean the weights expect other inputs.
    """
    buffers = dict(model.named_buffers())
    return {key: torch.as_tensor(state[key]).flatten().tolist()
            for key in NORMALISATION_BUFFERS if key in state and key in buffers}


def _misfits(incompatible: Any, saved_normalisation: Mapping[str, list[float]],
             model: torch.nn.Module) -> list[str]:
    """What in the checkpoint does not fit the model, in words; empty where it fits."""
    misshapen = {key for key, _, _ in incompatible.incorrect_shapes}
    # fvcore drops misshapen entries before loading, so they come back as missing too
    missing = [key for key in incompatible.missing_keys if key not in misshapen]
    unexpected = [key for key in incompatible.unexpected_keys if key not in saved_normalisation]
    problems = []
    if incompatible.incorrect_shapes:
        problems.append("shape mismatch: " + _listing(
            [f"{key} is {list(saved)} in the file, {list(wanted)} in the model"
             for key, saved, wanted in incompatible.incorrect_shapes]))
    if missing:
        problems.append(f"{len(missing)} missing keys: " + _listing(missing))
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: " + _listing(unexpected))
    problems += _normalisation_clashes(saved_normalisation, model)
    return problems


def _normalisation_clashes(saved_normalisation: Mapping[str, list[float]],
                           model: torch.nn.Module) -> list[str]:
    """The saved pixel_mean / pixel_std that differ from the config's (MODEL.PIXEL_MEAN / STD)."""
    buffers = dict(model.named_buffers())
    clashes = []
    for key, saved in saved_normalisation.items():
        configured = buffers[key].flatten().tolist()
        if len(saved) != len(configured) or not np.allclose(saved, configured, atol=1e-3):
            clashes.append(f"{key} is {np.round(saved, 3).tolist()} in the file, "
                           f"{np.round(configured, 3).tolist()} in the config")
    return clashes


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:SHOWN_KEYS])
    return shown + (f" (+{len(items) - SHOWN_KEYS} more)" if len(items) > SHOWN_KEYS else "")


def model_input(rgb: np.ndarray, input_format: str, resize: Callable[[np.ndarray], np.ndarray],
                device: torch.device | str = "cpu") -> dict[str, Any]:
    """One RGB frame as ``DefaultPredictor`` hands it to the model.

    Channels in the model's order (the zoo's is BGR), resized to the test size, CHW float32,
    with the frame's own height and width so the model pastes its masks back at that size.
    """
    image = np.ascontiguousarray(rgb if input_format == "RGB" else rgb[:, :, ::-1])
    height, width = image.shape[:2]
    resized = resize(image)
    tensor = torch.as_tensor(resized.astype("float32").transpose(2, 0, 1))
    return {"image": tensor.to(device), "height": height, "width": width}


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

    def _resized(self, image: np.ndarray) -> np.ndarray:
        return self.resize.get_transform(image).apply_image(image)

    def inputs(self, images: np.ndarray) -> list[dict[str, Any]]:
        """The model's input dicts for a batch of RGB frames."""
        return [model_input(rgb, self.input_format, self._resized, self.device) for rgb in images]

    @torch.inference_mode()
    def detect(self, images: np.ndarray) -> list[Detections]:
        outputs = self.model(self.inputs(images))
        return [instances_to_detections(output["instances"]) for output in outputs]
