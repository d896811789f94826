"""Rerunning single stages: a change reruns its stage and what follows, and nothing before it.

The early graph runs for real on a tiny synthetic city in a scratch workdir; then dry runs
with one setting changed list exactly the stages that read it and their descendants. The late
stages (synthesis, FVD) are checked without running anything: a dry run in an empty workdir
prints every job's command, whose ``--settings`` are the params Snakemake compares to decide a
rerun; a job whose command a change leaves alone does not rerun for it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess

import pytest
import yaml

from conftest import BIN, REPO, run_snakemake
from test_graph import job_counts
import pipeline.provenance as provenance
from pipeline.config import load_config

TINY = {
    "data": {"frame_height": 32, "frame_width": 64, "frames_per_snippet": 8, "annotated_frame": 5,
             # labelheim (demo.yaml: 36 snippets the label fits alone read) down to one: a fit of
             # Mask R-CNN on 42 frames was a quarter of this setup.
             "synthetic": {"cities": {"train": {"synthberg": 2, "labelheim": 1}, "val": {"testfurt": 2}}}},
    "subset": {"test_sequences": 2},
    "labels": {"semantic": {"encoder": "resnet18", "input_height": 32, "input_width": 64,
                            "fit": {"epochs": 1, "batch_size": 2, "crop_height": 32, "crop_width": 32}},
               "instance": {"min_size": 32, "max_size": 64, "fit": {"epochs": 1}}},
    "flow": {"height": 32, "width": 64},
    "pack": {"resolutions": [[16, 32], [32, 64]]},
    # Not run here (the targets are the packed splits), but part of the study the config describes:
    # every size read is packed, and the test videos fit the 8-frame snippets and the 2 test ones.
    "train": {"crn": {"stages": [{"height": 16, "width": 32, "epochs": 1, "max_steps": 3},
                                 {"height": 32, "width": 64, "epochs": 1, "max_steps": 2}]},
              "pix2pixhd": {"stages": [{"height": 32, "width": 64, "epochs": 1, "max_steps": 3}]}},
    "fvd": {"height": 16, "width": 32, "frames": 4, "batch_size": 2, "batches": 1},
}
TARGETS = ("results/data/train.h5", "results/data/val.h5")


def config_files(work, *overrides) -> list[str]:
    """demo.yaml, tiny.yaml and a file for each override, to pass with --configfile in ``work``."""
    files = ["demo.yaml", "tiny.yaml"]
    for index, override in enumerate(overrides):
        (work / f"change{index}.yaml").write_text(yaml.safe_dump(override))
        files.append(f"change{index}.yaml")
    return files


def dry_run_stdout(work, *overrides) -> str:
    files = config_files(work, *overrides)
    return run_snakemake(*TARGETS, "-n", "-d", str(work), "--configfile", *files, cwd=work).stdout


def dry_run(work, *overrides) -> dict[str, int]:
    stdout = dry_run_stdout(work, *overrides)
    return job_counts(stdout) if "Job stats:" in stdout else {}


def planned_outputs(work, *overrides) -> dict[str, str]:
    """{first output: rule} of every job a dry run plans."""
    outputs = {}
    for block in re.split(r"^(?=(?:local)?(?:rule|checkpoint) \w+:$)", dry_run_stdout(work, *overrides), flags=re.M):
        rule = re.match(r"(?:local)?(?:rule|checkpoint) (\w+):$", block, re.M)
        output = re.search(r"^\s+output: ([^,\s]+)", block, re.M)
        if rule and output:                 # rule all has no output
            outputs[output[1]] = rule[1]
    return outputs


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
        # Inference batch sizes are how a job runs, not what it writes: resources, not params.
        ({"labels": {"semantic": {"batch_size": 3}}}, set()),
        ({"labels": {"instance": {"batch_size": 3}}}, set()),
        ({"flow": {"batch_size": 2}}, set()),
        ({"flow": {"dtype": "float32"}}, {"reference_flow", "pack"}),
        ({"pack": {"compression": "lz4"}}, {"pack"}),
        # The per-city stages after the select_subset checkpoint are planned once it has rerun:
        # a dry run shows the checkpoint and the rule that reads it directly.
        ({"subset": {"seed": 3}}, {"select_subset", "pack"}),
        ({"labels": {"instance": {"fit": {"epochs": 2}}}}, {"fit_instances", "label_instance", "pack"}),
        # New semantic labels reach the instance labeller (its --semantic input) and the pack.
        ({"labels": {"semantic": {"fit": {"epochs": 2}}}},
         {"fit_segmenter", "label_semantic", "label_instance", "pack"}),
        # fvd.draw_choice while auto is off: the subset (and so everything) stays as it was.
        ({"fvd": {"draw_choice": {"candidates": 7, "heldout_videos": 3}}}, set()),
        # The labellers write Cityscapes label ids whatever the label set: only pack maps them.
        ({"labels": {"label_set": "train19"}}, {"pack"}),
        # select_subset tracks the root normalised; the other rules take it as a resource.
        ({"data": {"synthetic_root": "results/synthetic_city/"}}, set()),
    ],
    ids=["instance", "semantic-batch", "instance-batch", "flow-batch", "flow", "pack", "subset", "instance-fit",
         "semantic-fit", "draw-choice-off", "label-set", "root-spelling"],
)
def test_a_change_reruns_its_stage_and_what_follows(ran, change, reruns):
    assert set(dry_run(ran, change)) == reruns


@pytest.mark.slow
def test_label_and_flow_jobs_record_the_batch_size_their_resource_gave(ran):
    """The batch sizes reach the jobs as --batch-size (a resource), not in --settings, and each
    output's provenance records the one it ran with."""
    import h5py

    config = load_config([REPO / "config.yaml", ran / "demo.yaml", ran / "tiny.yaml"])
    for kind in ("semantic", "instance"):
        folder = next((ran / "results/labels" / kind / "train").iterdir())
        record = json.loads((folder / "provenance.json").read_text())
        assert record["batch_size"] == config["labels"][kind]["batch_size"], folder
        assert "batch_size" not in record["settings"][kind]
    flow = next((ran / "results/flow/train").glob("*.h5"))
    with h5py.File(flow) as file:
        record = json.loads(file.attrs["provenance"])
    assert record["batch_size"] == config["flow"]["batch_size"] and "batch_size" not in record["settings"]


def copy_workdir(work, destination):
    """A copy of ``work`` with Snakemake's records, to run jobs in; files over 1 MB (the fits'
    checkpoints, which no job here writes) are hard links."""
    def copy(source, target):
        if os.path.getsize(source) > 1 << 20:
            os.link(source, target)
        else:
            shutil.copy2(source, target)

    shutil.copytree(work, destination, symlinks=True, copy_function=copy)
    return destination


@pytest.mark.slow
@pytest.mark.parametrize("change", [{"subset": {"test_sequences": 3}}, {"subset": {"seed": 1}}],
                         ids=["test-sequences", "seed"])
def test_another_test_draw_reruns_the_test_split_alone(ran, tmp_path, change):
    """Once select_subset has run (before, a dry run cannot know that the train split's part comes
    out as it was, and lists the checkpoint and what reads it), only the test split's labels, flow
    and pack are planned: not the fits, not the train split's (and so no training)."""
    work = copy_workdir(ran, tmp_path / "work")
    run_snakemake(*TARGETS, "--until", "select_subset", "--cores", "1", "-d", str(work),
                  "--configfile", *config_files(work, change), cwd=work)
    planned = planned_outputs(work, change)
    assert set(planned.values()) == {"label_semantic", "label_instance", "reference_flow", "pack"}, planned
    assert all("/val/" in output for output in planned if output != "results/data/val.h5"), planned


def planned_commands(work, *overrides) -> dict[tuple[str, str], str]:
    """{(rule, outputs): shell command} of every job of the demo graph, dry run in ``work``."""
    shutil.copy(REPO / "config" / "demo.yaml", work / "demo.yaml")
    files = ["demo.yaml"]
    for index, override in enumerate(overrides):
        (work / f"change{index}.yaml").write_text(yaml.safe_dump(override))
        files.append(f"change{index}.yaml")
    result = run_snakemake("-n", "-p", "-d", str(work), "--configfile", *files, cwd=work)
    commands = {}
    for block in result.stdout.split("\n\n"):
        rule = re.search(r"^(?:local)?(?:rule|checkpoint) (\w+):$", block, re.M)
        outputs = re.search(r"^\s+output: (.*)$", block, re.M)
        command = re.search(r"^Shell command: (.*)$", block, re.M)
        if rule and outputs and command:        # rule all has no output (and no command)
            commands[rule[1], outputs[1]] = command[1]
    return commands


def changed_rules(before: dict, after: dict) -> set[str]:
    """Rules with a job whose command differs, or that a change adds or removes."""
    return {rule for (rule, outputs) in before.keys() | after.keys()
            if before.get((rule, outputs)) != after.get((rule, outputs))}


SYNTHESIS = {"synthesize", "real_videos"}
HELDOUT_SYNTHESIS = {"draw_candidates", "real_heldout_videos"}
# The held-out snippets are val snippets outside the demo's 8 test ones: a val city more (demo.yaml).
AUTO_DRAW = {"data": {"synthetic": {"cities": {"val": {"heldorf": 4}}}}, "fvd": {"draw_choice": {"auto": True}}}
# The demo's 10-frame videos from frame 2 end its 12-frame snippets, and the prior-frame variants'
# 2 warm-up frames start at frame 0: another start frame needs another warm-up.
START_FRAME = {"fvd": {"start_frame": 1, "warmup_frames": 1}}


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """The demo graph's commands, without and with fvd.draw_choice.auto."""
    return (planned_commands(tmp_path_factory.mktemp("planned")),
            planned_commands(tmp_path_factory.mktemp("planned_auto"), AUTO_DRAW))


def test_the_demo_plans_every_synthesis_job(planned):
    plain, auto = planned
    assert SYNTHESIS <= {rule for rule, _ in plain} and not HELDOUT_SYNTHESIS & {rule for rule, _ in plain}
    assert SYNTHESIS | HELDOUT_SYNTHESIS <= {rule for rule, _ in auto}


@pytest.mark.parametrize(
    "change, kept, changed",
    [
        # The step from the demo's random I3D to the real one re-embeds; the videos stay.
        ("i3d", SYNTHESIS, {"local_i3d", "embed", "embed_real"}),
        ({"fvd": {"bootstrap": 50}}, SYNTHESIS, {"fvd"}),
        ({"fvd": {"comparisons": [[1, 2]]}}, SYNTHESIS, {"fvd_table"}),
        ({"fvd": {"crops": ["center"]}}, SYNTHESIS, set()),
        (START_FRAME, set(), SYNTHESIS),            # real_videos reads start_frame, not warmup_frames
        # Three seeds, three uses: the bootstrap's rescores, the draws' resynthesise, the local
        # I3D's rebuilds it (and re-embeds through it); none moves what another seeds.
        ({"fvd": {"seed": 1}}, SYNTHESIS | {"local_i3d", "embed", "embed_real"}, {"fvd"}),
        ({"fvd": {"draw_seed": 1}}, {"real_videos", "local_i3d", "embed_real"}, {"synthesize"}),
        ({"fvd": {"local_i3d_seed": 1}}, SYNTHESIS | {"fvd"}, {"local_i3d"}),
    ],
    ids=["i3d", "bootstrap", "comparisons", "crops", "start-frame", "seed", "draw-seed", "local-i3d-seed"],
)
def test_an_fvd_setting_resynthesises_only_what_reads_it(planned, tmp_path, change, kept, changed):
    if change == "i3d":
        (tmp_path / "i3d").mkdir()
        change = {"fvd": {"i3d": str(tmp_path / "i3d")}}
    rules = changed_rules(planned[0], planned_commands(tmp_path, change))
    assert changed <= rules and not kept & rules, rules


@pytest.mark.parametrize(
    "change, variants",
    [
        ({"fvd": {"warmup_frames": 1}}, {"v07", "v08", "v09", "v12", "v13", "v14"}),   # prior frames
        ({"fvd": {"draw_seed": 1}}, {"v04", "v05", "v06", "v08", "v09", "v10", "v11", "v12", "v13", "v14"}),
    ],
    ids=["warmup-prior-frames", "seed-feature-draws"],
)
def test_a_synthesis_setting_resynthesises_only_the_variants_that_read_it(planned, tmp_path, change, variants):
    """Image variants have no warm-up, variants without a feature encoder no cluster draw: a change
    to those settings leaves their videos (and embeddings and scores) as they are."""
    after = planned_commands(tmp_path, change)
    resynthesised = {re.search(r"videos/(\w+)\.h5", outputs)[1] for (rule, outputs), command in after.items()
                     if rule == "synthesize" and planned[0].get((rule, outputs)) != command}
    assert resynthesised == variants


@pytest.mark.parametrize(
    "change, kept, changed",
    [
        # Another number of test videos (fewer: the demo has 8 test snippets): the held-out videos
        # of the draw choice stay as they were.
        ({"fvd": {"batches": 1}}, HELDOUT_SYNTHESIS, {"synthesize", "real_videos"}),
        ({"fvd": {"bootstrap": 50}}, SYNTHESIS | HELDOUT_SYNTHESIS, {"fvd"}),
        ({"fvd": {"draw_choice": {"candidates": 3}}}, SYNTHESIS | {"real_heldout_videos"}, {"draw_candidates"}),
        (START_FRAME, set(), SYNTHESIS | HELDOUT_SYNTHESIS),
    ],
    ids=["batches", "bootstrap", "candidates", "start-frame"],
)
def test_an_fvd_setting_redraws_only_what_reads_it(planned, tmp_path, change, kept, changed):
    rules = changed_rules(planned[1], planned_commands(tmp_path, AUTO_DRAW, change))
    assert changed <= rules and not kept & rules, rules


def test_a_warm_up_change_redraws_only_the_prior_variants_candidates(planned, tmp_path):
    """Variants without prior frames synthesise no warm-up, for the draw choice as for the test."""
    after = planned_commands(tmp_path, AUTO_DRAW, {"fvd": {"warmup_frames": 1}})
    redrawn = {re.search(r"videos/heldout/(\w+)\.h5", outputs)[1] for (rule, outputs), command in after.items()
               if rule == "draw_candidates" and planned[1].get((rule, outputs)) != command}
    assert redrawn == {"v08", "v09", "v12", "v13", "v14"}


@pytest.mark.slow
def test_keep_gtfine_relabels_the_train_split_alone(ran):
    """labels.keep_gtfine applies to the train split only, and only its label jobs are given it."""
    planned = planned_outputs(ran, {"labels": {"keep_gtfine": True}})
    labels = [output for output, rule in planned.items() if rule.startswith("label_")]
    assert labels and all("/train/" in output for output in labels), planned


@pytest.mark.slow
def test_a_rebuilt_synthetic_city_relabels_though_its_snippets_keep_their_names(ran, tmp_path):
    """The subset's parts come out byte for byte as they were (the same snippet ids), so the rules
    after them see the city itself as an input: its frames changed, and so must the labels."""
    change = {"data": {"frame_height": 64, "frame_width": 128}}
    work = copy_workdir(ran, tmp_path / "work")
    before = {path.name: path.read_bytes() for path in (work / "results/data/subset").iterdir()}
    run_snakemake(*TARGETS, "--until", "select_subset", "--cores", "1", "-d", str(work),
                  "--configfile", *config_files(work, change), cwd=work)
    assert {path.name: path.read_bytes() for path in (work / "results/data/subset").iterdir()} == before
    rules = set(planned_outputs(work, change).values())
    assert rules == {"fit_segmenter", "fit_instances", "label_semantic", "label_instance", "reference_flow",
                     "pack"}, rules      # pack_gtfine too, where a target needs it


def test_code_version_follows_the_code_a_stage_imports(tmp_path, monkeypatch):
    """A rule's code version (``python -m`` module and every pipeline module it imports) changes
    with that code and only with it: the k-means of cluster_features does not retrain a variant;
    comments, docstrings and the plumbing every stage imports (errors, file writing) retrain
    nothing."""
    copy = tmp_path / "pipeline"
    shutil.copytree(REPO / "pipeline", copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(provenance, "PACKAGE_ROOT", copy)
    stages = ("pipeline.train", "pipeline.train.cluster", "pipeline.labels.semantic")

    def versions():
        return {stage: provenance.code_version(stage) for stage in stages}

    def edit(module, text="\nCHANGED = 1\n"):
        with (copy / module).open("a") as handle:
            handle.write(text)

    before = versions()
    edit("flow/warp.py", "\n# a comment\n")
    source = (copy / "train" / "loop.py").read_text()
    (copy / "train" / "loop.py").write_text(source.replace('"""', '"""Reworded. ', 1))   # its docstring
    edit("errors.py")
    edit("io.py")
    assert versions() == before
    edit("flow/warp.py")                 # the training step's warp, not the labeller's code
    after_warp = versions()
    assert after_warp["pipeline.train"] != before["pipeline.train"]
    assert after_warp["pipeline.labels.semantic"] == before["pipeline.labels.semantic"]
    edit("train/cluster.py")             # cluster_features alone imports it
    after_kmeans = versions()
    assert after_kmeans["pipeline.train.cluster"] != after_warp["pipeline.train.cluster"]
    assert after_kmeans["pipeline.train"] == after_warp["pipeline.train"]
    edit("data/subset.py")               # how the subset is drawn: the packed file is training's input
    edit("pack/writer.py")
    assert versions()["pipeline.train"] == after_kmeans["pipeline.train"]
    with pytest.raises(ValueError, match="no module 'pipeline.no_such_stage'"):
        provenance.code_version("pipeline.no_such_stage")      # a typo in a rule must not hash nothing


def test_a_variant_more_plans_its_own_jobs_and_rebuilds_only_the_summaries(planned, tmp_path):
    """README: a 15th variant is one more entry under ``variants:``; the graph then trains,
    synthesises and scores it alone, the per-variant jobs of the other 14 stay as they were, and
    only what sums up every variant (the table and its charts) is made again."""
    v15 = dict(load_config([REPO / "config.yaml", REPO / "config" / "demo.yaml"])["variants"]["v08"], index=15)
    after = planned_commands(tmp_path, {"variants": {"v15": v15}})
    before = planned[0]
    added = after.keys() - before.keys()
    assert before.keys() - after.keys() == set()
    assert all("v15" in outputs for _, outputs in added), added
    assert {"train", "cluster_features", "synthesize", "embed", "fvd"} <= {rule for rule, _ in added}
    changed = {rule for rule, outputs in before.keys() & after.keys() if before[rule, outputs] != after[rule, outputs]}
    assert changed == {"fvd_table", "report_fvd_table", "report_fvd_chart", "report_warping", "report_timing"}


def test_image_variants_train_on_every_gtfine_frame_and_prior_variants_on_the_subset(planned, tmp_path):
    """thesis 4.5.1: the image variants trained on the labelled image dataset as it is; the
    prior-frame variants on the subset's sequences. train.image_data: train gives the old choice."""
    def data_of(commands, variant):
        return next(re.search(r"--data (\S+)", command)[1] for (rule, outputs), command in commands.items()
                    if rule == "train" and f"/{variant}/" in outputs)

    assert data_of(planned[0], "v01") == "results/data/gtfine_train.h5"
    assert data_of(planned[0], "v07") == "results/data/train.h5"
    assert any(rule == "pack_gtfine" for rule, _ in planned[0])
    subset_only = planned_commands(tmp_path, {"train": {"image_data": "train"}})
    assert data_of(subset_only, "v01") == "results/data/train.h5"
    assert not any(rule == "pack_gtfine" for rule, _ in subset_only)


def test_train_jobs_get_how_to_run_apart_from_what_they_compute(planned):
    """The train rule's --settings (its params: what Snakemake compares, what a resume
    fingerprints) hold neither the checkpoint interval nor torch.compile's settings nor the
    table's columns; those come in --runtime, from a resource, which Snakemake does not compare."""
    commands = {outputs: command for (rule, outputs), command in planned[0].items() if rule == "train"}
    assert len(commands) == 14
    for command in commands.values():
        words = shlex.split(command)
        settings = json.loads(words[words.index("--settings") + 1])
        runtime = json.loads(words[words.index("--runtime") + 1])
        assert runtime == {"checkpoint_minutes": 5, "compile": "auto", "compile_scope": "all",
                           "compile_mode": "auto"}              # demo.yaml's interval
        assert not set(runtime) & set(settings["train"])
        assert not {"index", "thesis_fvd"} & set(settings["entry"])


# Stands in for the training command: writes the train rule's outputs at once, so that Snakemake
# records each job's params as after a real run, and dry runs then show which variants it would
# train again. Any other command runs the real python.
STAND_IN = """#!{python}
import os
import sys

args = sys.argv[1:]
if args[:2] != ["-m", "pipeline.train"]:
    os.execv(sys.executable, [sys.executable, *args])
output = args[args.index("--output") + 1]
os.makedirs(output, exist_ok=True)
for name in ("model.pt", "losses.csv", "summary.json"):
    with open(os.path.join(output, name), "w") as handle:
        handle.write("stand-in\\n")
os.makedirs(os.path.join(output, "tensorboard"), exist_ok=True)
"""
VARIANTS = sorted(load_config([REPO / "config.yaml", REPO / "config" / "demo.yaml"])["variants"])
TRAINED = [f"results/train/{variant}/model.pt" for variant in VARIANTS]
CRN = {f"v{index:02d}" for index in range(1, 10)}
WITH_DISCRIMINATOR = {"v06", "v08", "v09", "v10", "v11", "v12", "v13", "v14"}
PRIOR = {"v07", "v08", "v09", "v12", "v13", "v14"}


def snakemake_training(work, *args: str) -> str:
    """Snakemake on the train rule alone (its packed inputs are plain files here), with the
    stand-in python first on the jobs' PATH; its stdout."""
    env = dict(os.environ, PATH=os.pathsep.join([str(work / "bin"), str(BIN), os.environ.get("PATH", "")]))
    command = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), *TRAINED, "-d", str(work),
               "--allowed-rules", "train", *args]
    result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A workdir where every demo variant's train job has run (the stand-in's outputs) and
    Snakemake has recorded its params."""
    work = tmp_path_factory.mktemp("trained")
    shutil.copy(REPO / "config" / "demo.yaml", work / "demo.yaml")
    (work / "bin").mkdir()
    (work / "bin" / "python").write_text(STAND_IN.format(python=BIN / "python"))
    (work / "bin" / "python").chmod(0o755)
    (work / "results" / "data").mkdir(parents=True)
    for split in ("train", "gtfine_train"):       # the prior-frame and the image variants' data
        (work / "results" / "data" / f"{split}.h5").write_text("packed")
    snakemake_training(work, "--cores", "1", "--configfile", "demo.yaml")
    assert all((work / target).is_file() for target in TRAINED)
    return work


def retrained(work, change: dict) -> set[str]:
    """The variants a dry run with ``change`` over demo.yaml would train again."""
    (work / "change.yaml").write_text(yaml.safe_dump(change))
    out = snakemake_training(work, "-n", "--configfile", "demo.yaml", "change.yaml")
    return set(re.findall(r"^\s+output: .*?results/train/(\w+)/", out, re.M))


@pytest.mark.slow
@pytest.mark.parametrize("change, variants", [
    ({}, set()),
    # How, not what: no variant trains again (a resumed job takes the new values).
    ({"train": {"checkpoint_minutes": 7, "compile": "off", "compile_scope": "generator",
                "compile_mode": "default"}}, set()),
    ({"variants": {"v02": {"thesis_fvd": 1000.0}}}, set()),          # a column of the table
    ({"train": {"crn": {"lr": 2.0e-4}}}, CRN),                        # not the pix2pixHD variants
    ({"train": {"discriminator": {"lr": 2.0e-4}}}, WITH_DISCRIMINATOR),
    ({"train": {"window": 4}}, PRIOR),
    ({"losses": {"flow": 5.0}}, {"v09", "v14"}),
    ({"train": {"amp": "off"}}, set(VARIANTS)),                       # numerics: kept
], ids=["nothing", "how", "thesis_fvd", "crn.lr", "discriminator.lr", "window", "flow-loss", "amp"])
def test_a_training_setting_retrains_only_the_variants_that_read_it(trained, change, variants):
    assert retrained(trained, change) == variants
