"""The train and cluster_features stages refuse settings that lack a key, naming it, before any work.

``--settings`` is what the rule passes (``train_settings`` / ``cluster_settings`` of the config);
one written by hand or by an older config that lacks a key used to end in a KeyError traceback
deep in training. Now it is one line, ``error: --settings lacks "train.crn.stages" ...``, exit 1,
nothing written; extra keys (a newer config's) still pass.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import run_main
from pipeline.config import DEFAULT_CONFIG, REPO_ROOT, load_config, merge
from pipeline.errors import PipelineError
from pipeline.train import __main__ as train_stage
from pipeline.train.__main__ import _runtime
from pipeline.train import cluster as cluster_stage
from pipeline.train.settings import (RUNTIME_DEFAULTS, check_cluster_settings, check_train_settings,
                                     cluster_settings, train_settings)

# Small stages and networks: were a check to let broken settings through, the old way to fail
# (or a run) stays short.
TINY = {"train": {"crn": {"stages": [{"height": 16, "width": 32, "epochs": 1, "max_steps": 1},
                                     {"height": 32, "width": 64, "epochs": 1, "max_steps": 1}]},
                  "pix2pixhd": {"stages": [{"height": 32, "width": 64, "epochs": 1, "max_steps": 1}]},
                  "window": 2,
                  "model_overrides": {"generator": {"width_divisor": 64}, "discriminator": {"width_divisor": 16},
                                      "encoder": {"width_divisor": 4}}},
        "weights": {"allow_random": True}}


@pytest.fixture(scope="module")
def study() -> dict:
    return load_config([DEFAULT_CONFIG])


@pytest.fixture(scope="module")
def tiny(study) -> dict:
    return merge(study, TINY)


def without(settings: dict, path: str) -> dict:
    """A copy of ``settings`` less the key at the dotted ``path``."""
    settings = copy.deepcopy(settings)
    *parents, last = path.split(".")
    node = settings
    for key in parents:
        node = node[key]
    del node[last]
    return settings


def key_paths(node: dict, prefix: str = "") -> list[str]:
    """Every key path of nested mappings (lists are values)."""
    paths = []
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else key
        paths.append(path)
        if isinstance(value, dict):
            paths += key_paths(value, path)
    return paths


def run_stage(main, argv: list[str], capsys) -> tuple[int, str]:
    """A stage's ``main`` the way ``python -m`` runs it: (exit status, stderr)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_main(main, argv)
    return exit_info.value.code, capsys.readouterr().err


def train_argv(variant: str, settings: dict, data: Path, work: Path) -> list[str]:
    return ["--variant", variant, "--data", str(data), "--output", str(work / "out"),
            "--resume", str(work / "resume"), "--device", "cpu", "--settings", json.dumps(settings)]


def assert_one_line(err: str, *named: str, argument: str = "--settings") -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {argument} ") and "Traceback" not in err, err
    for text in named:
        assert text in lines[0], err


@pytest.mark.parametrize(("variant", "path"), [
    ("v02", "losses"), ("v02", "label_set"), ("v02", "entry"),                # top level
    ("v02", "train.crn.stages"), ("v02", "entry.network"), ("v02", "train.seed"),
    ("v01", "train.crn"), ("v11", "train.discriminator"), ("v11", "train.pix2pixhd.lr"),
    ("v08", "train.window"),
    ("v08", "weights.mobilenet_v2"),     # before: trained, with random backbone weights where allowed
])
def test_train_names_the_missing_key_and_writes_nothing(tiny, packed_city, tmp_path, capsys, variant, path):
    settings = without(train_settings(tiny, variant), path)
    code, err = run_stage(train_stage.main, train_argv(variant, settings, packed_city["train"], tmp_path), capsys)
    assert code == 1
    assert_one_line(err, f'lacks "{path}"', f"variant {variant}", "train_settings", "--config")
    assert not (tmp_path / "out").exists() and not (tmp_path / "resume").exists()


def test_train_names_every_missing_key_and_a_stages_keys(tiny, packed_city, tmp_path, capsys):
    settings = without(without(train_settings(tiny, "v02"), "losses"), "train.crn.lr")
    settings["train"]["crn"]["stages"][1].pop("epochs")
    code, err = run_stage(train_stage.main, train_argv("v02", settings, packed_city["train"], tmp_path), capsys)
    assert code == 1
    assert_one_line(err, '--settings lacks "train.crn.lr" and "losses" (variant v02, a crn variant)')
    settings = train_settings(tiny, "v02")
    settings["train"]["crn"]["stages"][1].pop("epochs")
    code, err = run_stage(train_stage.main, train_argv("v02", settings, packed_city["train"], tmp_path), capsys)
    assert code == 1
    assert_one_line(err, 'lacks "train.crn.stages[1].epochs"')
    settings = train_settings(tiny, "v02")
    settings["train"]["crn"] = []
    code, err = run_stage(train_stage.main, train_argv("v02", settings, packed_city["train"], tmp_path), capsys)
    assert code == 1
    assert_one_line(err, '"train.crn" is a list, not an object')
    assert not (tmp_path / "out").exists() and not (tmp_path / "resume").exists()


def test_train_command_refuses_in_one_line(tiny, packed_city, tmp_path):
    """The real command, as the rule runs it: no traceback on stderr, exit 1, nothing written."""
    settings = without(train_settings(tiny, "v02"), "losses")
    command = [sys.executable, "-m", "pipeline.train", *train_argv("v02", settings, packed_city["train"], tmp_path),
               "--runtime", json.dumps(RUNTIME_DEFAULTS)]
    result = subprocess.run(command, cwd=REPO_ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"),
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert_one_line(result.stderr, '--settings lacks "losses" (variant v02, a crn variant)')
    assert not (tmp_path / "out").exists() and not (tmp_path / "resume").exists()


@pytest.mark.parametrize("runtime, problem", [
    ({"checkpoint_minutes": "5"}, "--runtime: config key train.checkpoint_minutes: '5' is not of type 'number'"),
    ({"compile_scope": "gen"}, "--runtime: config key train.compile_scope: 'gen' is not one of"),
    ({"compile_mode": "graphs"}, "--runtime: config key train.compile_mode: 'graphs' is not one of"),
    ({"checkpoint": 5}, "--runtime: unknown keys checkpoint"),
])
def test_runtime_values_are_checked_as_the_configs_are(tiny, packed_city, tmp_path, capsys, runtime, problem):
    """A hand-written --runtime meets the schema before anything starts (was: a typo'd scope
    silently compiled the generator only, a string interval failed at the first save)."""
    argv = [*train_argv("v02", train_settings(tiny, "v02"), packed_city["train"], tmp_path),
            "--runtime", json.dumps(runtime)]
    code, err = run_stage(train_stage.main, argv, capsys)
    assert code == 1
    assert_one_line(err, problem, argument="--runtime:")
    assert not (tmp_path / "out").exists() and not (tmp_path / "resume").exists()


def test_runtime_keys_left_in_settings_are_checked_too(tiny, packed_city, tmp_path, capsys):
    """Settings written by hand, or by an older train_settings, may still hold runtime keys."""
    settings = train_settings(tiny, "v02")
    settings["train"]["compile_scope"] = "gen"
    code, err = run_stage(train_stage.main, train_argv("v02", settings, packed_city["train"], tmp_path), capsys)
    assert code == 1
    assert_one_line(err, "config key train.compile_scope: 'gen' is not one of", argument="--settings:")
    assert not (tmp_path / "out").exists() and not (tmp_path / "resume").exists()


def test_a_bare_boolean_in_runtime_means_on_or_off_as_in_config_yaml():
    """`compile: off` in YAML is False; JSON's false must mean the same, not "compile on a GPU"."""
    assert _runtime(json.dumps({"compile": False})) == {"compile": "off"}
    assert _runtime(json.dumps({"compile": True, "checkpoint_minutes": 5})) == {"compile": "on",
                                                                                "checkpoint_minutes": 5}


def optional(path: str) -> bool:
    """Keys a config may leave out: an entry's output_images_stage2 (the schema defaults it, the
    schedule reads it with a default) and what a network's model_overrides hold (its builder's
    keyword arguments, each with a default)."""
    return path == "entry.output_images_stage2" or (path.startswith("train.model_overrides.")
                                                     and path.count(".") >= 3)


@pytest.mark.parametrize("overrides", [[], [REPO_ROOT / "config" / "demo.yaml"]], ids=["study", "demo"])
def test_every_variants_settings_pass_and_every_key_is_required(overrides, study):
    config = load_config([DEFAULT_CONFIG, *overrides]) if overrides else study
    for variant in config["variants"]:
        settings = train_settings(config, variant)
        check_train_settings(without(settings, "entry.output_images_stage2"), variant)
        before = copy.deepcopy(settings)
        check_train_settings(settings, variant)
        assert settings == before and list(settings) == list(before)      # read, not changed
        for path in key_paths(settings):
            if optional(path):
                continue
            with pytest.raises(PipelineError, match=f'lacks "{path}"'):
                check_train_settings(without(settings, path), variant)


def test_extra_keys_a_users_variant_and_one_stage_pass(study):
    """A newer config's keys pass; so do a variant the shipped config lacks and a schedule of one
    stage, whose settings have no keep_optimizer_state_on_grow (the generator never grows)."""
    settings = train_settings(study, "v08")
    settings["new_section"] = {"x": 1}
    settings["train"]["new_key"] = 2
    settings["train"]["crn"]["new_key"] = 3
    settings["entry"]["new_column"] = True
    settings["train"].update(RUNTIME_DEFAULTS)          # an older train_settings put them in
    check_train_settings(settings, "v08")

    entry = dict(study["variants"]["v05"], index=15, output_images=3, norm="weight", thesis_fvd=None)
    one_stage = merge(study, {"variants": {"v15": entry},
                              "train": {"crn": {"stages": [{"height": 256, "width": 512, "epochs": 1}]}}})
    settings = train_settings(one_stage, "v15")
    assert "keep_optimizer_state_on_grow" not in settings["train"]
    check_train_settings(settings, "v15")


def test_train_refuses_entry_values_it_cannot_read(study):
    settings = train_settings(study, "v02")
    settings["entry"]["network"] = "unet"
    with pytest.raises(PipelineError, match=r'"entry.network" is \'unet\', not one of crn, pix2pixhd'):
        check_train_settings(settings, "v02")
    with pytest.raises(PipelineError, match="--settings is a list, not a JSON object"):
        check_train_settings([settings], "v02")


@pytest.mark.parametrize("key", ["clusters", "seed"])
def test_cluster_names_the_missing_key_and_writes_nothing(study, tmp_path, capsys, key):
    settings = without(cluster_settings(study), key)
    output = tmp_path / "clusters.pt"
    argv = ["--model", str(tmp_path / "model.pt"), "--data", str(tmp_path / "train.h5"), "--output", str(output),
            "--settings", json.dumps(settings)]
    code, err = run_stage(cluster_stage.main, argv, capsys)
    assert code == 1
    assert_one_line(err, f'--settings lacks "{key}"', "cluster_settings", "--config")
    assert list(tmp_path.iterdir()) == []


def test_cluster_command_refuses_in_one_line(tmp_path):
    command = [sys.executable, "-m", "pipeline.train.cluster", "--model", str(tmp_path / "model.pt"),
               "--data", str(tmp_path / "train.h5"), "--output", str(tmp_path / "clusters.pt"),
               "--settings", json.dumps({"clusters": 10})]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 1
    assert_one_line(result.stderr, '--settings lacks "seed"')
    assert list(tmp_path.iterdir()) == []


def test_cluster_settings_pass_with_extra_keys(study):
    settings = cluster_settings(study)
    check_cluster_settings(settings)
    check_cluster_settings({**settings, "frames": "all"})
    with pytest.raises(PipelineError, match='lacks "clusters" and "seed"'):
        check_cluster_settings({})
