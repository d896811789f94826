"""The three profiles are found by name from the repository root, and none applies by itself.

`snakemake --profile NAME` looks in the working directory first (reference/snakemake-cluster.md
section 1); a `default/` or `profiles/default/` folder would be applied to every run as a
workflow profile and override the cluster profiles' settings.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest
import yaml

from conftest import BIN, REPO


@pytest.mark.parametrize("name", ["lengau", "slurm", "local"])
def test_profile_is_found_by_name_and_parses(name, tmp_path):
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(
        [str(BIN / "snakemake"), "--profile", name, "-n", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
         "results/data/subset.json", "--configfile", str(REPO / "config" / "demo.yaml")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"Using profile {name} for setting default command line arguments" in done.stdout + done.stderr
    assert "select_subset" in done.stdout


def test_a_failed_job_shows_its_error_line_under_the_local_profile(tmp_path):
    """Every rule sends its stage's output to its log: the profiles show a failed job's log, so
    the stage's one-line error reaches the console, not only the log's path."""
    (tmp_path / "bad.yaml").write_text(f"data:\n  cityscapes_root: {tmp_path / 'nowhere'}\n")
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(
        [str(BIN / "snakemake"), "--profile", "local", "--cores", "1", "-s", str(REPO / "Snakefile"),
         "-d", str(tmp_path), "results/data/subset.json", "--configfile", str(tmp_path / "bad.yaml")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert f"error: {tmp_path / 'nowhere'}: Cityscapes root not found" in done.stdout + done.stderr


def test_no_profile_is_applied_without_being_named():
    for folder in ("default", "profiles/default"):
        assert not (REPO / folder).exists(), f"{folder} would be applied to every run, --profile lengau included"


def test_every_resumable_rule_asks_slurm_for_an_early_sigterm():
    """A rule whose job saves and resumes (its command takes --resume) needs Slurm's SIGTERM before
    the time limit's SIGKILL to save; the slurm profile asks for it rule by rule."""
    rules = re.findall(r"^(?:rule|checkpoint) (\w+):\n(.*?)(?=^\S|\Z)",
                       "".join(path.read_text() for path in sorted((REPO / "workflow" / "rules").glob("*.smk"))),
                       re.M | re.S)
    resumable = {name for name, body in rules if "--resume" in body}
    assert {"train", "fit_segmenter", "fit_instances"} <= resumable
    profile = yaml.safe_load((REPO / "slurm" / "config.v8+.yaml").read_text())
    early = {name for name, resources in profile["set-resources"].items()
             if "--signal=TERM@" in resources.get("slurm_extra", "")}
    assert early == resumable
