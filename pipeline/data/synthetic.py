"""The synthetic city: the pipeline's embedded default dataset, in exactly the Cityscapes layout.

A seeded generator of street-scene snippets (``pipeline.data._scene``: a ray-cast 2.5D street
with buildings, pavements, poles, signs, trees, parked and moving cars and pedestrians under a
driving, wobbling camera) written the way Cityscapes ships (reference/cityscapes.md, section 1):

- ``leftImg8bit_sequence/{split}/{city}/{city}_{seq:06d}_{frame:06d}_leftImg8bit.png``: all
  ``frames`` frames of each snippet (RGB);
- ``gtFine/{split}/{city}/..._gtFine_{labelIds,instanceIds,color}.png`` for the annotated frame,
  index ``annotated`` of the snippet (its 20th by default), with Cityscapes' instance encoding
  (labelId * 1000 + k for person and car, k from 0 per class in the image; plain labelId elsewhere);
- ``truth/{split}/{city}/{snippet_id}.npz``: what real Cityscapes lacks and the tests and quality
  figures need: ``labels`` [T, H, W] uint8, ``instances`` [T, H, W] int32 (a car keeps its k in
  all T frames), ``flow`` [T, H, W, 2] float32 and ``valid`` [T, H, W] bool, in the convention of
  ``pipeline.flow.warp`` (flow[t] warps frame t-1 onto frame t; frame 0 has none: zero, False);
- ``synthetic.json``: provenance; ``preview.png``: one snippet's frames, labels and flow to look at.

Numbering follows both Cityscapes layouts: the first city has one sequence per snippet, annotated
frame 19 (frames 0..29); every other city is one long sequence holding all its snippets at
non-overlapping frame ranges (annotated frames such as 000294, 000412), so nothing downstream may
assume frame numbers start at 0. Deterministic: the same settings give the same bytes (except the
creation time inside synthetic.json).

Usage: ``python -m pipeline.data.synthetic --root DIR [--workers N] --settings JSON`` (or
``--config FILE ...``).
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import re
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from pipeline.cli import add_settings_arguments, read_settings, run_main
from pipeline.data._scene import LABEL, Scene, build_scene, flow_from, render
from pipeline.data.cityscapes import FRAME_SUFFIX, frame_stem
from pipeline.data.labels import colorize
from pipeline.config import SYNTHETIC_MIN_SIZE
from pipeline.errors import PipelineError
from pipeline.flow.colour import flow_to_colour
from pipeline.io import atomic_dir, write_json
from pipeline.provenance import code_version, provenance

__all__ = ["SETTINGS_KEYS", "SequencePlan", "plan_sequences", "render_snippet", "number_instances",
           "preview", "generate", "settings_from_config", "main"]

SETTINGS_KEYS = ("seed", "cities", "height", "width", "frames", "annotated")
_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 3]
_CITY = re.compile(r"^[a-z_]+$")     # what Cityscapes file names (and pipeline.data.cityscapes) allow


@dataclass(frozen=True)
class SequencePlan:
    """One recorded sequence: its annotated frame numbers, one snippet each."""

    split: str
    city: str
    seq: int
    annotated_frames: tuple[int, ...]

    def snippet_id(self, annotated_frame: int) -> str:
        return frame_stem(self.city, self.seq, annotated_frame)


def _rng(seed: int, *parts: str | int) -> np.random.Generator:
    """A generator keyed by names, stable across runs and platforms (crc32, not hash())."""
    key = [zlib.crc32(p.encode()) if isinstance(p, str) else int(p) for p in parts]
    return np.random.default_rng(np.random.SeedSequence([seed, *key]))


def plan_sequences(cities: dict[str, dict[str, int]], seed: int, frames: int = 30,
                   annotated: int = 19) -> list[SequencePlan]:
    """The sequences to record: the first city (in sorted split and city order, so that the listing
    order of a config file does not change the dataset) one per snippet, the others one long
    sequence each."""
    plans = []
    first = True
    for split, by_city in sorted(cities.items()):
        for city, count in sorted(by_city.items()):
            if first:
                plans += [SequencePlan(split, city, seq, (annotated,)) for seq in range(count)]
                first = False
                continue
            rng = _rng(seed, "plan", split, city)
            numbers, frame = [], annotated + int(rng.integers(40, 300))
            for _ in range(count):
                numbers.append(frame)
                frame += frames + int(rng.integers(20, 150))     # gaps: ranges never overlap
            plans.append(SequencePlan(split, city, 0, tuple(numbers)))
    return plans


def number_instances(things: np.ndarray, thing_labels: np.ndarray, labels: np.ndarray,
                     annotated: int) -> np.ndarray:
    """Cityscapes instance ids ``[T, H, W]`` int32 from per-pixel thing indices (-1: none).

    Per class, the things visible in the annotated frame get k = 0, 1, ... (so its gtFine image
    counts from 0, as json2instanceImg does); things seen only in other frames follow. A thing
    keeps its k in every frame.
    """
    instances = labels.astype(np.int32)
    lut = np.zeros(max(len(thing_labels), 1), dtype=np.int64)
    present = np.unique(things[things >= 0])
    in_annotated = np.unique(things[annotated][things[annotated] >= 0])
    for label_id in np.unique(thing_labels[present]) if present.size else []:
        first = in_annotated[thing_labels[in_annotated] == label_id]
        rest = np.setdiff1d(present[thing_labels[present] == label_id], first)
        order = np.concatenate([first, rest])
        lut[order] = np.arange(order.size)
    is_thing = things >= 0
    index = things[is_thing]
    instances[is_thing] = thing_labels[index].astype(np.int32) * 1000 + lut[index].astype(np.int32)
    return instances


def render_snippet(scene: Scene, annotated_frame: int, frames: int = 30,
                   annotated: int = 19) -> dict[str, np.ndarray]:
    """All frames of one snippet and their truth: images, labels, instances, flow, valid."""
    cam = scene.camera
    shape = (frames, cam.height, cam.width)
    images = np.zeros(shape + (3,), dtype=np.uint8)
    labels = np.zeros(shape, dtype=np.uint8)
    things = np.zeros(shape, dtype=np.int32)
    flow = np.zeros(shape + (2,), dtype=np.float32)
    valid = np.zeros(shape, dtype=bool)
    previous = None
    for index in range(frames):
        frame = render(scene, float(annotated_frame - annotated + index))
        images[index] = (frame.image * 255.0 + 0.5).astype(np.uint8)
        labels[index], things[index] = frame.label, frame.thing
        if previous is not None:
            flow[index], valid[index] = flow_from(scene, frame, previous)
        previous = frame.surface
    instances = number_instances(things, np.asarray(scene.things, dtype=np.int64), labels, annotated)
    return {"images": images, "labels": labels, "instances": instances, "flow": flow, "valid": valid}


def _write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), image, _PNG):
        raise PipelineError("could not write image", path)


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An ``np.load``-able .npz with fixed zip timestamps, so equal arrays give equal bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, np.ascontiguousarray(array), allow_pickle=False)


def _write_snippet(root: Path, plan: SequencePlan, annotated_frame: int, snippet: dict,
                   annotated: int) -> None:
    split, city = plan.split, plan.city
    first = annotated_frame - annotated
    frame_dir = root / "leftImg8bit_sequence" / split / city
    for index, image in enumerate(snippet["images"]):
        _write_png(frame_dir / f"{frame_stem(city, plan.seq, first + index)}{FRAME_SUFFIX}", image)
    stem = root / "gtFine" / split / city / f"{plan.snippet_id(annotated_frame)}_gtFine"
    _write_png(Path(f"{stem}_labelIds.png"), snippet["labels"][annotated])
    _write_png(Path(f"{stem}_instanceIds.png"), snippet["instances"][annotated].astype(np.uint16))
    _write_png(Path(f"{stem}_color.png"), colorize(snippet["labels"][annotated]))
    truth = {key: snippet[key] for key in ("labels", "instances", "flow", "valid")}
    _write_npz(root / "truth" / split / city / f"{plan.snippet_id(annotated_frame)}.npz", truth)


def _caption(width: int, text: str, height: int = 16) -> np.ndarray:
    """A white band with one line of black text, shrunk to fit (OpenCV's Hershey font: ASCII only)."""
    band = np.full((height, width, 3), 255, np.uint8)
    (text_width, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
    scale = 0.4 * min(1.0, (width - 8) / text_width)
    cv2.putText(band, text, (4, height - 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return band


def preview(snippet: dict, annotated: int) -> np.ndarray:
    """A picture for a person: rows of frames across the snippet (the annotated one among
    them), each with its colourised labels and its true flow, in the report's flow colours
    (white: still; full colour: the radius named in the caption)."""
    frames = len(snippet["images"])
    picks = sorted({min(1, frames - 1), frames // 3, annotated, frames - 1})
    radius = float(np.percentile(np.linalg.norm(snippet["flow"][1:], axis=-1), 99)) or 1.0
    width = snippet["images"][0].shape[1] * 3
    rows = [_caption(width, f"frame | labels | true flow (white: still; full colour: {radius:.1f} px)")]
    for i in picks:
        annotation = " (annotated: gtFine)" if i == annotated else ""
        rows.append(_caption(width, f"frame {i} of 0..{frames - 1}{annotation}"))
        rows.append(np.concatenate([snippet["images"][i], colorize(snippet["labels"][i]),
                                    flow_to_colour(snippet["flow"][i], radius)], axis=1))
    return np.concatenate(rows, axis=0)


def _check_settings(settings: dict) -> None:
    missing = [key for key in SETTINGS_KEYS if key not in settings]
    if missing:
        raise PipelineError(f"synthetic city settings lack {missing}; expected keys {list(SETTINGS_KEYS)}")
    if min(settings["height"], settings["width"]) < SYNTHETIC_MIN_SIZE:
        raise PipelineError(f"frames of {settings['height']}x{settings['width']} are too small "
                            f"({SYNTHETIC_MIN_SIZE} at least)")
    if not 0 <= settings["annotated"] < settings["frames"]:
        raise PipelineError(f"annotated frame index {settings['annotated']} is outside "
                            f"0..{settings['frames'] - 1}")
    cities = settings["cities"]
    if not cities or not all(cities.values()):
        raise PipelineError("data.synthetic.cities needs at least one city in every split listed")
    for split, by_city in cities.items():
        if split not in ("train", "val", "test"):
            raise PipelineError(f"unknown split {split!r} in data.synthetic.cities")
        for city, count in by_city.items():
            if not _CITY.match(city) or int(count) < 1:
                raise PipelineError(f"data.synthetic.cities.{split}.{city}: a city is named by lowercase "
                                    f"letters and has at least one snippet (got {count})")


def generate(root: str | Path, cities: dict[str, dict[str, int]], seed: int, height: int, width: int,
             frames: int = 30, annotated: int = 19, workers: int = 1) -> None:
    """Write the synthetic city at ``root`` (replaced whole, atomically), its snippets rendered by
    ``workers`` processes (the same bytes for any number: each sequence's scene is seeded alone)."""
    settings = {"seed": seed, "cities": cities, "height": height, "width": width, "frames": frames,
                "annotated": annotated}
    _check_settings(settings)
    plans = plan_sequences(cities, seed, frames, annotated)
    jobs = [(plan, annotated_frame) for plan in plans for annotated_frame in plan.annotated_frames]
    snippets: dict[str, dict[str, list[str]]] = {}
    for plan, annotated_frame in jobs:
        snippets.setdefault(plan.split, {}).setdefault(plan.city, []).append(plan.snippet_id(annotated_frame))
    jobs = [(plan, annotated_frame, index == 0) for index, (plan, annotated_frame) in enumerate(jobs)]
    with atomic_dir(root) as tmp:
        make = functools.partial(_make_snippet, tmp, seed, height, width, frames, annotated)
        made = tqdm(_map(make, jobs, workers), total=len(jobs), desc="synthetic city", unit="snippet")
        previews = [picture for picture in made if picture is not None]     # the first snippet's
        _write_png(tmp / "preview.png", previews[0])
        write_json(tmp / "synthetic.json", provenance(
            "synthetic_city", settings, code_version("pipeline.data.synthetic"), seed, snippets=snippets,
            labels_used=sorted(LABEL[name] for name in (
                "road", "sidewalk", "building", "pole", "traffic light", "traffic sign", "vegetation",
                "terrain", "sky", "person", "car", "static"))))


def _make_snippet(root: Path, seed: int, height: int, width: int, frames: int, annotated: int,
                  job: tuple[SequencePlan, int, bool]) -> np.ndarray | None:
    """Render and write one snippet; return its preview picture where the job asks for it."""
    plan, annotated_frame, wants_preview = job
    snippet = render_snippet(_scene(seed, plan, height, width, frames, annotated), annotated_frame, frames, annotated)
    _write_snippet(root, plan, annotated_frame, snippet, annotated)
    return preview(snippet, annotated) if wants_preview else None


@functools.lru_cache(maxsize=1)
def _scene(seed: int, plan: SequencePlan, height: int, width: int, frames: int, annotated: int) -> Scene:
    """A sequence's scene, built once in each process for the run of its snippets."""
    t0 = plan.annotated_frames[0] - annotated
    t1 = plan.annotated_frames[-1] - annotated + frames - 1
    return build_scene(_rng(seed, plan.split, plan.city, plan.seq), height, width, t0, t1)


def _map(function, items: list, workers: int) -> Iterator:
    """``map`` in order, over ``workers`` spawned processes where more than one (spawned: a fork of
    a process with torch's or OpenCV's threads running may hang)."""
    if workers <= 1:
        yield from map(function, items)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        yield from pool.map(function, items, chunksize=2)


def settings_from_config(config: dict) -> dict:
    """The generator's settings from a loaded config: data.synthetic plus the frame geometry."""
    data = config["data"]
    return {**data["synthetic"], "height": data["frame_height"], "width": data["frame_width"],
            "frames": data["frames_per_snippet"], "annotated": data["annotated_frame"]}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.data.synthetic",
                                     description="Write the synthetic city in the Cityscapes layout.")
    parser.add_argument("--root", required=True, type=Path, help="output folder (replaced whole)")
    parser.add_argument("--workers", type=int, default=1, help="processes rendering snippets (the same bytes)")
    add_settings_arguments(parser)
    args = parser.parse_args(argv)
    settings = read_settings(args, settings_from_config)
    _check_settings(settings)
    generate(args.root, **{key: settings[key] for key in SETTINGS_KEYS}, workers=args.workers)


if __name__ == "__main__":
    run_main(main)
