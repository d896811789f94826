"""Pseudo-label quality on the synthetic city, as the demo makes it: issue 4's floor of 0.7 mIoU.

The demo's own settings (config.yaml + config/demo.yaml): the same seeded city, fit_segmenter on
the train split's annotated frames, label_semantic on every frame of the held-out snippets (not
fitted), keep_gtfine off so every frame scored is the network's, then mIoU over the classes
present in the truth. ``benchmarks/bench_labels.py`` prints the same figure with its timings.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.config import DEFAULT_CONFIG, load_config
from pipeline.data.subset import load_subset, select_subset, subset_snippets
from pipeline.data.synthetic import generate, settings_from_config
from pipeline.io import write_json
from pipeline.labels import fit_segmenter, semantic
from pipeline.labels.quality import Quality, evaluate_city

REPO = Path(__file__).resolve().parents[1]
MIOU_FLOOR = 0.7


@pytest.mark.slow
def test_demo_segmenter_labels_held_out_frames_above_the_floor(tmp_path: Path):
    config = load_config([DEFAULT_CONFIG, REPO / "config" / "demo.yaml"])
    city = settings_from_config(config)
    generate(tmp_path / "city", city["cities"], seed=city["seed"], height=city["height"], width=city["width"],
             frames=city["frames"], annotated=city["annotated"])
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
