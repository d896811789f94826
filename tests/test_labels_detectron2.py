"""The detectron2 instance backend against the real library (skipped where it is not installed).

detectron2 has no working PyPI release; it is built from its official source (see the README).
What the backend does without it (the error, painting, the conversion of detections) is tested
in test_labels.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("detectron2", reason="detectron2 is not installed (built from source; see the README)")

from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.engine import DefaultPredictor  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.structures import Instances  # noqa: E402

from pipeline.data.labels import THING_LABEL_IDS  # noqa: E402
from pipeline.errors import PipelineError  # noqa: E402
from pipeline.labels.detectron2_backend import (  # noqa: E402
    Detectron2Detector, detectron2_config, instances_to_detections, load_detectron2)
from pipeline.labels.detections import paint_instances  # noqa: E402
from pipeline.labels.instance import instance_labeller  # noqa: E402

CONFIG = "Cityscapes/mask_rcnn_R_50_FPN.yaml"
SIZE = (64, 128)  # test resize: shorter side 64 keeps the R50-FPN cheap on a CPU


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A Cityscapes Mask R-CNN with random weights, saved by Detectron2's own checkpointer."""
    cfg = detectron2_config(CONFIG, "cpu", 0.0, *SIZE)
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():  # random deltas make degenerate boxes: keep anchors, tame the logits
        for layer in (model.proposal_generator.rpn_head.anchor_deltas, model.roi_heads.box_predictor.bbox_pred):
            layer.weight.zero_()
            layer.bias.zero_()
        model.roi_heads.box_predictor.cls_score.weight.mul_(1e-3)
    folder = tmp_path_factory.mktemp("d2")
    DetectionCheckpointer(model, save_dir=str(folder)).save("random_cityscapes")
    return folder / "random_cityscapes.pth"


@pytest.fixture
def frames() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (2, 48, 96, 3), dtype=np.uint8)


def test_model_zoo_config_is_cityscapes_mask_rcnn():
    cfg = detectron2_config(CONFIG, "cpu", 0.5)
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == len(THING_LABEL_IDS) == 8
    assert cfg.MODEL.MASK_ON and cfg.INPUT.FORMAT == "BGR"
    assert (cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST) == (1024, 2048)
    assert cfg.MODEL.WEIGHTS == "" and cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST == 0.5


def test_batched_detection_is_default_predictor_per_frame(checkpoint: Path, frames):
    cfg = detectron2_config(CONFIG, "cpu", 0.0, *SIZE)
    model, record = load_detectron2(cfg, checkpoint)
    assert record["meta"] == {"architecture": "GeneralizedRCNN", "classes": 8}
    model.roi_heads.box_predictor.test_topk_per_image = 5  # random weights: keep a few boxes
    batch = Detectron2Detector(model, cfg).detect(frames)
    reference_cfg = cfg.clone()
    reference_cfg.defrost()
    reference_cfg.MODEL.WEIGHTS = str(checkpoint)
    predictor = DefaultPredictor(reference_cfg)
    predictor.model.roi_heads.box_predictor.test_topk_per_image = 5
    for rgb, found in zip(frames, batch):
        expected = instances_to_detections(predictor(rgb[:, :, ::-1].copy())["instances"])  # BGR in
        assert len(found.scores) == 5 and found.masks.shape == (5, *rgb.shape[:2])
        order, expected_order = np.argsort(-found.scores), np.argsort(-expected.scores)
        assert np.allclose(found.scores[order], expected.scores[expected_order], atol=1e-4)
        assert np.array_equal(found.classes[order], expected.classes[expected_order])
        assert np.mean(found.masks[order] == expected.masks[expected_order]) > 0.99


def test_checkpoint_for_another_class_count_is_refused(tmp_path: Path):
    cfg = detectron2_config(CONFIG, "cpu", 0.5, *SIZE)
    coco_cfg = cfg.clone()
    coco_cfg.defrost()
    coco_cfg.MODEL.ROI_HEADS.NUM_CLASSES = 80
    DetectionCheckpointer(build_model(coco_cfg), save_dir=str(tmp_path)).save("coco")
    with pytest.raises(PipelineError, match=r"8 classes: shape mismatch: roi_heads.box_predictor."
                                            r"cls_score.weight is \[81, 1024\] in the file, \[9, 1024\]"):
        load_detectron2(cfg, tmp_path / "coco.pth")
    with pytest.raises(PipelineError, match="checkpoint not found"):
        load_detectron2(cfg, tmp_path / "model_final_af9cf5.pkl")


def test_instances_become_cityscapes_classes():
    instances = Instances((4, 6))
    masks = torch.zeros(2, 4, 6, dtype=torch.bool)
    masks[0, :2], masks[1, 2:] = True, True
    instances.pred_masks, instances.pred_classes = masks, torch.tensor([2, 0])
    instances.scores = torch.tensor([0.9, 0.8])
    found = instances_to_detections(instances)
    assert found.classes.tolist() == [2, 0] and found.masks.dtype == bool


def test_labeller_paints_detectron2_detections(checkpoint: Path, frames):
    settings = {"backend": "detectron2", "checkpoint": str(checkpoint), "config": CONFIG,
                "score_threshold": 0.0, "min_size": SIZE[0], "max_size": SIZE[1]}
    labeller, record = instance_labeller(settings, device="cpu")
    assert record["backend"] == "detectron2" and len(record["sha256"]) == 64
    labeller.detector.model.roi_heads.box_predictor.test_topk_per_image = 3
    label_ids = np.full(frames.shape[:3], 26, np.uint8)
    label_ids[:, ::4] = 7  # road rows: a car detection may not paint them
    ids = labeller(frames, label_ids)
    assert ids.dtype == np.uint16 and ids.shape == label_ids.shape
    assert np.all(ids[:, ::4] == 7)
    assert set(np.unique(ids[label_ids == 26])) <= {26, 26000, 26001, 26002}
    assert (ids >= 26000).any()  # the random model's boxes are cars: some are painted
    for frame_ids, labels, found in zip(ids, label_ids, labeller.detector.detect(frames)):
        assert np.array_equal(frame_ids, paint_instances(labels, found, 0.0))
