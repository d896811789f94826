"""The config schema's one home: load, merge, validate (defaults filled in) and check consistency.

config.yaml is the study; override files (config/demo.yaml) are merged over it key by key, the
way Snakemake merges ``--configfile``s. Validation uses ``workflow/schemas/config.schema.yaml``
(the same file ``common.smk`` gives ``snakemake.utils.validate``); errors name the key.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from pipeline.errors import PipelineError

__all__ = ["SCHEMA_PATH", "load_config", "merge", "validate", "check_variant", "section"]

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_CONFIG = REPO_ROOT / "config.yaml"


def merge(base: Mapping, override: Mapping) -> dict:
    """Deep-merge ``override`` into a copy of ``base`` (mappings recurse, everything else replaces)."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_config(paths: Iterable[str | Path] = (DEFAULT_CONFIG,)) -> dict:
    """Read, merge in order, validate and check the given YAML files."""
    config: dict = {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise PipelineError("config file not found", path)
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise PipelineError(f"not valid YAML: {err}", path) from err
        if not isinstance(loaded, Mapping):
            raise PipelineError("a config file must hold a mapping of sections", path)
        config = merge(config, loaded)
    return validate(config)


def _schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


_NO_DEFAULT = object()


def _default_of(subschema: Mapping, root: Mapping):
    """A property's default: its own, else that of the local definition it refers to
    (``seed: {$ref: "#/definitions/seed"}`` takes the seed definition's 0)."""
    if "default" in subschema:
        return subschema["default"]
    reference = subschema.get("$ref", "")
    if reference.startswith("#/definitions/"):
        return root["definitions"][reference.rsplit("/", 1)[1]].get("default", _NO_DEFAULT)
    return _NO_DEFAULT


def _with_defaults(validator_class, root: Mapping):
    """A validator for the schema ``root`` that fills ``default`` values in, recursing into
    defaults it just filled."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                default = _default_of(subschema, root)
                if default is not _NO_DEFAULT and name not in instance:
                    instance[name] = copy.deepcopy(default)
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def validate(config: Mapping) -> dict:
    """Validate a merged config against the schema, fill defaults, check variants; return it."""
    config = copy.deepcopy(dict(config))
    schema = _schema()
    validator = _with_defaults(jsonschema.Draft202012Validator, schema)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise PipelineError("invalid config:\n" + "\n".join(_describe(err) for err in errors))
    for name, entry in config["variants"].items():
        check_variant(name, entry)
    return config


def _describe(error: jsonschema.ValidationError) -> str:
    key = ".".join(str(part) for part in error.absolute_path) or "(top level)"
    return f"  config key {key}: {error.message}"


def check_variant(name: str, entry: Mapping[str, Any]) -> None:
    """Reject contradictory variant entries, naming the entry and the conflict."""
    problems = []
    if entry["flow"] and entry["prior"] is None:
        problems.append("flow needs prior frames (prior: ext or adj)")
    if entry["twin"] and not entry["flow"]:
        problems.append("a twin network needs flow (its second half predicts flow and mask)")
    if entry["discriminator"] > 0 and entry["output_images"] > 1:
        problems.append("discriminators need output_images 1 (the diversity loss picks among K)")
    if entry["network"] == "pix2pixhd" and entry["output_images"] > 1:
        problems.append("pix2pixhd synthesises one image (output_images 1)")
    if entry["network"] == "pix2pixhd" and entry["norm"] != "instance":
        problems.append("pix2pixhd's generator uses instance norm")
    if entry["network"] == "crn" and entry["residual"] and entry["norm"] != "weight":
        problems.append("ResNeXt refinement modules are weight-normed (norm: weight)")
    if problems:
        raise PipelineError(f"variant {name!r} in config: " + "; ".join(problems))


def section(config: Mapping, *keys: str) -> Any:
    """A config section by path, as a deep copy (what a rule passes to its stage)."""
    node: Any = config
    for key in keys:
        node = node[key]
    return copy.deepcopy(node)
