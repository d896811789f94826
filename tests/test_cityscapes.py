"""The Cityscapes layer: snippets found by name, and a clear error for each kind of bad tree."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from pipeline.data import labels
from pipeline.data.cityscapes import check_city, find_snippets, list_cities, read_frame, read_label_png
from pipeline.errors import PipelineError


def test_snippets_are_found_by_name_in_both_numberings(small_tree):
    assert list_cities(small_tree, "train") == ["alpha", "beta"]
    beta = find_snippets(small_tree, "train", "beta")
    assert [s.id for s in beta] == ["beta_000000_000294", "beta_000000_000340"]
    assert beta[0].frame_numbers[0] == 275 and beta[0].frame_numbers[-1] == 304
    assert beta[0].frame_numbers[19] == 294
    for snippet in find_snippets(small_tree, "train"):
        assert all(path.is_file() for path in snippet.frame_paths)
        check_city([snippet for snippet in find_snippets(small_tree, "train", snippet.city)])
    frame = read_frame(beta[0].frame_paths[0], size=(16, 32))
    assert frame.shape == (16, 32, 3) and frame.dtype == np.uint8
    assert read_label_png(beta[0].gtfine_path("instanceIds")).max() == 26000


def test_missing_root_is_named(tmp_path):
    with pytest.raises(PipelineError, match="Cityscapes root not found") as err:
        find_snippets(tmp_path / "nowhere", "train")
    assert "nowhere" in str(err.value)


def test_missing_frame_is_named(small_tree):
    snippets = find_snippets(small_tree, "train", "beta")
    missing = snippets[1].frame_paths[7]
    missing.unlink()
    with pytest.raises(PipelineError, match="frame missing") as err:
        check_city(snippets)
    assert missing.name in str(err.value)


def test_extra_frame_is_named(small_tree):
    snippets = find_snippets(small_tree, "train", "alpha")
    extra = snippets[0].frame_paths[0].with_name("alpha_000000_000030_leftImg8bit.png")
    shutil.copy(snippets[0].frame_paths[0], extra)
    with pytest.raises(PipelineError, match="extra frame") as err:
        check_city(snippets)
    assert extra.name in str(err.value)


def test_unreadable_image_is_named(small_tree):
    path = find_snippets(small_tree, "train", "alpha")[0].frame_paths[3]
    path.write_bytes(path.read_bytes()[:40])     # truncated PNG
    with pytest.raises(PipelineError, match="unreadable image") as err:
        read_frame(path)
    assert path.name in str(err.value)


def test_wrongly_sized_image_is_named(small_tree):
    path = find_snippets(small_tree, "train", "alpha")[0].frame_paths[3]
    cv2.imwrite(str(path), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(PipelineError, match="is 8x8, expected 16x32"):
        read_frame(path, size=(16, 32))


def test_bad_file_name_is_named(small_tree):
    bad = small_tree / "gtFine" / "train" / "alpha" / "alpha-1_gtFine_labelIds.png"
    bad.touch()
    with pytest.raises(PipelineError, match="not a Cityscapes file name"):
        find_snippets(small_tree, "train", "alpha")


def test_label_table_comes_from_cityscapesscripts():
    from cityscapesscripts.helpers.labels import name2label

    assert labels.TRAIN_LABEL_IDS[13] == name2label["car"].id == 26
    assert [name2label[n].id for n in ("person", "bicycle")] == [labels.THING_LABEL_IDS[0], labels.THING_LABEL_IDS[-1]]
    lut = labels.channel_lut("train19_other")
    assert lut[26] == 13 and lut[4] == 19 and lut[0] == 19     # 'static' and 'unlabeled' -> other
    assert labels.channel_lut("train19")[4] == -1
    assert labels.num_channels("train19_other") == 20
    assert labels.train_id_to_label_id()[labels.label_id_to_train_id()[26]] == 26
    assert tuple(labels.colorize(np.array([[26]]))[0, 0]) == name2label["car"].color
    with pytest.raises(ValueError, match="unknown label set"):
        labels.channel_lut("all35")
