"""select_subset on a fake tree the size of Cityscapes, and its command."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from pipeline.data.fake_tree import TRAIN_COUNTS, make_fake_tree
from pipeline.data.subset import (GTFINE_TRAIN, HELDOUT_SPLIT, choose_cities, gtfine_train_snippets, load_subset,
                                  main as subset_main, select_subset, subset_part, subset_snippets, write_parts)
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
    with pytest.raises(PipelineError, match=r"must name train cities, each once \(unknown: \['atlantis'\]\)"):
        select_subset(full_tree, {"train_cities": ["atlantis"]})
    with pytest.raises(PipelineError, match="test_sequences is 9999 but split 'val' has only 500"):
        select_subset(full_tree, {"train_cities": ["ulm"], "test_sequences": 9999})


def test_an_empty_or_repeated_city_list_and_a_target_no_city_fits_are_refused():
    with pytest.raises(PipelineError, match=r"subset.train_cities \[\] must name train cities, each once \(none\)"):
        choose_cities(TRAIN_COUNTS, [], None)
    with pytest.raises(PipelineError, match=r"each once \(twice: \['aachen'\]\)"):
        choose_cities(TRAIN_COUNTS, ["aachen", "aachen", "bremen"], None)
    with pytest.raises(PipelineError, match="target_sequences 10 is below the smallest train city's 85 snippets"):
        choose_cities(TRAIN_COUNTS, None, 10)


def test_the_train_part_records_the_cities_taken_not_how_they_were_asked_for(full_tree):
    """Three ways to ask for aachen, bremen, hanover and zurich give one train.json: another
    spelling of the same choice must not rerun the labels, flow, pack and 14 trainings."""
    asked = [{"train_cities": ["zurich", "aachen", "hanover", "bremen"]},
             {"train_cities": ["aachen", "bremen", "hanover", "zurich"], "target_sequences": 500}]
    parts = {json.dumps(subset_part(select_subset(full_tree, dict(ask, test_sequences=4)), "train",
                                    dict(ask, test_sequences=4)), sort_keys=True) for ask in asked}
    assert len(parts) == 1
    assert json.loads(parts.pop())["provenance"]["settings"] == {"train_cities": ["aachen", "bremen", "hanover", "zurich"]}


def test_a_left_out_train_city_must_be_unpacked_too(small_tree, tmp_path):
    """The labellers' fits read every train city's annotated frame (gtfine_train): a city missing
    from leftImg8bit_sequence stops select_subset, not a GPU job later."""
    tree = tmp_path / "tree"
    shutil.copytree(small_tree, tree)
    select_subset(tree, {"train_cities": ["beta"], "test_sequences": 1})
    shutil.rmtree(tree / "leftImg8bit_sequence" / "train" / "alpha")
    with pytest.raises(PipelineError, match=r"leftImg8bit_sequence/train/alpha/alpha_\d{6}_\d{6}_leftImg8bit.png: "
                                            "annotated frame missing"):
        select_subset(tree, {"train_cities": ["beta"], "test_sequences": 1})


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


def test_settings_that_are_not_json_are_reported_on_one_line(small_tree, tmp_path):
    """A malformed --settings (a hand-typed or badly quoted one) is a one-line error, not a traceback."""
    output = tmp_path / "out" / "subset.json"
    result = subprocess.run([sys.executable, "-m", "pipeline.data.subset", "--root", str(small_tree),
                             "--output", str(output), "--parts", str(tmp_path / "out" / "train.json"),
                             "--settings", "{"], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: --settings is not valid JSON")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_each_part_holds_what_its_consumers_read(full_tree):
    """A split's part: its cities' snippets (and its folder, for the held-out split), the settings
    that select it, no root; gtfine_train's: every train city's snippets, no split."""
    settings = {"train_cities": ["ulm"], "test_sequences": 4, "seed": 0, "test_split": "val", "heldout_sequences": 2}
    subset = select_subset(full_tree, settings)
    train, gtfine = subset_part(subset, "train", settings), subset_part(subset, GTFINE_TRAIN, settings)
    heldout = subset_part(subset, HELDOUT_SPLIT, settings)
    assert train["splits"] == {"train": subset["splits"]["train"]} and "root" not in train
    assert train["provenance"] == {"stage": "select_subset", "part": "train",
                                   "settings": {"train_cities": ["ulm"]}}
    assert subset_part(subset, "val", settings)["splits"] == {"val": subset["splits"]["val"]}
    assert heldout["split_dirs"] == {HELDOUT_SPLIT: "val"}
    assert heldout["provenance"]["settings"]["heldout_sequences"] == 2
    assert gtfine[GTFINE_TRAIN] == subset[GTFINE_TRAIN] and "splits" not in gtfine
    assert set(gtfine) == {"frames", "annotated_index", GTFINE_TRAIN, "provenance"}
    with pytest.raises(PipelineError, match=r"the subset has no part 'test'; its parts are \['train', 'val', 'heldout', "):
        subset_part(subset, "test", settings)


def test_another_test_draw_rewrites_the_train_side_parts_byte_for_byte(small_tree, tmp_path):
    """What lets Snakemake rerun only the test side: its checksum of a rewritten part is the one
    it recorded. The full record changes (its test list, its time, its root's spelling)."""
    def run(test_sequences, root, output):
        settings = {"train_cities": None, "test_sequences": test_sequences, "seed": 0, "test_split": "val"}
        parts = [str(output / "parts" / name) for name in ("train.json", "val.json", "gtfine_train.json")]
        subset_main(["--root", root, "--output", str(output / "subset.json"), "--parts", *parts,
                     "--settings", json.dumps(settings)])
        return {path.name: path.read_bytes() for path in (output / "parts").iterdir()}

    before, after = run(2, str(small_tree), tmp_path / "before"), run(1, f"{small_tree}/", tmp_path / "after")
    assert sorted(before) == ["gtfine_train.json", "train.json", "val.json"]
    assert before["train.json"] == after["train.json"] and before["gtfine_train.json"] == after["gtfine_train.json"]
    assert before["val.json"] != after["val.json"]
    assert not list((tmp_path / "after" / "parts").glob(".*"))      # no temporary left behind


def test_a_part_reads_its_frames_from_the_root_given(small_tree, tmp_path):
    subset = select_subset(small_tree, {"train_cities": None, "test_sequences": 1, "test_split": "val"})
    write_parts(subset, {}, [tmp_path / "train.json", tmp_path / "gtfine_train.json"])
    with pytest.raises(PipelineError, match="train.json: a part of the subset records no dataset root: pass --frames-root"):
        load_subset(tmp_path / "train.json")
    moved = tmp_path / "moved"
    assert {s.root for s in subset_snippets(load_subset(tmp_path / "train.json", moved), "train", "beta")} == {moved}
    gtfine = tmp_path / "gtfine_train.json"
    assert {s.root for s in gtfine_train_snippets(load_subset(gtfine, moved), gtfine)} == {moved}
    # Another split's part given for gtfine_train: named as the wrong file, not as an old one.
    train = tmp_path / "train.json"
    with pytest.raises(PipelineError, match=r"train.json: the subset's 'train' part lists no gtfine_train snippets: "
                                            r"pass results/data/subset/gtfine_train.json"):
        gtfine_train_snippets(load_subset(train, moved), train)
