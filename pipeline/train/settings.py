"""What the train and cluster_features stages read of the config: the one definition of their
``--settings``, which the rules pass (and Snakemake compares for reruns) and which ``--config``
builds by hand. Torch-free, so the Snakefile imports it cheaply.

A variant's training settings hold only what can change *its* result: its own network's
schedule (``train.crn`` or ``train.pix2pixhd``), the discriminator settings only with
discriminators, the window and epoch fraction only for prior-frame variants (the gtFine choice
only for image variants), the loss weights of the terms it trains with, its backbone's file, and
its entry without the table's columns (``index``, ``thesis_fvd``). So a change to another
variant's settings neither retrains it nor blocks its resume. What changes how but not what is
computed (``RUNTIME_KEYS``: the checkpoint interval, torch.compile) is not in them at all:
``train_runtime`` gives it, and the rule passes it as a resource, which Snakemake does not compare;
nor is ``train.retries``, which only Snakemake reads.

``check_train_settings`` and ``check_cluster_settings`` refuse, before any work, settings that
lack a key these functions put in (a hand-written ``--settings``, or one of an older config),
naming each missing key by its path; keys they do not know are accepted (a newer config's).
"""

from __future__ import annotations

import copy
import functools
import sys
from collections.abc import Mapping
from typing import Any

import yaml

from pipeline.config import DEFAULT_CONFIG, SCHEMA_PATH, load_config, variant_entry
from pipeline.errors import PipelineError

__all__ = ["FEATURE_CLUSTERS", "RUNTIME_KEYS", "RUNTIME_DEFAULTS", "DISPLAY_KEYS", "train_settings",
           "train_runtime", "split_runtime", "cluster_settings", "check_train_settings", "check_cluster_settings"]

FEATURE_CLUSTERS = 10      # k-means centres per class (thesis-code.md 4)

# train.* keys that change how training runs, not what it computes: a change neither reruns the
# rule nor blocks a resume (a resumed job takes the new values). The defaults are the schema's.
RUNTIME_DEFAULTS = {"checkpoint_minutes": 30, "compile": "auto", "compile_scope": "all", "compile_mode": "auto"}
RUNTIME_KEYS = tuple(RUNTIME_DEFAULTS)
# train.* keys only the workflow reads (how often Snakemake resubmits a job): not training's.
WORKFLOW_KEYS = ("retries",)
# Variant keys for the table only (its row number and the thesis's FVD): nothing trains on them.
DISPLAY_KEYS = ("index", "thesis_fvd")
NETWORKS = ("crn", "pix2pixhd")


def train_settings(config: Mapping[str, Any], variant: str) -> dict:
    """What can change ``variant``'s training result: its entry, and of the train, losses and
    weights sections the parts it reads (see the module docstring). Keys this function does not
    know stay in, so a new setting retrains rather than being dropped."""
    entry = variant_entry(config, variant)
    network, backbone = entry["network"], entry["perceptual"]
    gan, prior = entry["discriminator"] > 0, entry["prior"] is not None

    unread = set(RUNTIME_KEYS) | set(WORKFLOW_KEYS) | (set(NETWORKS) - {network})
    unread |= set() if gan else {"discriminator"}
    unread |= {"image_data"} if prior else {"window", "prior_epoch_fraction"}
    if len(config["train"][network]["stages"]) < 2:       # the generator never grows
        unread.add("keep_optimizer_state_on_grow")
    train = {key: value for key, value in config["train"].items() if key not in unread}
    if "model_overrides" in train:
        unused = ({"discriminator"} if not gan else set()) | ({"encoder"} if not entry["feature_encoder"] else set())
        train["model_overrides"] = {key: value for key, value in train["model_overrides"].items() if key not in unused}

    unused_losses = set() if backbone else {"perceptual", "perceptual_layer_divisors"}
    unused_losses |= set() if gan else {"feature_matching"}
    unused_losses |= set() if entry["flow"] else {"flow", "warp"}
    losses = {key: value for key, value in config["losses"].items() if key not in unused_losses}

    # The weights section is one file a backbone and allow_random: only this backbone's matter.
    weights = {}
    if backbone:
        weights = {backbone: config["weights"][backbone], "allow_random": config["weights"]["allow_random"]}
    # A copy: the lists and mappings must not alias the config's, which a caller may still use.
    return copy.deepcopy({"entry": {key: value for key, value in entry.items() if key not in DISPLAY_KEYS},
                          "train": train, "losses": losses, "weights": weights,
                          "label_set": config["labels"]["label_set"]})


def train_runtime(config: Mapping[str, Any]) -> dict:
    """How training runs (``RUNTIME_KEYS`` of the train section): not part of its settings."""
    return {key: config["train"].get(key, default) for key, default in RUNTIME_DEFAULTS.items()}


def split_runtime(settings: Mapping[str, Any]) -> tuple[dict, dict]:
    """(settings without the runtime keys, the runtime keys found in ``settings["train"]``):
    settings built by hand or by an older ``train_settings`` may still carry them."""
    train = settings["train"]
    runtime = {key: train[key] for key in RUNTIME_KEYS if key in train}
    return ({**settings, "train": {key: value for key, value in train.items() if key not in RUNTIME_KEYS}},
            runtime)


def cluster_settings(config: Mapping[str, Any]) -> dict:
    """What cluster_features reads: the number of centres per class and the seed."""
    return {"clusters": FEATURE_CLUSTERS, "seed": config["train"]["seed"]}


# The shape check. The keys it requires are not a list written here, which would drift as the
# training code comes to read a key (and a test could not tell which list is complete): they are
# what train_settings and cluster_settings themselves return, the functions whose output the rule
# passes, so a key they come to put in is required at once and one they drop is not. train_settings
# runs on the shipped config.yaml as load_config reads it (the schema's defaults filled in: every
# config the rule builds settings from has those keys, for the schema requires or defaults them),
# with the given entry as the variant's and the given stages as its network's: what the key set
# depends on (the entry's network, discriminators, prior frames, flow, backbone; whether there is
# a second stage) is the settings' own, so a user's variant or schedule is judged by itself. What
# that config cannot tell, the schema does: the keys of an entry and of a stage are those it
# requires (the ones it only defaults, output_images_stage2 and max_steps, are read with a default).
# tests/test_train_settings_cli.py checks every shipped variant's settings, of config.yaml and of
# the demo override, pass.
REGENERATE = {
    "train": "the train rule's --settings are pipeline.train.settings.train_settings of the config; "
             "regenerate them, or give --config config.yaml [overrides] instead",
    "cluster_features": "the cluster_features rule's --settings are pipeline.train.settings.cluster_settings "
                        "of the config; regenerate them, or give --config config.yaml [overrides] instead",
}


def check_train_settings(settings: Any, variant: str, given: str = "--settings") -> None:
    """Refuse ``settings`` for ``variant`` unless they hold every key ``train_settings`` gives
    (see above), naming each missing key by its path (``train.crn.stages``); extra keys pass.
    ``given`` names the settings in the message. Reads ``settings``, changes nothing."""
    _require_mapping(settings, given, "train")
    problems = _compare(settings, {"entry": {}})
    entry = settings.get("entry")
    if not problems:
        problems = [("lacks", f"entry.{key}") for key in _schema_required("variant")
                    if key not in DISPLAY_KEYS and key not in entry]
    if not problems:
        reference = _reference_train_settings(entry, settings.get("train"), variant, given)
        if reference is None:
            return
        problems = _compare(settings, reference) or _stage_problems(settings, entry["network"])
    if problems:
        network = f", a {entry['network']} variant" if isinstance(entry, Mapping) and "network" in entry else ""
        raise PipelineError(f"{given} {_describe(problems)} (variant {variant}{network}): {REGENERATE['train']}")


def check_cluster_settings(settings: Any, given: str = "--settings") -> None:
    """Refuse ``settings`` unless they hold every key ``cluster_settings`` gives, naming the
    missing ones; extra keys pass."""
    _require_mapping(settings, given, "cluster_features")
    config = _shipped_config()
    problems = _compare(settings, cluster_settings(config)) if config is not None else []
    if problems:
        raise PipelineError(f"{given} {_describe(problems)}: {REGENERATE['cluster_features']}")


def _require_mapping(value: Any, given: str, stage: str) -> None:
    if not isinstance(value, Mapping):
        raise PipelineError(f"{given} is {_kind(value)}, not a JSON object: {REGENERATE[stage]}")


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


Problem = tuple[str, str]     # ("lacks", key path) or ("is", what is wrong with the value at a key path)


def _compare(given: Mapping, reference: Mapping, prefix: str = "") -> list[Problem]:
    """What ``given`` lacks of ``reference``'s keys, mappings walked into (lists are values)."""
    problems: list[Problem] = []
    for key, value in reference.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in given:
            problems.append(("lacks", path))
        elif isinstance(value, Mapping):
            if isinstance(given[key], Mapping):
                problems += _compare(given[key], value, path)
            else:
                problems.append(("is", f'"{path}" is {_kind(given[key])}, not an object'))
    return problems


def _describe(problems: list[Problem]) -> str:
    """``lacks "losses" and "train.crn.stages"; "train.window" is ...``"""
    missing = [f'"{path}"' for kind, path in problems if kind == "lacks"]
    parts = [f"lacks {', '.join(missing[:-1])} and {missing[-1]}" if len(missing) > 1 else f"lacks {missing[0]}"
             ] if missing else []
    return "; ".join(parts + [text for kind, text in problems if kind == "is"])


def _stage_problems(settings: Mapping, network: str) -> list[Problem]:
    """A network's stages: a non-empty list, each stage with the keys the schema requires of one."""
    path = f"train.{network}.stages"
    stages = settings["train"][network]["stages"]
    if not isinstance(stages, list):
        return [("is", f'"{path}" is {_kind(stages)}, not a list of stages')]
    if not stages:
        return [("is", f'"{path}" is empty: a network trains through one stage at least')]
    problems: list[Problem] = []
    for index, stage in enumerate(stages):
        if not isinstance(stage, Mapping):
            problems.append(("is", f'"{path}[{index}]" is {_kind(stage)}, not an object'))
            continue
        problems += [("lacks", f"{path}[{index}].{key}") for key in _schema_required("stage") if key not in stage]
    return problems


def _reference_train_settings(entry: Mapping, train: Any, variant: str, given: str) -> dict | None:
    """``train_settings`` of the shipped config with ``entry`` as ``variant``'s and the given
    stages of its network (their number decides whether the generator grows); None where the
    shipped config cannot be read."""
    config = _shipped_config()
    if config is None:
        return None
    network, backbone = entry["network"], entry["perceptual"]
    if network not in NETWORKS:
        raise PipelineError(f'{given} "entry.network" is {network!r}, not one of {", ".join(NETWORKS)} '
                            f"(variant {variant}): {REGENERATE['train']}")
    if backbone is not None and backbone not in config["weights"]:
        backbones = ", ".join(key for key in config["weights"] if key != "allow_random")
        raise PipelineError(f'{given} "entry.perceptual" is {backbone!r}, not null or one of {backbones} '
                            f"(variant {variant}): {REGENERATE['train']}")
    config["variants"] = {variant: dict(entry)}
    schedule = train.get(network) if isinstance(train, Mapping) else None
    if isinstance(schedule, Mapping) and isinstance(schedule.get("stages"), list):
        config["train"][network]["stages"] = list(schedule["stages"])
    try:
        return train_settings(config, variant)
    except (KeyError, TypeError, AttributeError) as err:    # an entry's values of the wrong type
        raise PipelineError(f'{given} "entry" is not a variant entry of a config ({err.__class__.__name__}: '
                            f"{err}; variant {variant}): {REGENERATE['train']}") from err


def _shipped_config() -> dict | None:
    """A copy of the shipped config.yaml, validated (defaults filled in); None, with a warning,
    where it cannot be read (the check then has no shape to compare with, and lets the settings
    through as before)."""
    config = _load_shipped_config()
    return None if config is None else copy.deepcopy(config)


@functools.lru_cache(maxsize=1)
def _load_shipped_config() -> dict | None:
    try:
        return load_config([DEFAULT_CONFIG])
    except PipelineError as err:
        print(f"warning: --settings not checked for missing keys: the shipped config does not load ({err})",
              file=sys.stderr)
        return None


@functools.lru_cache(maxsize=None)
def _schema_required(definition: str) -> tuple[str, ...]:
    """The keys the config schema requires of a ``definition`` (``variant``, ``stage``)."""
    return tuple(yaml.safe_load(SCHEMA_PATH.read_text())["definitions"][definition]["required"])
