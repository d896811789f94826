"""Rerunning single stages: a change reruns its stage and what follows, and nothing before it.

The early graph runs for real on a tiny synthetic city in a scratch workdir; then dry runs
with one setting changed list exactly the stages that read it and their descendants.
"""

from __future__ import annotations

import shutil

import pytest
import yaml

from conftest import REPO, run_snakemake
from test_graph import job_counts
import pipeline.provenance as provenance

TINY = {
    "data": {"frame_height": 32, "frame_width": 64, "frames_per_snippet": 8, "annotated_frame": 5,
             "synthetic": {"cities": {"train": {"synthberg": 2}, "val": {"testfurt": 2}}}},
    "subset": {"test_sequences": 2},
    "labels": {"semantic": {"encoder": "resnet18", "input_height": 32, "input_width": 64,
                            "fit": {"epochs": 1, "batch_size": 2, "crop_height": 32, "crop_width": 32}},
               "instance": {"min_size": 32, "max_size": 64, "fit": {"epochs": 1}}},
    "flow": {"height": 32, "width": 64},
    "pack": {"resolutions": [[16, 32], [32, 64]]},
}
TARGETS = ("results/data/train.h5", "results/data/val.h5")


def dry_run(work, *overrides) -> dict[str, int]:
    files = ["demo.yaml", "tiny.yaml"]
    for index, override in enumerate(overrides):
        (work / f"change{index}.yaml").write_text(yaml.safe_dump(override))
        files.append(f"change{index}.yaml")
    result = run_snakemake(*TARGETS, "-n", "-d", str(work), "--configfile", *files, cwd=work)
    if "Job stats:" not in result.stdout:
        return {}
    return job_counts(result.stdout)


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    work = tmp_path_factory.mktemp("rerun")
    shutil.copy(REPO / "config" / "demo.yaml", work / "demo.yaml")
    (work / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    run_snakemake(*TARGETS, "--cores", "2", "-d", str(work), "--configfile", "demo.yaml", "tiny.yaml", cwd=work)
    return work


@pytest.mark.slow
def test_nothing_reruns_without_a_change(ran):
    assert dry_run(ran) == {}


@pytest.mark.slow
@pytest.mark.parametrize(
    "change, reruns",
    [
        ({"labels": {"instance": {"score_threshold": 0.3}}}, {"label_instance", "pack"}),
        ({"labels": {"semantic": {"batch_size": 3}}}, {"label_semantic", "label_instance", "pack"}),
        ({"flow": {"dtype": "float32"}}, {"reference_flow", "pack"}),
        ({"pack": {"compression": "lz4"}}, {"pack"}),
        # The per-city stages after the select_subset checkpoint are planned once it has rerun:
        # a dry run shows the checkpoint and the rule that reads it directly.
        ({"subset": {"seed": 3}}, {"select_subset", "pack"}),
        ({"labels": {"instance": {"fit": {"epochs": 2}}}}, {"fit_instances", "label_instance", "pack"}),
        # fvd.draw_choice while auto is off: the subset (and so everything) stays as it was.
        ({"fvd": {"draw_choice": {"candidates": 7, "heldout_videos": 3}}}, set()),
    ],
    ids=["instance", "semantic", "flow", "pack", "subset", "instance-fit", "draw-choice-off"],
)
def test_a_change_reruns_its_stage_and_what_follows(ran, change, reruns):
    assert set(dry_run(ran, change)) == reruns


def test_code_version_follows_the_stage_code(tmp_path, monkeypatch):
    copy = tmp_path / "pipeline"
    shutil.copytree(REPO / "pipeline", copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(provenance, "PACKAGE_ROOT", copy)
    flow, labels = provenance.code_version("flow"), provenance.code_version("labels")
    with (copy / "flow" / "warp.py").open("a") as handle:
        handle.write("\n# a change\n")
    assert provenance.code_version("flow") != flow
    assert provenance.code_version("labels") == labels
