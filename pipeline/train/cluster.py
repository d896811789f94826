"""cluster_features: the per-class k-means bank of a feature-encoder variant (thesis-code.md 4).

After training, the trained encoder runs over the training frames (on the GPU where there is
one, the frames read ahead as training reads them: the study's 24,240 at 512x1024 took ~0.45 s
each on 2 CPU cores); each region's mean feature (tagged with its class) is collected and
clustered per class (10 clusters, seeded). Synthesis draws one centre per class from this bank.
A rule of its own, so it reruns alone.

Usage: ``python -m pipeline.train.cluster --model model.pt --data train.h5 --output clusters.pt --settings JSON
[--device auto]``
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from pipeline.cli import add_settings_arguments, read_settings, run_main
from pipeline.device import pick_device
from pipeline.errors import PipelineError
from pipeline.io import atomic_path
from pipeline.models.encoder import cluster_features, region_means
from pipeline.pack.dataset import FrameDataset
from pipeline.provenance import code_version, provenance
from pipeline.train.checkpoint import load_trained
from pipeline.train.loop import make_loader
from pipeline.train.settings import check_cluster_settings, cluster_settings

__all__ = ["feature_bank"]


@torch.inference_mode()
def feature_bank(model_path: str | Path, data_path: str | Path, clusters: int, seed: int,
                 frames: str = "all", device: str = "auto") -> dict:
    device = pick_device(device)
    models, checkpoint = load_trained(model_path, device)
    if models.encoder is None:
        raise PipelineError(f"variant {checkpoint['variant']!r} has no feature encoder", model_path)
    dataset = FrameDataset(data_path, (checkpoint["height"], checkpoint["width"]),
                           label_set=checkpoint["label_set"], frames=frames)
    means, classes = [], []
    loader = make_loader(dataset, list(range(len(dataset))), device, seed)
    for sample in tqdm(loader, desc="encoder features", unit="frame"):
        image, instances, labels = (sample[key][None].to(device) for key in ("image", "instances", "labels"))
        region_mean, region_class = region_means(models.encoder(image, instances), instances, labels)
        means.append(region_mean.cpu())
        classes.append(region_class.cpu())
    bank = cluster_features(torch.cat(means), torch.cat(classes), clusters, seed)
    return {"bank": bank, "variant": checkpoint["variant"], "frames": len(dataset)}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.train.cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--device", default="auto", help="auto (cuda if present), cpu or cuda")
    add_settings_arguments(parser)
    args = parser.parse_args(argv)
    settings = read_settings(args, cluster_settings)
    if args.settings is not None:        # --config built them with cluster_settings itself
        check_cluster_settings(settings)    # a key missing is named before the model is read
    result = feature_bank(args.model, args.data, settings["clusters"], settings["seed"], device=args.device)
    result["provenance"] = provenance("cluster_features", settings, code_version("pipeline.train.cluster"),
                                      settings["seed"], model=args.model, data=args.data)
    with atomic_path(args.output, suffix=".pt") as tmp:
        torch.save(result, tmp)


if __name__ == "__main__":
    run_main(main)
