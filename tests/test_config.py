"""The config schema: the study validates, defaults are filled, bad keys and values are named."""

from __future__ import annotations

import copy

import pytest
import yaml
from snakemake.utils import validate as snakemake_validate

from pipeline.config import DEFAULT_CONFIG, REPO_ROOT, SCHEMA_PATH, load_config, merge, validate
from pipeline.errors import PipelineError

DEMO = REPO_ROOT / "config" / "demo.yaml"


@pytest.fixture(scope="module")
def study() -> dict:
    return load_config([DEFAULT_CONFIG])


def test_study_config_has_the_fourteen_variants_of_table_5_1(study):
    indices = sorted(entry["index"] for entry in study["variants"].values())
    assert indices == list(range(1, 15))
    networks = [study["variants"][f"v{i:02d}"]["network"] for i in range(1, 15)]
    assert networks == ["crn"] * 9 + ["pix2pixhd"] * 5
    assert study["subset"]["train_cities"] == ["aachen", "bremen", "hanover", "zurich"]
    fvd = study["fvd"]
    assert (len(fvd["crops"]), fvd["frames"], fvd["batch_size"], fvd["batches"], fvd["warmup_frames"]) == (3, 16, 16, 8, 2)


def test_defaults_are_filled_in(study):
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    del raw["pack"]["chunk_frames"]
    del raw["labels"]["semantic"]["fit"]
    config = validate(raw)
    assert config["pack"]["chunk_frames"] == 1
    assert config["labels"]["semantic"]["fit"]["epochs"] == 200   # nested default filled too


@pytest.mark.parametrize(
    "path, value, named",
    [
        (("data", "sourc"), "synthetic", "config key data: Additional properties"),
        (("variants", "v03", "norm"), "batch", "config key variants.v03.norm"),
        (("fvd", "batches"), 0, "config key fvd.batches"),
        (("labels", "semantic", "input_height"), 100, "config key labels.semantic.input_height"),
        (("flow", "backend"), "raft", "config key flow.backend"),
    ],
)
def test_bad_key_or_value_is_named(study, path, value, named):
    config = copy.deepcopy(study)
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(PipelineError, match=named.replace(".", r"\.")):
        validate(config)


def test_contradictory_variant_is_named(study):
    config = copy.deepcopy(study)
    config["variants"]["mine"] = dict(config["variants"]["v02"], flow=True, index=15)
    with pytest.raises(PipelineError, match="variant 'mine'.*flow needs prior frames"):
        validate(config)
    config["variants"]["mine"] = dict(config["variants"]["v06"], output_images=3, index=15)
    with pytest.raises(PipelineError, match="variant 'mine'.*discriminators need output_images 1"):
        validate(config)


def test_a_fifteenth_variant_is_just_an_entry(study):
    config = copy.deepcopy(study)
    config["variants"]["v15"] = dict(config["variants"]["v08"], index=15, perceptual="vgg19")
    assert validate(config)["variants"]["v15"]["perceptual"] == "vgg19"


def test_demo_overrides_only_keys_the_study_has(study):
    demo = yaml.safe_load(DEMO.read_text())

    def leaves(node, prefix=()):
        for key, value in node.items():
            if isinstance(value, dict) and key not in ("cities", "variants"):
                yield from leaves(value, prefix + (key,))
            else:
                yield prefix + (key,)

    merged = load_config([DEFAULT_CONFIG, DEMO])
    assert merged["data"]["source"] == "synthetic"
    assert merged["variants"] == study["variants"] or "variants" in demo
    # Every demo key is one the study has (with the schema's defaults), except the network
    # shrinking of train.model_overrides, which the study leaves empty on purpose.
    unknown = []
    for path in leaves(demo):
        node = study
        for key in path:
            if not isinstance(node, dict) or key not in node:
                unknown.append(".".join(path))
                break
            node = node[key]
    assert [path for path in unknown if not path.startswith("train.model_overrides.")] == []


def test_snakemake_validate_accepts_the_same_schema(study):
    config = copy.deepcopy(study)
    snakemake_validate(config, str(SCHEMA_PATH))


def test_merge_recurses_into_mappings_only():
    merged = merge({"a": {"b": 1, "c": [1, 2]}, "d": 1}, {"a": {"c": [3]}, "e": 2})
    assert merged == {"a": {"b": 1, "c": [3]}, "d": 1, "e": 2}


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(PipelineError, match="config file not found"):
        load_config([tmp_path / "nope.yaml"])
