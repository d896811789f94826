"""The training datasets: the packed pixels exactly, one-hot and edges, windows, workers, seeds."""

from __future__ import annotations

import re
import shutil

import cv2
import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pipeline.data.labels import channel_lut
from pipeline.errors import PipelineError
from pipeline.models.edges import edge_map
from pipeline.pack.dataset import FrameDataset, WindowDataset, expand, window_start
from pipeline.pack.example_tree import make_pack_tree
from pipeline.pack.writer import PackInputs, pack

SETTINGS = {"pack": {"resolutions": [[16, 32], [32, 64]], "compression": "lz4"},
            "label_set": "train19_other"}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_pack_tree(tmp_path_factory.mktemp("tree"), {"alpha": 3, "beta": 2}, frames=8,
                          annotated_index=5)


@pytest.fixture(scope="module")
def packed(tree, tmp_path_factory):
    inputs = PackInputs.from_paths(tree.root, tree.semantic, tree.instance, tree.flow)
    return pack(tree.subset, "train", inputs, tmp_path_factory.mktemp("out") / "train.h5", SETTINGS,
                progress=False)


def test_frames_are_the_source_pixels(tree, packed):
    """Every sample equals its source PNGs resized as specified (not just the file's copy)."""
    dataset = FrameDataset(packed, (32, 64), frames="all")
    assert len(dataset) == 5 * 8
    for index in (0, 13, 39):
        sample = dataset[index]
        snippet = tree.snippets[index // 8]
        frame = index % 8
        assert (sample["snippet"], sample["frame"]) == (snippet.id, frame)
        assert sample["snippet_index"] == index // 8
        assert sample["city"] == snippet.city
        rgb = cv2.cvtColor(cv2.imread(str(snippet.frame_paths[frame])), cv2.COLOR_BGR2RGB)
        expected = cv2.resize(rgb, (64, 32), interpolation=cv2.INTER_AREA)
        image = sample["image"]
        assert image.shape == (3, 32, 64) and image.dtype == torch.float32 and image.is_contiguous()
        assert torch.equal((image * 255).round().to(torch.uint8).permute(1, 2, 0), torch.from_numpy(expected))
        source = cv2.imread(str(tree.label_path(snippet, frame, "labelIds")), cv2.IMREAD_UNCHANGED)
        label_ids = cv2.resize(source, (64, 32), interpolation=cv2.INTER_NEAREST_EXACT)
        assert torch.equal(sample["label_ids"], torch.from_numpy(label_ids))
        source = cv2.imread(str(tree.label_path(snippet, frame, "instanceIds")), cv2.IMREAD_UNCHANGED)
        instances = cv2.resize(source, (64, 32), interpolation=cv2.INTER_NEAREST_EXACT)
        instances = torch.from_numpy(instances.astype(np.int32))
        assert torch.equal(sample["instances"], instances)
        assert torch.equal(sample["edge"], edge_map(instances))
        assert bool(sample["flow_valid"]) == (frame > 0)
        assert sample["flow"].shape == (2, 32, 64)


def test_one_hot_follows_the_label_set(packed):
    sample = FrameDataset(packed, "16x32")[0]
    lut = torch.from_numpy(channel_lut("train19_other"))
    labels = sample["labels"]
    assert labels.shape == (20, 16, 32) and labels.dtype == torch.float32
    assert torch.equal(labels.sum(0), torch.ones(16, 32))
    assert torch.equal(labels.argmax(0), lut[sample["label_ids"].long()])
    only19 = FrameDataset(packed, "16x32", label_set="train19")[0]["labels"]
    assert only19.shape[0] == 19
    unmapped = lut[sample["label_ids"].long()] == 19   # ids outside the 19 classes
    assert unmapped.any() and torch.equal(only19.sum(0) == 0, unmapped)


def test_annotated_frames_by_default(packed):
    dataset = FrameDataset(packed, (16, 32))
    assert len(dataset) == 5
    assert dataset.packed.provenance["labellers"]["flow"]["backend"] == "dis"
    assert [dataset[i]["frame"] for i in range(5)] == [5] * 5
    all_frames = FrameDataset(packed, (16, 32), frames="all")
    assert torch.equal(dataset[3]["image"], all_frames[3 * 8 + 5]["image"])


def test_windows_are_consecutive_frames(packed):
    windows = WindowDataset(packed, (16, 32), window=6, seed=3)
    frames = FrameDataset(packed, (16, 32), frames="all")
    sample = windows[2]
    start = windows.window_start(2)
    assert torch.equal(sample["frame"], torch.arange(start, start + 6))
    for key, shape in (("image", (6, 3, 16, 32)), ("labels", (6, 20, 16, 32)), ("edge", (6, 1, 16, 32)),
                       ("flow", (6, 2, 16, 32)), ("label_ids", (6, 16, 32)), ("instances", (6, 16, 32))):
        assert sample[key].shape == shape, key
    for k in range(6):
        single = frames[2 * 8 + start + k]
        for key in ("image", "labels", "label_ids", "instances", "edge", "flow"):
            assert torch.equal(sample[key][k], single[key]), key
        assert bool(sample["flow_valid"][k]) == (start + k > 0)


def test_window_starts_are_deterministic_and_cover_every_start():
    draws = [window_start(0, epoch, 0, 30, 6) for epoch in range(2000)]
    assert draws == [window_start(0, epoch, 0, 30, 6) for epoch in range(2000)]
    assert set(draws) == set(range(25))                 # 0..24: the last window is drawn too
    assert draws != [window_start(1, epoch, 0, 30, 6) for epoch in range(2000)]


def test_a_later_training_stage_draws_other_windows(packed):
    # A CRN's second stage counts its epochs from 0 again; its windows must not replay stage 0's.
    windows = WindowDataset(packed, (16, 32), window=3, seed=0)
    starts = {}
    for stage in (0, 1):
        starts[stage] = []
        for epoch in range(8):
            windows.set_epoch(epoch, stage)
            starts[stage] += [windows.window_start(i) for i in range(len(windows))]
    assert starts[0] != starts[1]
    windows.set_epoch(3, 1)
    assert windows.window_start(0) == window_start(0, 3, 0, windows.packed.frames, 3, stage=1)


def test_window_dataset_seed_and_epoch(packed):
    first = WindowDataset(packed, (16, 32), window=3, seed=0)
    again = WindowDataset(packed, (16, 32), window=3, seed=0)
    starts = [first.window_start(i) for i in range(5)]
    assert starts == [again.window_start(i) for i in range(5)]
    assert torch.equal(first[4]["image"], again[4]["image"])
    epochs = set()
    for epoch in range(6):
        first.set_epoch(epoch)
        epochs.add(tuple(first.window_start(i) for i in range(5)))
    assert len(epochs) > 1
    fixed = WindowDataset(packed, (16, 32), window=3, start=5)
    assert [fixed[i]["frame"].tolist() for i in range(5)] == [[5, 6, 7]] * 5


def test_dataloader_workers_give_the_same_samples(packed):
    dataset = WindowDataset(packed, (16, 32), window=4, seed=7)
    dataset.set_epoch(2)
    dataset[0]   # a handle opened in the parent must not leak into the workers
    serial = list(DataLoader(dataset, batch_size=2, num_workers=0))
    parallel = list(DataLoader(dataset, batch_size=2, num_workers=2))
    assert len(serial) == len(parallel) == 3
    for one, two in zip(serial, parallel):
        assert one["snippet"] == two["snippet"]
        for key in ("image", "labels", "instances", "edge", "flow", "flow_valid", "frame"):
            assert torch.equal(one[key], two[key]), key


def test_compact_samples_expand_to_the_same_batch(packed):
    full = FrameDataset(packed, (16, 32), frames="all")
    compact = FrameDataset(packed, (16, 32), frames="all", expand=False)
    sample = compact[9]
    assert sample["image"].dtype == torch.uint8 and sample["image"].shape == (16, 32, 3)
    assert "labels" not in sample and "edge" not in sample
    batch = next(iter(DataLoader(compact, batch_size=4)))
    expanded = expand(batch, "train19_other")
    reference = next(iter(DataLoader(full, batch_size=4)))
    for key in ("image", "labels", "label_ids", "instances", "edge", "flow", "flow_valid"):
        assert torch.equal(expanded[key], reference[key]), key


def test_in_memory_copy_gives_the_same_samples(packed):
    on_disk = WindowDataset(packed, (32, 64), window=2, seed=1)
    in_memory = WindowDataset(packed, (32, 64), window=2, seed=1, in_memory=True)
    for index in range(5):
        for key in ("image", "labels", "flow", "instances"):
            assert torch.equal(on_disk[index][key], in_memory[index][key])


def test_bad_requests_are_clear(packed, tmp_path):
    with pytest.raises(PipelineError, match="no resolution 64x128 in this file; it holds 16x32, 32x64"):
        FrameDataset(packed, (64, 128))
    with pytest.raises(PipelineError, match="packed file not found"):
        FrameDataset(tmp_path / "missing.h5")
    with pytest.raises(PipelineError, match=rf"^{re.escape(str(packed))}: holds 8 frames a snippet \(split 'train'\), "
                                            "too few for the window of 9 consecutive frames asked of it$"):
        WindowDataset(packed, (16, 32), window=9)
    with pytest.raises(ValueError, match="window must be at least 1"):
        WindowDataset(packed, (16, 32), window=0)
    with pytest.raises(ValueError, match="unknown label set"):
        FrameDataset(packed, (16, 32), label_set="train20")
    with pytest.raises(IndexError):
        FrameDataset(packed, (16, 32))[5]


def test_a_corrupt_chunk_names_the_file_dataset_and_snippet(packed, tmp_path):
    """Bytes overwritten in a compressed chunk gave a bare "OSError: Can't synchronously read data
    (filter returned failure during read)" mid-training; now a PipelineError says where."""
    damaged = tmp_path / "damaged.h5"
    shutil.copy(packed, damaged)
    with h5py.File(damaged) as file:
        chunk = file["16x32/labels"].id.get_chunk_info_by_coord((3, 2, 0, 0))      # snippet 3, frame 2
    with open(damaged, "r+b") as raw:
        raw.seek(chunk.byte_offset + chunk.size // 2)
        raw.write(b"\xff" * (chunk.size - chunk.size // 2))
    message = (rf"^{re.escape(str(damaged))}: dataset '/16x32/labels', snippet 3: unreadable "
               r"\(truncated or corrupt chunk\?\): .*filter returned failure")
    frames = FrameDataset(damaged, (16, 32), frames="all")
    frames[3 * 8 + 1]                                   # its other chunks still read
    with pytest.raises(PipelineError, match=message):
        frames[3 * 8 + 2]
    with pytest.raises(PipelineError, match=message):   # the in-memory copy reads every chunk at once
        WindowDataset(damaged, (16, 32), window=2, in_memory=True)


def test_one_hot_paths_agree():
    """The numpy path (CPU) and the torch path (GPU) of the one-hot give the same tensor."""
    from pipeline.pack.dataset import _one_hot

    label_ids = torch.randint(0, 34, (2, 3, 8, 16), dtype=torch.uint8)
    for label_set in ("train19_other", "train19", "all34"):
        by_numpy = _one_hot(label_ids, label_set, use_numpy=True)
        by_torch = _one_hot(label_ids, label_set, use_numpy=False)
        assert by_numpy.shape == (2, 3, by_numpy.shape[2], 8, 16) and by_numpy.dtype == torch.float32
        assert torch.equal(by_numpy, by_torch)


def _reference_expand(compact, label_set):
    """expand as first written (plain torch, int64 Laplacian): the faster one must equal it."""
    lut = torch.from_numpy(channel_lut(label_set))
    channels = int(lut.max()) + 1
    channel = lut[compact["label_ids"].long()].unsqueeze(-3)
    one_hot = (channel == torch.arange(channels).view(channels, 1, 1)).to(torch.float32)
    ids = compact["instances"].long()
    height, width = ids.shape[-2:]
    flat = ids.reshape(-1, height, width)
    response = (4 * flat[:, 1:-1, 1:-1] - flat[:, :-2, 1:-1] - flat[:, 2:, 1:-1]
                - flat[:, 1:-1, :-2] - flat[:, 1:-1, 2:])
    edge = torch.zeros(flat.shape, dtype=torch.float32)
    edge[:, 1:-1, 1:-1] = (response != 0).float()
    return {"image": compact["image"].movedim(-1, -3).contiguous().to(torch.float32).div_(255.0),
            "labels": one_hot, "edge": edge.reshape(*ids.shape[:-2], 1, height, width),
            "flow": compact["flow"].movedim(-1, -3).to(torch.float32).contiguous()}


@pytest.mark.parametrize("leading", [(), (3,), (2, 3)])
def test_expand_equals_the_plain_torch_expansion(leading):
    """Random compact samples (frame, window, batch of windows) expand to the reference's tensors."""
    generator = torch.Generator().manual_seed(len(leading))
    shape = (*leading, 24, 40)
    ids = torch.randint(0, 34, shape, generator=generator, dtype=torch.uint8)
    things = torch.randint(0, 2, shape, generator=generator).bool()
    instances = torch.where(things, 26 * 1000 + torch.randint(0, 50, shape, generator=generator),
                            ids.long()).to(torch.int32)
    compact = {"image": torch.randint(0, 256, (*shape, 3), generator=generator, dtype=torch.uint8),
               "label_ids": ids, "instances": instances,
               "flow": (torch.randn((*shape, 2), generator=generator) * 20).to(torch.float16),
               "flow_valid": torch.ones(leading, dtype=torch.bool)}
    for label_set in ("train19_other", "train19"):
        expanded, reference = expand(compact, label_set), _reference_expand(compact, label_set)
        for key, value in reference.items():
            assert expanded[key].dtype == value.dtype and expanded[key].is_contiguous(), key
            assert torch.equal(expanded[key], value), key
        assert expanded["label_ids"] is ids and expanded["flow_valid"] is compact["flow_valid"]


def test_edges_stay_exact_where_int32_would_overflow():
    """The edge map computes in int32 only when no id can overflow it; a centre of 2**30 amid
    zeros has a Laplacian of 2**32, which int32 arithmetic would wrap to 0 (no edge)."""
    ids = torch.zeros(1, 5, 5, dtype=torch.int32)
    ids[0, 2, 2] = 2**30
    edges = edge_map(ids)[0, 0]
    assert edges[2, 2] == 1 and edges.sum() == 5           # the centre and its four neighbours
    small = torch.randint(0, 34000, (2, 16, 32), dtype=torch.int32)
    assert torch.equal(edge_map(small), edge_map(small.long()))
    assert torch.equal(edge_map(small.to(torch.uint16)), edge_map(small.long()))
