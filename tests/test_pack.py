"""The pack stage: what it writes is exactly the resized sources, written safely, and verifiable."""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import shutil
import subprocess
import sys

import cv2
import h5py
import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.flow.convention import CONVENTION
from pipeline.labels.frames import city_frames, label_city
from pipeline.pack.__main__ import main
from pipeline.pack.example_tree import make_pack_tree
from pipeline.pack.resize import resize_flow, resize_image, resize_labels
from pipeline.pack.verify import verify
from pipeline.pack.writer import PackInputs, pack
from pipeline.provenance import code_files

RESOLUTIONS = [[16, 32], [32, 64]]
SETTINGS = {"pack": {"resolutions": RESOLUTIONS, "compression": "lz4", "chunk_frames": 1},
            "label_set": "train19_other"}


def _pack(tree, output, settings=SETTINGS, **kwargs):
    inputs = PackInputs.from_paths(tree.root, tree.semantic, tree.instance, tree.flow)
    return pack(tree.subset, tree.split, inputs, output, settings, progress=False, **kwargs)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_pack_tree(tmp_path_factory.mktemp("tree"))


@pytest.fixture(scope="module")
def packed(tree, tmp_path_factory):
    return _pack(tree, tmp_path_factory.mktemp("out") / "train.h5")


def test_packed_arrays_are_the_resized_sources(tree, packed):
    """Frames by INTER_AREA, labels and instances by nearest, flow with scaled vectors, per frame."""
    with h5py.File(packed) as file:
        assert [s.decode() for s in file["snippets/id"][()]] == [s.id for s in tree.snippets]
        assert [c.decode() for c in file["snippets/city"][()]] == [s.city for s in tree.snippets]
        for height, width in RESOLUTIONS:
            group = file[f"{height}x{width}"]
            for i, snippet in enumerate(tree.snippets):
                with h5py.File(tree.flow_file(snippet)) as flow_file:
                    source_flow = flow_file[f"flow/{snippet.id}"][()].astype(np.float32)
                for t, frame_path in enumerate(snippet.frame_paths):
                    rgb = cv2.cvtColor(cv2.imread(str(frame_path)), cv2.COLOR_BGR2RGB)
                    expected = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
                    np.testing.assert_array_equal(group["frames"][i, t], expected)
                    for kind, name in (("labelIds", "labels"), ("instanceIds", "instances")):
                        source = cv2.imread(str(tree.label_path(snippet, t, kind)), cv2.IMREAD_UNCHANGED)
                        expected = cv2.resize(source, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)
                        np.testing.assert_array_equal(group[name][i, t], expected)
                    if t == 0:
                        assert not group["flow"][i, 0].any()
                    else:
                        flow = source_flow[t - 1]
                        if flow.shape[:2] != (height, width):
                            flow = cv2.resize(flow, (width, height), interpolation=cv2.INTER_AREA)
                            flow *= np.array([width / source_flow.shape[2], height / source_flow.shape[1]],
                                             dtype=np.float32)
                        np.testing.assert_allclose(group["flow"][i, t].astype(np.float32), flow,
                                                   rtol=1e-3, atol=1e-3)
        assert not file["flow_valid"][:, 0].any() and file["flow_valid"][:, 1:].all()


def test_nearest_resize_keeps_only_source_values():
    rng = np.random.default_rng(1)
    labels = rng.choice(np.array([7, 11, 24, 26], np.uint8), size=(37, 61))
    instances = (labels.astype(np.uint16) * 1000 + rng.integers(0, 3, labels.shape)).astype(np.uint16)
    for size in ((16, 32), (50, 100), (37, 61)):
        assert set(np.unique(resize_labels(labels, size))) <= set(np.unique(labels))
        resized = resize_labels(instances, size)
        assert resized.dtype == np.uint16
        assert set(np.unique(resized)) <= set(np.unique(instances))


@pytest.mark.parametrize("factor, centre", [(2, 1), (4, 2)])
def test_label_resize_samples_the_footprint_centre_like_the_frames(factor, centre):
    """A map whose ids encode the source row and column, shrunk 2x / 4x, holds the source pixel at
    the centre of each target pixel's footprint (factor * i + centre, rounding half up), half a
    source pixel from where INTER_AREA's frame sample is centred (factor * i + (factor - 1) / 2),
    not its first pixel (cv2.INTER_NEAREST: factor * i, 1.5 source pixels off at 4x)."""
    height, width = 32, 64
    rows, cols = np.mgrid[0:height, 0:width]
    ids = (rows * 1000 + cols).astype(np.int32)
    small = (height // factor, width // factor)
    resized = resize_labels(ids, small)
    i, j = np.mgrid[0:small[0], 0:small[1]]
    np.testing.assert_array_equal(resized // 1000, factor * i + centre)
    np.testing.assert_array_equal(resized % 1000, factor * j + centre)
    for dtype in (np.uint8, np.uint16, np.uint32):     # the same grid whatever the map's type
        np.testing.assert_array_equal(resize_labels((cols % 200).astype(dtype), small) % 200,
                                      (factor * j + centre) % 200)
    area_rows = resize_image(rows.astype(np.float32)[..., None].repeat(3, -1), small)[..., 0]
    area_cols = resize_image(cols.astype(np.float32)[..., None].repeat(3, -1), small)[..., 0]
    assert np.allclose(area_cols, factor * j + (factor - 1) / 2)
    assert np.abs(resized % 1000 - area_cols).max() == 0.5
    assert np.abs(resized // 1000 - area_rows).max() == 0.5


def test_flow_vectors_scale_with_size(tmp_path):
    """A constant flow (u, v) at 2x the size is (u/2, v/2) at 1x, and unchanged at its own size."""
    assert np.allclose(resize_flow(np.full((32, 64, 2), (6.0, -4.0), np.float32), (16, 32)), (3.0, -2.0))
    assert np.allclose(resize_flow(np.full((16, 32, 2), (6.0, -4.0), np.float32), (16, 64)), (12.0, -4.0))
    tree = make_pack_tree(tmp_path, {"gamma": 1}, flow_size=(32, 64), constant_flow=(6.0, -4.0),
                          textured=False)
    output = _pack(tree, tmp_path / "train.h5")
    with h5py.File(output) as file:
        assert np.all(file["16x32/flow"][0, 1:] == np.array([3.0, -2.0], np.float16))
        assert np.all(file["32x64/flow"][0, 1:] == np.array([6.0, -4.0], np.float16))
        assert np.all(file["16x32/flow"][0, 0] == 0)


def test_attributes_describe_the_file(packed):
    with h5py.File(packed) as file:
        attrs = file.attrs
        assert attrs["schema"] == "pipeline.pack" and attrs["schema_version"] == 1
        assert attrs["resolutions"].tolist() == RESOLUTIONS
        assert attrs["frames"] == 4 and attrs["annotated_index"] == 2 and attrs["snippet_count"] == 3
        table = json.loads(attrs["label_table"])
        assert {"id": 26, "name": "car"}.items() <= table[26].items()
        record = json.loads(attrs["provenance"])
        assert record["stage"] == "pack" and record["settings"] == SETTINGS
        assert record["sources"]["flow"]["alpha"].endswith("alpha.h5")
        assert record["labellers"]["semantic"] == {"backend": "deeplabv3plus", "weights_real": False,
                                                   "keep_gtfine": True}
        assert record["labellers"]["instance"]["weights_real"] is True
        assert record["labellers"]["flow"] == {"backend": "dis", "weights_real": True}
        assert "h5py" in record["packages"]
        assert file["32x64/frames"].chunks == (1, 1, 32, 64, 3)


def test_interrupted_pack_leaves_no_file(tree, tmp_path):
    output = tmp_path / "train.h5"

    def stop(index):
        if index == 1:
            raise KeyboardInterrupt   # a walltime kill mid-write

    with pytest.raises(KeyboardInterrupt):
        _pack(tree, output, on_snippet=stop)
    assert list(tmp_path.iterdir()) == []


def test_bad_inputs_name_the_file(tree, tmp_path):
    broken = make_pack_tree(tmp_path / "t", {"delta": 1})
    with h5py.File(broken.flow[0], "a") as file:
        del file[f"flow/{broken.snippets[0].id}"]
    with pytest.raises(PipelineError, match="delta.h5.*no dataset 'flow/delta_000000_000052'"):
        _pack(broken, tmp_path / "a.h5")
    broken = make_pack_tree(tmp_path / "u", {"delta": 1})
    label_png = broken.label_path(broken.snippets[0], 3, "labelIds")
    cv2.imwrite(str(label_png), np.full((64, 128), 40, np.uint8))
    with pytest.raises(PipelineError, match=f"{label_png.name}: holds label id 40"):
        _pack(broken, tmp_path / "b.h5")
    assert not (tmp_path / "a.h5").exists() and not (tmp_path / "b.h5").exists()


def test_mixed_flow_dtypes_name_the_odd_file(tmp_path):
    # Two cities' flow files, one float16 and one float32: the error names the later dtype's file.
    tree = make_pack_tree(tmp_path / "t", {"delta": 1, "gamma": 1})
    odd = next(path for path in tree.flow if path.stem == "gamma")
    with h5py.File(odd, "a") as file:
        for name in list(file["flow"]):
            flow = file[f"flow/{name}"][...]
            del file[f"flow/{name}"]
            file.create_dataset(f"flow/{name}", data=flow.astype(np.float32))
    with pytest.raises(PipelineError, match=rf"^{odd}: .*float16 \(first in .*delta.h5\), float32 \(first in .*gamma.h5\)"):
        _pack(tree, tmp_path / "mixed.h5")
    assert not (tmp_path / "mixed.h5").exists()


@pytest.mark.parametrize("kind", ["labelIds", "instanceIds"])
def test_labels_of_another_size_than_their_frame_are_refused(tmp_path, kind):
    # A 64x64 label PNG beside a 64x128 frame used to be stretched to the packed size with it.
    tree = make_pack_tree(tmp_path / "t", {"delta": 1})
    png = tree.label_path(tree.snippets[0], 1, kind)
    cv2.imwrite(str(png), cv2.imread(str(png), cv2.IMREAD_UNCHANGED)[:, :64])
    frame = tree.snippets[0].frame_paths[1]
    with pytest.raises(PipelineError, match=rf"^{re.escape(str(png))}: label PNG is 64x64, its frame "
                                            rf"{re.escape(str(frame))} is 64x128"):
        _pack(tree, tmp_path / "train.h5")
    assert not (tmp_path / "train.h5").exists()


def test_flow_of_another_aspect_ratio_is_refused(tmp_path):
    # Flow at half the frames' size is the flow stage's way (flow.height/width); 64x32 beside
    # 64x128 frames is another picture's, and was stretched. Within rounding only: 32x65 is not.
    for flow_size in ((64, 32), (32, 65)):
        tree = make_pack_tree(tmp_path / f"{flow_size[0]}x{flow_size[1]}", {"delta": 1}, flow_size=flow_size)
        message = (rf"^{re.escape(str(tree.flow[0]))}: flow is {flow_size[0]}x{flow_size[1]}, not the aspect "
                   r"ratio of its frames \(.*_leftImg8bit.png is 64x128\)")
        with pytest.raises(PipelineError, match=message):
            _pack(tree, tmp_path / "train.h5")
    tree = make_pack_tree(tmp_path / "attrs", {"delta": 1})
    with h5py.File(tree.flow[0], "a") as file:       # its attributes say another size than its data
        file.attrs["height"], file.attrs["width"] = 64, 128
    with pytest.raises(PipelineError, match=rf"^{re.escape(str(tree.flow[0]))}: dataset 'flow/delta_000000_000052' "
                                            "is 32x64, the file's height and width attributes say 64x128"):
        _pack(tree, tmp_path / "train.h5")
    assert not (tmp_path / "train.h5").exists()


@pytest.mark.parametrize("value", [np.nan, -np.inf])
def test_non_finite_flow_is_refused(tmp_path, value):
    """NaN or inf in a flow file was packed (trained a NaN model; only --verify told): the pack stops
    naming the flow file, the snippet and the frame, and leaves no output, no temporary."""
    tree = make_pack_tree(tmp_path / "t", {"delta": 1})
    snippet = tree.snippets[0]
    with h5py.File(tree.flow[0], "a") as file:
        file[f"flow/{snippet.id}"][1, 5, 7, 0] = value          # the flow of frame 2
    message = (f"{tree.flow[0]}: dataset 'flow/{snippet.id}' holds non-finite values (NaN or inf): the flow of "
               f"frame 2 of snippet {snippet.id} ({snippet.frame_paths[2].name})")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(PipelineError, match=f"^{re.escape(message)}$"):
        _pack(tree, out / "train.h5")
    assert list(out.iterdir()) == []


def test_a_corrupt_chunk_of_a_flow_file_is_named(tmp_path):
    """A flow file damaged in a copy gave pack a bare "filter returned failure during read": now the
    file and the dataset are named, and no output is left."""
    tree = make_pack_tree(tmp_path / "t", {"delta": 1})
    snippet = tree.snippets[0]
    with h5py.File(tree.flow[0]) as file:
        chunk = file[f"flow/{snippet.id}"].id.get_chunk_info_by_coord((1, 0, 0, 0))
    with open(tree.flow[0], "r+b") as raw:
        raw.seek(chunk.byte_offset + chunk.size // 2)
        raw.write(b"\xff" * (chunk.size - chunk.size // 2))
    message = rf"^{re.escape(str(tree.flow[0]))}: dataset 'flow/{snippet.id}' is unreadable \(truncated or corrupt"
    with pytest.raises(PipelineError, match=message):
        _pack(tree, tmp_path / "train.h5")
    assert not (tmp_path / "train.h5").exists()

def test_flow_beyond_float16_once_enlarged_is_refused(tmp_path):
    """Finite float16 flow packed larger than it was computed has its vectors scaled up: 40000
    pixels at twice the size is 80000, inf as float16. Refused, where it was stored as inf."""
    tree = make_pack_tree(tmp_path / "t", {"delta": 1}, flow_size=(32, 64), constant_flow=(40000.0, 0.0))
    settings = {**SETTINGS, "pack": {**SETTINGS["pack"], "resolutions": [[32, 64], [64, 128]]}}
    snippet = tree.snippets[0]
    message = (f"{tree.flow[0]}: dataset 'flow/{snippet.id}': the flow of frame 1 of snippet {snippet.id} is "
               "beyond float16's range at 64x128 (its vectors scale with the size)")
    with pytest.raises(PipelineError, match=f"^{re.escape(message)}$"):
        _pack(tree, tmp_path / "train.h5", settings=settings)
    assert not (tmp_path / "train.h5").exists()


def test_a_full_disk_fails_once_and_keeps_the_old_output(tree, packed, tmp_path):
    """Writes failing mid-pack (a full disk; here a file size limit, which needs no mount) used to
    print dozens of errors as h5py dropped datasets and then crash HDF5 (segfault, exit 139). Now
    the first failed write raises, the file closes, the temporary goes and the old output stays."""
    output = tmp_path / "out" / "train.h5"
    output.parent.mkdir()
    output.write_bytes(b"old")
    limit = packed.stat().st_size // 2

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))    # Python ignores SIGXFSZ: EFBIG

    command = [sys.executable, "-m", "pipeline.pack", "--subset", str(tree.subset), "--split", "train",
               "--frames-root", str(tree.root), "--semantic", *map(str, tree.semantic), "--instance",
               *map(str, tree.instance), "--flow", *map(str, tree.flow), "--output", str(output),
               "--settings", json.dumps(SETTINGS)]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}     # only the pack writes under the limit
    result = subprocess.run(command, capture_output=True, text=True, preexec_fn=limit_file_size, env=env)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Exception ignored" not in result.stderr and result.stderr.count("Traceback") <= 1, result.stderr
    assert "File too large" in result.stderr
    assert list(output.parent.iterdir()) == [output] and output.read_bytes() == b"old"


def test_a_failed_final_flush_is_the_oserror_of_a_write(tree, tmp_path, monkeypatch):
    """A disk full just as the metadata goes out: h5py raises the failed flush as a RuntimeError;
    pack raises the OSError a failed write is (HDF5's errno, the temporary named) and leaves nothing."""
    def full(self):
        raise RuntimeError("Unable to synchronously flush file (file write failed: errno = 28, "
                           "error message = 'No space left on device')")

    monkeypatch.setattr(h5py.File, "flush", full)
    with pytest.raises((OSError, PipelineError)) as caught:       # pipeline.io may name a full disk
        _pack(tree, tmp_path / "train.h5")
    error = caught.value if isinstance(caught.value, OSError) else caught.value.__cause__
    assert isinstance(error, OSError) and error.errno == errno.ENOSPC
    assert error.filename.startswith(str(tmp_path / ".train.h5."))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("convention", [None, CONVENTION.replace("t-1 onto frame t", "t onto frame t-1")])
def test_flow_of_unknown_direction_is_refused(tmp_path, convention):
    tree = make_pack_tree(tmp_path / "t", {"delta": 1})
    with h5py.File(tree.flow[0], "a") as file:
        if convention is None:
            del file.attrs["convention"]
        else:
            file.attrs["convention"] = convention
    found = "has no 'convention' attribute" if convention is None else f"has convention {convention!r}"
    message = f"{tree.flow[0]}: flow file {found}; expected {CONVENTION!r}"
    with pytest.raises(PipelineError, match=f"^{re.escape(message)}"):
        _pack(tree, tmp_path / "train.h5")
    assert not (tmp_path / "train.h5").exists()


def test_pseudo_labels_hold_only_train_label_ids(tmp_path):
    """A label directory label_city wrote holds the 19 train classes' label ids (what DeepLabV3+
    and the instances painted over it can write) but in its kept gtFine frames; trainIds (0-18)
    written as labelIds pass the < 34 check and are refused here, named as what they look like."""
    tree = make_pack_tree(tmp_path / "t", {"delta": 1})
    snippet, folder = tree.snippets[0], tree.semantic[0]
    car_on_road = np.where(np.arange(128) < 64, 7, 26).astype(np.uint8)   # label ids of road, car

    def relabel(keep: bool, value: np.ndarray) -> None:
        """Label the city as label_semantic does (its provenance.json too), frame 3 as ``value``."""
        label_city(city_frames([snippet]), lambda images, refs: np.broadcast_to(car_on_road, images.shape[:3]),
                   folder, "labelIds", 4, False, "train", {"stage": "label_semantic"}, "test")
        png = tree.label_path(snippet, 3, "labelIds")
        cv2.imwrite(str(png), np.broadcast_to(value, (64, 128)).astype(np.uint8))
        if keep:                              # as if keep_gtfine had kept frame 3's gtFine labels
            record = json.loads((folder / "provenance.json").read_text())
            record.update(kept_gtfine=1, kept_gtfine_frames=[png.name])
            (folder / "provenance.json").write_text(json.dumps(record))

    relabel(False, car_on_road)
    assert verify(_pack(tree, tmp_path / "ok.h5"))["snippets"] == 1
    relabel(True, np.array([0, 4, 26], np.uint8).repeat(43)[:128])   # gtFine's own ids, in a kept frame
    _pack(tree, tmp_path / "kept.h5")
    png = tree.label_path(snippet, 3, "labelIds")
    train_ids = np.array([0, 2, 13], np.uint8).repeat(43)[:128]         # road, building, car as trainIds
    static_and_car = np.array([4, 26], np.uint8).repeat(64)              # gtFine's static, outside a kept frame
    for value, odd, hint in ((train_ids, "0, 2", "; all its ids are below 19: it looks like trainIds"),
                             (static_and_car, "4", "$")):
        relabel(False, value)
        with pytest.raises(PipelineError, match=rf"^{re.escape(str(png))}: pseudo-label frame \(not in its "
                                                rf"directory's kept_gtfine_frames\) holds label ids \[{odd}\], "
                                                rf"outside the 19 train classes' label ids \[7, 8, 11, .*\]{hint}"):
            _pack(tree, tmp_path / "bad.h5")
    assert not (tmp_path / "bad.h5").exists()


def test_pseudo_instances_hold_only_train_label_ids(tmp_path):
    # An instanceIds map made from trainIds: road (train id 0) around car (13) instances 13000+k.
    tree = make_pack_tree(tmp_path / "t", {"delta": 1})
    snippet, folder = tree.snippets[0], tree.instance[0]
    label_city(city_frames([snippet]), lambda images, refs: np.full(images.shape[:3], 26000, np.uint16),
               folder, "instanceIds", 4, False, "train", {"stage": "label_instance"}, "test")
    _pack(tree, tmp_path / "ok.h5")
    png = tree.label_path(snippet, 2, "instanceIds")
    cv2.imwrite(str(png), np.broadcast_to(np.where(np.arange(128) < 64, 0, 13000), (64, 128)).astype(np.uint16))
    with pytest.raises(PipelineError, match=rf"^{re.escape(str(png))}: pseudo-label frame .* holds label ids \[0\],"
                                            ".*looks like trainIds"):
        _pack(tree, tmp_path / "bad.h5")
    assert not (tmp_path / "bad.h5").exists()


def test_instance_ids_of_classes_without_instances_are_refused(tmp_path):
    """An instance id is label id * 1000 + k of a class Cityscapes gives instances (person ...
    bicycle, caravan, trailer); a sky "instance" (23001) is refused, in a gtFine frame too."""
    tree = make_pack_tree(tmp_path / "t", {"delta": 1})
    png = tree.label_path(tree.snippets[0], 2, "instanceIds")
    for value in (26001, 29002):                     # a car, and a caravan (gtFine only)
        cv2.imwrite(str(png), np.broadcast_to(np.where(np.arange(128) < 64, 23, value), (64, 128)).astype(np.uint16))
        _pack(tree, tmp_path / "ok.h5")
    cv2.imwrite(str(png), np.broadcast_to(np.where(np.arange(128) < 64, 23001, 26001), (64, 128)).astype(np.uint16))
    with pytest.raises(PipelineError, match=rf"^{re.escape(str(png))}: holds instance ids of label ids \[23\], "
                                            r"classes without instances .*\[24, 25, 26, 27, 28, 29, 30, 31, 32, 33\]"):
        _pack(tree, tmp_path / "bad.h5")
    assert not (tmp_path / "bad.h5").exists()


def test_the_writer_imports_no_torch():
    """Checking the flow's convention and the labels' provenance must not make packing import torch
    with the writer (pipeline.flow.backends and pipeline.labels do)."""
    code = "import sys, pipeline.pack.writer; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_verify_passes_a_good_file(packed, capsys):
    summary = verify(packed)
    assert summary["snippets"] == 3 and summary["resolutions"] == [(16, 32), (32, 64)]
    main(["--verify", str(packed)])
    assert "3 snippets x 4 frames at 16x32, 32x64" in capsys.readouterr().out


def test_verify_rejects_a_truncated_file(packed, tmp_path):
    truncated = tmp_path / "truncated.h5"
    data = packed.read_bytes()
    truncated.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(PipelineError, match=r"truncated\.h5: not a readable HDF5 file \(truncated"):
        verify(truncated)
    result = subprocess.run([sys.executable, "-m", "pipeline.pack", "--verify", str(truncated)],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "truncated.h5" in result.stderr and result.stdout == ""


def test_verify_rejects_a_missing_dataset(packed, tmp_path):
    damaged = tmp_path / "damaged.h5"
    shutil.copy(packed, damaged)
    with h5py.File(damaged, "a") as file:
        del file["16x32/flow"]
    with pytest.raises(PipelineError, match=r"damaged\.h5: dataset '16x32/flow' missing"):
        verify(damaged, values=False)


def test_verify_rejects_wrong_counts_and_values(packed, tmp_path):
    damaged = tmp_path / "counts.h5"
    shutil.copy(packed, damaged)
    with h5py.File(damaged, "a") as file:
        file.attrs["snippet_count"] = 4
    with pytest.raises(PipelineError, match=r"'/snippets/id' has shape \(3,\), the attributes imply \(4,\)"):
        verify(damaged)
    shutil.copy(packed, damaged)
    with h5py.File(damaged, "a") as file:
        file["32x64/labels"][1, 2, 0, 0] = 34
    with pytest.raises(PipelineError, match="snippet 1 at 32x64: label id 34"):
        verify(damaged)
    shutil.copy(packed, damaged)
    with h5py.File(damaged, "a") as file:
        file["16x32/flow"][1, 2, 0, 0, 0] = np.inf
    with pytest.raises(PipelineError, match="snippet 1 at 16x32: flow of frame 2 holds non-finite values"):
        verify(damaged)
    verify(damaged, values=False)   # structure alone is still fine


def test_cli_packs_with_settings(tree, tmp_path):
    output = tmp_path / "train.h5"
    main(["--subset", str(tree.subset), "--split", "train", "--frames-root", str(tree.root),
          "--semantic", *map(str, tree.semantic), "--instance", *map(str, tree.instance),
          "--flow", *map(str, tree.flow), "--output", str(output), "--settings", json.dumps(SETTINGS)])
    assert verify(output)["snippets"] == 3
    with pytest.raises(PipelineError, match="no flow input for city 'beta'"):
        main(["--subset", str(tree.subset), "--split", "train", "--semantic", *map(str, tree.semantic),
              "--instance", *map(str, tree.instance), "--flow", str(tree.flow[0]),
              "--output", str(tmp_path / "x.h5"), "--settings", json.dumps(SETTINGS)])


@pytest.mark.parametrize("compression", ["none", "gzip", "blosc-lz4", "zstd", "blosc-zstd"])
def test_every_codec_round_trips(tree, packed, tmp_path, compression):
    settings = {**SETTINGS, "pack": {**SETTINGS["pack"], "compression": compression, "chunk_frames": 2}}
    output = _pack(tree, tmp_path / "train.h5", settings=settings)
    with h5py.File(output) as file, h5py.File(packed) as reference:
        assert file["16x32/frames"].chunks == (1, 2, 16, 32, 3)
        for name in ("frames", "labels", "instances", "flow"):
            np.testing.assert_array_equal(file[f"32x64/{name}"][()], reference[f"32x64/{name}"][()])


def test_each_array_takes_its_own_codec(tree, packed, tmp_path):
    """``pack.compression`` as a mapping: every array stored with its codec, the same pixels."""
    codecs = {"frames": "none", "labels": "lz4", "instances": "blosc-lz4", "flow": "gzip"}
    settings = {**SETTINGS, "pack": {**SETTINGS["pack"], "compression": codecs}}
    output = _pack(tree, tmp_path / "train.h5", settings=settings)
    filter_ids = {"none": set(), "lz4": {32004}, "blosc-lz4": {32001}, "gzip": {1}}
    with h5py.File(output) as file, h5py.File(packed) as reference:
        assert json.loads(file.attrs["compression"]) == codecs
        for name, codec in codecs.items():
            dataset = file[f"32x64/{name}"]
            plist = dataset.id.get_create_plist()
            assert {plist.get_filter(i)[0] for i in range(plist.get_nfilters())} == filter_ids[codec], name
            np.testing.assert_array_equal(dataset[()], reference[f"32x64/{name}"][()])
    assert verify(output)["snippets"] == 3
    for bad, message in (({"frames": "none"}, "name each of frames, labels, instances, flow"),
                         ({**codecs, "flow": "snappy"}, "unknown compression 'snappy'")):
        settings = {**SETTINGS, "pack": {**SETTINGS["pack"], "compression": bad}}
        with pytest.raises(PipelineError, match=f"pack.compression: .*{message}"):
            _pack(tree, tmp_path / "bad.h5", settings=settings)
    assert not (tmp_path / "bad.h5").exists()


def test_frames_are_read_from_frames_root_when_the_dataset_has_moved(tmp_path):
    # subset.json records where select_subset found the dataset; --frames-root says where it is now.
    tree = make_pack_tree(tmp_path / "before", {"delta": 1})
    moved = tmp_path / "after"
    (tmp_path / "before").rename(moved)
    inputs = PackInputs.from_paths(moved, [moved / p.relative_to(tree.root) for p in tree.semantic],
                                   [moved / p.relative_to(tree.root) for p in tree.instance],
                                   [moved / p.relative_to(tree.root) for p in tree.flow])
    packed = pack(moved / "subset.json", tree.split, inputs, tmp_path / "moved.h5", SETTINGS, progress=False)
    assert verify(packed)["snippets"] == 1


def test_packings_code_version_leaves_out_the_labellers():
    """The pack rule's code version covers what packing runs; were the labellers (or their quality
    report) in it, an edit there would repack and so retrain every variant."""
    files = code_files("pipeline.pack")
    assert any(file.name == "writer.py" for file in files)
    assert not [file for file in files if file.parent.name == "labels"], files
