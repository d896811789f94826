"""The graph itself: lint-clean, a DAG on a tree the size of Cityscapes, and the rerun rule."""

from __future__ import annotations

import re

import pytest
import yaml

from conftest import run_snakemake
from pipeline.data.fake_tree import make_fake_tree


@pytest.mark.parametrize("configs", [[], ["--configfile", "config/demo.yaml"]], ids=["study", "demo"])
def test_lint_is_clean(repo, tmp_path, configs):
    configs = [str(repo / c) if c.endswith(".yaml") else c for c in configs]
    result = run_snakemake("--lint", *configs, "-d", str(tmp_path))
    assert "Congratulations, your workflow is in a good condition" in result.stdout + result.stderr


def test_the_demo_in_the_study_folder_is_warned(repo, tmp_path):
    """The demo keeps its results/ apart from the study's (demo/): run from the repository root
    without --directory, it says so; in a folder of its own, nothing."""
    demo = str(repo / "config" / "demo.yaml")
    assert "--directory demo" in run_snakemake("--list-rules", "--configfile", demo).stderr
    assert "warning" not in run_snakemake("--list-rules", "--configfile", demo, "-d", str(tmp_path)).stderr


def job_counts(dry_run_output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run as {rule: count}."""
    table = dry_run_output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m[1] != "total"}


@pytest.fixture(scope="module")
def full_size_workdir(tmp_path_factory):
    """A workdir whose config points at a fake full-size tree, with the subset selected."""
    work = tmp_path_factory.mktemp("full_graph")
    root = make_fake_tree(work / "cityscapes")
    weights = work / "weights"
    weights.mkdir()
    for name in ("deeplab.pt", "model_final_af9cf5.pkl", "flownet2.ckpt", "vgg19-dcbb9e9d.pth",
                 "mobilenet_v2-b0353104.pth"):
        (weights / name).touch()
    (weights / "i3d").mkdir()
    override = {
        "data": {"cityscapes_root": str(root)},
        "labels": {"semantic": {"checkpoint": str(weights / "deeplab.pt")},
                   "instance": {"checkpoint": str(weights / "model_final_af9cf5.pkl")}},
        "flow": {"checkpoint": str(weights / "flownet2.ckpt")},
        # Snakemake refuses a study whose backbones have no file (train jobs would fail queued).
        "weights": {"vgg19": str(weights / "vgg19-dcbb9e9d.pth"),
                    "mobilenet_v2": str(weights / "mobilenet_v2-b0353104.pth")},
        "fvd": {"i3d": str(weights / "i3d")},
    }
    (work / "override.yaml").write_text(yaml.safe_dump(override))
    run_snakemake("select_subset", "--cores", "1", "-d", str(work), "--configfile", "override.yaml",
                  cwd=work)
    return work


def test_full_size_dag_fans_out_per_city(full_size_workdir):
    result = run_snakemake("-n", "-d", str(full_size_workdir), "--configfile", "override.yaml",
                           cwd=full_size_workdir)
    counts = job_counts(result.stdout)
    # 4 train cities and the 3 val cities that hold the 128 test snippets.
    assert counts["label_semantic"] == counts["label_instance"] == counts["reference_flow"] == 7
    assert counts["pack"] == 2
    for rule in ("train", "synthesize", "embed", "fvd"):
        assert counts[rule] == 14, rule
    assert counts["cluster_features"] == 10            # the feature-encoder variants
    assert counts["embed_real"] == counts["fvd_table"] == 1
    assert "fit_segmenter" not in counts and "fit_instances" not in counts    # checkpoints given


def planned_jobs(dry_run_output: str, rule: str) -> list[str]:
    """The blocks a dry run with -p prints for the jobs of ``rule`` (one a job, blank-line apart)."""
    return [block for block in dry_run_output.split("\n\n") if re.search(rf"^rule {rule}:$", block, re.M)]


@pytest.mark.parametrize("backend, gpus", [("flownet2", 1), ("dis", 0)])
def test_reference_flow_asks_for_a_gpu_only_for_flownet2(full_size_workdir, backend, gpus):
    """DIS is OpenCV on the CPU: on a cluster its jobs go to the CPU queue."""
    (full_size_workdir / f"{backend}.yaml").write_text(yaml.safe_dump({"flow": {"backend": backend}}))
    result = run_snakemake("-n", "-p", "-d", str(full_size_workdir), "--configfile", "override.yaml",
                           f"{backend}.yaml", cwd=full_size_workdir)
    jobs = planned_jobs(result.stdout, "reference_flow")
    assert len(jobs) == 7
    for job in jobs:
        gpu = re.search(r"^\s+resources: .*\bgpu=(\d+)", job, re.M)
        assert (int(gpu[1]) if gpu else 0) == gpus, job


def test_pack_decodes_with_the_rule_threads(full_size_workdir):
    result = run_snakemake("-n", "-p", "--cores", "2", "-d", str(full_size_workdir), "--configfile", "override.yaml",
                           cwd=full_size_workdir)
    jobs = planned_jobs(result.stdout, "pack")
    assert len(jobs) == 2
    for job in jobs:
        assert re.search(r"^Shell command: python -m pipeline\.pack .* --threads 2 ", job, re.M), job


def test_weight_files_are_inputs_so_a_missing_one_stops_the_dag(full_size_workdir):
    """A named backbone or flow checkpoint that is not there stops the dry run, naming it, instead
    of failing inside a queued GPU job; a present one is an input of the jobs that load it."""
    weights = full_size_workdir / "weights"
    (weights / "mobilenet_v2.pth").touch()
    missing = weights / "vgg19.pth"
    (full_size_workdir / "backbones.yaml").write_text(yaml.safe_dump(
        {"weights": {"vgg19": str(missing), "mobilenet_v2": str(weights / "mobilenet_v2.pth")}}))
    args = ("-n", "-p", "-d", str(full_size_workdir), "--configfile", "override.yaml", "backbones.yaml")
    result = run_snakemake(*args, cwd=full_size_workdir, check=False)
    assert result.returncode != 0 and str(missing) in result.stdout + result.stderr
    missing.touch()
    planned = run_snakemake(*args, cwd=full_size_workdir).stdout
    inputs = [re.search(r"^\s+input: (.*)$", job, re.M)[1] for job in planned_jobs(planned, "train")]
    assert len(inputs) == 14
    # v01, v02 use VGG-19; v10 no perceptual loss; the other 11 MobileNetV2.
    assert sorted(sum(name in line for line in inputs) for name in ("vgg19.pth", "mobilenet_v2.pth")) == [2, 11]
    assert sum(line == "results/data/gtfine_train.h5" for line in inputs) == 1     # v10: an image variant
    flow_inputs = [re.search(r"^\s+input: (.*)$", job, re.M)[1] for job in planned_jobs(planned, "reference_flow")]
    assert flow_inputs and all("flownet2.ckpt" in line for line in flow_inputs)
