"""Parameter counts of the 14 variants next to the thesis's figures, and forward+backward time.

    python benchmarks/bench_models.py [--config config.yaml] [--no-time] [--device cpu|cuda]
        [--height 32 --width 64 --width-divisor 8 --repeats 5 --threads 1]

Counts are taken at 256x512 and 512x1024 with 20 label channels on the meta device (nothing is
allocated). Thesis figures (ch. 4.5.2): CRN ~90 M, ~60 M with ResNeXt modules, pix2pixHD global
generator ~182 M, twin networks about double; derived from the thesis code at 256x512: ~98 M and
~59 M (thesis-code.md §3). Each variant's generator forward and backward is timed at a small size
and printed as a ratio to variant 2 (the plain weight-normed CRN) measured in the same run (its
own row is that measurement, 1.00); ``--no-time`` prints the counts only (instant).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.models.build import build_generator, input_channels  # noqa: E402

LABELS = 20
THESIS = {("crn", False, False): "~90 M (code: ~98 M)", ("crn", True, False): "~60 M (code: ~59 M)",
          ("pix2pixhd", True, False): "182 M"}


def thesis_figure(entry: dict) -> str:
    base = THESIS.get((entry["network"], bool(entry["residual"]) or entry["network"] == "pix2pixhd", False), "")
    return f"2 x {base.split(' (')[0]}" if entry["twin"] else base


def count(entry: dict, height: int, width: int, labels: int = LABELS) -> int:
    with torch.device("meta"):  # nothing allocated
        generator = build_generator(entry, labels, height, width)
    return sum(p.numel() for p in generator.parameters())


def small_inputs(entry: dict, height: int, width: int, device: str) -> dict[str, torch.Tensor]:
    channels = input_channels(entry, LABELS)
    names = ("labels", "edge", "features", "prior_labels", "prior_images")
    return {name: torch.rand(1, channels[name], height, width, device=device) for name in names if channels[name]}


def time_step(entry: dict, args: argparse.Namespace) -> float:
    torch.manual_seed(0)
    generator = build_generator(entry, LABELS, args.height, args.width, width_divisor=args.width_divisor)
    generator = generator.to(args.device)
    inputs = small_inputs(entry, args.height, args.width, args.device)
    times = []
    for _ in range(args.repeats + 1):  # the first pass warms up
        start = time.perf_counter()
        generator(inputs)["image"].mean().backward()
        if args.device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "config.yaml"))
    parser.add_argument("--no-time", dest="time", action="store_false",
                        help="parameter counts only: skip timing forward+backward")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--height", type=int, default=32)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--width-divisor", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1: steadier on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = yaml.safe_load(Path(args.config).read_text())["variants"]
    entries = sorted(variants.items(), key=lambda item: item[1]["index"])
    baseline = time_step(next(e for _, e in entries if e["index"] == 2), args) if args.time else None
    header = f"{'variant':<8} {'net':<10} {'inputs':>6} {'256x512':>10} {'512x1024':>10}  {'thesis':<22}"
    print(header + (f" {'fwd+bwd s':>10} {'x v02':>6}" if args.time else ""))
    for name, entry in entries:
        line = (f"{name:<8} {entry['network']:<10} {input_channels(entry, LABELS)['generator']:>6} "
                f"{count(entry, 256, 512) / 1e6:>9.2f}M {count(entry, 512, 1024) / 1e6:>9.2f}M  "
                f"{thesis_figure(entry):<22}")
        if args.time:
            seconds = baseline if entry["index"] == 2 else time_step(entry, args)
            line += f" {seconds:>10.4f} {seconds / baseline:>6.2f}"
        print(line, flush=True)
    pix2pixhd = next(e for _, e in entries if e["network"] == "pix2pixhd" and not e["twin"])
    print(f"pix2pixHD global generator at 512x1024: {count(pix2pixhd, 512, 1024, 35) / 1e6:.2f}M with "
          f"pix2pixHD's 39 inputs (35 label ids + edge + 3 features), "
          f"{count(pix2pixhd, 512, 1024) / 1e6:.2f}M with the thesis's 24 (20 labels + edge + 3 features)")


if __name__ == "__main__":
    main()
