"""The Cityscapes layout: 30-frame snippets of ``leftImg8bit_sequence`` and their gtFine frame.

Each gtFine image is the 20th frame (index 19) of a 30-frame snippet. Frame numbers do not start
at 0 in every city (some cities hold a few long sequences with several annotated frames), so a
snippet is keyed by (city, sequence, annotated frame number) and found from the gtFine file
names, never from assumed numbering. Its id is ``{city}_{seq:06d}_{frame:06d}`` of the annotated
frame, the Cityscapes prefix of its gtFine files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.errors import PipelineError

__all__ = ["Snippet", "find_snippets", "frame_stem", "list_cities", "read_frame", "read_label_png", "check_city"]

SPLITS = ("train", "val", "test")
FRAME_SUFFIX = "_leftImg8bit.png"
_NAME = re.compile(r"^(?P<city>[a-z_]+)_(?P<seq>\d{6})_(?P<frame>\d{6})_")


@dataclass(frozen=True)
class Snippet:
    """One snippet around an annotated frame (Cityscapes': 30 frames, the annotated one at index 19)."""

    root: Path
    split: str
    city: str
    seq: int
    annotated_frame: int        # the frame number of the gtFine frame
    frames: int = 30
    annotated_index: int = 19   # its position in the snippet

    @property
    def id(self) -> str:
        return self.frame_stem(self.annotated_frame)

    def frame_stem(self, number: int) -> str:
        """Frame ``number``'s name before its kind (``leftImg8bit``, ``labelIds``, ...)."""
        return frame_stem(self.city, self.seq, number)

    def label_name(self, number: int, kind: str) -> str:
        """Frame ``number``'s pseudo-label PNG, ``{stem}_{kind}.png`` (gtFine's less its
        ``_gtFine``): ``kind`` is ``labelIds`` or ``instanceIds``."""
        return f"{self.frame_stem(number)}_{kind}.png"

    @property
    def first_frame(self) -> int:
        return self.annotated_frame - self.annotated_index

    @property
    def frame_numbers(self) -> list[int]:
        return [self.first_frame + i for i in range(self.frames)]

    @property
    def frame_paths(self) -> list[Path]:
        folder = self.root / "leftImg8bit_sequence" / self.split / self.city
        return [folder / f"{self.frame_stem(n)}{FRAME_SUFFIX}" for n in self.frame_numbers]

    def gtfine_path(self, kind: str = "labelIds") -> Path:
        """``kind`` is ``labelIds``, ``instanceIds`` or ``color``."""
        return self.root / "gtFine" / self.split / self.city / f"{self.id}_gtFine_{kind}.png"


def frame_stem(city: str, seq: int, frame: int) -> str:
    """Cityscapes' name of one frame, the one home of its spelling: ``{city}_{seq:06d}_{frame:06d}``."""
    return f"{city}_{seq:06d}_{frame:06d}"


def list_cities(root: str | Path, split: str) -> list[str]:
    """The cities of a split, from the gtFine tree."""
    folder = _split_dir(root, split)
    return sorted(p.name for p in folder.iterdir() if p.is_dir())


def find_snippets(root: str | Path, split: str, city: str | None = None, frames: int = 30,
                  annotated_index: int = 19) -> list[Snippet]:
    """All snippets of a split (or one city), in name order, found from the gtFine label files."""
    root = Path(root)
    cities = [city] if city is not None else list_cities(root, split)
    snippets = []
    for name in cities:
        folder = _split_dir(root, split) / name
        if not folder.is_dir():
            raise PipelineError(f"no such city in gtFine/{split}", folder)
        for label_file in sorted(folder.glob("*_gtFine_labelIds.png")):
            match = _NAME.match(label_file.name)
            if match is None or match["city"] != name:
                raise PipelineError("not a Cityscapes file name ({city}_{seq}_{frame}_...)", label_file)
            snippets.append(Snippet(root, split, name, int(match["seq"]), int(match["frame"]),
                                    frames, annotated_index))
    return snippets


def check_city(snippets: list[Snippet]) -> None:
    """Every frame of every snippet exists and the city's sequence folder holds no other frame.

    ``snippets`` are those of one city (``find_snippets(root, split, city)``). Raises a
    PipelineError naming the first missing or extra frame's path.
    """
    if not snippets:
        return
    for snippet in snippets:
        if snippet.first_frame < 0:
            raise PipelineError(f"annotated frame {snippet.annotated_frame} has fewer than "
                                f"{snippet.annotated_index} frames before it", snippet.gtfine_path())
    folder = snippets[0].frame_paths[0].parent
    if not folder.is_dir():
        raise PipelineError("sequence folder missing (leftImg8bit_sequence not unpacked?)", folder)
    expected = {path for snippet in snippets for path in snippet.frame_paths}
    present = set(folder.glob(f"*{FRAME_SUFFIX}"))
    for path in sorted(expected - present):
        raise PipelineError(f"frame missing from its {snippets[0].frames}-frame snippet", path)
    for path in sorted(present - expected):
        raise PipelineError("extra frame that belongs to no annotated snippet", path)


def read_frame(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """An RGB uint8 frame ``[H, W, 3]``; ``size`` (height, width) is checked if given."""
    path = Path(path)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise PipelineError("unreadable image (missing, truncated or not an image)", path)
    _check_size(image, size, path)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_label_png(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """A single-channel label PNG as stored (uint8 labelIds, uint16 instanceIds)."""
    path = Path(path)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise PipelineError("unreadable label image (missing, truncated or not an image)", path)
    if image.ndim != 2:
        raise PipelineError(f"a label image has one channel, this one has shape {image.shape}", path)
    _check_size(image, size, path)
    return image


def _check_size(image: np.ndarray, size: tuple[int, int] | None, path: Path) -> None:
    if size is not None and tuple(image.shape[:2]) != tuple(size):
        raise PipelineError(f"image is {image.shape[0]}x{image.shape[1]}, expected "
                            f"{size[0]}x{size[1]}", path)


def _split_dir(root: str | Path, split: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise PipelineError("Cityscapes root not found (set data.cityscapes_root in config.yaml)", root)
    if split not in SPLITS:
        raise PipelineError(f"unknown split {split!r}; one of {', '.join(SPLITS)}", root)
    folder = root / "gtFine" / split
    if not folder.is_dir():
        raise PipelineError("gtFine split folder missing (is this a Cityscapes root?)", folder)
    return folder
