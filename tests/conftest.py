"""Shared fixtures: the repository, its venv's tools, small Cityscapes trees."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def run_snakemake(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run the venv's snakemake on the repository's Snakefile with the venv first on PATH."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    command = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), *args]
    result = subprocess.run(command, cwd=cwd or REPO, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def write_snippet(root: Path, split: str, city: str, seq: int, annotated: int,
                  size: tuple[int, int] = (16, 32), frames: int = 30, index: int = 19) -> None:
    """A real (tiny) snippet: 30 PNG frames and the annotated frame's gtFine label files."""
    rng = np.random.default_rng(seq * 1000 + annotated)
    seq_dir = root / "leftImg8bit_sequence" / split / city
    gt_dir = root / "gtFine" / split / city
    seq_dir.mkdir(parents=True, exist_ok=True)
    gt_dir.mkdir(parents=True, exist_ok=True)
    for frame in range(annotated - index, annotated - index + frames):
        image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        cv2.imwrite(str(seq_dir / f"{city}_{seq:06d}_{frame:06d}_leftImg8bit.png"), image)
    stem = f"{city}_{seq:06d}_{annotated:06d}_gtFine"
    cv2.imwrite(str(gt_dir / f"{stem}_labelIds.png"), np.full(size, 7, np.uint8))
    cv2.imwrite(str(gt_dir / f"{stem}_instanceIds.png"), np.full(size, 26000, np.uint16))


@pytest.fixture
def small_tree(tmp_path: Path) -> Path:
    """Two train cities in both Cityscapes numberings and one val city."""
    root = tmp_path / "cityscapes"
    write_snippet(root, "train", "alpha", 0, 19)
    write_snippet(root, "train", "alpha", 1, 19)
    write_snippet(root, "train", "beta", 0, 294)     # one long sequence, two snippets
    write_snippet(root, "train", "beta", 0, 340)
    write_snippet(root, "val", "gamma", 3, 19)
    write_snippet(root, "val", "gamma", 4, 19)
    return root
