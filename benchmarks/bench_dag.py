"""How long Snakemake takes to build the study's DAG on a tree the size of Cityscapes.

A fake tree of empty files (2975 train snippets of 30 frames, 500 val snippets) is written,
select_subset runs for real (808 train + 128 test snippets), then ``snakemake -n`` builds the
whole DAG. Printed as a ratio to the same on a demo-sized tree (8 train snippets, 4 val; 2 test
videos), measured in the same run as the baseline. Backbone, labeller and flow weights are empty
files and the I3D an empty directory: planning only checks that they exist.

    python benchmarks/bench_dag.py [--quick] [--repeats 2]

The full run writes ~110,000 empty files (about 40 s on two busy cores); ``--quick`` divides
every train city's snippets by 4 (the val split stays whole for its 128 test snippets: ~200
train snippets in the subset, ~40,000 files) and times each DAG once (10-20 s). Both trees
plan every job of the study (all 14 variants); the job count grows with the cities, not the
snippets (the two took about as long on two busy cores: 0.9x-1.1x).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from pipeline.data.fake_tree import TRAIN_COUNTS, VAL_COUNTS, make_fake_tree

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SMALL = {"train": {"synthberg": 4, "pixelstadt": 4}, "val": {"testfurt": 4}}


def snakemake(work: Path, *args: str) -> float:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    start = time.perf_counter()
    result = subprocess.run([str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(work), *args,
                             "--configfile", "override.yaml"], cwd=work, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"snakemake {' '.join(args)} in {work} failed ({result.returncode}):\n"
                 f"{(result.stdout + result.stderr)[-3000:]}")
    return seconds


def prepare(work: Path, counts: dict | None, small: bool) -> None:
    """The fake tree, empty weight files, the override and select_subset. ``small``: the demo-sized
    tree, all its cities and 2 test snippets (1 FVD batch of 2); else the study's four train cities
    and 128 test snippets, config.yaml's FVD batches."""
    root = make_fake_tree(work / "cityscapes", counts)   # config.yaml's 30-frame snippets, gtFine at 19
    weights = work / "weights"
    weights.mkdir()
    for name in ("deeplab.pt", "d2.pkl", "flownet2.ckpt", "vgg19.pth", "mobilenet_v2.pth"):
        (weights / name).touch()
    (weights / "i3d").mkdir()
    override = {
        "data": {"cityscapes_root": str(root)},
        "subset": {"train_cities": None if small else ["aachen", "bremen", "hanover", "zurich"],
                   "test_sequences": 2 if small else 128},
        "labels": {"semantic": {"checkpoint": str(weights / "deeplab.pt")},
                   "instance": {"checkpoint": str(weights / "d2.pkl")}},
        "flow": {"checkpoint": str(weights / "flownet2.ckpt")},
        # Snakemake refuses to plan the train jobs of a backbone without its file.
        "weights": {"vgg19": str(weights / "vgg19.pth"), "mobilenet_v2": str(weights / "mobilenet_v2.pth")},
        "fvd": {"i3d": str(weights / "i3d"), **({"batches": 1, "batch_size": 2} if small else {})},
    }
    (work / "override.yaml").write_text(yaml.safe_dump(override))
    snakemake(work, "select_subset", "--cores", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="train snippets / 4 (val whole), each DAG timed once (about a quarter of the time)")
    parser.add_argument("--repeats", type=int, help="dry runs per tree, the fastest kept (default 2, 1 with --quick)")
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 2)
    counts = {"train": {city: max(1, n // 4) for city, n in TRAIN_COUNTS.items()}, "val": VAL_COUNTS} \
        if args.quick else None
    label = "quarter-train Cityscapes-sized tree" if args.quick else "Cityscapes-sized tree"
    with tempfile.TemporaryDirectory() as tmp:
        small, full = Path(tmp) / "small", Path(tmp) / "full"
        prepare(small, SMALL, small=True)
        start = time.perf_counter()
        prepare(full, counts, small=False)
        setup = time.perf_counter() - start
        baseline = min(snakemake(small, "-n") for _ in range(repeats))
        measured = min(snakemake(full, "-n") for _ in range(repeats))
    print(f"fake {label} + select_subset: {setup:.1f} s")
    print(f"DAG, demo-sized tree (baseline): {baseline:.2f} s")
    print(f"DAG, {label}: {measured:.2f} s  ({measured / baseline:.2f}x the baseline)")


if __name__ == "__main__":
    main()
