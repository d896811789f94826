"""The detectron2 instance backend against the real library (skipped where it is not installed).

detectron2 has no working PyPI release; it is built from its official source (README,
"Detectron2"; these tests ran against ``DETECTRON2_COMMIT``). No weights can be downloaded here,
so every checkpoint is a random model the library itself builds, saved in the formats people
have: the model zoo's pickle (``model_final_af9cf5.pkl``'s layout) and Detectron2's ``.pth``.
What the backend does without detectron2 (the install hint, the model's inputs, the conversion
of its outputs, painting) is tested in test_labels.py.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("detectron2", reason="detectron2 is not installed (built from source; see the README)")

from cityscapesscripts.evaluation.instances2dict import instances2dict  # noqa: E402
from cityscapesscripts.helpers.labels import name2label  # noqa: E402
from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.data import MetadataCatalog  # noqa: E402
from detectron2.engine import DefaultPredictor  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.structures import Instances  # noqa: E402

from pipeline.config import DEFAULT_CONFIG, load_config  # noqa: E402
from pipeline.data.cityscapes import read_label_png  # noqa: E402
from pipeline.data.labels import THING_LABEL_IDS  # noqa: E402
from pipeline.data.subset import load_subset, select_subset, subset_snippets  # noqa: E402
from pipeline.errors import PipelineError  # noqa: E402
from pipeline.io import write_json  # noqa: E402
from pipeline.labels import instance as instance_cli  # noqa: E402
from pipeline.labels.detectron2_backend import (  # noqa: E402
    Detectron2Detector, detectron2_config, instances_to_detections, load_detectron2)
from pipeline.labels.detections import paint_instances  # noqa: E402
from pipeline.labels.frames import FrameRef, city_frames, write_label_png  # noqa: E402
from pipeline.labels.instance import instance_labeller  # noqa: E402
from tests.conftest import write_snippet  # noqa: E402

CONFIG = "Cityscapes/mask_rcnn_R_50_FPN.yaml"
SIZE = (64, 128)  # test resize: shorter side 64 keeps the R50-FPN cheap on a CPU
ZOO_AUTHOR = "Detectron2 Model Zoo"  # what the zoo's pickles name as their author
KEPT = 5  # detections kept per frame: random weights score every box about alike


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def cfg():
    return detectron2_config(CONFIG, "cpu", 0.0, *SIZE)


@pytest.fixture(scope="module")
def reference(cfg) -> torch.nn.Module:
    """The zoo config's Mask R-CNN with random weights, built by the library itself."""
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    with torch.no_grad():  # random deltas make degenerate boxes: keep anchors, tame the logits
        for layer in (model.proposal_generator.rpn_head.anchor_deltas, model.roi_heads.box_predictor.bbox_pred):
            layer.weight.zero_()
            layer.bias.zero_()
        model.roi_heads.box_predictor.cls_score.weight.mul_(1e-3)
    model.roi_heads.box_predictor.test_topk_per_image = KEPT
    return model


def _arrays(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {key: value.cpu().numpy() for key, value in model.state_dict().items()}


def _pickle(path: Path, content: dict) -> Path:
    with open(path, "wb") as handle:
        pickle.dump(content, handle)
    return path


def _zoo_pickle(path: Path, model: torch.nn.Module, **extra_arrays: np.ndarray) -> Path:
    """``model`` as the model zoo ships weights: a pickled dict of numpy arrays and an author."""
    return _pickle(path, {"model": {**_arrays(model), **extra_arrays}, "__author__": ZOO_AUTHOR})


def _variant(cfg, *options):
    """A copy of the config with ``options`` (key, value, ...) merged in."""
    changed = cfg.clone()
    changed.defrost()
    changed.merge_from_list(list(options))
    changed.freeze()
    return changed


@pytest.fixture(scope="module")
def zoo_checkpoint(reference, tmp_path_factory) -> Path:
    """The reference in the zoo's format, with the anchor buffers files saved before May 2021 hold."""
    anchors = {f"proposal_generator.anchor_generator.cell_anchors.{index}": cell.numpy()
               for index, cell in enumerate(reference.proposal_generator.anchor_generator.cell_anchors)}
    return _zoo_pickle(tmp_path_factory.mktemp("d2") / "model_final_random.pkl", reference, **anchors)


@pytest.fixture
def frames() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (2, 48, 96, 3), dtype=np.uint8)


def _predictor(cfg, model: torch.nn.Module) -> DefaultPredictor:
    """Detectron2's own single-image inference around ``model``."""
    predictor = DefaultPredictor(cfg)  # MODEL.WEIGHTS is "": it loads nothing
    predictor.model = model
    return predictor


def _same_detections(found, expected) -> None:
    assert len(found.scores) == len(expected.scores) == KEPT
    assert np.allclose(found.scores, expected.scores, atol=1e-4)
    assert np.array_equal(found.classes, expected.classes)
    assert found.masks.shape == expected.masks.shape
    assert np.mean(found.masks == expected.masks) > 0.99  # batched convolutions round differently


# --- config and classes --------------------------------------------------------------------------

def test_model_zoo_config_is_cityscapes_mask_rcnn():
    cfg = detectron2_config(CONFIG, "cpu", 0.5)
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == len(THING_LABEL_IDS) == 8
    assert cfg.MODEL.MASK_ON and cfg.INPUT.FORMAT == "BGR"
    assert (cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST) == (1024, 2048)
    assert cfg.MODEL.WEIGHTS == "" and cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST == 0.5
    assert cfg.MODEL.DEVICE == "cpu"
    with pytest.raises(PipelineError, match="neither a file nor in Detectron2's model zoo"):
        detectron2_config("Cityscapes/mask_rcnn_R_50_FPN_typo.yaml", "cpu", 0.5)


def test_contiguous_classes_are_detectron2s_cityscapes_order():
    """Detectron2's class k is its k-th Cityscapes thing class; paint_instances maps k to THING_LABEL_IDS[k]."""
    thing_classes = MetadataCatalog.get("cityscapes_fine_instance_seg_train").thing_classes
    assert [name2label[name].id for name in thing_classes] == list(THING_LABEL_IDS)


def test_instances_become_detections():
    instances = Instances((4, 6))
    masks = torch.zeros(2, 4, 6, dtype=torch.bool)
    masks[0, :2], masks[1, 2:] = True, True
    instances.pred_masks, instances.pred_classes = masks, torch.tensor([2, 0])
    instances.scores = torch.tensor([0.9, 0.8])
    found = instances_to_detections(instances)
    assert found.classes.tolist() == [2, 0] and found.masks.dtype == bool
    assert np.array_equal(found.masks, masks.numpy()) and np.allclose(found.scores, [0.9, 0.8])


# --- checkpoints -------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["zoo pickle", "pickle without author", "detectron2 pth", "bare pth"])
def test_checkpoint_layouts_load_the_saved_weights(cfg, reference, zoo_checkpoint, tmp_path: Path, layout):
    if layout == "zoo pickle":
        path = zoo_checkpoint
    elif layout == "pickle without author":  # Detectron2 alone takes this for Caffe2 blobs and fails
        path = _pickle(tmp_path / "weights.pkl", {"model": _arrays(reference)})
    elif layout == "detectron2 pth":
        DetectionCheckpointer(reference, save_dir=str(tmp_path)).save("model_final", iteration=9)
        path = tmp_path / "model_final.pth"
    else:
        torch.save(reference.state_dict(), tmp_path / "bare.pth")
        path = tmp_path / "bare.pth"
    model, record = load_detectron2(cfg, path)
    assert record["meta"] == {"architecture": "GeneralizedRCNN", "classes": 8}
    assert record["path"] == str(path) and len(record["sha256"]) == 64
    loaded, saved = model.state_dict(), reference.state_dict()
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[key], saved[key]) for key in saved)


def test_zoo_checkpoint_batched_gives_the_saved_models_detections(cfg, reference, zoo_checkpoint, frames):
    model, _ = load_detectron2(cfg, zoo_checkpoint)
    model.roi_heads.box_predictor.test_topk_per_image = KEPT
    batch = Detectron2Detector(model, cfg).detect(frames)
    assert len(batch) == len(frames)
    predictor = _predictor(cfg, reference)
    for rgb, found in zip(frames, batch):
        expected = instances_to_detections(predictor(rgb[:, :, ::-1].copy())["instances"])  # BGR in
        assert found.masks.shape == (KEPT, *rgb.shape[:2])  # at the frame's size, not the test size
        _same_detections(found, expected)


def test_checkpoint_for_another_class_count_is_refused(cfg, tmp_path: Path):
    coco = _zoo_pickle(tmp_path / "coco.pkl", build_model(_variant(cfg, "MODEL.ROI_HEADS.NUM_CLASSES", 80)))
    with pytest.raises(PipelineError) as caught:
        load_detectron2(cfg, coco)
    message = str(caught.value)
    assert message.startswith(f"{coco}: checkpoint does not fit Detectron2 GeneralizedRCNN with 8 classes")
    assert "roi_heads.box_predictor.cls_score.weight is [81, 1024] in the file, [9, 1024] in the model" in message
    assert "(+2 more)" in message  # the mask predictor's two, beyond the four listed
    assert "missing keys" not in message  # the misshapen keys are not reported twice


def test_checkpoint_of_another_architecture_is_refused(cfg, tmp_path: Path):
    boxes_only = _zoo_pickle(tmp_path / "faster_rcnn.pkl", build_model(_variant(cfg, "MODEL.MASK_ON", False)))
    with pytest.raises(PipelineError, match=r"faster_rcnn.pkl: checkpoint does not fit .* 12 missing keys: "
                                            r"roi_heads.mask_head.mask_fcn1.weight, .* \(\+8 more\)"):
        load_detectron2(cfg, boxes_only)
    deeper = _zoo_pickle(tmp_path / "r101.pkl", build_model(_variant(cfg, "MODEL.RESNETS.DEPTH", 101)))
    with pytest.raises(PipelineError, match=r"r101.pkl: .* unexpected keys: backbone.bottom_up.res4.6"):
        load_detectron2(cfg, deeper)


def test_saved_normalisation_must_be_the_configs(cfg, reference, tmp_path: Path):
    """Files of 2020 hold pixel_mean/std; the library ignores them, the backend compares them."""
    mean = np.asarray(cfg.MODEL.PIXEL_MEAN, np.float32).reshape(3, 1, 1)
    std = np.asarray(cfg.MODEL.PIXEL_STD, np.float32).reshape(3, 1, 1)
    same = _zoo_pickle(tmp_path / "same.pkl", reference, pixel_mean=mean, pixel_std=std)
    assert load_detectron2(cfg, same)[1]["meta"]["classes"] == 8
    rgb_std = _zoo_pickle(tmp_path / "other.pkl", reference, pixel_mean=mean,
                          pixel_std=np.asarray([57.375, 57.12, 58.395], np.float32).reshape(3, 1, 1))
    with pytest.raises(PipelineError, match=r"other.pkl: .*pixel_std is \[57.375, 57.12, 58.395\] in the "
                                            r"file, \[1.0, 1.0, 1.0\] in the config"):
        load_detectron2(cfg, rgb_std)


def test_not_a_checkpoint_names_the_file(cfg, tmp_path: Path):
    with pytest.raises(PipelineError, match="model_final_af9cf5.pkl: checkpoint not found"):
        load_detectron2(cfg, tmp_path / "model_final_af9cf5.pkl")
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(PipelineError, match="junk.pkl: not a Detectron2 checkpoint"):
        load_detectron2(cfg, tmp_path / "junk.pkl")


# --- labelling ---------------------------------------------------------------------------------

def test_no_detection_above_the_threshold_is_an_empty_frame(reference, zoo_checkpoint, frames):
    strict = detectron2_config(CONFIG, "cpu", 0.99, *SIZE)  # random weights score about 1/9
    model, _ = load_detectron2(strict, zoo_checkpoint)
    for found in Detectron2Detector(model, strict).detect(frames):
        assert found.masks.shape == (0, *frames.shape[1:3]) and len(found.classes) == 0


def _instance_settings(checkpoint: Path) -> dict:
    return {"backend": "detectron2", "checkpoint": str(checkpoint), "config": CONFIG,
            "score_threshold": 0.0, "batch_size": 2, "min_size": SIZE[0], "max_size": SIZE[1]}


def _assert_cityscapes_instance_ids(ids: np.ndarray, label_ids: np.ndarray) -> None:
    """What cityscapesscripts reads back is the semantic map, and instances number 0.. per class."""
    decoded = np.where(ids >= 1000, ids // 1000, ids)
    assert np.array_equal(decoded, label_ids)
    instance_ids = np.unique(ids[ids >= 1000])
    assert set(instance_ids // 1000) <= set(THING_LABEL_IDS)
    for label_id in set(instance_ids // 1000):
        numbers = sorted(instance_ids[instance_ids // 1000 == label_id] % 1000)
        assert numbers == list(range(len(numbers)))


def test_labeller_paints_detectron2_detections(zoo_checkpoint, frames):
    labeller, record = instance_labeller(_instance_settings(zoo_checkpoint), device="cpu")
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
        _assert_cityscapes_instance_ids(frame_ids, labels)
        assert np.array_equal(frame_ids, paint_instances(labels, found, 0.0))


def _tiny_city(tmp_path: Path) -> tuple[Path, list[FrameRef]]:
    """One 4-frame train snippet (and the val snippet a subset needs) and its subset file."""
    root = tmp_path / "cityscapes"
    write_snippet(root, "train", "alpha", 0, 2, size=(24, 40), frames=4, index=2)
    write_snippet(root, "val", "gamma", 0, 2, size=(24, 40), frames=4, index=2)
    settings = {"train_cities": None, "test_split": "val", "test_sequences": 1}
    subset = tmp_path / "subset.json"
    write_json(subset, select_subset(root, settings, frames=4, annotated_index=2))
    return subset, city_frames(subset_snippets(load_subset(subset), "train", "alpha"))


def test_label_instance_stage_writes_cityscapes_instance_ids(zoo_checkpoint, tmp_path: Path):
    subset, frame_refs = _tiny_city(tmp_path)
    semantic = tmp_path / "semantic"
    semantic.mkdir()
    label_ids = np.full((24, 40), 26, np.uint8)  # car, the random model's class
    label_ids[:, :8] = 24  # person: the random model's car boxes may not paint it
    label_ids[20:] = 7
    for frame in frame_refs:
        write_label_png(semantic / frame.output_name("labelIds"), label_ids)
    settings = load_config([DEFAULT_CONFIG])["labels"]
    settings.update(keep_gtfine=False, instance=dict(settings["instance"], **_instance_settings(zoo_checkpoint)))
    output = tmp_path / "instance"
    instance_cli.main(["--subset", str(subset), "--split", "train", "--city", "alpha",
                       "--semantic", str(semantic), "--output", str(output),
                       "--settings", json.dumps(settings)])
    written = sorted(output.glob("*_instanceIds.png"))
    assert [path.name for path in written] == sorted(frame.output_name("instanceIds") for frame in frame_refs)
    for path in written:
        ids = read_label_png(path)
        assert ids.dtype == np.uint16 and ids.shape == label_ids.shape
        _assert_cityscapes_instance_ids(ids, label_ids)
    assert any((read_label_png(path) >= 26000).any() for path in written)
    for instances in instances2dict([str(path) for path in written]).values():  # Cityscapes' reader
        for name, label_id in (("car", 26), ("person", 24), ("road", 7)):
            assert sum(found["pixelCount"] for found in instances[name]) == np.sum(label_ids == label_id)
    record = json.loads((output / "provenance.json").read_text())
    assert record["weights"]["backend"] == "detectron2" and record["weights"]["path"] == str(zoo_checkpoint)
