"""What the Snakefile makes of the config before any job runs, and how its jobs start: config errors
name the file (or --config) that set the key, --config sets numbers and booleans, the study without
its site files (backbones, instance checkpoint, I3D) stops only the dry runs that need them,
train.retries sets the train rule's retries, and jobs import this checkout's pipeline."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import BIN, REPO, run_snakemake

DEMO = REPO / "config" / "demo.yaml"


def test_config_errors_name_the_configfile_or_config_that_set_the_key(tmp_path):
    (tmp_path / "mine.yaml").write_text("train:\n  compile: maybe\n")
    result = run_snakemake("-n", "-d", str(tmp_path), "--configfile", "mine.yaml", "--config", "fvd={frames: 1}",
                           cwd=tmp_path, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"config key train.compile ({tmp_path / 'mine.yaml'}): 'maybe' is not one of" in output, output
    # A nested --config value reaches the schema as a number (Snakemake hands it over as '1').
    assert "config key fvd.frames (--config): 1 is less than the minimum of 2" in output, output


def test_config_sets_numbers_and_booleans_as_a_config_file_does(tmp_path):
    """Snakemake reads a nested --config value as YAML of strings: its numbers and booleans are
    read again, so they validate and the rules see them (allow_random lets the study's train job
    plan without backbone files)."""
    other_files = {"labels": {"instance": {"checkpoint": str(tmp_path / "model_final_af9cf5.pkl")}},
                   "fvd": {"i3d": str(tmp_path / "i3d")}}
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(other_files))
    (tmp_path / "model_final_af9cf5.pkl").touch()
    (tmp_path / "i3d").mkdir()
    plan = run_snakemake("-n", "-d", str(tmp_path), "--configfile", "mine.yaml", "--config", "train={retries: 7}",
                         'fvd={"bootstrap": 500}', "weights={allow_random: true}", "--",
                         "results/train/v02/model.pt", cwd=tmp_path)
    assert "rule train:" in plan.stdout, plan.stdout


def test_the_shipped_config_plans_what_needs_no_site_files(tmp_path):
    """config.yaml as shipped (labels.instance.checkpoint and fvd.i3d null): the subset plans; only a
    plan that labels instances or embeds videos stops, naming the key, config.yaml and what to set."""
    run_snakemake("-n", "-d", str(tmp_path), "--", "results/data/subset.json", cwd=tmp_path)
    for target, named in (("results/labels/instance/train/aachen",
                           f"labels.instance.checkpoint = null ({REPO / 'config.yaml'}) names no file, but "
                           f"labels.instance.backend = detectron2 ({REPO / 'config.yaml'}) labels instances with a "
                           "trained model: set labels.instance.checkpoint to detectron2's model_final_af9cf5.pkl"),
                          ("results/fvd/embeddings/real.npz",
                           f"fvd.i3d = null ({REPO / 'config.yaml'}) names no I3D and fvd.local_i3d_width = null "
                           f"({REPO / 'config.yaml'}): set fvd.i3d to the local directory of the TF-Hub module")):
        result = run_snakemake("-n", "-d", str(tmp_path), "--", target, cwd=tmp_path, check=False)
        output = result.stdout + result.stderr
        assert result.returncode != 0
        assert named in output, output


def test_the_study_without_its_backbone_files_stops_the_dry_run(tmp_path):
    """config.yaml ships with weights.vgg19 and weights.mobilenet_v2 null: planning a train job is
    refused while planning, naming the key, its files and the variants, not in 13 queued GPU jobs;
    a target without training (the subset) still plans."""
    other_files = {"labels": {"instance": {"checkpoint": str(tmp_path / "model_final_af9cf5.pkl")}},
                   "fvd": {"i3d": str(tmp_path / "i3d")}, "weights": {"allow_random": False}}
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(other_files))
    (tmp_path / "model_final_af9cf5.pkl").touch()
    (tmp_path / "i3d").mkdir()
    result = run_snakemake("-n", "-d", str(tmp_path), "--configfile", "mine.yaml", "--",
                           "results/train/v02/model.pt", cwd=tmp_path, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert (f"weights.vgg19 = null ({REPO / 'config.yaml'}) names no file, but variants v01, v02 use the vgg19 "
            f"perceptual backbone and weights.allow_random = false ({tmp_path / 'mine.yaml'})") in output, output
    run_snakemake("-n", "-d", str(tmp_path), "--configfile", "mine.yaml", "--", "results/data/subset.json",
                  cwd=tmp_path)
    # With the files named, the whole study plans (a missing file then stops it as a missing
    # input: tests/test_graph.py).
    weights = {"weights": {"vgg19": str(tmp_path / "vgg19.pth"), "mobilenet_v2": str(tmp_path / "mobilenet_v2.pth")}}
    (tmp_path / "weights.yaml").write_text(yaml.safe_dump(weights))
    for name in ("vgg19.pth", "mobilenet_v2.pth"):
        (tmp_path / name).touch()
    run_snakemake("-n", "-d", str(tmp_path), "--configfile", "mine.yaml", "weights.yaml", cwd=tmp_path)


def test_a_bare_off_runs_through_snakemakes_own_validation(tmp_path):
    (tmp_path / "off.yaml").write_text("train:\n  compile: off\n  amp: on\n")
    run_snakemake("-n", "-d", str(tmp_path), "--configfile", str(DEMO), "off.yaml", "--", "results/data/subset.json",
                  cwd=tmp_path)


def test_a_variant_the_config_lacks_is_named_not_no_rule_to_produce(tmp_path):
    """A target of a variant config.yaml lacks stops the dry run naming the variant, the file that
    set the variants and the names it has; the real videos' targets still plan."""
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({"variants": {"v15": {
        "index": 15, "network": "crn", "output_images": 1, "norm": "weight", "perceptual": "mobilenet_v2",
        "edge": False, "feature_encoder": False, "residual": False, "discriminator": 0, "prior": None,
        "twin": False, "flow": False}}}))
    for target in ("results/train/v99/model.pt", "results/fvd/scores/v99.json"):   # train's check, synthesize's
        result = run_snakemake("-n", "-d", str(tmp_path), "--configfile", str(DEMO), "mine.yaml", "--", target,
                               cwd=tmp_path, check=False)
        output = result.stdout + result.stderr
        assert result.returncode != 0
        assert "No rule to produce" not in output, output
        assert (f"variant 'v99' is not one of the config's variants ({REPO / 'config.yaml'}, "
                f"{tmp_path / 'mine.yaml'}): v01, v02,") in output, output
        assert "v14, v15; add an entry under variants:" in output, output
    plan = run_snakemake("-n", "-d", str(tmp_path), "--configfile", str(DEMO), "mine.yaml", "--",
                         "results/train/v15/model.pt", "results/fvd/embeddings/real.npz", cwd=tmp_path)
    assert "rule train:" in plan.stdout and "rule embed_real:" in plan.stdout, plan.stdout


def fail_train_job(work: Path, pythonpath: str | None, retries: tuple[str, ...] = ("retries.yaml",)) -> list[str]:
    """Run the train job of v01 (demo config, then ``retries``: retries.yaml's train.retries 1, or a
    --config) with a `python` that fails at once and records the PYTHONPATH and TQDM_MININTERVAL
    it saw: one line an attempt."""
    fake = work / "fake_bin"
    fake.mkdir()
    attempts = work / "attempts.txt"
    python = fake / "python"
    python.write_text(f'#!/bin/sh\nprintf "%s %s\\n" "${{PYTHONPATH-<unset>}}" "${{TQDM_MININTERVAL-<unset>}}" '
                      f'>> {attempts}\nexit 1\n')
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    (work / "retries.yaml").write_text(yaml.safe_dump({"train": {"retries": 1}}))
    (work / "results" / "data").mkdir(parents=True)
    (work / "results" / "data" / "gtfine_train.h5").touch()      # the image variant's data
    env = dict(os.environ, PATH=f"{fake}{os.pathsep}{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("PYTHONPATH", None)
    env.pop("TQDM_MININTERVAL", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    command = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(work), "--cores", "1",
               "--configfile", str(DEMO), *retries, "--allowed-rules", "train", "--",
               "results/train/v01/model.pt"]
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0, done.stdout + done.stderr
    assert attempts.is_file(), done.stdout + done.stderr
    return attempts.read_text().splitlines()


@pytest.mark.parametrize("pythonpath, seen", [("/elsewhere/checkout", f"{REPO}:/elsewhere/checkout"),
                                              (None, str(REPO))])
def test_train_jobs_retry_train_retries_times_importing_this_checkout(tmp_path, pythonpath, seen):
    """train.retries 1: the failing job runs twice. Every job has the workflow's repository first
    on PYTHONPATH (so `python -m pipeline...` imports this checkout, not the venv's editable
    install of another), an existing PYTHONPATH kept after it. Its progress bars redraw every 30 s
    (its stderr is its log, which retries append to)."""
    assert fail_train_job(tmp_path, pythonpath) == [f"{seen} 30", f"{seen} 30"]


def test_train_retries_from_config_is_the_rules_number(tmp_path):
    """--config 'train={retries: 2}': the rule sees the number (Snakemake handed it over as '2')."""
    assert len(fail_train_job(tmp_path, None, ("--config", "train={retries: 2}"))) == 3


def test_raising_train_retries_retrains_nothing(tmp_path):
    """train.retries is Snakemake's alone: the train job's command (its --settings, which Snakemake
    compares for a rerun) is the same whatever it is."""
    def planned(retries: int) -> str:
        (tmp_path / "retries.yaml").write_text(yaml.safe_dump({"train": {"retries": retries}}))
        out = run_snakemake("-n", "-p", "-d", str(tmp_path), "--configfile", str(DEMO), "retries.yaml", "--",
                            "results/train/v08/model.pt", cwd=tmp_path).stdout
        commands = [line for line in out.splitlines() if "python -m pipeline.train " in line]
        assert len(commands) == 1, out
        return commands[0]

    assert '"train": {' in planned(3) and planned(3) == planned(9)
