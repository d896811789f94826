"""Pseudo-label quality on the synthetic city, as the demo makes it: issue 4's floor of 0.7 mIoU.

The demo's own settings (config.yaml + config/demo.yaml): the same seeded city, fit_segmenter on
the train split's annotated frames, label_semantic on every frame of the held-out snippets (not
fitted), keep_gtfine off so every frame scored is the network's, then mIoU over the classes
present in the truth. ``benchmarks/bench_labels.py`` prints the same figure with its timings.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import DEFAULT_CONFIG, load_config
from pipeline.data.subset import load_subset, select_subset, subset_snippets
from pipeline.data.synthetic import generate, settings_from_config
from pipeline.io import write_json
from pipeline.io import read_json
from pipeline.labels import fit_segmenter, semantic
from pipeline.labels.frames import city_frames, label_city
from pipeline.labels.quality import Quality, confusion, evaluate_city, mean_iou, read_truth
from pipeline.report.label_quality import evaluate_labels

REPO = Path(__file__).resolve().parents[1]
MIOU_FLOOR = 0.7


@pytest.mark.slow
def test_demo_segmenter_labels_held_out_frames_above_the_floor(tmp_path: Path):
    config = load_config([DEFAULT_CONFIG, REPO / "config" / "demo.yaml"])
    city = settings_from_config(config)
    generate(tmp_path / "city", city["cities"], seed=city["seed"], height=city["height"], width=city["width"],
             frames=city["frames"], annotated=city["annotated"], workers=2)
    subset_file = tmp_path / "subset.json"
    write_json(subset_file, select_subset(tmp_path / "city", config["subset"], city["frames"], city["annotated"]))
    settings = json.dumps(dict(config["labels"], keep_gtfine=False))
    checkpoint = tmp_path / "segmenter.pt"
    fit_segmenter.main(["--subset", str(subset_file), "--output", str(checkpoint), "--settings", settings])

    subset = load_subset(subset_file)
    held_out = [split for split in subset["splits"] if split != "train"]
    score = Quality()
    for split in held_out:
        for name in subset["splits"][split]:
            out = tmp_path / "semantic" / split / name
            semantic.main(["--subset", str(subset_file), "--split", split, "--city", name, "--checkpoint",
                           str(checkpoint), "--output", str(out), "--settings", settings])
            evaluate_city(subset_snippets(subset, split, name), out, None, score)
    print(f"held-out synthetic snippets, {score.frames} frames: mIoU {score.miou:.3f}")
    assert score.frames == len(subset["test"]) * city["frames"]   # every frame of every test snippet
    assert score.miou >= MIOU_FLOOR


def test_kept_gtfine_frames_are_not_scored(tmp_path: Path):
    """Annotated train frames that keep_gtfine filled with the truth score perfectly and say nothing
    of the labeller: they are left out (counted as skipped), read from the label directories'
    provenance.json, its list of kept frames or, in an older record, the count alone."""
    frames, annotated = 8, 5
    generate(tmp_path / "city", {"train": {"synthberg": 2}, "val": {"testfurt": 1}}, seed=0, height=32,
             width=64, frames=frames, annotated=annotated)
    subset_file = tmp_path / "subset.json"
    write_json(subset_file, select_subset(tmp_path / "city", {"train_cities": None, "test_split": "val",
                                                                "test_sequences": 1}, frames, annotated))
    subset = load_subset(subset_file)
    snippets = subset_snippets(subset, "train", "synthberg")
    truths = {snippet.id: read_truth(snippet.root, snippet) for snippet in snippets}

    def road_as_sidewalk(images, refs):          # every pseudo-label wrong somewhere
        labels = np.stack([truths[ref.snippet.id][0][ref.index] for ref in refs]).astype(np.uint8)
        return np.where(labels == 7, 8, labels).astype(np.uint8)

    def no_instances(images, refs):
        return np.zeros(images.shape[:3], np.uint16)

    sem, inst = tmp_path / "semantic" / "train" / "synthberg", tmp_path / "instance" / "train" / "synthberg"
    for folder, kind, batch in ((sem, "labelIds", road_as_sidewalk), (inst, "instanceIds", no_instances)):
        label_city(city_frames(snippets), batch, folder, kind, 4, True, "train", {}, "test")
    assert read_json(sem / "provenance.json")["kept_gtfine"] == 2

    pseudo = Quality()
    for ref in city_frames(snippets):
        if not ref.annotated:
            true_labels = truths[ref.snippet.id][0][ref.index]
            pseudo.counts += confusion(true_labels, road_as_sidewalk(None, [ref])[0])
    expected_miou = mean_iou(pseudo.counts)[0]
    assert expected_miou < 1.0

    score = evaluate_city(snippets, sem, inst)
    assert score.frames == 2 * (frames - 1) and score.skipped == 2
    assert score.miou == pytest.approx(expected_miou)
    assert score.instances > 0 and score.match_share == 0.0     # the kept frames' perfect matches are out

    for folder in (sem, inst):                   # an older record: the count, not the names
        record = read_json(folder / "provenance.json")
        del record["kept_gtfine_frames"]
        write_json(folder / "provenance.json", record)
    older = evaluate_city(snippets, sem, inst)
    assert (older.frames, older.skipped, older.miou) == (score.frames, score.skipped, score.miou)

    report = evaluate_labels(subset_file, [sem], [inst])
    assert report["frames"] == 2 * (frames - 1) and report["frames_skipped"] == 2
    assert report["cities"]["train/synthberg"]["frames_skipped"] == 2
    assert report["miou"] == pytest.approx(expected_miou)
