"""select_subset on a fake tree the size of Cityscapes, and its command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pipeline.data.fake_tree import TRAIN_COUNTS, make_fake_tree
from pipeline.data.subset import choose_cities, load_subset, select_subset, subset_snippets
from pipeline.config import DEFAULT_CONFIG, load_config
from pipeline.errors import PipelineError


@pytest.fixture(scope="module")
def full_tree(tmp_path_factory):
    return make_fake_tree(tmp_path_factory.mktemp("cityscapes_full"))


def test_configured_cities_give_the_thesis_808(full_tree):
    settings = load_config([DEFAULT_CONFIG])["subset"]
    subset = select_subset(full_tree, settings)
    assert subset["counts"] == {"train": 808, "test": 128, "gtfine_train": 2975}
    assert sorted(subset["splits"]["train"]) == ["aachen", "bremen", "hanover", "zurich"]
    assert sorted(subset["gtfine_train"]) == sorted(TRAIN_COUNTS)   # the fits' frames: every train city
    assert len(set(subset["test"])) == 128
    assert sum(len(ids) for ids in subset["splits"]["val"].values()) == 128
    assert sum(TRAIN_COUNTS.values()) == 2975


def test_test_sequences_follow_the_seed(full_tree):
    base = {"train_cities": ["ulm"], "test_sequences": 128, "seed": 0}
    first = select_subset(full_tree, base)["test"]
    assert select_subset(full_tree, base)["test"] == first
    assert select_subset(full_tree, dict(base, seed=1))["test"] != first


def test_greedy_selection_stays_under_the_target():
    chosen = choose_cities(TRAIN_COUNTS, None, 808)
    total = sum(TRAIN_COUNTS[c] for c in chosen)
    assert total <= 808 and all(total + TRAIN_COUNTS[c] > 808 for c in set(TRAIN_COUNTS) - set(chosen))
    assert choose_cities(TRAIN_COUNTS, None, None) == sorted(TRAIN_COUNTS)


def test_unknown_city_and_too_many_test_sequences_are_named(full_tree):
    with pytest.raises(PipelineError, match=r"not in the train split: \['atlantis'\]"):
        select_subset(full_tree, {"train_cities": ["atlantis"]})
    with pytest.raises(PipelineError, match="test_sequences is 9999 but split 'val' has only 500"):
        select_subset(full_tree, {"train_cities": ["ulm"], "test_sequences": 9999})


def test_command_writes_subset_with_provenance(small_tree, tmp_path):
    output = tmp_path / "data" / "subset.json"
    settings = json.dumps({"train_cities": None, "test_sequences": 2, "seed": 0, "test_split": "val"})
    subprocess.run([sys.executable, "-m", "pipeline.data.subset", "--root", str(small_tree),
                    "--output", str(output), "--settings", settings], check=True)
    subset = load_subset(output)
    assert subset["provenance"]["stage"] == "select_subset"
    assert subset["provenance"]["settings"]["seed"] == 0
    beta = subset_snippets(subset, "train", "beta")
    assert [s.annotated_frame for s in beta] == [294, 340]
    assert not list(output.parent.glob(".*"))      # no temporary left behind
    with pytest.raises(PipelineError, match=rf"^{output}: the subset has no city 'atlantis' in split 'train'; "
                                            r"its 'train' cities are \['alpha', 'beta'\]"):
        subset_snippets(subset, "train", "atlantis")


def test_command_reports_bad_input_on_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pipeline.data.subset", "--root", str(tmp_path / "x"),
                             "--output", str(tmp_path / "s.json"), "--settings", "{}"],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'x'}: Cityscapes root not found "
                                                  "(set data.cityscapes_root in config.yaml)"]
    assert not (tmp_path / "s.json").exists()
