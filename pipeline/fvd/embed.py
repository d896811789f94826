"""I3D embeddings of a videos file, per square crop, in TF2 eager (the reference's preprocessing).

The reference FVD (google-research ``frechet_video_distance``, fvd.md 1.2-1.3, 1.6) resizes
every frame to 224x224 with TF1's ``resize_bilinear`` (``align_corners=False``,
``half_pixel_centers=False``; TF2's ``tf.image.resize`` samples differently), scales 0..255 to
[-1, 1] as 2x/255 - 1, asserts the range [-1.001, 1.001], and takes the I3D module's 400
logits averaged over time. Here each video is first cut into the thesis's square crops (thesis
4.5.4, :mod:`pipeline.fvd.crops`); the module is loaded with ``hub.load`` from a local
directory and called through its ``default`` signature (``hub.Module`` is gone from
tensorflow_hub 0.16). The inference graph uses stored batch-norm statistics, so a video's
embedding does not depend on the batch it is in; videos go through in batches of
``batch_size`` (16, as the reference) to bound memory.

Output: :mod:`pipeline.fvd.embeddings` ``.npz``, one float32 [N, 400] array per crop, with the
provenance of the videos and of the I3D used (the TF-Hub module, or a local random one and
its width: :mod:`pipeline.fvd.i3d`).

This module imports TensorFlow: run it in a process that never imports torch.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tqdm import tqdm  # noqa: E402

from pipeline.cli import add_settings_arguments, read_settings, run_main  # noqa: E402
from pipeline.errors import PipelineError  # noqa: E402
from pipeline.fvd.crops import CROP_NAMES, check_crop_names, crop_videos  # noqa: E402
from pipeline.fvd.embeddings import write_embeddings  # noqa: E402
from pipeline.fvd.i3d import FRAME_SIZE, LOCAL_META, NUM_CLASSES  # noqa: E402
from pipeline.fvd.videos import read_videos_header, video_batches  # noqa: E402
from pipeline.provenance import code_version, provenance  # noqa: E402

__all__ = ["SETTINGS_KEYS", "identify_i3d", "load_i3d", "preprocess", "embed_videos", "embed_file", "main"]

# The fvd settings this stage reads (a rule's params may carry exactly these).
from pipeline.fvd import EMBED_KEYS as SETTINGS_KEYS  # noqa: E402
EMBEDDING_SIZE = NUM_CLASSES     # the Kinetics-400 logits, published I3D and local alike
RANGE_TOLERANCE = 1.001  # the reference's tf.Assert bounds
# I3D halves time three times (2 -> 4 -> 8) and then pools 2 frames VALID: with fewer than 9
# frames no time step is left (fvd.md 2.2) and the logits are empty or garbage.
MIN_FRAMES = 9
TFHUB_HANDLE = "deepmind/i3d-kinetics-400/1"

Embedder = Callable[[tf.Tensor], tf.Tensor]


def _digest(directory: Path) -> str:
    """A hash of the graph and the variables index: which I3D this was, cheaply."""
    digest = hashlib.sha256()
    for name in ("saved_model.pb", "variables/variables.index"):
        file = directory / name
        if file.is_file():
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def identify_i3d(directory: str | Path) -> dict[str, Any]:
    """Which I3D a module directory holds: the TF-Hub module, a local random one, or unknown."""
    directory = Path(directory)
    record: dict[str, Any] = {"path": str(directory.resolve()), "sha256": _digest(directory)}
    meta_file = directory / LOCAL_META
    if meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        record.update(kind="local_random", width_multiplier=meta.get("width_multiplier"),
                      seed=meta.get("seed"), published_i3d=False)
    elif (directory / "tfhub_module.pb").is_file():
        record.update(kind="tfhub", handle=TFHUB_HANDLE, published_i3d=True)
    else:
        record.update(kind="unknown_savedmodel", published_i3d=False)
    return record


def load_i3d(directory: str | Path) -> Embedder:
    """The ``default`` signature of the I3D module at ``directory``, loaded with ``hub.load``.

    Returns a function from float32 [B, T, 224, 224, 3] in [-1, 1] to float32 [B, 400].
    """
    directory = Path(directory)
    if not (directory / "saved_model.pb").is_file():
        raise PipelineError("no saved_model.pb: not an I3D module directory (config fvd.i3d, or "
                            "build a local one with python -m pipeline.fvd.i3d)", directory)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tensorflow_hub's pkg_resources deprecation notice
        import tensorflow_hub as hub

        try:
            module = hub.load(str(directory))
        # Broad: a bad module fails in many ways, OSError and OpError, but also the checkpoint reader's
        # bare IndexError on a variables file cut short by an interrupted copy.
        except Exception as err:  # noqa: BLE001
            raise PipelineError(f"hub.load failed (a truncated or corrupt module?): "
                                f"{err.__class__.__name__}: {err}", directory) from err
    if "default" not in module.signatures:
        raise PipelineError(f"no 'default' signature (has {list(module.signatures)})", directory)
    signature = module.signatures["default"]
    outputs = signature.structured_outputs
    if "default" not in outputs or outputs["default"].shape[-1] != EMBEDDING_SIZE:
        raise PipelineError(f"the 'default' signature must return 'default' [batch, {EMBEDDING_SIZE}], "
                            f"got {outputs}", directory)

    def embed(frames: tf.Tensor) -> tf.Tensor:
        return signature(rgb_input=frames)["default"]

    embed.module = module  # keep the loaded object (and its variables) alive with the function
    return embed


def preprocess(videos: np.ndarray) -> tf.Tensor:
    """uint8 [B, T, S, S, 3] (0..255) -> float32 [B, T, 224, 224, 3] in [-1, 1], as the reference.

    TF1 legacy bilinear resize of every frame (both flags False), then 2x/255 - 1, then the
    reference's range check, written eagerly (the reference's assertions are TF1 graph ops).
    """
    batch, frames, height, width, channels = videos.shape
    stacked = tf.reshape(tf.convert_to_tensor(videos), [batch * frames, height, width, channels])
    resized = tf.raw_ops.ResizeBilinear(images=stacked, size=[FRAME_SIZE, FRAME_SIZE],
                                        align_corners=False, half_pixel_centers=False)
    scaled = 2.0 * tf.cast(resized, tf.float32) / 255.0 - 1.0
    low, high = float(tf.reduce_min(scaled)), float(tf.reduce_max(scaled))
    if low < -RANGE_TOLERANCE or high > RANGE_TOLERANCE:
        raise ValueError(f"scaled frames span [{low:.4f}, {high:.4f}], outside [-1, 1]: input not 0..255")
    return tf.reshape(scaled, [batch, frames, FRAME_SIZE, FRAME_SIZE, channels])


def embed_videos(videos: np.ndarray, embed: Embedder, crop: str, batch_size: int = 16,
                 progress: tqdm | None = None) -> np.ndarray:
    """float32 [N, 400]: the I3D logits of the square crop ``crop`` of each video [N, T, H, W, 3]."""
    if videos.shape[1] < MIN_FRAMES:
        raise ValueError(f"videos of {videos.shape[1]} frames: I3D needs at least {MIN_FRAMES}")
    cropped = crop_videos(videos, crop)
    chunks = []
    for start in range(0, len(cropped), batch_size):
        batch = np.ascontiguousarray(cropped[start:start + batch_size])
        chunks.append(embed(preprocess(batch)).numpy().astype(np.float32))
        if progress is not None:
            progress.update(len(batch))
    return np.concatenate(chunks) if chunks else np.zeros((0, EMBEDDING_SIZE), np.float32)


def _check_videos(shape: Sequence[int], settings: dict[str, Any], path: str | Path) -> None:
    """The videos must have the configured frames and size (FVD depends on both)."""
    expected = [settings.get("frames"), settings.get("height"), settings.get("width")]
    actual = list(shape[1:4])
    if any(want is not None and want != got for want, got in zip(expected, actual)):
        raise PipelineError(f"videos are [frames, height, width] = {actual}, the fvd settings ask for {expected}",
                            path)
    if shape[0] == 0:
        raise PipelineError("the file holds no videos", path)
    if shape[1] < MIN_FRAMES:
        raise PipelineError(f"videos of {shape[1]} frames: I3D needs at least {MIN_FRAMES}", path)


def embed_file(videos_path: str | Path, i3d_dir: str | Path, output: str | Path, settings: dict[str, Any],
               embed: Embedder | None = None) -> None:
    """Embed every crop of a videos file and write the embeddings ``.npz`` with provenance.

    ``embed``: the module at ``i3d_dir`` already loaded (:func:`load_i3d`), to embed several
    files in one process without loading it again.
    """
    shape, videos_provenance = read_videos_header(videos_path)
    _check_videos(shape, settings, videos_path)
    try:
        crops = check_crop_names(settings.get("crops", list(CROP_NAMES)))
    except ValueError as err:
        raise PipelineError(f"fvd.crops: {err}") from err
    batch_size = int(settings.get("batch_size", 16))
    embed = embed or load_i3d(i3d_dir)
    chunks: dict[str, list[np.ndarray]] = {crop: [] for crop in crops}
    with tqdm(total=shape[0] * len(crops), desc=f"I3D {Path(videos_path).name}", unit="video",
              file=sys.stderr, disable=None) as progress:
        for batch in video_batches(videos_path, batch_size):
            for crop in crops:
                chunks[crop].append(embed_videos(batch, embed, crop, batch_size, progress))
    record = provenance("fvd.embed", {key: settings.get(key) for key in SETTINGS_KEYS}, code_version("pipeline.fvd.embed"),
                        i3d=identify_i3d(i3d_dir), videos={"path": str(videos_path), "shape": list(shape),
                                                           "provenance": videos_provenance})
    write_embeddings(output, {crop: np.concatenate(parts) for crop, parts in chunks.items()}, record)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.fvd.embed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", required=True, help="HDF5 videos file (pipeline.fvd.videos)")
    parser.add_argument("--i3d", required=True, help="I3D module directory (TF-Hub module or pipeline.fvd.i3d)")
    parser.add_argument("--output", required=True, help="embeddings .npz to write")
    add_settings_arguments(parser)
    args = parser.parse_args(argv)
    settings = read_settings(args, lambda config: config["fvd"])
    embed_file(args.videos, args.i3d, args.output, settings)


if __name__ == "__main__":
    run_main(main)
