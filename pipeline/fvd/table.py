"""results/fvd_table.csv: table 5.1 of the thesis with the spread it never showed, and 5.2's comparisons.

One row a variant (sorted by index): the index and the component columns of table 5.1, the FVD
by the thesis's protocol (thesis 4.5.4: per batch of 16, mean over batches, mean over crops),
each crop's figure, the standard deviations over batches and crops, the pooled FVD of all
videos with its bootstrap interval, how the FVD was computed (``videos`` in all, ``batch_size``,
``frames`` a video: FVD's bias depends on the number of videos, so figures compare only when
computed alike), the warping error, the training time, the thesis's FVD for that index, which
I3D produced the numbers (a local random I3D gives numbers that compare only with each other,
never with published FVDs) and ``weights``: what behind the row was random or trained here (the
notes of the report's red line, :mod:`pipeline.report.provenance`), so that the CSV alone says it.

A second CSV holds the pairwise comparisons the thesis draws in 5.2: for each pair, both FVDs,
the change, the thesis's change, the pooled change's bootstrap interval and the share of
bootstrap resamples in which it keeps its sign (``sign_kept_share_over_test_videos``): every
variant is resampled with the same video indices, so replicate r of both variants scores the
same resampled test set, and the share counts the resampled test sets on which the ordering
holds (:mod:`pipeline.fvd.protocol`). Both cover the choice of ``test_videos`` test videos only:
each variant is trained once, as in the thesis, so neither says how a retrained variant (another
training seed) would score. ``same_sign_as_thesis`` compares the pooled change (all videos, the
less biased estimate) with the thesis's: "undetermined" where the pooled interval holds 0. The
thesis measured its changes in batches of 16, where each variant's own small-sample bias can
outweigh the change, so ``same_sign_as_thesis_protocol`` compares like with like: the change by
the thesis's protocol, with a t interval over its paired batches (``fvd_change_ci_low/high``).

The thesis text available to us ends in 5.2.1, which compares 1, 2, 3 and, in table 5.2, 11;
the other pairs change one component at a time along the research questions of 4.3
(components, discriminators, prior frames, flow), plus the CRN against pix2pixHD at equal
components. ``fvd.comparisons`` in config.yaml replaces the list.

Inputs besides the scores (:mod:`pipeline.fvd.score`), one JSON a variant, both optional:

- ``--warping W.json``: the flow-warping error of the variant's videos, key ``warping_error``.
- ``--training T.json``: the variant's training time, key ``training_seconds`` (or
  ``wall_seconds``), written as hours.

Each JSON names its variant with a ``variant`` key; without one, the file stem (``v01.json``)
or its folder (``v01/summary.json``) must be a variant name.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.cli import add_settings_arguments, run_main
from pipeline.errors import PipelineError
from pipeline.fvd.protocol import centred, centred_interval, paired_batch_interval
from pipeline.io import atomic_path, read_json
from pipeline.report.provenance import notes_text, weight_notes

__all__ = [
    "THESIS_COMPARISONS",
    "SETTINGS_KEYS",
    "COMPONENT_COLUMNS",
    "by_variant",
    "describe_i3d",
    "table_rows",
    "comparison_rows",
    "write_csv",
    "write_tables",
    "main",
]

# (index a, index b, what changes from a to b); see the module docstring for the sources.
THESIS_COMPARISONS: tuple[tuple[int, int, str], ...] = (
    (1, 2, "layer -> weight normalisation (5.2.1)"),
    (2, 3, "VGG-19 -> MobileNetV2 perceptual loss (5.2.1)"),
    (1, 3, "original CRN -> both substitutions (5.2.1)"),
    (3, 11, "CRN vs pix2pixHD base configurations (5.2.1, research question 1)"),
    (3, 4, "CRN + edge map and feature encoder (research question 2)"),
    (4, 5, "CRN + residual blocks (research question 2)"),
    (5, 6, "CRN + discriminator (research question 3)"),
    (3, 7, "base CRN + prior frames (research question 4)"),
    (6, 8, "full CRN + prior frames (research question 4)"),
    (8, 9, "CRN + twin network and flow (research question 5)"),
    (10, 11, "pix2pixHD + MobileNetV2 perceptual loss"),
    (11, 12, "pix2pixHD + extrema prior frames (research question 4)"),
    (11, 13, "pix2pixHD + centred prior frames (research question 4)"),
    (12, 13, "pix2pixHD extrema -> centred prior frames"),
    (13, 14, "pix2pixHD + twin network and flow (research question 5)"),
    (6, 11, "CRN with pix2pixHD's components vs pix2pixHD (research question 2)"),
    (8, 13, "CRN vs pix2pixHD with prior frames"),
    (9, 14, "CRN vs pix2pixHD with twin network and flow"),
)
# Table 5.1's component columns, as config.yaml's variant keys.
COMPONENT_COLUMNS = ("network", "output_images", "norm", "perceptual", "edge", "feature_encoder", "residual",
                     "discriminator", "prior", "twin", "flow")
WARPING_KEYS = ("warping_error",)
TRAINING_KEYS = ("training_seconds", "wall_seconds")
from pipeline.fvd import TABLE_KEYS as SETTINGS_KEYS


def _variant_name(record: Mapping[str, Any], path: Path, variants: Mapping[str, Any]) -> str:
    """The variant a JSON belongs to: its ``variant`` key, else its file stem, else its folder."""
    for name in (record.get("variant"), path.stem, path.parent.name):
        if name is not None and str(name) in variants:
            return str(name)
    raise PipelineError(f"cannot tell which variant this is (variant key {record.get('variant')!r}, "
                        f"file stem {path.stem!r}); known: {', '.join(variants)}", path)


def by_variant(paths: Sequence[str | Path], variants: Mapping[str, Any], what: str) -> dict[str, tuple[dict, Path]]:
    """Read one JSON a variant: ``{variant: (record, path)}``; two files for one variant is an error."""
    found: dict[str, tuple[dict, Path]] = {}
    for path in map(Path, paths):
        record = read_json(path)
        if not isinstance(record, dict):
            raise PipelineError(f"{what} JSON must hold an object", path)
        name = _variant_name(record, path, variants)
        if name in found:
            raise PipelineError(f"a second {what} file for variant {name} (first: {found[name][1]})", path)
        found[name] = (record, path)
    return found


def _optional_number(found: Mapping[str, tuple[dict, Path]], name: str, keys: Sequence[str]) -> float | None:
    """The first of ``keys`` in variant ``name``'s JSON as a float; None without a JSON for it."""
    if name not in found:
        return None
    record, path = found[name]
    for key in keys:
        if key in record:
            if record[key] is None:         # JSON's null: a figure that could not be measured
                return math.nan
            try:
                return float(record[key])
            except (TypeError, ValueError) as err:
                raise PipelineError(f"'{key}' is not a number: {record[key]!r}", path) from err
    raise PipelineError(f"none of the keys {list(keys)} found", path)


def describe_i3d(i3d: Mapping[str, Any] | None) -> str:
    """One line saying which I3D produced a score. Only the published I3D's scores can compare
    with published FVDs, and then only at the same number of videos a score (FVD's bias falls with
    N: the thesis's per-batch FVD uses 16, the pooled one 128 per crop)."""
    if not i3d:
        return "unknown"
    if i3d.get("kind") == "tfhub":
        return f"TF-Hub {i3d.get('handle')} ({i3d.get('sha256')})"
    if i3d.get("kind") == "local_random":
        return (f"local random I3D, width {i3d.get('width_multiplier')}, seed {i3d.get('seed')} "
                f"({i3d.get('sha256')}): not comparable to published FVD")
    return f"unidentified SavedModel {i3d.get('path')} ({i3d.get('sha256')}): not comparable to published FVD"


def _fmt(value: Any) -> Any:
    """Numbers to 3 decimals, those under 1 (warping errors, about 0.01-0.05) to 4 significant
    digits so variants stay apart; None and NaN as empty cells."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return ""
        return f"{value:.3f}" if abs(value) >= 1 else f"{value:.4g}"
    return value


def _fvd_sample(score: Mapping[str, Any]) -> dict[str, Any]:
    """How many videos of how many frames the FVD saw, and in batches of how many: FVD's bias
    falls with the number of videos, so a figure compares only with one computed alike (the
    thesis: 8 batches of 16)."""
    videos = (score.get("provenance") or {}).get("fake_videos") or {}
    return {"videos": score["num_videos"], "batch_size": score.get("batch_size"),
            "frames": (videos.get("settings") or {}).get("frames")}


def table_rows(variants: Mapping[str, Mapping[str, Any]], scores: Mapping[str, tuple[dict, Path]],
               warping: Mapping[str, tuple[dict, Path]], training: Mapping[str, tuple[dict, Path]]) -> list[dict]:
    """One row a variant, sorted by index: components, FVD figures and how they were computed,
    warping error, training time, and which weights were random or trained here."""
    missing = [name for name in variants if name not in scores]
    if missing:
        raise PipelineError(f"no scores for variant(s) {', '.join(missing)}: the table needs every variant")
    rows = []
    for name, variant in sorted(variants.items(), key=lambda item: item[1].get("index", 0)):
        score, _ = scores[name]
        row: dict[str, Any] = {"variant": name, "index": variant.get("index")}
        row.update({column: variant.get(column) for column in COMPONENT_COLUMNS})
        row["fvd"] = score["fvd_thesis"]
        row.update({f"fvd_{crop}": figures["batch_mean"] for crop, figures in score["crops"].items()})
        row["fvd_batch_crop_std"] = score["batch_crop_std"]
        row["fvd_crop_std"] = score["crop_std"]
        row["fvd_pooled"] = score["pooled_fvd"]
        row["fvd_pooled_ci_low"], row["fvd_pooled_ci_high"] = score["pooled_ci"]
        row.update(_fvd_sample(score))
        row["warping_error"] = _optional_number(warping, name, WARPING_KEYS)
        seconds = _optional_number(training, name, TRAINING_KEYS)
        row["training_hours"] = None if seconds is None else seconds / 3600.0
        row["thesis_fvd"] = variant.get("thesis_fvd")
        row["i3d"] = describe_i3d(score.get("i3d"))
        # The same notes as the report's red line, so that the CSV alone still says them.
        row["weights"] = notes_text(weight_notes([score]))
        rows.append(row)
    return rows


def _sign_kept_share(change: float, replicate_changes: np.ndarray) -> float:
    """Share of bootstrap resamples whose change has the sign of the observed change, the
    replicates centred on it as the interval is: raw, each variant's replicates are shifted up by
    its own small-sample bias, and the share would count that difference of biases."""
    if len(replicate_changes) == 0 or change == 0:
        return float("nan")
    return float(np.mean(np.sign(centred(change, replicate_changes)) == np.sign(change)))


def _same_sign(thesis_change: float | None, change: float, interval: Sequence[float]) -> str | None:
    """Whether ``change`` goes the thesis's way: "true", "false", or "undetermined" where its
    ``interval`` holds 0; None without the thesis's figures."""
    if thesis_change is None:
        return None
    low, high = interval
    if not low > 0 and not high < 0:        # holds 0 (or is NaN: no replicates)
        return "undetermined"
    return str(bool(np.sign(change) == np.sign(thesis_change))).lower()


def _batch_fvds(score: Mapping[str, Any]) -> np.ndarray:
    """[crops, batches]: the batch FVDs of every crop."""
    return np.array([crop["batch_fvd"] for crop in score["crops"].values()])


def comparison_rows(variants: Mapping[str, Mapping[str, Any]], scores: Mapping[str, tuple[dict, Path]],
                    pairs: Sequence[tuple[int, int, str]]) -> list[dict]:
    """One row a pair of indices (a, b): FVDs, change b - a, and whether it holds across resamples."""
    by_index = {variant.get("index"): name for name, variant in variants.items()}
    rows, skipped = [], []
    for index_a, index_b, what in pairs:
        if index_a not in by_index or index_b not in by_index:
            skipped.append(f"{index_a} vs {index_b}")
            continue
        (score_a, path_a), (score_b, path_b) = scores[by_index[index_a]], scores[by_index[index_b]]
        if score_a["bootstrap"]["indices_sha256"] != score_b["bootstrap"]["indices_sha256"]:
            raise PipelineError(f"bootstrap resamples differ from {path_a}'s (other seed, count or number of "
                                "videos): replicates do not pair", path_b)
        replicate_changes = np.asarray(score_b["pooled_bootstrap"]) - np.asarray(score_a["pooled_bootstrap"])
        pooled_change = score_b["pooled_fvd"] - score_a["pooled_fvd"]
        thesis_a = variants[by_index[index_a]].get("thesis_fvd")
        thesis_b = variants[by_index[index_b]].get("thesis_fvd")
        thesis_change = None if thesis_a is None or thesis_b is None else thesis_b - thesis_a
        confidence = score_a["bootstrap"]["confidence"]
        fvd_change, fvd_interval = paired_batch_interval(_batch_fvds(score_a), _batch_fvds(score_b), confidence)
        interval = centred_interval(pooled_change, replicate_changes, confidence)
        rows.append({
            "pair": f"{index_a} vs {index_b}", "index_a": index_a, "index_b": index_b,
            "variant_a": by_index[index_a], "variant_b": by_index[index_b], "change": what,
            "fvd_a": score_a["fvd_thesis"], "fvd_b": score_b["fvd_thesis"], "fvd_change": fvd_change,
            "fvd_change_ci_low": fvd_interval[0], "fvd_change_ci_high": fvd_interval[1],
            "pooled_a": score_a["pooled_fvd"], "pooled_b": score_b["pooled_fvd"], "pooled_change": pooled_change,
            "pooled_change_ci_low": interval[0], "pooled_change_ci_high": interval[1],
            "sign_kept_share_over_test_videos": _sign_kept_share(pooled_change, replicate_changes),
            "test_videos": score_a["num_videos"],
            "thesis_change": thesis_change,
            "same_sign_as_thesis": _same_sign(thesis_change, pooled_change, interval),
            "same_sign_as_thesis_protocol": _same_sign(thesis_change, fvd_change, fvd_interval),
        })
    if skipped:
        print(f"fvd.table: comparisons without both variants skipped: {', '.join(skipped)}", file=sys.stderr)
    return rows


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write rows (dicts with the same keys; a missing key is an empty cell) as CSV, atomically."""
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    with atomic_path(path, suffix=".csv") as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            for row in rows:
                writer.writerow({key: _fmt(row.get(key)) for key in columns})


def _check_same_i3d(scores: Mapping[str, tuple[dict, Path]]) -> None:
    """FVDs from different I3D networks do not compare: one table, one I3D."""
    first_path, first_i3d = None, None
    for record, path in scores.values():
        i3d = (record.get("i3d") or {}).get("sha256")
        if first_path is None:
            first_path, first_i3d = path, i3d
        elif i3d != first_i3d:
            raise PipelineError(f"scored with another I3D ({i3d}) than {first_path} ({first_i3d})", path)


def _pairs(settings: Mapping[str, Any]) -> list[tuple[int, int, str]]:
    configured = settings.get("comparisons")
    if configured is None:
        return list(THESIS_COMPARISONS)
    try:
        return [(int(a), int(b), "configured in fvd.comparisons") for a, b in configured]
    except (TypeError, ValueError) as err:
        raise PipelineError(f"fvd.comparisons must be a list of [index, index] pairs, got {configured!r}") from err


def write_tables(score_paths: Sequence[str | Path], variants: Mapping[str, Mapping[str, Any]],
                 output: str | Path, comparisons_output: str | Path, settings: Mapping[str, Any] | None = None,
                 warping_paths: Sequence[str | Path] = (), training_paths: Sequence[str | Path] = ()) -> None:
    """Read every score (and optional warping and training JSON) and write both CSVs."""
    scores = by_variant(score_paths, variants, "scores")
    _check_same_i3d(scores)
    warping = by_variant(warping_paths, variants, "warping error")
    training = by_variant(training_paths, variants, "training time")
    rows = table_rows(variants, scores, warping, training)
    pairs = comparison_rows(variants, scores, _pairs(settings or {}))
    write_csv(output, rows)
    write_csv(comparisons_output, pairs)


def _json_argument(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise PipelineError(f"{name} is not valid JSON: {err}") from err


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.fvd.table", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scores", nargs="+", required=True, help="scores JSON of every variant")
    parser.add_argument("--variants-settings", required=True, help="config.yaml's variants section as JSON")
    parser.add_argument("--warping", nargs="*", default=[], help="warping-error JSON per variant (optional)")
    parser.add_argument("--training", nargs="*", default=[], help="training-time JSON per variant (optional)")
    parser.add_argument("--output", required=True, help="the table CSV (results/fvd_table.csv)")
    parser.add_argument("--comparisons-output",
                        help="the pairwise comparisons CSV (default: OUTPUT's stem + _comparisons.csv)")
    add_settings_arguments(parser)
    args = parser.parse_args(argv)
    variants = _json_argument(args.variants_settings, "--variants-settings")
    if not isinstance(variants, dict) or not variants:
        raise PipelineError("--variants-settings must be the variants section: a mapping name -> variant")
    if args.settings is not None:
        settings = _json_argument(args.settings, "--settings")
    elif args.config:
        from pipeline.config import load_config

        settings = load_config(args.config)["fvd"]
    else:
        settings = {}
    output = Path(args.output)
    comparisons_output = args.comparisons_output or output.with_name(f"{output.stem}_comparisons.csv")
    write_tables(args.scores, variants, output, comparisons_output, settings, args.warping, args.training)


if __name__ == "__main__":
    run_main(main)
