"""Fréchet Video Distance: crops, the I3D embedding, the Fréchet distance, statistics, the table.

Thesis 4.5.4 (FVD of Unterthiner et al. 2018 on three square crops, batches of 16 videos) and
the reference implementation (google-research ``frechet_video_distance``), ported to TF2 eager.

TensorFlow lives only in :mod:`pipeline.fvd.i3d` and :mod:`pipeline.fvd.embed`, which run in
processes of their own (TensorFlow 2.21 and triton crash in one process). Everything else here
(:mod:`videos`, :mod:`embeddings`, :mod:`crops`, :mod:`frechet`, :mod:`protocol`, :mod:`score`,
:mod:`draws`, :mod:`table`) is NumPy only and imports neither TensorFlow nor torch, so any
process may use it.

Two FVDs are reported side by side. The thesis's number averages FVDs of batches of 16 videos;
at 16 videos the covariance of 400 logits has rank 15 at most and the distance is dominated by
its small-sample bias, so it is large and noisy. The pooled FVD of all videos of a crop (128 in
the thesis) is far less biased. Neither compares with FVDs computed at another number of videos
(fvd.md 4.5), nor with published FVDs when a local random I3D was used.

Stages (one process each)::

    python -m pipeline.fvd.i3d    --output DIR [--width-multiplier W] [--seed S]
    python -m pipeline.fvd.embed  --videos FILE.h5 --i3d DIR --output FILE.npz --settings JSON
    python -m pipeline.fvd.score  --real R.npz --fake F.npz --output FILE.json --settings JSON
    python -m pipeline.fvd.draws  --real R.npz --candidates C.npz --variant V --output FILE.json --settings JSON
    python -m pipeline.fvd.table  --scores A.json ... --variants-settings JSON --output FILE.csv
"""

from collections.abc import Mapping
from typing import Any

from pipeline.config import variant_entry

# The fvd-section keys each stage reads: the rules pass exactly these (a change to another key
# does not rerun the stage). Here, free of TensorFlow, so the Snakefile can import them.
# pipeline.synthesize: a variant's test videos (SYNTH_KEYS), the real ones (REAL_KEYS) and, with
# fvd.draw_choice.auto, the held-out videos under every candidate draw (CANDIDATE_KEYS) and the
# real held-out ones (REAL_HELDOUT_KEYS). None reads i3d, local_i3d_width, crops, bootstrap, seed
# or comparisons: a step to the real I3D re-embeds the videos, and another bootstrap seed rescores
# them, without resynthesising them. The draws have a seed of their own (draw_seed), so a second
# draw can be measured with the bootstrap and the I3D (local_i3d_seed) held.
SYNTH_KEYS = ("frames", "height", "width", "start_frame", "warmup_frames", "batch_size", "batches",
              "draw_seed", "feature_draw")
REAL_KEYS = ("frames", "height", "width", "start_frame", "batch_size", "batches")
CANDIDATE_KEYS = ("frames", "height", "width", "start_frame", "warmup_frames", "draw_seed", "feature_draw",
                  "draw_choice")
REAL_HELDOUT_KEYS = ("frames", "height", "width", "start_frame", "draw_choice")
EMBED_KEYS = ("frames", "height", "width", "batch_size", "crops")
SCORE_KEYS = ("batch_size", "batches", "crops", "bootstrap", "seed")
TABLE_KEYS = ("comparisons",)
DRAW_KEYS = ("crops", "draw_seed", "draw_choice")
# What of SYNTH_KEYS a variant without prior frames (no warm-up) or without a feature encoder (no
# cluster draw) never reads: left out of its synthesize job's settings, a change to them does not
# resynthesise (and re-embed and re-score) it.
PRIOR_ONLY_KEYS = ("warmup_frames",)
DRAW_ONLY_KEYS = ("draw_seed", "feature_draw")


def synthesis_settings(config: Mapping[str, Any], variant: str) -> dict:
    """The fvd settings synthesising ``variant``'s test videos reads (SYNTH_KEYS, less what it
    never reads)."""
    entry = variant_entry(config, variant)
    unread = (() if entry["prior"] else PRIOR_ONLY_KEYS) + (() if entry["feature_encoder"] else DRAW_ONLY_KEYS)
    return {key: config["fvd"][key] for key in SYNTH_KEYS if key not in unread}


def candidate_settings(config: Mapping[str, Any], variant: str) -> dict:
    """The fvd settings synthesising ``variant``'s held-out videos under every candidate draw
    reads (CANDIDATE_KEYS; a variant without prior frames has no warm-up)."""
    unread = () if variant_entry(config, variant)["prior"] else PRIOR_ONLY_KEYS
    return {key: config["fvd"][key] for key in CANDIDATE_KEYS if key not in unread}


def real_heldout_settings(config: Mapping[str, Any]) -> dict:
    """The fvd settings the real held-out videos read (REAL_HELDOUT_KEYS): of draw_choice, only
    how many videos (not the number of candidate draws)."""
    settings = {key: config["fvd"][key] for key in REAL_HELDOUT_KEYS}
    settings["draw_choice"] = {"heldout_videos": settings["draw_choice"]["heldout_videos"]}
    return settings
