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


def truth_as_stage_outputs(city_root: Path, subset_path: Path, work: Path, split: str) -> dict[str, list[Path]]:
    """Write the synthetic city's true labels and flow in the label and flow stages' formats.

    Lets the packing, training and synthesis tests run on exact inputs without the labellers.
    """
    import h5py

    from pipeline.data.subset import load_subset
    from pipeline.flow.convention import CONVENTION
    from pipeline.io import write_json

    subset = load_subset(subset_path)
    folder = subset.get("split_dirs", {}).get(split, split)     # the held-out split lives in val
    outputs: dict[str, list[Path]] = {"semantic": [], "instance": [], "flow": []}
    for city, ids in subset["splits"][split].items():
        semantic = work / "labels" / "semantic" / split / city
        instance = work / "labels" / "instance" / split / city
        semantic.mkdir(parents=True, exist_ok=True)
        instance.mkdir(parents=True, exist_ok=True)
        flow_path = work / "flow" / split / f"{city}.h5"
        flow_path.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(flow_path, "w") as flow_file:
            flow_file.attrs["convention"] = CONVENTION      # the truth's flow is in the flow stage's direction
            flow_file.attrs["provenance"] = '{"backend": "truth", "weights_real": true}'
            for snippet_id in ids:
                truth = np.load(city_root / "truth" / folder / city / f"{snippet_id}.npz")
                seq, annotated = snippet_id.split("_")[-2:]
                first = int(annotated) - subset["annotated_index"]
                for t in range(subset["frames"]):
                    stem = f"{city}_{seq}_{first + t:06d}"
                    cv2.imwrite(str(semantic / f"{stem}_labelIds.png"), truth["labels"][t])
                    cv2.imwrite(str(instance / f"{stem}_instanceIds.png"), truth["instances"][t].astype(np.uint16))
                flow_file[f"flow/{snippet_id}"] = truth["flow"][1:].astype(np.float16)
        for folder, backend in ((semantic, "truth"), (instance, "truth")):
            write_json(folder / "provenance.json", {"backend": backend, "weights_real": True})
        outputs["semantic"].append(semantic)
        outputs["instance"].append(instance)
        outputs["flow"].append(flow_path)
    return outputs


def make_packed_city(work: Path, height: int = 32, width: int = 64, frames: int = 8, annotated: int = 5,
                     train: int = 2, val: int = 2, resolutions=((16, 32), (32, 64))) -> dict[str, Path]:
    """A tiny synthetic city, its subset and both splits packed from its true labels and flow."""
    from pipeline.data.subset import select_subset
    from pipeline.data.synthetic import generate
    from pipeline.io import write_json
    from pipeline.pack.writer import PackInputs, pack

    city_root = work / "city"
    generate(city_root, {"train": {"synthberg": train}, "val": {"testfurt": val}}, seed=0,
             height=height, width=width, frames=frames, annotated=annotated)
    subset_path = work / "subset.json"
    write_json(subset_path, select_subset(city_root, {"train_cities": None, "test_sequences": val,
                                                      "test_split": "val", "seed": 0}, frames, annotated))
    settings = {"pack": {"resolutions": [list(r) for r in resolutions], "compression": "lz4",
                         "chunk_frames": 1}, "label_set": "train19_other"}
    packed = {"root": city_root, "subset": subset_path}
    for split in ("train", "val"):
        outputs = truth_as_stage_outputs(city_root, subset_path, work, split)
        inputs = PackInputs.from_paths(city_root, outputs["semantic"], outputs["instance"], outputs["flow"])
        packed[split] = work / "data" / f"{split}.h5"
        pack(subset_path, split, inputs, packed[split], settings)
    return packed


@pytest.fixture(scope="session")
def packed_city(tmp_path_factory) -> dict[str, Path]:
    return make_packed_city(tmp_path_factory.mktemp("packed_city"))


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test: other jobs share the 2 cores, and oversubscribed OpenMP
    threads are many times slower. Modules of small networks take it with ``pytestmark``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
