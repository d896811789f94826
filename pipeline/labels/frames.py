"""The labelling loop of one city: every frame of every snippet, in batches, into one directory.

Output names are Cityscapes' own, one PNG per frame: ``{city}_{seq:06d}_{frame:06d}_labelIds.png``
(uint8 label ids) or ``..._instanceIds.png`` (uint16), plus ``provenance.json``. The directory is
written through ``atomic_dir``: a crash mid-city leaves no half-written label set. Reading the
next batch overlaps with the network (a thread; OpenCV releases the GIL while decoding).

``labels.keep_gtfine`` applies to the train split only (:func:`keeps_gtfine`): the thesis trained
the image variants on gtFine labels but tested every variant on pseudo-labels, so the test split
(and the held-out snippets drawn from it) are labelled by the network on every frame, whatever
the setting. ``provenance.json`` says what was done: ``keep_gtfine`` (whether gtFine was kept in
this directory; the setting itself is under ``settings``), ``kept_gtfine`` (how many frames) and
``kept_gtfine_frames`` (their file names).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from pipeline.data.cityscapes import Snippet, read_frame, read_label_png
from pipeline.errors import PipelineError
from pipeline.io import atomic_dir, write_json
from pipeline.labels.runtime import batched
from pipeline.labels.settings import KEEP_GTFINE_SPLIT, keeps_gtfine

__all__ = ["KEEP_GTFINE_SPLIT", "FrameRef", "city_frames", "keeps_gtfine", "label_city", "write_label_png",
           "read_gtfine"]

LabelBatch = Callable[[np.ndarray, list["FrameRef"]], np.ndarray]


@dataclass(frozen=True)
class FrameRef:
    """One frame of a snippet: where it is read from and what its label files are called."""

    snippet: Snippet
    index: int  # position in the snippet, 0..frames-1

    @property
    def path(self) -> Path:
        return self.snippet.frame_paths[self.index]

    @property
    def number(self) -> int:
        return self.snippet.frame_numbers[self.index]

    @property
    def annotated(self) -> bool:
        return self.index == self.snippet.annotated_index

    def output_name(self, kind: str) -> str:
        """``{city}_{seq:06d}_{frame:06d}_{kind}.png``, kind ``labelIds`` or ``instanceIds``."""
        return self.snippet.label_name(self.number, kind)


def city_frames(snippets: Sequence[Snippet]) -> list[FrameRef]:
    """Every frame of every snippet, snippet by snippet in time order."""
    return [FrameRef(snippet, index) for snippet in snippets for index in range(snippet.frames)]


def read_gtfine(frame: FrameRef, kind: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """The gtFine ``labelIds`` (uint8) or ``instanceIds`` (uint16) of an annotated frame."""
    image = read_label_png(frame.snippet.gtfine_path(kind), size)
    return image.astype(np.uint8 if kind == "labelIds" else np.uint16)


def write_label_png(path: Path, label_map: np.ndarray) -> None:
    """A lossless single-channel PNG (uint8 or uint16 as given)."""
    if not cv2.imwrite(str(path), label_map):
        raise PipelineError("could not write label PNG", path)


def _read_batches(frames: list[FrameRef], batch_size: int, size: tuple[int, int]
                  ) -> Iterator[tuple[list[FrameRef], np.ndarray]]:
    """Batches of stacked RGB frames, the next one read while the caller works on this one."""
    def load(batch: list[FrameRef]) -> np.ndarray:
        return np.stack([read_frame(frame.path, size) for frame in batch])

    batches = list(batched(frames, batch_size))
    if not batches:
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(load, batches[0])
        for position, batch in enumerate(batches):
            images = pending.result()
            if position + 1 < len(batches):
                pending = pool.submit(load, batches[position + 1])
            yield batch, images


def label_city(frames: Sequence[FrameRef], label_batch: LabelBatch, output: str | Path, kind: str,
               batch_size: int, keep_gtfine: bool, split: str, record: dict[str, Any], desc: str) -> int:
    """Label every frame into ``output`` atomically; return the number of frames written.

    ``label_batch(images [B,H,W,3] RGB uint8, refs)`` returns ``[B,H,W]`` maps. With
    ``keep_gtfine`` (the setting) on the train ``split`` the annotated frames take their gtFine
    ``kind`` file instead of the network's; on any other split every frame is the network's.
    """
    frames = list(frames)
    if not frames:
        raise PipelineError("no snippets to label in this city", output)
    size = tuple(read_frame(frames[0].path).shape[:2])
    keep = keeps_gtfine(keep_gtfine, split)
    kept = [frame for frame in frames if keep and frame.annotated]
    todo = [frame for frame in frames if not (keep and frame.annotated)]
    with atomic_dir(output) as tmp:
        for frame in kept:
            write_label_png(tmp / frame.output_name(kind), read_gtfine(frame, kind, size))
        with tqdm(total=len(todo), desc=desc, unit="frame", disable=None) as progress:
            for batch, images in _read_batches(todo, batch_size, size):
                maps = label_batch(images, batch)
                for frame, label_map in zip(batch, maps, strict=True):
                    write_label_png(tmp / frame.output_name(kind), label_map)
                progress.update(len(batch))
        # keep_gtfine here is what was applied to this split (the setting is in record["settings"])
        write_json(tmp / "provenance.json", dict(
            record, frames=len(frames), keep_gtfine=keep, kept_gtfine=len(kept),
            kept_gtfine_frames=[frame.output_name(kind) for frame in kept]))
    return len(frames)
