"""The pack stage: what it writes is exactly the resized sources, written safely, and verifiable."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import cv2
import h5py
import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.pack.__main__ import main
from pipeline.pack.example_tree import make_pack_tree
from pipeline.pack.resize import resize_flow, resize_image, resize_labels
from pipeline.pack.verify import verify
from pipeline.pack.writer import PackInputs, pack

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
