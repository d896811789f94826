"""Packing the synthetic city: the graph's path (subset, labels, flow, pack) on true labels and motion.

The label and flow stages are stood in for by the city's truth written in their output formats
(an oracle labeller), so the packed file can be checked against known labels and flow, and the
packed flow can be checked by what it does: warping frame t-1 onto frame t at every resolution.
"""

from __future__ import annotations

import json

import cv2
import h5py
import numpy as np
import pytest
import torch

from pipeline.data.cityscapes import read_frame
from pipeline.data.subset import select_subset
from pipeline.data.synthetic import generate
from pipeline.flow.convention import CONVENTION
from pipeline.flow.warp import warp
from pipeline.io import write_json
from pipeline.errors import PipelineError
from pipeline.pack.dataset import FrameDataset, WindowDataset
from pipeline.pack.verify import verify
from pipeline.pack.writer import GTFINE_SPLIT, PackInputs, pack

FRAMES, ANNOTATED = 8, 5
HEIGHT, WIDTH = 64, 128


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    """A two-snippet synthetic city, its subset and oracle label and flow outputs; then packed."""
    base = tmp_path_factory.mktemp("synthetic")
    root = base / "city"
    generate(root, {"train": {"synthberg": 2}, "val": {"testfurt": 1}}, seed=0, height=HEIGHT,
             width=WIDTH, frames=FRAMES, annotated=ANNOTATED)
    subset = select_subset(root, {"train_cities": None, "test_split": "val", "test_sequences": 1, "seed": 0},
                           FRAMES, ANNOTATED)
    write_json(base / "subset.json", subset)
    semantic, instance = base / "semantic" / "synthberg", base / "instance" / "synthberg"
    flow_path = base / "flow" / "synthberg.h5"
    for folder in (semantic, instance, flow_path.parent):
        folder.mkdir(parents=True)
    write_json(semantic / "provenance.json", {"backend": "oracle", "weights_real": True})
    write_json(instance / "provenance.json", {"backend": "oracle", "weights_real": True})
    truth = {}
    with h5py.File(flow_path, "w") as flow_file:
        flow_file.attrs["convention"] = CONVENTION      # the truth's flow is in the flow stage's direction
        flow_file.attrs["provenance"] = json.dumps({"backend": "oracle", "weights_real": True})
        for snippet_id in subset["splits"]["train"]["synthberg"]:
            arrays = dict(np.load(root / "truth" / "train" / "synthberg" / f"{snippet_id}.npz"))
            truth[snippet_id] = arrays
            city_name, seq, annotated_frame = snippet_id.rsplit("_", 2)
            for t in range(FRAMES):
                stem = f"{city_name}_{seq}_{int(annotated_frame) - ANNOTATED + t:06d}"
                cv2.imwrite(str(semantic / f"{stem}_labelIds.png"), arrays["labels"][t])
                instance_ids = arrays["instances"][t].astype(np.uint16)
                cv2.imwrite(str(instance / f"{stem}_instanceIds.png"), instance_ids)
            flow_file.create_dataset(f"flow/{snippet_id}", data=arrays["flow"][1:].astype(np.float16))
    inputs = PackInputs.from_paths(root, [semantic], [instance], [flow_path])
    settings = {"pack": {"resolutions": [[32, 64], [64, 128]], "compression": "lz4", "chunk_frames": 1},
                "label_set": "train19_other"}
    packed = pack(base / "subset.json", "train", inputs, base / "train.h5", settings, progress=False)
    return {"root": root, "packed": packed, "truth": truth}


def test_synthetic_city_packs_its_truth(city):
    assert verify(city["packed"])["snippets"] == 2
    with h5py.File(city["packed"]) as file:
        ids = [s.decode() for s in file["snippets/id"][()]]
        assert ids == sorted(city["truth"])
        for i, snippet_id in enumerate(ids):
            truth = city["truth"][snippet_id]
            np.testing.assert_array_equal(file["64x128/labels"][i], truth["labels"])
            np.testing.assert_array_equal(file["64x128/instances"][i], truth["instances"])
            np.testing.assert_array_equal(file["64x128/flow"][i], truth["flow"].astype(np.float16))
            small = file["32x64/labels"][i]
            assert set(np.unique(small)) <= set(np.unique(truth["labels"]))
            np.testing.assert_array_equal(small[ANNOTATED], truth["labels"][ANNOTATED][1::2, 1::2])   # NEAREST_EXACT: 2i + 1


@pytest.mark.parametrize("resolution", [(32, 64), (64, 128)])
def test_packed_flow_warps_the_packed_frames(city, resolution):
    """At each resolution the packed flow (vectors scaled) aligns frame t-1 with frame t.

    Where the truth marks the flow valid (no disocclusion), warping with the packed flow leaves
    a smaller error than no motion compensation, and than the vectors scaled by 0.5 or by 2
    (at half size, 2 is the full-size vectors left unscaled): the packed scale is the right one.
    """
    windows = WindowDataset(city["packed"], resolution, window=FRAMES, start=0)
    sample = windows[0]
    truth = city["truth"][sample["snippet"]]
    valid = torch.from_numpy(np.stack([
        cv2.resize(v.astype(np.uint8), resolution[::-1], interpolation=cv2.INTER_AREA) == 1
        for v in truth["valid"]]))[1:, None].expand(-1, 3, -1, -1)
    image, flow = sample["image"], sample["flow"]
    assert not sample["flow_valid"][0] and sample["flow_valid"][1:].all()

    def error(scale: float) -> float:
        warped = warp(image[:-1], flow[1:] * scale)
        return (warped - image[1:]).abs()[valid].mean().item()

    packed = error(1.0)
    assert packed < 0.7 * error(0.0)
    assert packed < 0.9 * error(0.5) and packed < 0.9 * error(2.0)


def test_the_image_variants_set_is_every_train_citys_gtfine_frame(tmp_path):
    """gtfine_train: the annotated frame of every train snippet, the cities outside the study's
    subset too, with the gtFine labels as they are on disk; one frame a snippet, no flow."""
    root = tmp_path / "city"
    generate(root, {"train": {"synthberg": 2, "farburg": 1}, "val": {"testfurt": 1}}, seed=1, height=HEIGHT,
             width=WIDTH, frames=FRAMES, annotated=ANNOTATED)
    subset = select_subset(root, {"train_cities": ["synthberg"], "test_split": "val", "test_sequences": 1,
                                  "seed": 0}, FRAMES, ANNOTATED)
    write_json(tmp_path / "subset.json", subset)
    settings = {"pack": {"resolutions": [[32, 64], [64, 128]], "compression": "lz4"}, "label_set": "train19_other"}
    with pytest.raises(PipelineError, match="'gtfine_train' is packed from the root's gtFine labels"):
        pack(tmp_path / "subset.json", GTFINE_SPLIT, PackInputs.from_paths(root, [], [], []), tmp_path / "x.h5", settings)
    packed = pack(tmp_path / "subset.json", GTFINE_SPLIT, PackInputs.from_gtfine(root), tmp_path / "gtfine.h5",
                  settings, progress=False)
    assert verify(packed)["snippets"] == 3 and not (tmp_path / "x.h5").exists()
    frames = FrameDataset(packed, (64, 128), frames="annotated", expand=False)
    assert sorted(frames[i]["snippet"] for i in range(len(frames))) == sorted(
        snippet for city in subset["gtfine_train"].values() for snippet in city)
    for i in range(len(frames)):
        sample = frames[i]
        city_name = sample["snippet"].split("_")[0]
        truth = np.load(root / "truth" / "train" / city_name / f"{sample['snippet']}.npz")
        np.testing.assert_array_equal(sample["label_ids"].numpy(), truth["labels"][ANNOTATED])
        np.testing.assert_array_equal(sample["instances"].numpy(), truth["instances"][ANNOTATED])
        frame = read_frame(root / "leftImg8bit_sequence" / "train" / city_name / f"{sample['snippet']}_leftImg8bit.png")
        np.testing.assert_array_equal(sample["image"].numpy(), frame)     # compact: uint8 HWC RGB
        assert not sample["flow"].any() and not sample["flow_valid"]
    # A video variant given the image variants' set by mistake is told what the file holds.
    with pytest.raises(PipelineError, match=rf"^{packed}: holds 1 frame a snippet \(split 'gtfine_train'\), too "
                                            "few for the window of 3 consecutive frames asked of it$"):
        WindowDataset(packed, (64, 128), window=3)
