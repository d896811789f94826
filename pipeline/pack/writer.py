"""pack: one HDF5 file per split with every selected snippet's frames, labels, instances and flow.

The thesis found the sequence data hard to label, store and move between machines (4.5.1); one
self-describing file per split is one artefact to copy and a fast one to train from. For every
snippet of the split in the subset and every frame, at each of ``pack.resolutions``:

- the frame from the Cityscapes tree (``Snippet.frame_paths``), resized smoothly;
- its semantic label ids and instance ids from the label stages' per-city directories
  (``{city}_{seq}_{frame}_labelIds.png``, ``..._instanceIds.png``), resized nearest;
- its reference flow from the flow stage's per-city file (``flow/{snippet_id}``, frames 1..T-1),
  resized with its vectors scaled; frame 0 has no flow, stored as zeros with ``flow_valid`` False.

The split ``gtfine_train`` (:data:`GTFINE_SPLIT`) is the image variants' training set instead:
the labelled image dataset "in the given form" (thesis 4.5.1), i.e. the annotated frame of every
train snippet of every city (the subset's ``gtfine_train``, 2975 on Cityscapes) with its gtFine
labelIds and instanceIds, one frame a snippet and no flow (never written: it reads as zeros).

Bad input stops the pack naming the file: a flow file whose ``convention`` is not
``pipeline.flow.convention.CONVENTION`` (or missing), label and instance PNGs of another size than
their frame, flow of another aspect ratio than the frames (it may be smaller: ``flow.height``/
``width``), flow holding NaN or inf (or beyond float16 once enlarged to a resolution), and in a
label directory the project's labellers wrote (its provenance.json lists ``kept_gtfine_frames``)
a frame outside that list holding ids other than the 19 train classes' label ids (trainIds
written as labelIds, say). Hand-supplied label directories (provenance.json without that list)
and gtFine frames are only checked for ids beyond the 34 label ids, and every instance PNG for
instance ids (>= 1000) of classes Cityscapes gives no instances.

The file is written under a temporary name and renamed (``pipeline.io.atomic_path``), so an
interrupted or failed pack (a full disk: one error naming the output, see ``_abandon``) leaves nothing at the
output path. Its attributes (``pipeline.pack.schema``) carry the schema version, resolutions, the
label table and the provenance: the settings, code and package versions, the source paths, and
the label and flow stages' own provenance with a summary of which labellers and flow backend ran
and whether their weights were real.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm import tqdm

from pipeline.data.cityscapes import Snippet, read_frame, read_label_png
from pipeline.data.labels import LABEL_SETS, NUM_LABEL_IDS, TRAIN_LABEL_IDS, label_table
from pipeline.data.subset import GTFINE_TRAIN, gtfine_train_snippets, load_subset, subset_snippets
from pipeline.errors import PipelineError
from pipeline.flow.convention import CONVENTION
from pipeline.io import atomic_path, open_h5, read_json
from pipeline.pack.resize import resize_flow, resize_image, resize_labels
from pipeline.pack.schema import (
    ARRAYS, DEFAULT_COMPRESSION, FLOW_DTYPES, SCHEMA, SCHEMA_VERSION, array_codecs, codec_options, group_name,
    instance_label_ids, parse_resolution,
)
from pipeline.pack.verify import first_nonfinite_frame
from pipeline.provenance import code_version, provenance

__all__ = ["GTFINE_SPLIT", "PackInputs", "pack", "city_paths"]

GTFINE_SPLIT = GTFINE_TRAIN     # the packed split is named after the subset's list

DEFAULT_RESOLUTIONS = [[256, 512], [512, 1024]]


@dataclass(frozen=True)
class PackInputs:
    """Where a split's sources are: the frames' root and the label and flow stages' outputs by
    city, or (``gtfine``) the root's own gtFine labels and no flow."""

    frames_root: Path
    semantic: dict[str, Path]     # city -> directory of labelIds PNGs (+ provenance.json)
    instance: dict[str, Path]     # city -> directory of instanceIds PNGs (+ provenance.json)
    flow: dict[str, Path]         # city -> flow file (flow/{snippet_id} [T-1, H, W, 2])
    gtfine: bool = False

    @classmethod
    def from_gtfine(cls, frames_root: str | Path) -> "PackInputs":
        return cls(Path(frames_root), {}, {}, {}, gtfine=True)

    @classmethod
    def from_paths(cls, frames_root: str | Path, semantic: Sequence[str | Path],
                   instance: Sequence[str | Path], flow: Sequence[str | Path]) -> "PackInputs":
        """From the rule's lists: a directory is named after its city, a flow file ``{city}.h5``."""
        return cls(Path(frames_root), city_paths(semantic, "semantic label directory"),
                   city_paths(instance, "instance label directory"), city_paths(flow, "flow file"))

    def label_path(self, snippet: Snippet, number: int, kind: str) -> Path:
        """Frame ``number``'s ``labelIds`` or ``instanceIds`` PNG."""
        if self.gtfine:
            return snippet.gtfine_path(kind)      # one frame a snippet: the annotated one
        folder = (self.semantic if kind == "labelIds" else self.instance)[snippet.city]
        return folder / snippet.label_name(number, kind)

    def sources(self) -> dict[str, Any]:
        if self.gtfine:
            return {"frames_root": str(self.frames_root), "labels": "gtFine"}
        return {"frames_root": str(self.frames_root),
                "semantic": {c: str(p) for c, p in sorted(self.semantic.items())},
                "instance": {c: str(p) for c, p in sorted(self.instance.items())},
                "flow": {c: str(p) for c, p in sorted(self.flow.items())}}


def city_paths(paths: Sequence[str | Path], kind: str) -> dict[str, Path]:
    """City -> path, the city being the directory name or the file stem (the graph's layout)."""
    by_city: dict[str, Path] = {}
    for path in map(Path, paths):
        city = path.stem if path.suffix == ".h5" else path.name
        if city in by_city:
            raise PipelineError(f"two {kind}s for city {city!r} (also {by_city[city]})", path)
        by_city[city] = path
    return by_city


@dataclass(frozen=True)
class _Layout:
    resolutions: list[tuple[int, int]]
    frames: int
    flow_dtype: np.dtype
    codecs: dict[str, str]        # array -> codec name
    chunk_frames: int
    # label directory -> its kept gtFine file names, for the directories the project's labellers
    # wrote (pseudo-labels: only the train classes' ids outside those frames); others are absent
    kept_gtfine: dict[Path, frozenset[str]]


def pack(subset_path: str | Path, split: str, inputs: PackInputs, output: str | Path,
         settings: dict, threads: int = 2, progress: bool | None = None,
         on_snippet: Callable[[int], None] | None = None) -> Path:
    """Write ``output`` (``results/data/{split}.h5``) atomically; return its path.

    ``settings``: ``{"pack": config["pack"], "label_set": config["labels"]["label_set"]}``.
    ``threads`` decode frames in parallel (cv2 releases the GIL). ``on_snippet(i)`` is called
    after snippet ``i`` is written (progress hooks; tests interrupt the pack with it).
    """
    pack_settings = settings.get("pack", {})
    label_set = settings.get("label_set", "train19_other")
    if label_set not in LABEL_SETS:
        raise PipelineError(f"unknown label set {label_set!r} in the settings; "
                            f"one of {', '.join(LABEL_SETS)}")
    try:
        codecs = array_codecs(pack_settings.get("compression", DEFAULT_COMPRESSION))
    except ValueError as err:
        raise PipelineError(f"pack.compression: {err}") from err
    if (split == GTFINE_SPLIT) != inputs.gtfine:
        wanted = "the root's gtFine labels" if split == GTFINE_SPLIT else "label directories and flow files"
        raise PipelineError(f"split {split!r} is packed from {wanted}", inputs.frames_root)
    subset = load_subset(subset_path, inputs.frames_root)
    snippets = _split_snippets(subset, split, subset_path)
    if not inputs.gtfine:
        _check_inputs(snippets, inputs)
    flow_meta = {city: _flow_attrs(path) for city, path in sorted(inputs.flow.items())
                 if city in {s.city for s in snippets}}
    for city, attrs in flow_meta.items():
        _check_convention(attrs, inputs.flow[city])
    label_records = _input_provenance(inputs, {s.city for s in snippets}, flow_meta)
    layout = _Layout(
        resolutions=[parse_resolution(r) for r in pack_settings.get("resolutions", DEFAULT_RESOLUTIONS)],
        frames=snippets[0].frames,
        flow_dtype=np.dtype(np.float16) if inputs.gtfine else _common_flow_dtype(snippets, inputs),
        codecs=codecs,
        chunk_frames=min(int(pack_settings.get("chunk_frames", 1)), snippets[0].frames),
        kept_gtfine={} if inputs.gtfine else _pseudo_label_dirs(inputs, label_records["inputs"]),
    )
    record = provenance("pack", settings, code_version("pipeline.pack"), None,
                        split=split, subset=str(subset_path), sources=inputs.sources(), **label_records)
    output = Path(output)
    with atomic_path(output, suffix=".h5") as tmp:
        # No raw-data chunk cache: each chunk goes to the file when written, so a full disk fails
        # the write that meets it, here. With the cache it failed as h5py dropped a dataset and
        # flushed its cache, where h5py only prints the error and HDF5 keeps a half-closed dataset
        # whose next close crashes (segfault). Whole chunks are written: the cache saved no I/O.
        file = h5py.File(tmp, "w", rdcc_nbytes=0)
        try:
            _create(file, snippets, layout, split, label_set, record, snippets[0].annotated_index)
            with ThreadPoolExecutor(max(1, threads)) as pool:
                bar = tqdm(snippets, desc=f"pack {split}", unit="snippet",
                           disable=None if progress is None else not progress)
                for index, snippet in enumerate(bar):
                    _write_snippet(file, index, snippet, inputs, layout, pool)
                    if on_snippet is not None:
                        on_snippet(index)
            file.attrs["complete"] = True
            _flush(file, tmp)
            file.close()
        except BaseException:
            _abandon(file, tmp)
            raise
    return output


def _flush(file: h5py.File, tmp: Path) -> None:
    """Write out HDF5's metadata before closing: should the disk be full, this fails with nothing
    closed yet (a failed close leaves HDF5 half-closed objects, see :func:`_abandon`). h5py raises a
    failed flush as a RuntimeError, a failed write as an OSError: raised as the OSError that a write
    would be (errno from HDF5's message), which ``pipeline.io.atomic_path`` names as a full disk."""
    try:
        file.flush()
    except RuntimeError as err:
        found = re.search(r"errno = (\d+)", str(err))
        code = int(found.group(1)) if found else errno.EIO
        raise OSError(code, os.strerror(code), str(tmp)) from err


def _abandon(file: h5py.File, tmp: Path) -> None:
    """Close the file of a failed pack before ``atomic_path`` removes it; left open, h5py retries
    the close whenever it drops it, printing errors or crashing HDF5. Closing writes HDF5's metadata,
    which a full disk refuses too: the temporary, discarded anyway, is emptied first to leave room.
    The error to report is the one being raised, so one here is dropped."""
    with contextlib.suppress(OSError, RuntimeError):       # h5py raises either of a failed close
        os.truncate(tmp, 0)
        file.close()


def _split_snippets(subset: dict, split: str, subset_path: str | Path) -> list[Snippet]:
    """The split's snippets (their root the frames root the subset was loaded with: the dataset
    may have moved since ``select_subset`` ran); ``gtfine_train``'s as their annotated frame only."""
    if split == GTFINE_SPLIT:
        snippets = [replace(s, frames=1, annotated_index=0) for s in gtfine_train_snippets(subset, subset_path)]
    else:
        cities = subset.get("splits", {}).get(split)
        snippets = [s for city in sorted(cities or ()) for s in subset_snippets(subset, split, city)]
    if not snippets:
        raise PipelineError(f"the subset has no snippets in split {split!r}", subset_path)
    return snippets


def _check_inputs(snippets: list[Snippet], inputs: PackInputs) -> None:
    for city in sorted({s.city for s in snippets}):
        for kind, paths in (("semantic", inputs.semantic), ("instance", inputs.instance),
                            ("flow", inputs.flow)):
            if city not in paths:
                raise PipelineError(f"no {kind} input for city {city!r} (given: {sorted(paths)})",
                                    inputs.frames_root)


def _common_flow_dtype(snippets: list[Snippet], inputs: PackInputs) -> np.dtype:
    """The flow files' dtype (every file and snippet must agree); packed flow keeps it."""
    first_file_of: dict[np.dtype, Path] = {}          # each dtype found, and the first file holding it
    for city in sorted({s.city for s in snippets}):
        with _open_flow(inputs.flow[city]) as file:
            for snippet in (s for s in snippets if s.city == city):
                dtype = _flow_dataset(file, snippet, inputs.flow[city]).dtype
                first_file_of.setdefault(dtype, inputs.flow[city])
    dtypes = list(first_file_of)
    odd = next((d for d in dtypes if d not in FLOW_DTYPES), dtypes[-1] if len(dtypes) > 1 else None)
    if odd is not None:
        found = ", ".join(f"{d} (first in {path})" for d, path in first_file_of.items())
        raise PipelineError(f"flow files must all hold float16 or all float32; found {found}",
                            first_file_of[odd])
    return dtypes[0]


def _open_flow(path: Path) -> h5py.File:
    return open_h5(path, "flow file", "run the reference_flow rule")


def _flow_dataset(file: h5py.File, snippet: Snippet, path: Path) -> h5py.Dataset:
    name = f"flow/{snippet.id}"
    if name not in file:
        raise PipelineError(f"flow file has no dataset {name!r}", path)
    dataset = file[name]
    if dataset.ndim != 4 or dataset.shape[0] != snippet.frames - 1 or dataset.shape[-1] != 2:
        raise PipelineError(f"dataset {name!r} has shape {dataset.shape}, expected "
                            f"[{snippet.frames - 1}, H, W, 2] (flow of frames 1..{snippet.frames - 1})", path)
    # pipeline.flow records the size it computed at; a dataset of another size was not its output
    said = tuple(int(file.attrs[key]) for key in ("height", "width") if key in file.attrs)
    if len(said) == 2 and tuple(dataset.shape[1:3]) != said:
        raise PipelineError(f"dataset {name!r} is {_size(dataset.shape[1:3])}, the file's height and width "
                            f"attributes say {_size(said)}", path)
    return dataset


def _read_flow(dataset: h5py.Dataset, path: Path) -> np.ndarray:
    """A snippet's flow; of a corrupt chunk HDF5 says only "filter returned failure during read"."""
    try:
        return dataset[()]
    except OSError as err:
        raise PipelineError(f"dataset {dataset.name.lstrip('/')!r} is unreadable (truncated or corrupt chunk?): "
                            f"{err}", path) from err


def _size(shape: Sequence[int]) -> str:
    return f"{shape[0]}x{shape[1]}"


def _check_convention(attrs: dict[str, Any], path: Path) -> None:
    """Refuse flow of another or an unknown direction: packed as it is, it would warp every frame
    the wrong way (the losses and the warp assume CONVENTION), and nothing later could tell."""
    found = attrs.get("convention")
    if found != CONVENTION:
        what = "has no 'convention' attribute" if found is None else f"has convention {found!r}"
        raise PipelineError(f"flow file {what}; expected {CONVENTION!r} (pipeline.flow.convention, "
                            "which python -m pipeline.flow writes)", path)


def _check_flow_size(flow_size: Sequence[int], frame: tuple[Path, Sequence[int]], path: Path) -> None:
    """Flow may be computed smaller than the frames (``flow.height``/``width``), but at their aspect
    ratio, within a pixel's rounding: resizing scales u and v apart, so flow of another shape would
    be stretched onto the frames, out of register with what moved."""
    (height, width), (frame_path, (frame_height, frame_width)) = flow_size, frame
    if (abs(width - height * frame_width / frame_height) >= 1
            or abs(height - width * frame_height / frame_width) >= 1):
        raise PipelineError(f"flow is {_size(flow_size)}, not the aspect ratio of its frames "
                            f"({frame_path} is {_size((frame_height, frame_width))}) within a pixel", path)


def _flow_attrs(path: Path) -> dict[str, Any]:
    """The flow file's root attributes as JSON-able values (JSON strings parsed)."""
    with _open_flow(path) as file:
        return {key: _jsonable(value) for key, value in file.attrs.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _find_key(record: Any, key: str) -> Any:
    """The first value of ``key`` in a nested record (depth first), else None."""
    if isinstance(record, dict):
        if key in record:
            return record[key]
        for value in record.values():
            found = _find_key(value, key)
            if found is not None:
                return found
    elif isinstance(record, list):
        for value in record:
            found = _find_key(value, key)
            if found is not None:
                return found
    return None


def _summary(records: dict[str, Any]) -> dict[str, Any]:
    """Which backend(s) made a stage's outputs and whether all their weights were real."""
    backends = sorted({str(b) for b in (_find_key(r, "backend") for r in records.values()) if b is not None})
    real = [_find_key(r, "weights_real") for r in records.values()]
    weights_real = None if any(v is None for v in real) else all(bool(v) for v in real)
    summary = {"backend": backends[0] if len(backends) == 1 else backends, "weights_real": weights_real}
    keep = {json.dumps(_find_key(r, "keep_gtfine")) for r in records.values()}
    if keep != {"null"}:
        summary["keep_gtfine"] = json.loads(keep.pop()) if len(keep) == 1 else "mixed"
    return summary


def _input_provenance(inputs: PackInputs, cities: set[str], flow_meta: dict[str, Any]) -> dict[str, Any]:
    """The label stages' provenance.json and the flow files' attributes, with a summary."""
    if inputs.gtfine:
        truth = {"backend": "gtFine", "weights_real": None}
        return {"inputs": {"labels": "gtFine", "flow": None},
                "labellers": {"semantic": truth, "instance": truth, "flow": {"backend": None, "weights_real": None}}}
    inputs_record: dict[str, dict[str, Any]] = {"semantic": {}, "instance": {}, "flow": flow_meta}
    for kind, folders in (("semantic", inputs.semantic), ("instance", inputs.instance)):
        for city in sorted(cities):
            inputs_record[kind][city] = read_json(folders[city] / "provenance.json")
    labellers = {kind: _summary(records) for kind, records in inputs_record.items()}
    return {"inputs": inputs_record, "labellers": labellers}


def _pseudo_label_dirs(inputs: PackInputs, records: dict[str, Any]) -> dict[Path, frozenset[str]]:
    """The label directories ``label_city`` wrote, each with its kept gtFine file names.

    Such a directory's provenance.json lists them (``kept_gtfine_frames``). A record without the
    list (hand-supplied labels, or an older record with only the count) does not say which
    frames are gtFine, so its frames keep only the label-id range check. Read here, not with
    ``pipeline.labels.quality``: importing the labellers would put their code in packing's code
    version, and an edit of the quality report would repack and so retrain every variant.
    """
    kept: dict[Path, frozenset[str]] = {}
    for kind, folders in (("semantic", inputs.semantic), ("instance", inputs.instance)):
        for city, record in records[kind].items():
            if isinstance(record, dict) and "kept_gtfine_frames" in record:
                kept[folders[city]] = frozenset(record["kept_gtfine_frames"])
    return kept


def _create(file: h5py.File, snippets: list[Snippet], layout: _Layout, split: str, label_set: str,
            record: dict, annotated_index: int) -> None:
    count, frames = len(snippets), layout.frames
    strings = h5py.string_dtype()
    for name, values in (("id", [s.id for s in snippets]), ("city", [s.city for s in snippets])):
        file.create_dataset(f"snippets/{name}", data=np.array(values, dtype=object), dtype=strings)
    valid = np.ones((count, frames), dtype=bool)
    valid[:, 0] = False
    file.create_dataset("flow_valid", data=valid)
    for height, width in layout.resolutions:
        group = file.create_group(group_name((height, width)))
        for name, (dtype, channels) in ARRAYS.items():
            dtype = layout.flow_dtype if name == "flow" else dtype
            shape = (count, frames, height, width, *channels)
            group.create_dataset(name, shape=shape, dtype=dtype,
                                 chunks=(1, layout.chunk_frames, height, width, *channels),
                                 **codec_options(layout.codecs[name]))
    attrs = {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "split": split, "frames": frames,
        "annotated_index": annotated_index, "snippet_count": count,
        "resolutions": np.array(layout.resolutions, dtype=np.int64),
        "label_table": json.dumps(label_table()), "label_set": label_set,
        "compression": json.dumps(layout.codecs), "chunk_frames": layout.chunk_frames,
        "provenance": json.dumps(record, default=str), "complete": False,
    }
    file.attrs.update(attrs)


def _write_snippet(file: h5py.File, index: int, snippet: Snippet, inputs: PackInputs,
                   layout: _Layout, pool: ThreadPoolExecutor) -> None:
    """Read, check and resize one snippet's frames; write each array in one call (whole chunks)."""
    flow = None
    if not inputs.gtfine:
        with _open_flow(inputs.flow[snippet.city]) as flow_file:
            flow = _read_flow(_flow_dataset(flow_file, snippet, inputs.flow[snippet.city]), inputs.flow[snippet.city])
        _check_finite_flow(flow, snippet, inputs.flow[snippet.city])
    jobs = [(t, path, flow[t - 1] if t > 0 else None) for t, path in enumerate(snippet.frame_paths)]
    per_frame = list(pool.map(lambda job: _frame_arrays(snippet, inputs, layout, *job), jobs))
    for resolution in layout.resolutions:
        group = file[group_name(resolution)]
        for name in ARRAYS:
            if name == "flow" and inputs.gtfine:
                continue      # only frame 0, whose flow is zero: unwritten chunks read as the fill value 0
            stacked = np.stack([arrays[resolution][name] for arrays in per_frame])
            if name == "flow":
                _check_finite_flow(stacked, snippet, inputs.flow[snippet.city], resolution)
            group[name][index] = stacked


def _check_finite_flow(flow: np.ndarray, snippet: Snippet, path: Path,
                       resolution: tuple[int, int] | None = None) -> None:
    """Refuse NaN or inf in a snippet's flow: packed, it trains a NaN model (the warp and the flow
    losses read it) and only ``--verify`` would tell. ``flow`` is the flow file's dataset (frames
    1..T-1), or with ``resolution`` the snippet's flow as stored (frames 0..T-1), which finite flow
    makes non-finite only by overflowing float16 when enlarging scales its vectors up."""
    frame = first_nonfinite_frame(flow)
    if frame is None:
        return
    name = f"flow/{snippet.id}"
    if resolution is None:
        frame += 1          # the file holds no flow of frame 0
        raise PipelineError(f"dataset {name!r} holds non-finite values (NaN or inf): the flow of frame {frame} "
                            f"of snippet {snippet.id} ({snippet.frame_paths[frame].name})", path)
    raise PipelineError(f"dataset {name!r}: the flow of frame {frame} of snippet {snippet.id} is beyond "
                        f"{flow.dtype}'s range at {_size(resolution)} (its vectors scale with the size)", path)


def _frame_arrays(snippet: Snippet, inputs: PackInputs, layout: _Layout, t: int, frame_path: Path,
                  flow: np.ndarray | None) -> dict[tuple[int, int], dict[str, np.ndarray]]:
    """One frame's arrays at every resolution."""
    number = snippet.frame_numbers[t]
    rgb = read_frame(frame_path)
    frame = (frame_path, rgb.shape[:2])
    labels = _checked_labels(inputs.label_path(snippet, number, "labelIds"), np.uint8, frame, layout.kept_gtfine)
    instances = _checked_labels(inputs.label_path(snippet, number, "instanceIds"), np.uint16, frame,
                                layout.kept_gtfine)
    if flow is not None:
        _check_flow_size(flow.shape[:2], frame, inputs.flow[snippet.city])
    out = {}
    for size in layout.resolutions:
        out[size] = {"frames": resize_image(rgb, size), "labels": resize_labels(labels, size),
                     "instances": resize_labels(instances, size)}
        if not inputs.gtfine:      # gtfine_train writes no flow (see _write_snippet)
            flow_at = np.zeros((*size, 2), np.float32) if flow is None else resize_flow(flow, size)
            with np.errstate(over="ignore"):     # overflow is refused by name in _write_snippet
                out[size]["flow"] = flow_at.astype(layout.flow_dtype)
    return out


def _checked_labels(path: Path, dtype: type, frame: tuple[Path, Sequence[int]],
                    kept_gtfine: dict[Path, frozenset[str]]) -> np.ndarray:
    """A label-id or instance-id PNG at its frame's size, with every id's label part a Cityscapes
    label id, and on a pseudo-label frame a train class's."""
    ids = read_label_png(path)
    frame_path, frame_size = frame
    if ids.shape != tuple(frame_size):     # resized with the frame, it would be stretched out of register
        raise PipelineError(f"label PNG is {_size(ids.shape)}, its frame {frame_path} is {_size(frame_size)}: "
                            "labels must have their frame's size", path)
    label_ids = instance_label_ids(ids) if dtype is np.uint16 else ids
    if label_ids.max(initial=0) >= NUM_LABEL_IDS:
        raise PipelineError(f"holds label id {int(label_ids.max())}, beyond the {NUM_LABEL_IDS} "
                            "Cityscapes label ids", path)
    kept = kept_gtfine.get(path.parent)
    if kept is not None and path.name not in kept:
        _check_train_label_ids(label_ids, path)
    if dtype is np.uint16:
        _check_instance_classes(ids, path)
    return ids.astype(dtype, copy=False)


# Every class whose pixels may carry instance ids (label id * 1000 + k): the 8 evaluated thing
# classes, and in gtFine also caravan and trailer. Read from the label table's records, so that
# the labellers (which import pipeline.data.labels) keep their code version.
INSTANCE_LABEL_IDS = tuple(row["id"] for row in label_table() if row["has_instances"])


def _check_instance_classes(ids: np.ndarray, path: Path) -> None:
    """Refuse an instance id (label id * 1000 + k) of a class without instances: the feature
    encoder pools and the edge map outlines it as an object, so a road "instance" would be one."""
    classes = np.unique(ids[ids >= 1000] // 1000)
    odd = sorted(set(classes.tolist()) - set(INSTANCE_LABEL_IDS))
    if odd:
        raise PipelineError(f"holds instance ids of label ids {odd}, classes without instances (Cityscapes "
                            f"gives instance ids only to label ids {list(INSTANCE_LABEL_IDS)})", path)


def _check_train_label_ids(label_ids: np.ndarray, path: Path) -> None:
    """Refuse a pseudo-label frame with an id the labellers cannot write. DeepLabV3+ maps its argmax
    over the 19 classes to their label ids (pipeline.labels.semantic: never 0 or another id) and
    the instance labels paint over those, so anything else was written by something else, most
    likely trainIds (0-18) written as labelIds, which the range check alone lets through."""
    present = np.flatnonzero(np.bincount(label_ids.ravel(), minlength=NUM_LABEL_IDS))
    odd = sorted(set(present.tolist()) - set(TRAIN_LABEL_IDS))
    if odd:
        hint = "; all its ids are below 19: it looks like trainIds, not labelIds" if present.max() < 19 else ""
        raise PipelineError(f"pseudo-label frame (not in its directory's kept_gtfine_frames) holds label ids "
                            f"{odd}, outside the 19 train classes' label ids {list(TRAIN_LABEL_IDS)}{hint}", path)
