"""A small tree of the pack stage's inputs, written in the graph's formats (tests and benchmarks).

Frames in the Cityscapes layout (``leftImg8bit_sequence``), per-city semantic and instance label
directories with ``provenance.json`` (the label stages' outputs) and per-city flow files
(``flow/{snippet_id}`` [T-1, H, W, 2], the flow stage's output), plus ``subset.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import h5py
import numpy as np

from pipeline.data.cityscapes import Snippet
from pipeline.flow.convention import CONVENTION

__all__ = ["PackTree", "make_pack_tree", "textured_frame"]

# unlabeled and static (no train id), road, sidewalk, building, pole, vegetation, sky
STUFF_IDS = (0, 4, 7, 8, 11, 17, 21, 23)
THING_IDS = (24, 26)                    # person, car


@dataclass
class PackTree:
    root: Path
    subset: Path
    split: str
    snippets: list[Snippet]
    semantic: list[Path] = field(default_factory=list)
    instance: list[Path] = field(default_factory=list)
    flow: list[Path] = field(default_factory=list)

    def label_path(self, snippet: Snippet, t: int, kind: str) -> Path:
        """The label PNG of frame ``t``; ``kind`` is ``labelIds`` or ``instanceIds``."""
        folders = self.semantic if kind == "labelIds" else self.instance
        folder = next(p for p in folders if p.name == snippet.city)
        number = snippet.frame_numbers[t]
        return folder / snippet.label_name(number, kind)

    def flow_file(self, snippet: Snippet) -> Path:
        return next(p for p in self.flow if p.stem == snippet.city)


def textured_frame(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A street-like RGB frame: flat regions, smooth shading, fine texture and sensor noise."""
    regions = cv2.resize(rng.integers(0, 12, (6, 12)).astype(np.uint8), (width, height),
                         interpolation=cv2.INTER_NEAREST)
    colours = rng.integers(20, 235, (12, 3)).astype(np.float32)
    shading = cv2.resize(rng.normal(0, 25, (4, 8, 3)).astype(np.float32), (width, height),
                         interpolation=cv2.INTER_CUBIC)
    texture = cv2.GaussianBlur(rng.normal(0, 12, (height, width, 3)).astype(np.float32), (0, 0), 2.0)
    amplitude = (rng.random(12) * 1.5).astype(np.float32)[regions][..., None]
    image = colours[regions] + shading + texture * amplitude + rng.normal(0, 1.5, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def _label_maps(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Label ids in blocks of stuff, with a few thing instances (labelId*1000+k)."""
    blocks = rng.choice(STUFF_IDS, size=(4, 8)).astype(np.uint8)
    labels = cv2.resize(blocks, (width, height), interpolation=cv2.INTER_NEAREST)
    instances = labels.astype(np.uint16)
    for k in range(3):
        label = THING_IDS[k % len(THING_IDS)]
        y, x = rng.integers(0, height - height // 4), rng.integers(0, width - width // 4)
        labels[y:y + height // 4, x:x + width // 4] = label
        instances[y:y + height // 4, x:x + width // 4] = label * 1000 + k
    return labels, instances


def make_pack_tree(root: str | Path, cities: dict[str, int] | None = None, split: str = "train",
                   frames: int = 4, annotated_index: int = 2, size: tuple[int, int] = (64, 128),
                   label_size: tuple[int, int] | None = None, flow_size: tuple[int, int] = (32, 64),
                   constant_flow: tuple[float, float] | None = None, flow_dtype: str = "float16",
                   seed: int = 0, textured: bool = True) -> PackTree:
    """Write frames, labels, instances, flow and subset.json for ``cities`` (city -> snippets)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    cities = cities or {"alpha": 2, "beta": 1}
    label_size = label_size or size
    tree = PackTree(root, root / "subset.json", split, [])
    splits: dict[str, list[str]] = {}
    for city, count in sorted(cities.items()):
        semantic = root / "labels" / "semantic" / split / city
        instance = root / "labels" / "instance" / split / city
        flow_path = root / "flow" / split / f"{city}.h5"
        for folder in (semantic, instance, flow_path.parent):
            folder.mkdir(parents=True, exist_ok=True)
        for kind, folder, backend, real in (("semantic", semantic, "deeplabv3plus", False),
                                            ("instance", instance, "torchvision", True)):
            record = {"stage": f"label_{kind}", "settings": {"backend": backend, "keep_gtfine": True},
                      "weights_real": real}
            (folder / "provenance.json").write_text(json.dumps(record))
        with h5py.File(flow_path, "w") as flow_file:
            flow_file.attrs["convention"] = CONVENTION      # the pack refuses flow of unknown direction
            flow_file.attrs["backend"] = "dis"
            flow_file.attrs["weights_real"] = True
            flow_file.attrs["provenance"] = json.dumps({"stage": "reference_flow",
                                                        "settings": {"backend": "dis"}})
            for index in range(count):
                snippet = Snippet(root, split, city, index, 100 * index + 50 + annotated_index,
                                  frames, annotated_index)
                tree.snippets.append(snippet)
                splits.setdefault(city, []).append(snippet.id)
                _write_frames(snippet, rng, size, textured)
                for t, number in enumerate(snippet.frame_numbers):
                    labels, instances = _label_maps(rng, *label_size)
                    cv2.imwrite(str(semantic / snippet.label_name(number, "labelIds")), labels)
                    cv2.imwrite(str(instance / snippet.label_name(number, "instanceIds")), instances)
                if constant_flow is None:
                    small = rng.normal(0, 3, (frames - 1, 4, 8, 2)).astype(np.float32)
                    flow = np.stack([cv2.resize(f, flow_size[::-1], interpolation=cv2.INTER_CUBIC)
                                     for f in small])
                else:
                    flow = np.broadcast_to(np.array(constant_flow, np.float32),
                                           (frames - 1, *flow_size, 2))
                # Stored as pipeline.flow.stage stores it: one flow a chunk, gzip 1 over shuffle.
                flow_file.create_dataset(f"flow/{snippet.id}", data=flow.astype(flow_dtype),
                                         chunks=(1, *flow.shape[1:]), compression="gzip",
                                         compression_opts=1, shuffle=True)
        tree.semantic.append(semantic)
        tree.instance.append(instance)
        tree.flow.append(flow_path)
    subset = {"root": str(root), "frames": frames, "annotated_index": annotated_index,
              "splits": {split: splits}, "test": [], "counts": {}}
    tree.subset.write_text(json.dumps(subset))
    return tree


def _write_frames(snippet: Snippet, rng: np.random.Generator, size: tuple[int, int], textured: bool) -> None:
    for path in snippet.frame_paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        rgb = textured_frame(rng, *size) if textured else rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
