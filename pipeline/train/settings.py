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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.config import variant_entry

__all__ = ["FEATURE_CLUSTERS", "RUNTIME_KEYS", "RUNTIME_DEFAULTS", "DISPLAY_KEYS", "train_settings",
           "train_runtime", "split_runtime", "cluster_settings"]

FEATURE_CLUSTERS = 10      # k-means centres per class (thesis-code.md 4)

# train.* keys that change how training runs, not what it computes: a change neither reruns the
# rule nor blocks a resume (a resumed job takes the new values). The defaults are the schema's.
RUNTIME_DEFAULTS = {"checkpoint_minutes": 30, "compile": "auto", "compile_scope": "all", "compile_mode": "default"}
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
    return {"entry": {key: value for key, value in entry.items() if key not in DISPLAY_KEYS},
            "train": train, "losses": losses, "weights": weights, "label_set": config["labels"]["label_set"]}


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
