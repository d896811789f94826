"""Training step time per variant: the thesis's way (fp32, eager) against the fast path.

On a GPU the fast path is bf16 autocast, ``torch.compile`` of the generator and fused Adam
(what ``pipeline.train.loop`` turns on there); both are timed in one run and printed as a ratio.
On the CPU only the fp32 step exists (the loop keeps it exact): its steps/s is printed for every
variant at a small size, and an estimate of the study's GPU-days follows from GPU step times.

    python benchmarks/bench_train.py                 # CPU: every variant at 64x128, width / 8
    python benchmarks/bench_train.py --full          # GPU: 256x512 CRN, 512x1024 pix2pixHD, full width
"""

from __future__ import annotations

import argparse
import copy
import time
from functools import partial

import torch

from pipeline.config import DEFAULT_CONFIG, load_config
from pipeline.data.labels import num_channels
from pipeline.models.edges import edge_map
from pipeline.train.__main__ import train_settings
from pipeline.train.loop import build_models
from pipeline.train.schedule import plan_stages
from pipeline.train.step import Optimizers, train_window

# Thesis 5.2: 55.8 GPU-days on V100s for all 14 variants.
THESIS_GPU_DAYS = 55.8


def synthetic_window(frames: int, height: int, width: int, labels: int, device) -> dict:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, labels, (1, frames, height, width), generator=generator)
    one_hot = torch.nn.functional.one_hot(ids, labels).permute(0, 1, 4, 2, 3).float()
    instances = (ids * 1000).to(torch.int32)
    return {
        "image": torch.rand(1, frames, 3, height, width, generator=generator).to(device),
        "labels": one_hot.to(device),
        "instances": instances.to(device),
        "edge": edge_map(instances.flatten(0, 1)).view(1, frames, 1, height, width).to(device),
        "flow": torch.randn(1, frames, 2, height, width, generator=generator).to(device),
    }


def time_steps(models, optimizers, window, repeats: int) -> float:
    train_window(models, optimizers, window)            # warm-up (and compilation)
    if window["image"].is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        train_window(models, optimizers, window)
    if window["image"].is_cuda:
        torch.cuda.synchronize()
    frames = window["image"].shape[1] - (1 if models.entry["flow"] else 0)
    return (time.perf_counter() - start) / (repeats * frames)


def prepare(settings, plan, device, fast: bool):
    torch.manual_seed(0)
    models = build_models(settings["entry"], settings, plan)
    for module in (models.generator, models.criteria, models.encoder, models.discriminators):
        if module is not None:
            module.to(device)
    adam = partial(torch.optim.Adam, fused=True) if fast else torch.optim.Adam
    generator = adam(models.generator_parameters(), lr=1e-4)
    discriminator = adam(models.discriminators.parameters(), lr=1e-4) if models.discriminators else None
    autocast = partial(torch.autocast, "cuda", dtype=torch.bfloat16) if fast else None
    if fast:
        models.compiled = torch.compile(models.generator)
    return models, Optimizers(generator, discriminator, 30.0, autocast)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="thesis sizes and widths (a GPU)")
    parser.add_argument("--variants", nargs="*", help="default: all of config.yaml")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = load_config([DEFAULT_CONFIG])
    config["weights"]["allow_random"] = True
    if not args.full:
        config["train"]["model_overrides"] = {"generator": {"width_divisor": 8}, "discriminator": {"width_divisor": 4}}
    labels = num_channels(config["labels"]["label_set"])
    total_fp32 = total_fast = 0.0
    print(f"device: {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}; "
          f"{'thesis sizes' if args.full else '64x128, widths / 8'}; seconds per training step (one frame)")
    for name in args.variants or sorted(config["variants"]):
        settings = train_settings(copy.deepcopy(config), name)
        plan = plan_stages(settings["entry"], config["train"])[0]
        size = (plan.height, plan.width) if args.full else (64, 128)
        plan = type(plan)(plan.index, *size, plan.epochs, None, plan.output_images, plan.decay)
        frames = (3 if settings["entry"]["prior"] else 1) + (1 if settings["entry"]["flow"] else 0)
        window = synthetic_window(frames, *size, labels, device)
        eager = time_steps(*prepare(settings, plan, device, fast=False), window, args.repeats)
        line = f"{name} {settings['entry']['network']:9s} {size[0]}x{size[1]}  fp32 eager {eager:.4f} s ({1 / eager:6.2f} it/s)"
        if device.type == "cuda":
            fast = time_steps(*prepare(settings, plan, device, fast=True), window, args.repeats)
            line += f"   bf16+compile+fused {fast:.4f} s   speed-up {eager / fast:.2f}x"
            total_fp32, total_fast = total_fp32 + eager, total_fast + fast
        print(line, flush=True)
    if device.type == "cuda" and args.full:
        print(f"sum of step times over variants: fp32 {total_fp32:.3f} s, fast {total_fast:.3f} s; "
              f"the thesis's {THESIS_GPU_DAYS} GPU-days scale to about {THESIS_GPU_DAYS * total_fast / total_fp32:.1f}")


if __name__ == "__main__":
    main()
