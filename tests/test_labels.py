"""The labellers: checkpoints, what the networks compute, instance painting, CLIs, atomicity."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from pipeline.data.cityscapes import read_label_png
from pipeline.data.labels import THING_LABEL_IDS, TRAIN_LABEL_IDS
from pipeline.data.subset import select_subset
from pipeline.errors import PipelineError
from pipeline.io import write_json
from pipeline.labels import instance as instance_cli
from pipeline.labels import semantic as semantic_cli
from pipeline.labels.checkpoint import read_checkpoint, save_checkpoint
from pipeline.labels.detectron2_backend import DETECTRON2_COMMIT, instances_to_detections, model_input
from pipeline.labels.detections import Detections, paint_instances
from pipeline.labels.gtfine import instance_targets
from pipeline.labels.quality import Quality, category_miou, confusion, instance_matches, mean_iou
from pipeline.labels.semantic import SemanticLabeller, build_segmenter, load_segmenter, normalise
from pipeline.labels.settings import label_settings
from pipeline.labels.torchvision_backend import TorchvisionDetector, build_mask_rcnn, load_mask_rcnn
from tests.conftest import write_snippet

ENCODER = "resnet18"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def segmenter() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_segmenter(ENCODER).eval()


@pytest.fixture
def frames() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (3, 40, 72, 3), dtype=np.uint8)


# --- checkpoints -------------------------------------------------------------------------------

def test_missing_checkpoint_names_the_file(tmp_path: Path):
    path = tmp_path / "nowhere.pt"
    with pytest.raises(PipelineError, match="checkpoint not found") as caught:
        load_segmenter(path, ENCODER)
    assert caught.value.path == path


@pytest.mark.parametrize("wrapper", [None, "state_dict", "model_state"])
def test_wrapped_state_dicts_load_the_same_weights(tmp_path: Path, segmenter, frames, wrapper):
    state = {f"module.{k}": v for k, v in segmenter.state_dict().items()}  # DataParallel's prefix
    torch.save(state if wrapper is None else {wrapper: state, "epoch": 3}, tmp_path / "w.pth")
    loaded, record = load_segmenter(tmp_path / "w.pth", ENCODER)
    size = (32, 64)
    assert np.array_equal(SemanticLabeller(loaded, size)(frames), SemanticLabeller(segmenter, size)(frames))
    assert len(record["sha256"]) == 64 and record["self_trained"] is False


def test_save_pretrained_folder_loads(tmp_path: Path, segmenter, frames):
    segmenter.save_pretrained(tmp_path / "folder")
    loaded, _ = load_segmenter(tmp_path / "folder", ENCODER)
    for key, value in segmenter.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    with pytest.raises(PipelineError, match="encoder is 'resnet18' in the checkpoint, 'resnet34'"):
        load_segmenter(tmp_path / "folder", "resnet34")


def test_checkpoint_of_another_class_count_names_the_classifier(tmp_path: Path):
    torch.save(build_segmenter(ENCODER, classes=21).state_dict(), tmp_path / "voc.pt")
    with pytest.raises(PipelineError, match=r"fit DeepLabV3\+ \(resnet18, depth 5, 19 classes\): shape mismatch: "
                                            r"segmentation_head.0.weight is \[21, 256, 1, 1\] in the file, "
                                            r"\[19, 256, 1, 1\] in the model") as caught:
        load_segmenter(tmp_path / "voc.pt", ENCODER)
    assert "voc.pt" in str(caught.value)


def test_checkpoint_of_another_encoder_depth_is_refused(tmp_path: Path):
    """Depth 4 puts ASPP on the 256-channel stage: a plain state dict fails on its shapes, a
    self-trained one already on its meta."""
    shallow = build_segmenter(ENCODER, depth=4)
    torch.save(shallow.state_dict(), tmp_path / "plain.pt")
    with pytest.raises(PipelineError, match=r"\(resnet18, depth 5, 19 classes\): shape mismatch: "
                                            r"decoder.aspp.0.convs.0.0.weight is \[256, 256, 1, 1\] in the "
                                            r"file, \[256, 512, 1, 1\] in the model"):
        load_segmenter(tmp_path / "plain.pt", ENCODER)
    meta = {"architecture": "DeepLabV3Plus", "encoder": ENCODER, "encoder_depth": 4, "classes": 19}
    save_checkpoint(tmp_path / "fit.pt", shallow.state_dict(), meta)
    with pytest.raises(PipelineError, match="encoder_depth is 4 in the checkpoint, 5 in the config"):
        load_segmenter(tmp_path / "fit.pt", ENCODER)
    loaded, _ = load_segmenter(tmp_path / "fit.pt", ENCODER, depth=4)
    for key, value in shallow.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_checkpoint_of_another_encoder_names_missing_and_unexpected_keys(tmp_path: Path):
    torch.save(build_segmenter("mobilenet_v2").state_dict(), tmp_path / "mobile.pt")
    with pytest.raises(PipelineError, match="missing keys: .*unexpected keys: ") as caught:
        load_segmenter(tmp_path / "mobile.pt", ENCODER)
    assert caught.value.path == tmp_path / "mobile.pt"


def test_self_trained_meta_is_checked_and_reported(tmp_path: Path, segmenter):
    meta = {"architecture": "DeepLabV3Plus", "encoder": ENCODER, "classes": 19, "self_trained": True}
    save_checkpoint(tmp_path / "fit.pt", segmenter.state_dict(), meta)
    assert [p.name for p in tmp_path.iterdir()] == ["fit.pt"]  # no temporary left
    _, record = load_segmenter(tmp_path / "fit.pt", ENCODER)
    assert record["self_trained"] is True and record["meta"]["encoder"] == ENCODER
    save_checkpoint(tmp_path / "other.pt", segmenter.state_dict(), dict(meta, encoder="resnet50"))
    with pytest.raises(PipelineError, match="encoder is 'resnet50' in the checkpoint"):
        load_segmenter(tmp_path / "other.pt", ENCODER)


def test_not_a_checkpoint(tmp_path: Path):
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(PipelineError, match="not a readable torch checkpoint"):
        read_checkpoint(tmp_path / "junk.pt")


# --- the semantic labeller ---------------------------------------------------------------------

def _constant_segmenter(train_id: int) -> torch.nn.Module:
    """A DeepLabV3+ whose classifier says ``train_id`` everywhere (zero weights, one-hot bias)."""
    model = build_segmenter(ENCODER).eval()
    head = model.segmentation_head[0]
    torch.nn.init.zeros_(head.weight)
    with torch.no_grad():
        head.bias.copy_(torch.nn.functional.one_hot(torch.tensor(train_id), 19).float())
    return model


@pytest.mark.parametrize("train_id", [0, 11, 18])
def test_train_ids_become_label_ids_at_the_frame_size(frames, train_id):
    labels = SemanticLabeller(_constant_segmenter(train_id), (32, 64))(frames)
    assert labels.shape == frames.shape[:3] and labels.dtype == np.uint8
    assert np.all(labels == TRAIN_LABEL_IDS[train_id])


@pytest.mark.parametrize("size", [(32, 64), (80, 144)])  # the frames are 40x72: smaller, larger
def test_labeller_is_the_argmax_of_the_scores_resampled_to_the_frame(segmenter, frames, size):
    labels = SemanticLabeller(segmenter, size)(frames)
    with torch.no_grad():
        logits = segmenter(normalise(torch.from_numpy(frames), size))
    shrinking = size[0] > frames.shape[1]
    resampled = torch.nn.functional.interpolate(logits, size=frames.shape[1:3], mode="bilinear",
                                                align_corners=False, antialias=shrinking)
    expected = np.asarray(TRAIN_LABEL_IDS)[resampled.argmax(1).numpy()]
    assert np.mean(labels == expected) > 0.999  # channels_last may flip an exact tie
    singles = np.concatenate([SemanticLabeller(segmenter, size)(frames[i:i + 1]) for i in range(3)])
    assert np.mean(singles == labels) > 0.999   # a batch labels each frame as alone


def test_normalise_is_imagenet_statistics():
    white = np.full((1, 16, 16, 3), 255, np.uint8)
    out = normalise(torch.from_numpy(white), (16, 16))
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([(1 - 0.485) / 0.229, (1 - 0.456) / 0.224,
                                                         (1 - 0.406) / 0.225]), atol=1e-5)


def test_input_size_must_be_multiples_of_16(segmenter):
    with pytest.raises(PipelineError, match="multiples of 16"):
        SemanticLabeller(segmenter, (40, 64))


# --- instances -----------------------------------------------------------------------------------

def _detections(masks: list[np.ndarray], classes: list[int], scores: list[float]) -> Detections:
    return Detections(np.stack(masks), np.asarray(classes), np.asarray(scores, np.float32))


def test_paint_instances_follows_semantics_scores_and_threshold():
    car, person = THING_LABEL_IDS[2], THING_LABEL_IDS[0]
    labels = np.full((6, 8), 7, np.uint8)            # road
    labels[:, :4] = car
    labels[5, 0] = person
    box = np.zeros((6, 8), bool)
    low, high, other, weak = box.copy(), box.copy(), box.copy(), box.copy()
    low[:3, :6] = True            # car, covers some road: painted only on the car pixels
    high[2:5, :3] = True          # car, more confident: wins the overlap (row 2)
    other[4:, :2] = True          # person mask over car and the one person pixel
    weak[:, :] = True             # below the threshold: never painted
    found = _detections([low, high, other, weak], [2, 2, 0, 2], [0.6, 0.9, 0.7, 0.3])
    ids = paint_instances(labels, found, score_threshold=0.5)
    assert ids.dtype == np.uint16
    assert np.all(ids[:, 4:] == 7)                   # road never takes an instance
    assert np.all(ids[2:5, :3] == car * 1000 + 0)    # most confident car: k = 0
    assert np.all(ids[:2, :4] == car * 1000 + 1)
    assert ids[2, 3] == car * 1000 + 1               # low's pixel outside high
    assert ids[5, 0] == person * 1000 + 0            # the person pixel only
    assert ids[5, 1] == car                          # car pixel, no car detection there


def test_paint_without_detections_is_the_label_map():
    labels = np.random.default_rng(1).integers(0, 34, (5, 7)).astype(np.uint8)
    assert np.array_equal(paint_instances(labels, Detections.empty(5, 7), 0.5), labels)


def test_detections_reject_unknown_classes():
    with pytest.raises(ValueError, match="classes must be 0..7"):
        Detections(np.zeros((1, 2, 2), bool), np.array([8]), np.array([0.9]))


def test_instance_targets_from_instance_ids():
    ids = np.full((10, 12), 7, np.uint16)
    ids[1:4, 2:6] = 26000       # car k=0
    ids[5:9, 0:2] = 24001       # person k=1
    ids[6:8, 8:11] = 26         # a car group: plain label id, not an instance
    ids[0, 11] = 29000          # caravan: has instances but is not evaluated
    target = instance_targets(ids)
    assert target["labels"].tolist() == [THING_LABEL_IDS.index(24) + 1, THING_LABEL_IDS.index(26) + 1]
    assert target["boxes"].tolist() == [[0, 5, 2, 9], [2, 1, 6, 4]]
    assert target["masks"].shape == (2, 10, 12) and target["masks"][1].sum() == 12
    assert instance_targets(np.full((4, 4), 7, np.uint16))["boxes"].shape == (0, 4)


def test_torchvision_backend_loads_and_batches(tmp_path: Path, frames):
    torch.manual_seed(0)
    torch.save(build_mask_rcnn(min_size=64, max_size=128).state_dict(), tmp_path / "mask_rcnn.pt")
    loaded, _ = load_mask_rcnn(tmp_path / "mask_rcnn.pt", 64, 128)
    loaded.roi_heads.detections_per_img = 4  # random weights: every box scores ~1/9; keep a few
    detector = TorchvisionDetector(loaded, score_threshold=0.0)
    batch = detector.detect(frames)
    assert len(batch) == 3
    for index, found in enumerate(batch):
        alone = detector.detect(frames[index:index + 1])[0]
        assert found.masks.shape[1:] == frames.shape[1:3] and found.masks.dtype == bool
        assert len(found.scores) == 4 and 0 <= found.classes.min() and found.classes.max() < 8
        assert np.allclose(np.sort(found.scores), np.sort(alone.scores), atol=1e-4)


def test_torchvision_checkpoint_with_coco_classes_is_refused(tmp_path: Path):
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    coco = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    torch.save(coco.state_dict(), tmp_path / "coco.pth")
    with pytest.raises(PipelineError, match=r"roi_heads.box_predictor.cls_score.weight is \[91, 1024\] "
                                            r"in the file, \[9, 1024\]"):
        load_mask_rcnn(tmp_path / "coco.pth", 64, 128)


def test_detectron2_missing_says_how_to_install(monkeypatch, tmp_path: Path):
    import sys

    monkeypatch.setitem(sys.modules, "detectron2", None)  # import fails as where it is absent
    settings = {"backend": "detectron2", "checkpoint": str(tmp_path / "model_final_af9cf5.pkl"),
                "config": "Cityscapes/mask_rcnn_R_50_FPN.yaml", "score_threshold": 0.5,
                "min_size": 1024, "max_size": 2048}
    with pytest.raises(PipelineError, match=f"not importable.*checkout {DETECTRON2_COMMIT}.*"
                                            f"pip install --no-build-isolation --no-deps"):
        instance_cli.instance_labeller(settings, device="cpu")


def test_readme_builds_the_detectron2_commit_the_backend_names():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"checkout {DETECTRON2_COMMIT}" in readme


@pytest.mark.parametrize("input_format", ["BGR", "RGB"])
def test_detectron2_input_is_default_predictors(input_format):
    """What DefaultPredictor hands the model: the model's channel order, CHW float, the frame's size."""
    rgb = np.random.default_rng(2).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    doubled = model_input(rgb, input_format, lambda image: image.repeat(2, 0).repeat(2, 1))
    image = doubled["image"]
    assert image.dtype == torch.float32 and image.shape == (3, 10, 14)
    assert (doubled["height"], doubled["width"]) == (5, 7)  # outputs come back at the frame's size
    channels = rgb.transpose(2, 0, 1) if input_format == "RGB" else rgb[:, :, ::-1].transpose(2, 0, 1)
    assert np.array_equal(image[:, ::2, ::2].numpy(), channels.astype(np.float32))


def test_detectron2_instances_become_detections():
    masks = torch.zeros(2, 4, 6, dtype=torch.bool)
    masks[0, :2], masks[1, 2:] = True, True
    instances = SimpleNamespace(pred_masks=masks, pred_classes=torch.tensor([7, 0]),
                                scores=torch.tensor([0.9, 0.8], dtype=torch.float16))
    found = instances_to_detections(instances)
    assert found.masks.dtype == bool and np.array_equal(found.masks, masks.numpy())
    assert found.classes.dtype == np.int64 and found.classes.tolist() == [7, 0]
    assert found.scores.dtype == np.float32 and np.allclose(found.scores, [0.9, 0.8], atol=1e-3)
    labels = np.full((4, 6), THING_LABEL_IDS[7], np.uint8)  # bicycle: class 7 is label id 33
    assert np.all(paint_instances(labels, found, 0.5)[:2] == 33000)
    nothing = SimpleNamespace(pred_masks=torch.zeros(0, 4, 6, dtype=torch.bool),
                              pred_classes=torch.zeros(0, dtype=torch.int64), scores=torch.zeros(0))
    assert instances_to_detections(nothing).masks.shape == (0, 4, 6)


# --- quality -------------------------------------------------------------------------------------

def test_mean_iou_counts_only_present_classes_and_ignores_void():
    truth = np.array([[7, 7, 26, 26], [0, 0, 23, 23]], np.uint8)      # 0 (unlabeled) is ignored
    predicted = np.array([[7, 8, 26, 26], [5, 7, 23, 4]], np.uint8)   # 4 is no train class: a miss
    miou, ious = mean_iou(confusion(truth, predicted))
    assert ious == {7: 0.5, 26: 1.0, 23: 0.5}   # 8 is absent from the truth: not averaged
    assert miou == pytest.approx(2 / 3)
    # categories: flat (road 7 taken for sidewalk 8 is no miss), vehicle, sky
    assert category_miou(confusion(truth, predicted)) == pytest.approx((1 + 1 + 0.5) / 3)


def test_instance_matches_need_class_and_iou():
    truth = np.zeros((4, 10), np.int32)
    truth[:, 0:4] = 26000
    truth[:, 5:7] = 24000
    truth[:, 8:10] = 26001
    predicted = np.zeros((4, 10), np.uint16)
    predicted[:, 0:3] = 26005        # IoU 0.75 with car 0: a match
    predicted[:, 5:7] = 25000        # right place, wrong class
    predicted[:, 9] = 26000          # IoU 0.5 with car 1: a match
    assert instance_matches(truth, predicted) == (2, 3)
    assert instance_matches(truth, predicted, min_area=10) == (1, 1)   # only car 0 has 16 pixels
    quality = Quality()
    quality.add(truth // 1000 * (truth >= 1000), predicted // 1000, truth, predicted)
    assert quality.match_share == pytest.approx(2 / 3)
    assert quality.instances_large == 0 and np.isnan(quality.large_match_share)  # none of 100 px


# --- the stage commands ----------------------------------------------------------------------

@pytest.fixture
def tiny_city(tmp_path: Path) -> Path:
    """Two train snippets of one city (30 tiny frames each) and the subset file naming them."""
    root = tmp_path / "cityscapes"
    write_snippet(root, "train", "alpha", 0, 19, size=(24, 40))
    write_snippet(root, "train", "alpha", 1, 19, size=(24, 40))
    write_snippet(root, "val", "gamma", 0, 19, size=(24, 40))
    subset = select_subset(root, {"train_cities": None, "test_split": "val", "test_sequences": 1})
    write_json(tmp_path / "subset.json", subset)
    return tmp_path


def _settings(tmp_path: Path, keep_gtfine: bool, **semantic) -> dict:
    return {
        "label_set": "train19_other", "keep_gtfine": keep_gtfine,
        "semantic": {"backend": "deeplabv3plus", "encoder": ENCODER, "encoder_depth": 5, "checkpoint": None,
                     "input_height": 32, "input_width": 48, "batch_size": 4,
                     "fit": {"epochs": 1, "batch_size": 2, "lr": 0.01, "crop_height": 32,
                             "crop_width": 32, "scale_min": 0.8, "scale_max": 1.2, "dice_weight": 0.0,
                             "optimizer": "sgd", "class_weight_power": 0.5, "amp": False,
                             "seed": 0}, **semantic},
        "instance": {"backend": "torchvision", "checkpoint": None, "config": "unused",
                     "score_threshold": 0.5, "batch_size": 8, "min_size": 32, "max_size": 64,
                     "fit": {"epochs": 1, "batch_size": 2, "lr": 0.001, "rois_per_image": 32,
                             "amp": False, "seed": 0}},
    }


def test_semantic_and_instance_stages_write_every_frame(tiny_city: Path):
    torch.manual_seed(0)
    torch.save(_constant_segmenter(13).state_dict(), tiny_city / "seg.pt")   # 13: car everywhere
    settings = _settings(tiny_city, keep_gtfine=False)
    out = tiny_city / "semantic" / "train" / "alpha"
    semantic_cli.main(["--subset", str(tiny_city / "subset.json"), "--split", "train", "--city", "alpha",
                       "--checkpoint", str(tiny_city / "seg.pt"), "--output", str(out),
                       "--settings", json.dumps(settings)])
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 61 and "provenance.json" in names
    assert "alpha_000001_000029_labelIds.png" in names and "alpha_000000_000000_labelIds.png" in names
    label = read_label_png(out / "alpha_000000_000019_labelIds.png")
    assert label.dtype == np.uint8 and label.shape == (24, 40) and np.all(label == 26)
    record = json.loads((out / "provenance.json").read_text())
    assert record["frames"] == 60 and record["kept_gtfine"] == 0 and record["weights"]["sha256"]
    assert record["batch_size"] == 4          # no --batch-size: that of the --settings holding it

    model = build_mask_rcnn(32, 64)
    torch.save(model.state_dict(), tiny_city / "inst.pt")
    inst = tiny_city / "instance" / "train" / "alpha"
    instance_cli.main(["--subset", str(tiny_city / "subset.json"), "--split", "train", "--city", "alpha",
                       "--semantic", str(out), "--checkpoint", str(tiny_city / "inst.pt"),
                       "--output", str(inst), "--settings", json.dumps(settings)])
    ids = read_label_png(inst / "alpha_000001_000003_instanceIds.png")
    assert ids.dtype == np.uint16 and ids.shape == (24, 40)
    assert set(np.unique(ids // 1000 * (ids >= 1000) + ids * (ids < 1000))) == {26}  # all car
    assert len(list(inst.glob("*_instanceIds.png"))) == 60


def test_keep_gtfine_keeps_the_annotated_frames_labels(tiny_city: Path):
    torch.save(_constant_segmenter(13).state_dict(), tiny_city / "seg.pt")   # car everywhere
    out = tiny_city / "semantic"
    settings = _settings(tiny_city, keep_gtfine=True)
    semantic_cli.main(["--subset", str(tiny_city / "subset.json"), "--split", "train", "--city", "alpha",
                       "--checkpoint", str(tiny_city / "seg.pt"), "--output", str(out),
                       "--settings", json.dumps(settings)])
    gt = tiny_city / "cityscapes" / "gtFine" / "train" / "alpha" / "alpha_000000_000019_gtFine_instanceIds.png"
    gt_ids = np.full((24, 40), 26, np.uint16)
    gt_ids[:5, :5] = 26000
    cv2.imwrite(str(gt), gt_ids)
    torch.save(build_mask_rcnn(32, 64).state_dict(), tiny_city / "inst.pt")
    inst = tiny_city / "instance"
    instance_cli.main(["--subset", str(tiny_city / "subset.json"), "--split", "train", "--city", "alpha",
                       "--semantic", str(out), "--checkpoint", str(tiny_city / "inst.pt"),
                       "--output", str(inst), "--settings", json.dumps(settings)])
    assert np.array_equal(read_label_png(inst / "alpha_000000_000019_instanceIds.png"), gt_ids)
    assert np.all(read_label_png(out / "alpha_000000_000019_labelIds.png") == 7)  # gtFine's (write_snippet)
    assert np.all(read_label_png(out / "alpha_000000_000018_labelIds.png") == 26)  # the network's
    assert json.loads((out / "provenance.json").read_text())["kept_gtfine"] == 2


def test_a_label_job_is_given_what_it_reads():
    """The rules' --settings (what Snakemake compares): no fit settings (the fit rule's), detectron2's
    config only with that backend, and keep_gtfine as it applies to the job's split."""
    from pipeline.config import DEFAULT_CONFIG, load_config, merge
    config = merge(load_config([DEFAULT_CONFIG]), {"labels": {"keep_gtfine": True}})
    semantic = label_settings(config, "semantic", "train")
    assert semantic["keep_gtfine"] is True and "fit" not in semantic["semantic"]
    assert semantic["semantic"]["encoder"] == config["labels"]["semantic"]["encoder"]
    assert label_settings(config, "semantic", "val")["keep_gtfine"] is False
    assert "config" in label_settings(config, "instance", "val")["instance"]          # detectron2
    torchvision = merge(config, {"labels": {"instance": {"backend": "torchvision"}}})
    assert set(label_settings(torchvision, "instance", "heldout")["instance"]) == {
        "backend", "checkpoint", "score_threshold", "min_size", "max_size"}
    # The batch size is how a job runs, not what it writes: the rule's resource, not its settings.
    smaller = merge(config, {"labels": {"semantic": {"batch_size": 1}, "instance": {"batch_size": 1}}})
    for kind in ("semantic", "instance"):
        assert "batch_size" not in label_settings(config, kind, "train")[kind]
        assert label_settings(smaller, kind, "train") == label_settings(config, kind, "train")


def test_the_batch_size_changes_no_label_and_is_recorded(tmp_path: Path):
    """labels.<kind>.batch_size reaches a job as --batch-size (the rule's resource), not in its
    --settings: any batch writes the same labels, and the provenance records the one used."""
    root = tmp_path / "cityscapes"
    for split, city in (("train", "delta"), ("val", "gamma")):          # 8-frame snippets
        write_snippet(root, split, city, 0, 5, size=(24, 40), frames=8, index=5)
    subset = select_subset(root, {"train_cities": None, "test_split": "val", "test_sequences": 1}, 8, 5)
    write_json(tmp_path / "subset.json", subset)
    torch.manual_seed(0)
    torch.save(build_segmenter(ENCODER).state_dict(), tmp_path / "seg.pt")    # random: labels vary
    torch.save(build_mask_rcnn(32, 64).state_dict(), tmp_path / "inst.pt")
    config = {"labels": _settings(tmp_path, keep_gtfine=False)}
    settings = {kind: json.dumps(label_settings(config, kind, "train")) for kind in ("semantic", "instance")}
    city = ["--subset", str(tmp_path / "subset.json"), "--split", "train", "--city", "delta"]
    written = {}
    for batch_size in (1, 3):                  # 3: a last batch of 2
        sem, inst = tmp_path / f"semantic{batch_size}", tmp_path / f"instance{batch_size}"
        semantic_cli.main([*city, "--checkpoint", str(tmp_path / "seg.pt"), "--output", str(sem),
                           "--settings", settings["semantic"], "--batch-size", str(batch_size)])
        instance_cli.main([*city, "--semantic", str(sem), "--checkpoint", str(tmp_path / "inst.pt"),
                           "--output", str(inst), "--settings", settings["instance"], "--batch-size", str(batch_size)])
        written[batch_size] = {path.name: read_label_png(path)
                               for folder in (sem, inst) for path in folder.glob("*.png")}
        for folder, kind in ((sem, "semantic"), (inst, "instance")):
            record = json.loads((folder / "provenance.json").read_text())
            assert record["batch_size"] == batch_size and "batch_size" not in record["settings"][kind]
    assert len(written[1]) == 16 and written[1].keys() == written[3].keys()
    assert len({label.tobytes() for name, label in written[1].items() if "labelIds" in name}) > 1
    for name, label in written[1].items():
        assert np.array_equal(label, written[3][name]), name

    with pytest.raises(PipelineError, match=r"no batch size: give --batch-size \(the rule passes "
                                            r"labels.semantic.batch_size\)"):
        semantic_cli.main([*city, "--checkpoint", str(tmp_path / "seg.pt"), "--output", str(tmp_path / "none"),
                           "--settings", settings["semantic"]])
    with pytest.raises(PipelineError, match="must be a positive integer, got 0"):
        instance_cli.main([*city, "--semantic", str(tmp_path / "semantic1"), "--checkpoint", str(tmp_path / "inst.pt"),
                           "--output", str(tmp_path / "none"), "--settings", settings["instance"], "--batch-size", "0"])
    assert not (tmp_path / "none").exists()


def test_a_hand_run_takes_the_batch_size_of_its_config(tiny_city: Path):
    """``--config`` in place of the rule's --settings: the batch size is the merged config's."""
    import yaml
    from pipeline.config import DEFAULT_CONFIG

    torch.save(_constant_segmenter(13).state_dict(), tiny_city / "seg.pt")
    override = tiny_city / "override.yaml"
    override.write_text(yaml.safe_dump({"labels": {"semantic": {
        "encoder": ENCODER, "input_height": 32, "input_width": 48, "batch_size": 3}}}))
    out = tiny_city / "semantic"
    semantic_cli.main(["--subset", str(tiny_city / "subset.json"), "--split", "val", "--city", "gamma",
                       "--checkpoint", str(tiny_city / "seg.pt"), "--output", str(out),
                       "--config", str(DEFAULT_CONFIG), str(override)])
    assert json.loads((out / "provenance.json").read_text())["batch_size"] == 3


def test_a_fit_is_given_what_its_weights_depend_on():
    """fit_segmenter and fit_instances get their fit settings and the sizes they train at, not the
    labelling-only ones: another batch size, threshold or checkpoint does not refit a labeller."""
    from pipeline.config import DEFAULT_CONFIG, load_config, merge
    from pipeline.labels.settings import fit_settings
    config = load_config([DEFAULT_CONFIG])
    assert set(fit_settings(config, "semantic")["semantic"]) == {
        "encoder", "encoder_depth", "fit", "input_height", "input_width"}
    labelling_only = merge(config, {"labels": {
        "semantic": {"batch_size": 7, "checkpoint": "elsewhere.pt"},
        "instance": {"score_threshold": 0.9, "batch_size": 7, "checkpoint": "elsewhere.pkl"}}})
    fit_changed = merge(config, {"labels": {"instance": {"fit": {"epochs": 3}}}})
    for kind in ("semantic", "instance"):
        assert fit_settings(labelling_only, kind) == fit_settings(config, kind)
    assert fit_settings(fit_changed, "instance")["instance"]["fit"]["epochs"] == 3
    assert fit_settings(fit_changed, "semantic") == fit_settings(config, "semantic")

def _mask_rcnn_seeing_nothing(min_size: int, max_size: int) -> torch.nn.Module:
    """A Mask R-CNN whose classifier calls every box background. Random weights find an instance
    for some draws of the global RNG, which under xdist depends on the tests run before."""
    model = build_mask_rcnn(min_size, max_size)
    classifier = model.roi_heads.box_predictor.cls_score
    with torch.no_grad():
        classifier.weight.zero_()
        classifier.bias.fill_(-20.0)
        classifier.bias[0] = 20.0
    return model


def test_keep_gtfine_keeps_gtfine_on_the_train_split_only(tiny_city: Path):
    """The thesis tested every variant on pseudo-labels: with keep_gtfine on, the annotated frames
    of the test split (val) and of the held-out snippets are still the network's, and each label
    directory's provenance says what was kept."""
    root = tiny_city / "cityscapes"
    write_snippet(root, "val", "gamma", 1, 19, size=(24, 40))
    subset = select_subset(root, {"train_cities": None, "test_split": "val", "test_sequences": 1,
                                  "heldout_sequences": 1})
    assert set(subset["splits"]) == {"train", "val", "heldout"}
    write_json(tiny_city / "subset.json", subset)
    torch.save(_constant_segmenter(13).state_dict(), tiny_city / "seg.pt")   # car (26) everywhere
    torch.save(_mask_rcnn_seeing_nothing(32, 64).state_dict(), tiny_city / "inst.pt")
    settings = json.dumps(_settings(tiny_city, keep_gtfine=True))
    records = {}
    for split, city in (("train", "alpha"), ("val", "gamma"), ("heldout", "gamma")):
        sem, inst = tiny_city / "semantic" / split / city, tiny_city / "instance" / split / city
        semantic_cli.main(["--subset", str(tiny_city / "subset.json"), "--split", split, "--city", city,
                           "--checkpoint", str(tiny_city / "seg.pt"), "--output", str(sem),
                           "--settings", settings])
        instance_cli.main(["--subset", str(tiny_city / "subset.json"), "--split", split, "--city", city,
                           "--semantic", str(sem), "--checkpoint", str(tiny_city / "inst.pt"),
                           "--output", str(inst), "--settings", settings])
        annotated = [name for name in sorted(p.name for p in sem.glob("*_labelIds.png"))
                     if name.split("_")[2] == "000019"]
        assert annotated
        for name in annotated:
            labels = read_label_png(sem / name)
            ids = read_label_png(inst / name.replace("labelIds", "instanceIds"))
            if split == "train":   # gtFine: road (7), one car instance (26000) (write_snippet)
                assert np.all(labels == 7) and np.all(ids == 26000), (split, name)
            else:                  # the network's: car everywhere, no instance
                assert np.all(labels == 26) and np.all(ids == 26), (split, name)
        records[split] = [json.loads((folder / "provenance.json").read_text()) for folder in (sem, inst)]
    for record in records["train"]:
        assert record["keep_gtfine"] is True and record["kept_gtfine"] == 2
        assert record["settings"]["keep_gtfine"] is True
    assert records["train"][0]["kept_gtfine_frames"] == ["alpha_000000_000019_labelIds.png",
                                                         "alpha_000001_000019_labelIds.png"]
    assert records["train"][1]["kept_gtfine_frames"] == ["alpha_000000_000019_instanceIds.png",
                                                         "alpha_000001_000019_instanceIds.png"]
    for split in ("val", "heldout"):
        for record in records[split]:
            assert record["settings"]["keep_gtfine"] is True     # the setting, as given ...
            assert record["keep_gtfine"] is False                # ... not applied off the train split
            assert record["kept_gtfine"] == 0 and record["kept_gtfine_frames"] == []


def test_fit_augment_resizes_labels_on_the_images_grid():
    """fit_segmenter's training labels shrink like its images (half-pixel centres, the pack's
    resize_labels): a 4x shrink of ids encoding the column holds columns 4j + 2, not 4j."""
    from pipeline.labels.fit_segmenter import augment

    image = np.zeros((8, 64, 3), np.uint8)
    columns = np.tile(np.arange(64, dtype=np.uint8), (8, 1))
    for seed in range(4):                                   # flipped or not
        _, y = augment(image, columns, (8, 64), (2, 16), (0.25, 0.25), np.random.default_rng(seed))
        expected = [4 * j + 2 for j in range(16)]
        assert y.shape == (2, 16) and y.dtype == torch.int64
        assert all(row in (expected, expected[::-1]) for row in y.tolist())


def test_a_crash_mid_city_leaves_nothing(tiny_city: Path):
    torch.save(_constant_segmenter(0).state_dict(), tiny_city / "seg.pt")
    frame = (tiny_city / "cityscapes" / "leftImg8bit_sequence" / "train" / "alpha"
             / "alpha_000001_000025_leftImg8bit.png")
    frame.write_bytes(b"truncated")
    out = tiny_city / "labels" / "alpha"
    with pytest.raises(PipelineError, match="unreadable image") as caught:
        semantic_cli.main(["--subset", str(tiny_city / "subset.json"), "--split", "train", "--city",
                           "alpha", "--checkpoint", str(tiny_city / "seg.pt"), "--output", str(out),
                           "--settings", json.dumps(_settings(tiny_city, keep_gtfine=False))])
    assert caught.value.path == frame
    assert list((tiny_city / "labels").iterdir()) == []


def test_no_checkpoint_is_an_error(tiny_city: Path):
    with pytest.raises(PipelineError, match="labels.semantic.checkpoint is null"):
        semantic_cli.main(["--subset", str(tiny_city / "subset.json"), "--split", "train", "--city",
                           "alpha", "--output", str(tiny_city / "x"),
                           "--settings", json.dumps(_settings(tiny_city, keep_gtfine=False))])


def test_fits_write_self_trained_checkpoints_the_labellers_load(tiny_city: Path):
    from pipeline.labels import fit_instances, fit_segmenter

    settings = _settings(tiny_city, keep_gtfine=False, encoder_depth=4)
    for stage, name in ((fit_segmenter, "seg.pt"), (fit_instances, "inst.pt")):
        stage.main(["--subset", str(tiny_city / "subset.json"), "--output", str(tiny_city / name),
                    "--settings", json.dumps(settings)])
    _, record = load_segmenter(tiny_city / "seg.pt", ENCODER, depth=4)
    assert record["self_trained"] and "fit_segmenter" in record["meta"]["source"]
    assert record["meta"]["encoder_depth"] == 4
    assert record["meta"]["fit"]["train_frames"] == 2 and record["meta"]["provenance"]["seed"] == 0
    _, record = load_mask_rcnn(tiny_city / "inst.pt", 32, 64)
    assert record["self_trained"] and record["meta"]["classes"] == 9


def test_fit_segmenter_is_deterministic(tiny_city: Path):
    from pipeline.labels.fit_segmenter import fit_segmenter
    from pipeline.labels.gtfine import annotated_frames

    frames = annotated_frames(tiny_city / "subset.json")
    fit = _settings(tiny_city, False)["semantic"]["fit"]
    first, _ = fit_segmenter(frames, ENCODER, (32, 48), fit)
    second, _ = fit_segmenter(frames, ENCODER, (32, 48), fit)
    for key, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[key]), key


def test_fits_train_on_every_train_city_not_only_the_studys(tmp_path: Path):
    """Published Cityscapes checkpoints see all 2975 gtFine train frames; the study takes 808
    snippets. The fits read the subset's gtfine_train list, which holds every train city."""
    from pipeline.labels.gtfine import annotated_frames

    root = tmp_path / "cityscapes"
    for city, seq in (("alpha", 0), ("alpha", 1), ("beta", 0)):
        write_snippet(root, "train", city, seq, 19, size=(24, 40))
    write_snippet(root, "val", "gamma", 0, 19, size=(24, 40))
    subset = select_subset(root, {"train_cities": ["alpha"], "test_split": "val", "test_sequences": 1})
    write_json(tmp_path / "subset.json", subset)
    assert list(subset["splits"]["train"]) == ["alpha"]
    frames = annotated_frames(tmp_path / "subset.json")
    assert [(f.snippet.city, f.snippet.seq, f.annotated) for f in frames] == [
        ("alpha", 0, True), ("alpha", 1, True), ("beta", 0, True)]
    del subset["gtfine_train"]
    write_json(tmp_path / "old.json", subset)
    with pytest.raises(PipelineError, match="old.json: the subset lists no gtfine_train snippets"):
        annotated_frames(tmp_path / "old.json")


def test_dice_loss_weighs_a_missed_thin_class_as_a_class():
    """The same 4 wrong pixels cost cross-entropy the same whether they are a whole thin class
    or a corner of a wide one; with the Dice term the missed class costs far more."""
    from pipeline.labels.fit_segmenter import segmentation_loss

    truth = torch.zeros(1, 16, 16, dtype=torch.long)
    truth[0, 4:8, 0] = 5                                   # a 4-pixel pole
    truth[0, 12:, 12:] = 1                                 # a 16-pixel sidewalk corner
    confident = torch.full((1, 19, 16, 16), -8.0)
    missed_pole = confident.clone().scatter_(1, truth.clamp(max=1)[:, None], 8.0)   # pole as road
    missed_corner = confident.clone().scatter_(1, truth[:, None], 8.0)
    missed_corner[0, :, 12:14, 12:14] = -8.0
    missed_corner[0, 0, 12:14, 12:14] = 8.0                # 4 sidewalk pixels as road
    plain = segmentation_loss(torch.ones(19), 0.0)
    dice = segmentation_loss(torch.ones(19), 1.0)
    assert plain(missed_pole, truth).item() == pytest.approx(plain(missed_corner, truth).item(), rel=1e-5)
    pole_extra = dice(missed_pole, truth) - plain(missed_pole, truth)
    corner_extra = dice(missed_corner, truth) - plain(missed_corner, truth)
    assert pole_extra.item() > 3 * corner_extra.item()


def test_class_weights_balance_rare_classes():
    from pipeline.labels.fit_segmenter import class_weights

    ids = np.zeros((10, 10), np.uint8)    # road: 90 pixels
    ids[0, :9] = 5                        # pole: 9 pixels
    ids[1, 0] = 255                       # ignored: frequencies are 90/99 and 9/99, median 0.5
    weights = class_weights([ids], power=1.0)
    assert weights[0] == pytest.approx(0.5 * 99 / 90, rel=1e-5)
    assert weights[5] == pytest.approx(0.5 * 99 / 9, rel=1e-5)
    assert class_weights([ids], power=0.5)[5] == pytest.approx((0.5 * 99 / 9) ** 0.5, rel=1e-5)
    assert torch.all(weights[[1, 2, 18]] == 1.0)                                 # absent classes
    assert torch.all(class_weights([ids], power=0.0) == 1.0)
