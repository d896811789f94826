"""The synthetic city: Cityscapes layout, determinism, truth consistent with gtFine, true flow."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pipeline.config import REPO_ROOT, load_config
from pipeline.data import synthetic
from pipeline.data.labels import colorize
from pipeline.errors import PipelineError
from pipeline.flow.warp import warp

HEIGHT, WIDTH = 64, 128
CITIES = {"train": {"alpha": 1, "beta": 2}, "val": {"gamma": 1}}
LISTED = {"road": 7, "sidewalk": 8, "building": 11, "pole": 17, "traffic sign": 20, "vegetation": 21,
          "sky": 23, "person": 24, "car": 26}


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "city"
    synthetic.generate(root, CITIES, seed=3, height=HEIGHT, width=WIDTH)
    return root


def _truths(root: Path) -> dict[str, dict[str, np.ndarray]]:
    return {path.stem: dict(np.load(path)) for path in sorted((root / "truth").rglob("*.npz"))}


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


def _digests(root: Path) -> dict[str, str]:
    # synthetic.json holds the creation time; everything else must be byte-identical.
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "synthetic.json"}


def test_layout_and_names(city):
    # The first city: one sequence per snippet, annotated frame 19, frames 0..29.
    alpha = sorted(p.name for p in (city / "gtFine/train/alpha").iterdir())
    kinds = ("color", "instanceIds", "labelIds")
    assert alpha == [f"alpha_000000_000019_gtFine_{kind}.png" for kind in kinds]
    frames = sorted(p.name for p in (city / "leftImg8bit_sequence/train/alpha").iterdir())
    assert frames == [f"alpha_000000_{n:06d}_leftImg8bit.png" for n in range(30)]
    # Other cities: one long sequence, several snippets, frame numbers not starting at 0.
    for split, name, count in (("train", "beta", 2), ("val", "gamma", 1)):
        labels = sorted((city / "gtFine" / split / name).glob("*_gtFine_labelIds.png"))
        assert len(labels) == count
        annotated = [int(p.name.split("_")[2]) for p in labels]
        assert all(p.name.startswith(f"{name}_000000_") for p in labels)
        assert min(annotated) > 19
        expected = {f"{name}_000000_{n:06d}_leftImg8bit.png"
                    for a in annotated for n in range(a - 19, a + 11)}
        present = {p.name for p in (city / "leftImg8bit_sequence" / split / name).iterdir()}
        assert present == expected and len(present) == 30 * count   # ranges never overlap
    truth_names = {p.relative_to(city / "truth").as_posix() for p in (city / "truth").rglob("*.npz")}
    gt_names = {f"{p.parent.parent.name}/{p.parent.name}/{p.name.removesuffix('_gtFine_labelIds.png')}.npz"
                for p in (city / "gtFine").rglob("*_gtFine_labelIds.png")}
    assert truth_names == gt_names
    record = json.loads((city / "synthetic.json").read_text())
    assert record["stage"] == "synthetic_city" and record["seed"] == 3
    assert record["settings"]["cities"] == CITIES and record["code_version"]
    assert record["snippets"]["train"]["alpha"] == ["alpha_000000_000019"]
    preview = _read(city / "preview.png")
    # A caption band, then for frames 1, 10, 19 (annotated) and 29 a caption and frame | labels | flow.
    assert preview.shape[1] == 3 * WIDTH and preview.shape[0] == 16 + 4 * (16 + HEIGHT)
    assert (preview[:16] == 255).mean() > 0.6 and (preview[:16] < 128).any()      # white, with text


def test_readable_by_the_cityscapes_reader(city):
    from pipeline.data.cityscapes import check_city, find_snippets, read_frame, read_label_png

    for split, cities in CITIES.items():
        for name, count in cities.items():
            snippets = find_snippets(city, split, name)
            assert len(snippets) == count
            check_city(snippets)
            frame = read_frame(snippets[0].frame_paths[0], (HEIGHT, WIDTH))
            assert frame.dtype == np.uint8 and frame.shape == (HEIGHT, WIDTH, 3)
            assert read_label_png(snippets[0].gtfine_path("instanceIds")).dtype == np.uint16


def test_truth_arrays(city):
    for truth in _truths(city).values():
        assert truth["labels"].shape == (30, HEIGHT, WIDTH) and truth["labels"].dtype == np.uint8
        assert truth["instances"].shape == (30, HEIGHT, WIDTH) and truth["instances"].dtype == np.int32
        assert truth["flow"].shape == (30, HEIGHT, WIDTH, 2) and truth["flow"].dtype == np.float32
        assert truth["valid"].shape == (30, HEIGHT, WIDTH) and truth["valid"].dtype == bool
        assert not truth["flow"][0].any() and not truth["valid"][0].any()
        assert np.isfinite(truth["flow"]).all()
        assert truth["valid"][1:].mean() > 0.6


def test_gtfine_is_the_annotated_truth_frame(city):
    for stem, truth in _truths(city).items():
        name = stem.split("_")[0]
        folder = next((city / "gtFine").glob(f"*/{name}"))
        labels = _read(folder / f"{stem}_gtFine_labelIds.png")
        instances = _read(folder / f"{stem}_gtFine_instanceIds.png")
        colour = cv2.cvtColor(_read(folder / f"{stem}_gtFine_color.png"), cv2.COLOR_BGR2RGB)
        assert labels.dtype == np.uint8 and instances.dtype == np.uint16
        np.testing.assert_array_equal(labels, truth["labels"][19])
        np.testing.assert_array_equal(instances, truth["instances"][19])
        np.testing.assert_array_equal(colour, colorize(truth["labels"][19]))


def test_instance_encoding(city):
    for truth in _truths(city).values():
        labels, instances = truth["labels"].astype(np.int32), truth["instances"]
        things = np.isin(labels, (24, 26))
        np.testing.assert_array_equal(instances[~things], labels[~things])
        np.testing.assert_array_equal(instances[things] // 1000, labels[things])
        for label_id in (24, 26):
            # In the annotated frame, k counts from 0 without gaps, per class.
            ks = np.unique(instances[19][labels[19] == label_id] % 1000)
            np.testing.assert_array_equal(ks, np.arange(ks.size))
        # A thing keeps its id over time: the pixel the true flow points to in the previous
        # frame carries the same instance id wherever the flow is valid.
        for t in range(1, 30):
            valid = truth["valid"][t] & things[t]
            ys, xs = np.nonzero(valid)
            src_x = np.floor(xs + truth["flow"][t][ys, xs, 0]).astype(int)
            src_y = np.floor(ys + truth["flow"][t][ys, xs, 1]).astype(int)
            np.testing.assert_array_equal(instances[t - 1][src_y, src_x], instances[t][ys, xs])


def test_flow_warps_previous_frame_onto_frame(city):
    for stem, truth in _truths(city).items():
        name = stem.split("_")[0]
        split = next((city / "truth").glob(f"*/{name}")).parent.name
        seq, annotated = stem.split("_")[1], int(stem.split("_")[2])
        paths = [city / "leftImg8bit_sequence" / split / name / f"{name}_{seq}_{n:06d}_leftImg8bit.png"
                 for n in range(annotated - 19, annotated + 11)]
        frames = torch.from_numpy(np.stack([_read(p) for p in paths])).permute(0, 3, 1, 2).float()
        flow = torch.from_numpy(truth["flow"]).permute(0, 3, 1, 2)
        valid = torch.from_numpy(truth["valid"][1:])
        warped = warp(frames[:-1], flow[1:])
        error = (warped - frames[1:]).abs().mean(dim=1)[valid].mean().item()
        still = (frames[:-1] - frames[1:]).abs().mean(dim=1)[valid].mean().item()
        assert error < 3.0, (stem, error)             # of 255
        assert error < 0.45 * still, (stem, error, still)
        # A slightly wrong flow does worse: the truth is the optimum, not merely close.
        for wrong in (flow[1:] * 1.1, flow[1:] + torch.tensor([0.3, 0.0]).view(1, 2, 1, 1)):
            worse = (warp(frames[:-1], wrong) - frames[1:]).abs().mean(dim=1)[valid].mean().item()
            assert worse > error


def test_camera_motion_moves_every_pixel(city):
    for truth in _truths(city).values():
        speed = np.linalg.norm(truth["flow"][1:], axis=-1)
        assert (speed < 0.05).mean() < 0.01           # only around the focus of expansion
        sky = truth["labels"][1:] == 23
        assert np.median(speed[sky]) > 0.02           # the camera pans: even the sky moves


def test_label_diversity(city):
    labels = np.concatenate([truth["labels"] for truth in _truths(city).values()])
    for name, label_id in LISTED.items():
        present = (labels == label_id).any(axis=(1, 2)).mean()
        assert present > 0.8, (name, present)
    images = [_read(p) for p in sorted((city / "leftImg8bit_sequence").rglob("*.png"))[::10]]
    assert all(image.std() > 20 for image in images)  # a scene, not a flat field


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path):
    """The same bytes for a seed whatever the number of processes rendering (a second city
    holds its snippets in one long sequence, which two processes share)."""
    small = {"train": {"alpha": 1, "beta": 3}}
    for name, seed, workers in (("a", 5, 1), ("b", 5, 2), ("c", 6, 1)):
        synthetic.generate(tmp_path / name, small, seed=seed, height=32, width=64, frames=6, annotated=3,
                           workers=workers)
    first, again, other = (_digests(tmp_path / name) for name in "abc")
    assert first == again
    assert first.keys() != other.keys() or all(first[k] != other[k] for k in first if "leftImg8bit" in k)


def test_the_listing_order_of_the_cities_does_not_change_the_city():
    """The rule passes the cities sorted (its settings JSON), a hand run in a config file's order:
    both must plan the same sequences, snippet ids and frame numbers."""
    listed = {"val": {"testfurt": 2}, "train": {"synthberg": 2, "labelheim": 1}}
    reordered = {"train": {"labelheim": 1, "synthberg": 2}, "val": {"testfurt": 2}}
    plans = synthetic.plan_sequences(listed, seed=0)
    assert plans == synthetic.plan_sequences(reordered, seed=0)
    assert [plan.city for plan in plans] == ["labelheim", "synthberg", "testfurt"]
    assert plans[0].annotated_frames == (19,) and len(plans[1].annotated_frames) == 2     # one a snippet, one long


def test_frames_and_annotated_index_are_settings(tmp_path):
    synthetic.generate(tmp_path / "c", {"val": {"delta": 2, "eps": 1}}, seed=0, height=32, width=64,
                       frames=5, annotated=2)
    truths = _truths(tmp_path / "c")
    assert sorted(truths) == ["delta_000000_000002", "delta_000001_000002", sorted(truths)[2]]
    eps = sorted(truths)[2]
    annotated = int(eps.split("_")[2])
    assert eps.startswith("eps_000000_") and annotated > 2
    labels = _read(tmp_path / "c/gtFine/val/eps" / f"{eps}_gtFine_labelIds.png")
    np.testing.assert_array_equal(labels, truths[eps]["labels"][2])
    frames = sorted(p.name for p in (tmp_path / "c/leftImg8bit_sequence/val/eps").iterdir())
    assert frames == [f"eps_000000_{n:06d}_leftImg8bit.png" for n in range(annotated - 2, annotated + 3)]


def test_failed_run_leaves_the_old_city(tmp_path, monkeypatch):
    root = tmp_path / "city"
    root.mkdir()
    (root / "old.txt").write_text("kept")

    def broken(*args, **kwargs):
        raise RuntimeError("killed mid-way")

    monkeypatch.setattr(synthetic, "render_snippet", broken)
    with pytest.raises(RuntimeError):
        synthetic.generate(root, {"train": {"alpha": 1}}, seed=0, height=32, width=64, frames=4, annotated=1)
    assert [p.name for p in tmp_path.iterdir()] == ["city"]
    assert (root / "old.txt").read_text() == "kept"


def test_cli_settings_and_config(tmp_path):
    settings = {"seed": 1, "cities": {"train": {"alpha": 1}}, "height": 32, "width": 64, "frames": 4,
                "annotated": 1}
    synthetic.main(["--root", str(tmp_path / "cli"), "--settings", json.dumps(settings)])
    record = json.loads((tmp_path / "cli/synthetic.json").read_text())
    assert record["settings"] == settings
    assert (tmp_path / "cli/gtFine/train/alpha/alpha_000000_000001_gtFine_labelIds.png").is_file()
    # --config: data.synthetic plus the frame geometry of data.
    config = load_config([REPO_ROOT / "config.yaml", REPO_ROOT / "config/demo.yaml"])
    picked = synthetic.settings_from_config(config)
    assert set(picked) == set(synthetic.SETTINGS_KEYS)
    data = config["data"]
    assert (picked["height"], picked["width"]) == (data["frame_height"], data["frame_width"])
    assert picked["cities"] == config["data"]["synthetic"]["cities"]


@pytest.mark.parametrize("change, message", [
    ({"annotated": 4}, "annotated"),
    ({"cities": {"train": {"Alpha": 1}}}, "lowercase"),
    ({"cities": {"holdout": {"alpha": 1}}}, "split"),
    ({"height": 4}, "too small"),
])
def test_bad_settings_are_named(tmp_path, change, message):
    settings = {"seed": 0, "cities": {"train": {"alpha": 1}}, "height": 32, "width": 64, "frames": 4,
                "annotated": 1, **change}
    with pytest.raises(PipelineError, match=message):
        synthetic.main(["--root", str(tmp_path / "bad"), "--settings", json.dumps(settings)])
    assert not (tmp_path / "bad").exists()
    with pytest.raises(PipelineError, match="lack"):
        synthetic.main(["--root", str(tmp_path / "bad"), "--settings", json.dumps({"seed": 0})])
