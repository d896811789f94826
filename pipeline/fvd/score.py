"""FVD of one synthesised video set against the real one, from cached embeddings (NumPy only).

Reads the real and synthesised embeddings (:mod:`pipeline.fvd.embed`), checks they were made
with the same I3D, crops, frame count and number of videos, and writes one JSON with the
thesis's number (FVD per batch of 16, mean over batches, mean over crops; thesis 4.5.4), each
crop's figures, the standard deviations over batches and crops, the pooled FVD of all videos
per crop with a seeded bootstrap interval, and the bootstrap replicates themselves so that
:mod:`pipeline.fvd.table` can compare variants pairwise (:mod:`pipeline.fvd.protocol`).

The real embeddings are computed once (rule ``embed_real``) and shared by every variant.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.cli import add_settings_arguments, read_settings, run_main
from pipeline.errors import PipelineError
from pipeline.fvd.crops import CROP_NAMES, check_crop_names
from pipeline.fvd.embeddings import read_embeddings
from pipeline.fvd.protocol import score_crops
from pipeline.io import write_json
from pipeline.provenance import code_version, provenance

__all__ = ["SETTINGS_KEYS", "check_compatible", "score_embeddings", "main"]

# The fvd settings this stage reads (a rule's params may carry exactly these).
from pipeline.fvd import SCORE_KEYS as SETTINGS_KEYS


def _frames(record: dict[str, Any]) -> int | None:
    shape = record.get("videos", {}).get("shape")
    return shape[1] if shape else None


def _made_from(record: dict[str, Any]) -> dict[str, Any]:
    """The test snippets and start frame the embedded videos were made from, as far as recorded."""
    videos = record.get("videos", {}).get("provenance") or {}
    return {"snippets": videos.get("snippets"), "start_frame": videos.get("settings", {}).get("start_frame")}


def _check_pairing(real: dict[str, Any], fake: dict[str, Any], fake_path: str | Path) -> None:
    """Batch b against batch b and the shared bootstrap draws assume synthesised video i shows
    real video i's snippet from the same frame: a stale or hand-made file must not pass."""
    for key, what in (("snippets", "other test snippets"), ("start_frame", "another start frame")):
        if None not in (real[key], fake[key]) and real[key] != fake[key]:
            shown = (lambda v: v) if key == "start_frame" else (lambda v: f"{len(v)} from {v[0]}")
            raise PipelineError(f"made from {what} ({shown(fake[key])}) than the real videos "
                                f"({shown(real[key])}): video i must pair with real video i", fake_path)


def _check_variant(fake_record: dict[str, Any], variant: str | None, fake_path: str | Path) -> None:
    """The synthesised videos record their variant (pipeline.synthesize): another variant's
    embeddings must not be scored, and then tabled, as this one's."""
    recorded = (fake_record.get("videos", {}).get("provenance") or {}).get("variant")
    if None not in (recorded, variant) and recorded != variant:
        raise PipelineError(f"embeddings of variant {recorded!r} scored as variant {variant!r}", fake_path)


def check_compatible(real: dict[str, np.ndarray], real_record: dict[str, Any], fake: dict[str, np.ndarray],
                     fake_record: dict[str, Any], crops: list[str], fake_path: str | Path) -> None:
    """Raise a PipelineError naming the synthesised file if the two sets cannot be compared."""
    real_i3d, fake_i3d = real_record.get("i3d", {}), fake_record.get("i3d", {})
    if real_i3d.get("sha256") != fake_i3d.get("sha256"):
        raise PipelineError(f"embedded with another I3D than the real videos ({fake_i3d.get('path')} vs "
                            f"{real_i3d.get('path')})", fake_path)
    if _frames(real_record) != _frames(fake_record):
        raise PipelineError(f"videos of {_frames(fake_record)} frames against real videos of "
                            f"{_frames(real_record)}: FVD compares only equal lengths", fake_path)
    _check_pairing(_made_from(real_record), _made_from(fake_record), fake_path)
    for crop in crops:
        if crop not in fake or crop not in real:
            raise PipelineError(f"crop '{crop}' missing (real has {sorted(real)}, synthesised {sorted(fake)})",
                                fake_path)
        if fake[crop].shape != real[crop].shape:
            raise PipelineError(f"crop '{crop}': embeddings {list(fake[crop].shape)} against real "
                                f"{list(real[crop].shape)}; the sets must pair video for video", fake_path)


def score_embeddings(real_path: str | Path, fake_path: str | Path, settings: dict[str, Any],
                     variant: str | None = None) -> dict[str, Any]:
    """All FVD figures of the synthesised embeddings ``fake_path`` against ``real_path``."""
    try:
        crops = check_crop_names(settings.get("crops", list(CROP_NAMES)))
    except ValueError as err:
        raise PipelineError(f"fvd.crops: {err}") from err
    real, real_record = read_embeddings(real_path)
    fake, fake_record = read_embeddings(fake_path)
    _check_variant(fake_record, variant, fake_path)
    check_compatible(real, real_record, fake, fake_record, crops, fake_path)
    batch_size = int(settings.get("batch_size", 16))
    num_videos = len(fake[crops[0]])
    expected = batch_size * int(settings["batches"]) if settings.get("batches") else None
    if num_videos % batch_size or (expected is not None and num_videos != expected):
        raise PipelineError(f"{num_videos} videos; the fvd settings ask for {settings.get('batches')} "
                            f"batches of {batch_size}", fake_path)
    result: dict[str, Any] = {"variant": variant}
    result.update(score_crops(real, fake, crops, batch_size, int(settings.get("bootstrap", 1000)),
                              int(settings.get("seed", 0))))
    result["i3d"] = fake_record.get("i3d")
    result["provenance"] = provenance(
        "fvd.score", {key: settings.get(key) for key in SETTINGS_KEYS}, code_version("pipeline.fvd.score"),
        seed=int(settings.get("seed", 0)), real=str(real_path), fake=str(fake_path),
        fake_videos=fake_record.get("videos", {}).get("provenance"))
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.fvd.score", description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", required=True, help="embeddings .npz of the real test videos")
    parser.add_argument("--fake", required=True, help="embeddings .npz of one variant's synthesised videos")
    parser.add_argument("--output", required=True, help="scores JSON to write")
    parser.add_argument("--variant", help="variant name recorded in the JSON (default: the --output file stem)")
    add_settings_arguments(parser)
    args = parser.parse_args(argv)
    settings = read_settings(args, lambda config: config["fvd"])
    variant = args.variant or Path(args.output).stem
    write_json(args.output, score_embeddings(args.real, args.fake, settings, variant))


if __name__ == "__main__":
    run_main(main)
