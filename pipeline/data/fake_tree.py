"""A fake Cityscapes tree of the real size (empty files), for tests and benchmarks of the graph.

Subset selection and DAG building only look at names, so empty files stand in for the 89,250
sequence frames of the 2975 train snippets. The per-city counts are Cityscapes' own
(reference/cityscapes.md); frame numbers follow its two layouts: one sequence per snippet
(frame 19) in most cities, and a few long sequences with many annotated frames in others.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.data.cityscapes import FRAME_SUFFIX, frame_stem

__all__ = ["TRAIN_COUNTS", "VAL_COUNTS", "make_fake_tree"]

TRAIN_COUNTS = {
    "aachen": 174, "bochum": 96, "bremen": 316, "cologne": 154, "darmstadt": 85, "dusseldorf": 221,
    "erfurt": 109, "hamburg": 248, "hanover": 196, "jena": 119, "krefeld": 99,
    "monchengladbach": 94, "strasbourg": 365, "stuttgart": 196, "tubingen": 144, "ulm": 95,
    "weimar": 142, "zurich": 122,
}
VAL_COUNTS = {"frankfurt": 267, "lindau": 59, "munster": 174}
LONG_SEQUENCE_CITIES = {"frankfurt", "munster", "hanover"}


def make_fake_tree(root: str | Path, counts: dict[str, dict[str, int]] | None = None,
                   frames: int = 30, annotated_index: int = 19) -> Path:
    """Write empty files in the Cityscapes layout; ``counts`` is split -> city -> snippets."""
    root = Path(root)
    counts = counts or {"train": TRAIN_COUNTS, "val": VAL_COUNTS}
    for split, cities in counts.items():
        for city, number in cities.items():
            seq_dir = root / "leftImg8bit_sequence" / split / city
            gt_dir = root / "gtFine" / split / city
            seq_dir.mkdir(parents=True, exist_ok=True)
            gt_dir.mkdir(parents=True, exist_ok=True)
            for index in range(number):
                seq, annotated = _numbering(city, index, frames, annotated_index)
                stem = frame_stem(city, seq, annotated)
                for kind in ("labelIds", "instanceIds"):
                    (gt_dir / f"{stem}_gtFine_{kind}.png").touch()
                first = annotated - annotated_index
                for frame in range(first, first + frames):
                    (seq_dir / f"{frame_stem(city, seq, frame)}{FRAME_SUFFIX}").touch()
    return root


def _numbering(city: str, index: int, frames: int, annotated_index: int) -> tuple[int, int]:
    """(sequence, annotated frame number): long sequences space snippets apart in one sequence."""
    if city in LONG_SEQUENCE_CITIES:
        return index // 50, 100 + (index % 50) * (frames + 7) + annotated_index
    return index, annotated_index
