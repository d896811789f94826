"""Which weights stand behind a picture, read from its inputs' provenance.

DESIGN.md: whatever used random or self-trained weights says so in its output, the report
included. The records are nested (a videos file holds its model's record, which holds the packed
data's record, which holds each labeller's), so :func:`weight_notes` walks them whole and
collects one short note per kind of weight that is not a real pretrained file:

- the FVD's I3D: ``{"kind": "local_random", "width_multiplier": w}`` (:mod:`pipeline.fvd.embed`);
- perceptual backbones: ``backbone_weights: {"perceptual": "random"}`` (:mod:`pipeline.models.weights`);
- pseudo-labellers fitted by the graph: ``self_trained: true`` (:mod:`pipeline.labels.checkpoint`);
- flow or labellers run with random weights: ``weights_real: false``;
- the generators themselves: a ``train`` record with its step count (trained here, from scratch,
  as in the thesis; the count tells a 5-step demo from the study).

A packed file's record sums up its labellers (``labellers: {"flow": {"backend": ...,
"weights_real": false}}``) beside their own records: a summary is named by its key, as its
stage's record is, so each network gets one note.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pipeline.io import open_h5, read_json

__all__ = ["load_record", "weight_notes", "notes_text", "notes_line"]

# What a labelling stage's weights are called in a note.
STAGE_NAMES = {"label_semantic": "semantic labeller", "label_instance": "instance labeller",
               "reference_flow": "flow network", "fvd.embed": "I3D"}
# The stage behind each entry of a packed file's ``labellers`` summary (pipeline.pack.writer).
LABELLER_STAGES = {"semantic": "label_semantic", "instance": "label_instance", "flow": "reference_flow"}


def load_record(path: str | Path) -> Any:
    """The provenance held by an input: a JSON file, an HDF5 file's attributes, or a folder's
    ``provenance.json`` (a label set); None for anything else."""
    path = Path(path)
    if path.is_dir():
        inner = path / "provenance.json"
        return read_json(inner) if inner.is_file() else None
    if path.suffix == ".json":
        return read_json(path)
    if path.suffix in (".h5", ".hdf5"):
        with open_h5(path) as handle:
            return {key: _plain(value) for key, value in handle.attrs.items()}
    return None


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value if isinstance(value, (str, int, float, bool)) else str(value)


def _parsed(value: Any) -> Any:
    """Records nest others as JSON strings (HDF5 attributes): parse those, leave other text."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _notes(record: Any, stage: str | None = None) -> Iterator[str]:
    record = _parsed(record)
    if isinstance(record, list):
        for item in record:
            yield from _notes(item, stage)
        return
    if not isinstance(record, dict):
        return
    stage = record.get("stage") if isinstance(record.get("stage"), str) else stage
    if record.get("kind") == "local_random":
        yield f"narrow random I3D (width {record.get('width_multiplier')}): FVD not comparable to published"
    elif record.get("kind") == "unknown_savedmodel":
        yield "unidentified I3D: FVD not comparable to published"
    backbones = record.get("backbone_weights")
    if isinstance(backbones, dict):
        yield from (f"random {name} backbone" for name, source in sorted(backbones.items()) if source == "random")
    if record.get("self_trained") is True:
        yield f"self-trained {STAGE_NAMES.get(stage or '', 'weights')}"
    if record.get("weights_real") is False:
        yield f"random-weight {STAGE_NAMES.get(stage or '', record.get('backend') or 'network')}"
    if stage == "train" and "steps" in record and "variant" in record:
        yield f"generators trained here ({record['steps']} steps for {record['variant']})"
    for key, value in record.items():
        if key == "labellers" and isinstance(value, dict):
            for kind, summary in value.items():
                yield from _notes(summary, LABELLER_STAGES.get(kind, stage))
        else:
            yield from _notes(value, stage)


def weight_notes(records: Iterable[Any]) -> list[str]:
    """Unique notes, in order of appearance; generator notes are merged into one."""
    notes: list[str] = []
    steps: list[str] = []
    for record in records:
        for note in _notes(record):
            if note.startswith("generators trained here"):
                step = note[note.index("(") + 1:note.index(" steps")]
                if step not in steps:
                    steps.append(step)
            elif note not in notes:
                notes.append(note)
    if steps:
        notes.append(f"generators trained here ({'/'.join(steps)} steps)")
    return notes


def notes_text(notes: Iterable[str]) -> str:
    """The notes in one string (a CSV cell), or that no weight was random or trained here."""
    return "; ".join(notes) or "no random or self-trained weights"


def notes_line(notes: Iterable[str]) -> str:
    """One line for a title or caption: :func:`notes_text` after ``Weights:``."""
    return "Weights: " + notes_text(notes)
