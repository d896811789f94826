"""How long Snakemake takes to build the study's DAG on a tree the size of Cityscapes.

A fake tree of empty files (2975 train snippets of 30 frames, 500 val snippets) is written,
select_subset runs for real (808 train + 128 test snippets), then ``snakemake -n`` builds the
whole DAG. Printed beside the same on the demo's synthetic-city-sized graph as a baseline.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from pipeline.data.fake_tree import make_fake_tree

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def snakemake(work: Path, *args: str) -> float:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    start = time.perf_counter()
    subprocess.run([str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(work), *args,
                    "--configfile", "override.yaml"], cwd=work, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def prepare(work: Path, counts: dict | None) -> None:
    root = make_fake_tree(work / "cityscapes", counts)
    weights = work / "weights"
    weights.mkdir()
    for name in ("deeplab.pt", "d2.pkl"):
        (weights / name).touch()
    (weights / "i3d").mkdir()
    override = {
        "data": {"cityscapes_root": str(root)},
        "subset": {"train_cities": None if counts else ["aachen", "bremen", "hanover", "zurich"],
                   "test_sequences": 2 if counts else 128},
        "labels": {"semantic": {"checkpoint": str(weights / "deeplab.pt")},
                   "instance": {"checkpoint": str(weights / "d2.pkl")}},
        "fvd": {"i3d": str(weights / "i3d")},
    }
    (work / "override.yaml").write_text(yaml.safe_dump(override))
    snakemake(work, "select_subset", "--cores", "1")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        small, full = Path(tmp) / "small", Path(tmp) / "full"
        prepare(small, {"train": {"synthberg": 4, "pixelstadt": 4}, "val": {"testfurt": 4}})
        start = time.perf_counter()
        prepare(full, None)
        setup = time.perf_counter() - start
        baseline = min(snakemake(small, "-n") for _ in range(2))
        measured = min(snakemake(full, "-n") for _ in range(2))
    print(f"fake full-size tree + select_subset: {setup:.1f} s")
    print(f"DAG, demo-sized tree (baseline):      {baseline:.2f} s")
    print(f"DAG, Cityscapes-sized tree:           {measured:.2f} s  ({measured / baseline:.2f}x the baseline)")


if __name__ == "__main__":
    main()
