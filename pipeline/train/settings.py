"""What the train and cluster_features stages read of the config: the one definition of their
``--settings``, which the rules pass (and Snakemake compares for reruns) and which ``--config``
builds by hand. Torch-free, so the Snakefile imports it cheaply."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.errors import PipelineError

__all__ = ["FEATURE_CLUSTERS", "train_settings", "cluster_settings"]

FEATURE_CLUSTERS = 10      # k-means centres per class (thesis-code.md 4)


def train_settings(config: Mapping[str, Any], variant: str) -> dict:
    """What training reads: the variant's entry and the train, losses and weights sections."""
    if variant not in config["variants"]:
        raise PipelineError(f"variant {variant!r} is not in config.yaml's variants "
                            f"({', '.join(sorted(config['variants']))})")
    return {"entry": config["variants"][variant], "train": config["train"], "losses": config["losses"],
            "weights": config["weights"], "label_set": config["labels"]["label_set"]}


def cluster_settings(config: Mapping[str, Any]) -> dict:
    """What cluster_features reads: the number of centres per class and the seed."""
    return {"clusters": FEATURE_CLUSTERS, "seed": config["train"]["seed"]}
