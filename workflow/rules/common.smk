import json
import os
import shlex
from pathlib import Path

from snakemake.utils import validate

import pipeline.config
from pipeline.data.subset import HELDOUT_SPLIT, stage_settings as subset_settings
from pipeline.data.synthetic import settings_from_config as synthetic_settings
from pipeline.cli import INFERENCE_KEYS
from pipeline.labels.settings import fit_settings, label_settings
from pipeline.fvd import (
    DRAW_KEYS,
    EMBED_KEYS,
    REAL_KEYS,
    SCORE_KEYS,
    TABLE_KEYS,
    candidate_settings,
    real_heldout_settings,
    synthesis_settings,
)
from pipeline.pack.__main__ import pick_settings as pack_settings
from pipeline.provenance import code_version
from pipeline.train.settings import cluster_settings, train_runtime, train_settings


# --config as a file would set it: Snakemake reads a nested value (train={retries: 7}) as YAML of
# strings, so its numbers, booleans and nulls are read again (pipeline.config.command_line_values),
# in Snakemake's config itself, which the rules read. --config is merged last: merged over the
# config once more, it replaces just those values.
CONFIG_OVERRIDES = pipeline.config.command_line_values(dict(workflow.config_settings.config or {}))
config.update(pipeline.config.merge(config, CONFIG_OVERRIDES))


def config_sources():
    """Config key path -> the file that set it, merged as Snakemake merged them: the Snakefile's
    configfile (unless --replace-workflow-config), each --configfile in order, then --config."""
    settings = workflow.config_settings
    cli_files = [str(path) for path in settings.configfiles]
    # workflow.configfiles: the --configfiles, then those of configfile: directives that exist.
    own_files = workflow.configfiles[len(cli_files):]
    if settings.replace_workflow_config:
        own_files = []          # Snakemake drops what the configfile: directive read
    layers = [(str(path), pipeline.config.read_config_file(path)) for path in [*own_files, *cli_files]]
    if CONFIG_OVERRIDES:
        layers.append(("--config", CONFIG_OVERRIDES))
    return pipeline.config.key_sources(layers)


# Our validator first: its errors name the config key and the file that set it; it also checks
# variant consistency.
CONFIG_SOURCES = config_sources()
config.update(pipeline.config.validate(config, CONFIG_SOURCES))
validate(config, "../schemas/config.schema.yaml")


# Jobs import this checkout's pipeline, whatever the venv's editable install points at (with
# `snakemake -d elsewhere` or another checkout installed): its root goes first on PYTHONPATH, an
# existing PYTHONPATH after it. The prefix replaces Snakemake's default, so it repeats
# `set -euo pipefail` (braces doubled: Snakemake formats the prefix). A job's stderr is its log:
# tqdm redraws a bar there every TQDM_MININTERVAL seconds (one line each; at tqdm's 0.1 s a 12-hour
# training job would log some 400 000), unless the environment sets it.
WORKFLOW_ROOT = str(Path(workflow.basedir).resolve())
_job_prefix = (f"set -euo pipefail; export PYTHONPATH={shlex.quote(WORKFLOW_ROOT)}${{PYTHONPATH:+:$PYTHONPATH}}; "
               "export TQDM_MININTERVAL=${TQDM_MININTERVAL:-30}; ")
shell.prefix(_job_prefix.replace("{", "{{").replace("}", "}}"))


wildcard_constraints:
    split=f"train|val|test|{HELDOUT_SPLIT}",
    city="[a-z_]+",
    # Any name but the reserved ones (the real videos'), so that a name
    # config.yaml lacks reaches variant_entry and its message, not "No rule to produce".
    variant=rf"(?!(?:{'|'.join(sorted(pipeline.config.RESERVED_VARIANT_NAMES))})(?:[^A-Za-z0-9_-]|$))[A-Za-z0-9_-]+",


SYNTHETIC = config["data"]["source"] == "synthetic"
# Normalised: select_subset tracks it as a param, where a trailing slash would rerun the study.
DATA_ROOT = os.path.normpath(config["data"]["synthetic_root"] if SYNTHETIC else config["data"]["cityscapes_root"])
TEST_SPLIT = config["subset"]["test_split"]
SPLITS = ["train", TEST_SPLIT]
# fvd.draw_choice.auto: feature-encoder variants choose their cluster-feature draw on held-out
# val snippets (split "heldout" of the subset); off, none of its rules is in the graph.
DRAW_CHOICE = config["fvd"]["draw_choice"]["auto"]


def settings(*keys):
    """A config section as JSON: what a rule passes to its stage and what Snakemake tracks."""
    return json.dumps(pipeline.config.section(config, *keys), sort_keys=True)


def settings_of(section, *keys):
    """Only the named keys of a section, so a change elsewhere in it does not rerun the rule."""
    return json.dumps({key: config[section][key] for key in keys}, sort_keys=True)


def batch_size_resource(*keys):
    """An inference stage's batch size, config[keys...]["batch_size"], as a resource: it changes how
    a job runs, not what it writes, and Snakemake compares params, not resources, so a smaller batch
    for a smaller GPU reruns nothing (the job records it in its provenance). A string: Snakemake
    rounds numbers."""
    section = config
    for key in keys:
        section = section[key]
    return str(section["batch_size"])


def settings_less(section, *keys):
    """A config section less the named keys, as JSON: those say how its stage runs, not what it
    computes (an inference batch size), and reach the job as resources, which Snakemake does not
    compare, so that a change to them reruns nothing."""
    return json.dumps({key: value for key, value in config[section].items() if key not in keys}, sort_keys=True)


def labeller_fit_settings(kind):
    """What fitting a labeller reads (pipeline.labels.settings.FIT_KEYS)."""
    return json.dumps(fit_settings(config, kind), sort_keys=True)


def data_root_input(wildcards):
    """The synthetic city is built by the graph; a real Cityscapes root is not a tracked input."""
    return [DATA_ROOT] if SYNTHETIC else []


def subset_cities(split):
    """Cities of a split, known once the select_subset checkpoint has run."""
    subset_file = checkpoints.select_subset.get().output.subset
    return sorted(json.loads(Path(subset_file).read_text())["splits"][split])


def per_city(pattern):
    """Input function: ``pattern`` for every city of the split, once the subset is known."""
    return lambda wildcards: expand(pattern, split=wildcards.split, city=subset_cities(wildcards.split))


def semantic_checkpoint():
    configured = config["labels"]["semantic"]["checkpoint"]
    return configured if configured else "results/models/segmenter.pt"


def instance_checkpoint():
    """The input function of label_instance's checkpoint (labels.smk calls this while parsing):
    labels.instance.checkpoint, else the fitted torchvision model. detectron2 without a checkpoint
    stops only a plan that labels instances (config.yaml ships without the site's files)."""
    def checkpoint(wildcards):
        named = pipeline.config.instance_checkpoint(config, CONFIG_SOURCES)
        return named or "results/models/instances.pt"
    return checkpoint


def i3d_path():
    """The input function of the embed rules' I3D (fvd.smk calls this while parsing): fvd.i3d, else
    the random-weight I3D of fvd.local_i3d_width. Neither stops only a plan that embeds videos."""
    def i3d(wildcards):
        return pipeline.config.i3d_module(config, CONFIG_SOURCES) or "results/models/i3d_local"
    return i3d


def variant_entry(wildcards):
    """The config entry of the job's variant; a name not in it stops planning, named."""
    return pipeline.config.variant_entry(config, wildcards.variant, CONFIG_SOURCES)


def training_data(wildcards):
    """The packed split a variant trains on: prior-frame variants the windows of the subset's
    snippets, image variants the annotated frames of train.image_data (gtfine_train: every
    train city's, as the thesis)."""
    if variant_entry(wildcards)["prior"]:
        return "results/data/train.h5"
    return f"results/data/{config['train']['image_data']}.h5"


def stage_settings(pick, *args):
    """A stage's settings as JSON, built by the stage's own function of the config."""
    return json.dumps(pick(config, *args), sort_keys=True)


def label_job_settings(kind):
    """What label_<kind> reads on the job's split (pipeline/labels/settings.py)."""
    return lambda wildcards: stage_settings(label_settings, kind, wildcards.split)


def train_job_settings(wildcards):
    """The variant's training settings (pipeline/train/settings.py: only what changes its result)."""
    return stage_settings(train_settings, wildcards.variant)


def synthesis_job_settings(wildcards):
    """The fvd settings the variant's synthesis reads (pipeline.fvd.synthesis_settings)."""
    return stage_settings(synthesis_settings, wildcards.variant)


def candidate_job_settings(wildcards):
    """The fvd settings the variant's candidate draws read (pipeline.fvd.candidate_settings)."""
    return stage_settings(candidate_settings, wildcards.variant)


def backbone_weights(wildcards):
    """The variant's perceptual backbone file where config.yaml names one: a file not named (and
    random weights not allowed) or missing stops the DAG here, not in a queued GPU job, and a
    replaced file retrains."""
    path = pipeline.config.backbone_file(config, wildcards.variant, CONFIG_SOURCES)
    return [path] if path else []


def flow_checkpoint():
    """flow.checkpoint as an input where it is a file (ptlflow also takes checkpoint names)."""
    named = config["flow"]["checkpoint"]
    return [named] if named and ("/" in named or Path(named).suffix) else []


def clusters_input(wildcards):
    if variant_entry(wildcards)["feature_encoder"]:
        return f"results/train/{wildcards.variant}/clusters.pt"
    return []


def draws_input(wildcards):
    """The chosen feature draw, where fvd.draw_choice.auto is on and the variant draws features."""
    if DRAW_CHOICE and variant_entry(wildcards)["feature_encoder"]:
        return f"results/fvd/draws/{wildcards.variant}.json"
    return []


def feature_args(wildcards, input):
    args = f"--clusters {input.clusters}" if input.clusters else ""
    return f"{args} --draws {input.draws}" if input.draws else args


def variant_outputs(pattern):
    return expand(pattern, variant=sorted(config["variants"]))


def get_report_output():
    """Every picture of the report (workflow/rules/report.smk)."""
    names = ("fvd_table.html", "fvd.png", "warping.png", "timing.png")
    pictures = [f"results/report/{name}" for name in names]
    for pattern in ("strips/{variant}.png", "videos/{variant}.html", "losses/{variant}.png"):
        pictures += variant_outputs(f"results/report/{pattern}")
    if SYNTHETIC:
        pictures += ["results/report/label_quality.png", "results/report/flow_quality.png"]
    return pictures


def get_final_output():
    return ["results/fvd_table.csv", *get_report_output()]
