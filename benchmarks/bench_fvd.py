"""The FVD stage for all variants: real embeddings cached once vs recomputed per variant; I3D videos/s.

The stage per variant is: embed the synthesised videos (3 crops), score them against the real
embeddings (thesis protocol, pooled FVD, bootstrap). With caching (rule ``embed_real``) the real
videos are embedded once; without it every variant embeds them again. Both designs run here in
one process on the same files, through the stage functions (HDF5 in, ``.npz`` and JSON out),
with the I3D loaded once per design; the time to load it is measured separately and added as
one load per job for the per-variant-job reading (a job each for embed_real and every variant
when cached, a job per variant otherwise). The goal: cached at most 0.55x of recomputed
(the ideal with 14 variants is 15/28 = 0.536x: the real set is one of 15 embedded sets, not 28).

A narrow local I3D (:mod:`pipeline.fvd.i3d`, seeded random weights) keeps this to a minute or
two on a laptop CPU; the arithmetic per video scales with the width squared, so the real I3D
(width 1) embeds about ``width**-2`` times fewer videos per second. Run with ``--help`` for sizes.

This process imports TensorFlow: it never imports torch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pipeline.fvd import embed as embed_stage  # noqa: E402
from pipeline.fvd import i3d as i3d_stage  # noqa: E402
from pipeline.fvd.score import score_embeddings  # noqa: E402
from pipeline.fvd.videos import write_videos  # noqa: E402
from pipeline.io import write_json  # noqa: E402


def make_videos(work: Path, variants: int, videos: int, frames: int, height: int, width: int) -> list[Path]:
    """Real videos and ``variants`` synthesised sets (the real ones plus seeded noise)."""
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (videos, frames, height // 8, width // 8, 3))
    real = coarse.repeat(8, axis=2).repeat(8, axis=3).astype(np.uint8)
    paths = [work / "real.h5"]
    write_videos(paths[0], real, {"stage": "bench"})
    for index in range(1, variants + 1):
        noise = rng.integers(-8 * index, 8 * index + 1, real.shape)
        paths.append(work / f"v{index:02d}.h5")
        write_videos(paths[-1], np.clip(real + noise, 0, 255).astype(np.uint8), {"stage": "bench"})
    return paths


class Clock:
    """Wall-clock and CPU seconds (all threads of this process) of the calls it times.

    CPU time is printed beside wall time because other jobs may share the CPUs: it counts this
    process's work only, so the ratio stays meaningful on a busy machine.
    """

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def __call__(self, function, *args, **kwargs) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        function(*args, **kwargs)
        self.wall += time.perf_counter() - wall
        self.cpu += time.process_time() - cpu


def score(work: Path, real_npz: Path, fake_npz: Path, settings: dict, name: str) -> None:
    write_json(work / f"{name}.json", score_embeddings(real_npz, fake_npz, settings, variant=name))


def run_designs(work: Path, paths: list[Path], i3d_dir: Path, settings: dict, embed) -> dict[str, Clock]:
    """Time both designs, the I3D loaded once, variant by variant in turn (so that a change in
    the machine's load hits both alike). Cached = embed_real + fake embeddings + scores."""
    real, fakes = paths[0], paths[1:]
    clocks = {name: Clock() for name in ("embed_real", "embed_fake", "score", "recomputed")}
    clocks["embed_real"](embed_stage.embed_file, real, i3d_dir, work / "real.npz", settings, embed)
    for fake in fakes:
        clocks["embed_fake"](embed_stage.embed_file, fake, i3d_dir, work / f"{fake.stem}.npz", settings, embed)
        clocks["score"](score, work, work / "real.npz", work / f"{fake.stem}.npz", settings, fake.stem)
        clocks["recomputed"](embed_stage.embed_file, real, i3d_dir, work / f"real_{fake.stem}.npz", settings, embed)
        clocks["recomputed"](embed_stage.embed_file, fake, i3d_dir, work / f"{fake.stem}_again.npz", settings, embed)
        clocks["recomputed"](score, work, work / f"real_{fake.stem}.npz", work / f"{fake.stem}_again.npz",
                             settings, f"{fake.stem}_again")
    clocks["cached"] = Clock()
    for part in ("embed_real", "embed_fake", "score"):
        clocks["cached"].wall += clocks[part].wall
        clocks["cached"].cpu += clocks[part].cpu
    # The designs must agree: the cache changes the time, not the numbers.
    for fake in fakes:
        first = json.loads((work / f"{fake.stem}.json").read_text())["fvd_thesis"]
        again = json.loads((work / f"{fake.stem}_again.json").read_text())["fvd_thesis"]
        assert abs(first - again) <= 1e-6 * max(1.0, abs(first)), (fake, first, again)
    return clocks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", type=int, default=14)
    parser.add_argument("--videos", type=int, default=16, help="videos per set (batches x 16)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--i3d-width", type=float, default=0.125, help="width multiplier of the local I3D")
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    settings = {"frames": args.frames, "height": args.height, "width": args.width, "batch_size": 16,
                "batches": args.videos // 16, "crops": ["left", "center", "right"], "bootstrap": args.bootstrap,
                "seed": 0}
    print(f"sizes: {args.variants} variants, {args.videos} videos x {args.frames} frames of "
          f"{args.height}x{args.width}, 3 crops resized to 224x224, local I3D width {args.i3d_width}, "
          f"bootstrap {args.bootstrap}, {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_fvd_") as tmp:
        work = Path(tmp)
        i3d_dir = work / "i3d"
        build_start = time.perf_counter()
        i3d_stage.save_local_i3d(i3d_dir, args.i3d_width, 0)
        build = time.perf_counter() - build_start
        paths = make_videos(work, args.variants, args.videos, args.frames, args.height, args.width)
        load_start = time.perf_counter()
        embed = embed_stage.load_i3d(i3d_dir)
        load = time.perf_counter() - load_start
        # Warm-up at the timed shapes: the first call of a shape sets up oneDNN's kernels.
        embed_stage.embed_videos(np.zeros((16, args.frames, args.height, args.width, 3), np.uint8), embed, "center")
        clocks = run_designs(work, paths, i3d_dir, settings, embed)
    cached, recomputed = clocks["cached"], clocks["recomputed"]
    sets = args.variants + 1
    per_video = clocks["embed_fake"].wall / (args.variants * args.videos * 3)
    print(f"build local I3D: {build:.1f} s; load it (hub.load): {load:.2f} s")
    print(f"I3D embedding on the CPU: {1 / per_video:.2f} videos/s (one crop of {args.frames} frames at 224x224, "
          f"resize included; {per_video * 1000:.0f} ms a video; wall clock)")
    print(f"scoring: {clocks['score'].wall / args.variants:.3f} s a variant (batch FVDs, pooled FVD, "
          f"{args.bootstrap} bootstrap resamples x 3 crops)")
    print(f"FVD stage, {args.variants} variants, real embeddings cached:     "
          f"{cached.wall:8.1f} s wall {cached.cpu:8.1f} s CPU")
    print(f"FVD stage, {args.variants} variants, real embeddings recomputed: "
          f"{recomputed.wall:8.1f} s wall {recomputed.cpu:8.1f} s CPU")
    print(f"ratio cached / recomputed: {cached.wall / recomputed.wall:.3f}x wall, "
          f"{cached.cpu / recomputed.cpu:.3f}x CPU (goal <= 0.55x; ideal {sets}/{2 * args.variants} = "
          f"{sets / (2 * args.variants):.3f}x)")
    print(f"ratio with one I3D load per job (embed_real + a job per variant): "
          f"{(cached.wall + sets * load) / (recomputed.wall + args.variants * load):.3f}x wall")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
