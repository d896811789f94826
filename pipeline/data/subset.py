"""select_subset: which cities and snippets the study uses, and the held-out test snippets.

The thesis kept 808 of the 2975 train sequences by choosing whole cities and never recorded
which; here the choice is config (an explicit list, or cities added greedily, largest first,
up to a target count) and is written down in ``results/data/subset.json`` with the test
snippets for FVD, chosen by a seed from the test split. It also lists every annotated snippet of
every train city (``gtfine_train``), whichever cities the study takes: the labellers' fits
(``fit_segmenter``, ``fit_instances``) train on all of them, as published Cityscapes checkpoints
are trained on all 2975 gtFine train frames.

Beside the full record the stage writes each consumer's part of it alone, ``subset/{split}.json``
for each split and ``subset/gtfine_train.json`` (:func:`subset_part`): the same format, restricted
to that part, without the dataset root and with only the settings that select the part. A stage
reads the part it works on, so another test draw rewrites ``train.json`` byte for byte as it was,
and Snakemake, which compares a rewritten input's checksum with the one it recorded, reruns
nothing of the train side. The root comes to those stages apart (``--frames-root``): where the
dataset lives is not what they compute.

With ``fvd.draw_choice.auto`` on, the stage also picks ``heldout_sequences`` snippets of the test
split that are *not* test snippets (the same seeded generator, after the test draw, so the test
snippets do not change), on which the feature draw is chosen. They form a split of their own,
``heldout``, whose snippets live in the test split's folders (``split_dirs``), so the label, flow
and pack rules run on them like on any split and the test pack stays as it was. With the option
off the record is exactly what it was without it.

Usage: ``python -m pipeline.data.subset --root ROOT --output results/data/subset.json
--parts results/data/subset/train.json ... --settings JSON``
"""

from __future__ import annotations

import argparse
import copy
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from pipeline.cli import add_settings_arguments, read_settings, run_main
from pipeline.data.cityscapes import Snippet, check_city, find_snippets, list_cities
from pipeline.errors import PipelineError
from pipeline.io import read_json, write_json
from pipeline.provenance import code_version, provenance

__all__ = ["HELDOUT_SPLIT", "GTFINE_TRAIN", "stage_settings", "select_subset", "choose_cities", "subset_part",
           "write_parts", "load_subset", "subset_snippets", "gtfine_train_snippets"]

HELDOUT_SPLIT = "heldout"
# Every train city's annotated snippets (the labellers' fits; the image variants' packed set).
GTFINE_TRAIN = "gtfine_train"


def choose_cities(counts: dict[str, int], cities: list[str] | None, target: int | None) -> list[str]:
    """The train cities: ``cities`` as given (each must exist), else greedily up to ``target``.

    Greedy: largest city first, a city is taken if it still fits under the target.
    """
    if cities is not None:
        unknown = sorted(set(cities) - set(counts))
        twice = sorted(city for city, count in Counter(cities).items() if count > 1)
        if unknown or twice or not cities:
            problem = f"unknown: {unknown}" if unknown else f"twice: {twice}" if twice else "none"
            raise PipelineError(f"subset.train_cities {list(cities)} must name train cities, each once ({problem}); "
                                f"available: {sorted(counts)}")
        return sorted(cities)
    if target is None:
        return sorted(counts)
    chosen, total = [], 0
    for city in sorted(counts, key=lambda c: (-counts[c], c)):
        if total + counts[city] <= target:
            chosen.append(city)
            total += counts[city]
    if not chosen:
        raise PipelineError(f"subset.target_sequences {target} is below the smallest train city's "
                            f"{min(counts.values())} snippets: no city fits")
    return sorted(chosen)


def select_subset(root: str | Path, settings: dict, frames: int = 30, annotated_index: int = 19) -> dict:
    """The subset record: train snippets of the chosen cities, test snippets by seed."""
    by_city = {city: find_snippets(root, "train", city, frames, annotated_index)
               for city in list_cities(root, "train")}
    cities = choose_cities({c: len(s) for c, s in by_city.items()}, settings.get("train_cities"),
                           settings.get("target_sequences"))
    for city in cities:
        check_city(by_city[city])
    _check_annotated_frames([s for city in sorted(set(by_city) - set(cities)) for s in by_city[city]])
    test_split = settings.get("test_split", "val")
    test_pool = [s for city in list_cities(root, test_split)
                 for s in find_snippets(root, test_split, city, frames, annotated_index)]
    wanted = settings.get("test_sequences", 128)
    if len(test_pool) < wanted:
        raise PipelineError(f"subset.test_sequences is {wanted} but split {test_split!r} has only "
                            f"{len(test_pool)} snippets", Path(root) / "gtFine" / test_split)
    rng = np.random.default_rng(settings.get("seed", 0))
    picked = sorted(rng.choice(len(test_pool), size=wanted, replace=False).tolist())
    test = [test_pool[i] for i in picked]
    for city in sorted({s.city for s in test}):
        check_city([s for s in test_pool if s.city == city])
    subset = {
        "root": str(root),
        "frames": frames,
        "annotated_index": annotated_index,
        "splits": {
            "train": {city: [s.id for s in by_city[city]] for city in cities},
            test_split: _group([s for s in test]),
        },
        "test": [s.id for s in test],
        GTFINE_TRAIN: {city: [s.id for s in snippets] for city, snippets in by_city.items()},
        "counts": {"train": sum(len(by_city[c]) for c in cities), "test": len(test),
                   GTFINE_TRAIN: sum(len(s) for s in by_city.values())},
    }
    if settings.get("heldout_sequences"):
        taken = set(picked)
        _add_heldout(subset, [s for i, s in enumerate(test_pool) if i not in taken],
                     settings["heldout_sequences"], rng, test_split, root)
    return subset


def _check_annotated_frames(snippets: list[Snippet]) -> None:
    """The annotated frame of each snippet of the train cities the study leaves out: the labellers'
    fits and pack_gtfine read those (``gtfine_train``), so a city missing from leftImg8bit_sequence
    stops here rather than in a GPU job."""
    for snippet in snippets:
        frame = snippet.frame_paths[snippet.annotated_index]
        if not frame.is_file():
            raise PipelineError("annotated frame missing (the labellers' fits read every train city's: "
                                "unpack the whole leftImg8bit_sequence)", frame)


def _add_heldout(subset: dict, rest: list[Snippet], wanted: int, rng: np.random.Generator, split: str,
                 root: str | Path) -> None:
    """Add ``wanted`` snippets of the test split outside the test set (``rest``), drawn by the
    subset's generator, as the split ``heldout`` (see the module docstring)."""
    if len(rest) < wanted:
        raise PipelineError(f"fvd.draw_choice.heldout_videos is {wanted} but split {split!r} has only "
                            f"{len(rest)} snippets besides the test ones; lower it or subset.test_sequences"
                            " (the synthetic city: add a val city)", Path(root) / "gtFine" / split)
    heldout = [rest[i] for i in sorted(rng.choice(len(rest), size=wanted, replace=False).tolist())]
    for city in sorted({s.city for s in heldout} - set(subset["splits"][split])):
        check_city([s for s in rest if s.city == city])
    subset["splits"][HELDOUT_SPLIT] = _group(heldout)
    subset["split_dirs"] = {HELDOUT_SPLIT: split}
    subset["heldout"] = [s.id for s in heldout]
    subset["counts"]["heldout"] = len(heldout)


# The settings that select each test part (config ``subset`` keys, and ``heldout_sequences``): a
# part's file records these alone, so a setting that does not change the part leaves its file as it
# was. The train part records the cities taken, however they were asked for (a list in another
# order, a target_sequences that a list overrides, a target giving the same cities as a list).
TEST_KEYS = ("test_split", "test_sequences", "seed")
HELDOUT_KEYS = (*TEST_KEYS, "heldout_sequences")       # drawn after the test snippets, among the rest


def subset_part(subset: dict, part: str, settings: Mapping) -> dict:
    """One consumer's part of the subset record: split ``part`` (its cities' snippets, and its
    folder where it lives in another split's) or ``gtfine_train``, in the record's format.

    No root (the consumers get it with ``--frames-root``) and no time, code version or packages in
    its provenance: the file changes only when its snippets or the settings that select them do.
    """
    if part not in (*subset["splits"], GTFINE_TRAIN):
        raise PipelineError(f"the subset has no part {part!r}; its parts are {[*subset['splits'], GTFINE_TRAIN]}")
    if part == GTFINE_TRAIN:
        restricted, selected = {GTFINE_TRAIN: subset[GTFINE_TRAIN]}, {}
    else:
        restricted = {"splits": {part: subset["splits"][part]}}
        if part in subset.get("split_dirs", {}):
            restricted["split_dirs"] = {part: subset["split_dirs"][part]}
        if part == "train":
            selected = {"train_cities": sorted(subset["splits"]["train"])}
        else:
            selected = {key: settings.get(key) for key in (HELDOUT_KEYS if part == HELDOUT_SPLIT else TEST_KEYS)}
    return {"frames": subset["frames"], "annotated_index": subset["annotated_index"], **restricted,
            "provenance": {"stage": "select_subset", "part": part, "settings": selected}}


def write_parts(subset: dict, settings: Mapping, paths: Sequence[str | Path]) -> None:
    """Write the part each path names (``{split}.json``, ``gtfine_train.json``), keys sorted: the
    same part gives the same bytes."""
    for path in map(Path, paths):
        write_json(path, subset_part(subset, path.stem, settings), sort_keys=True)


def stage_settings(config: Mapping) -> dict:
    """What select_subset reads: config ``subset``, and with ``fvd.draw_choice.auto`` on the
    number of held-out snippets (off: exactly ``subset``, so the rule's params stay as they were)."""
    settings = copy.deepcopy(dict(config["subset"]))
    choice = config["fvd"]["draw_choice"]
    if choice["auto"]:
        settings["heldout_sequences"] = choice["heldout_videos"]
    return settings


def _group(snippets: list[Snippet]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for snippet in snippets:
        grouped.setdefault(snippet.city, []).append(snippet.id)
    return grouped


def load_subset(path: str | Path, frames_root: str | Path | None = None) -> dict:
    """The subset record, or a part of it (:func:`subset_part`); its snippets' frames are read
    from ``frames_root`` where given (a part records no root), else from the recorded root."""
    subset = read_json(path)
    if "splits" not in subset and GTFINE_TRAIN not in subset:
        raise PipelineError(f"not a subset file (no 'splits' or '{GTFINE_TRAIN}')", path)
    if frames_root is not None:
        subset["root"] = str(frames_root)
    elif "root" not in subset:
        raise PipelineError("a part of the subset records no dataset root: pass --frames-root", path)
    subset["loaded_from"] = str(path)      # for errors; not a key the file holds
    return subset


def subset_snippets(subset: dict, split: str, city: str) -> list[Snippet]:
    """The Snippet objects of one split and city of a loaded subset."""
    try:
        ids = subset["splits"][split][city]
    except KeyError:
        has = sorted(subset["splits"].get(split, {})) if split in subset["splits"] else sorted(subset["splits"])
        what = f"its {split!r} cities are" if split in subset["splits"] else "its splits are"
        raise PipelineError(f"the subset has no city {city!r} in split {split!r}; {what} {has}",
                            subset.get("loaded_from")) from None
    folder = subset.get("split_dirs", {}).get(split, split)     # held-out snippets live in the test split
    return _snippets(subset, folder, city, ids)


def gtfine_train_snippets(subset: dict, path: str | Path) -> list[Snippet]:
    """Every annotated train snippet of the dataset, city by city (what the labellers' fits read)."""
    if GTFINE_TRAIN not in subset:
        part = subset.get("provenance", {}).get("part")
        if part is not None:        # another split's part: the file given is the wrong one
            raise PipelineError(f"the subset's {part!r} part lists no {GTFINE_TRAIN} snippets: pass "
                                f"results/data/subset/{GTFINE_TRAIN}.json", path)
        raise PipelineError(f"the subset lists no {GTFINE_TRAIN} snippets (written by an older "
                            "select_subset: run it again)", path)
    return [snippet for city, ids in sorted(subset[GTFINE_TRAIN].items())
            for snippet in _snippets(subset, "train", city, ids)]


def _snippets(subset: dict, folder: str, city: str, ids: Sequence[str]) -> list[Snippet]:
    frames, annotated = subset["frames"], subset["annotated_index"]
    return [Snippet(Path(subset["root"]), folder, city, int(i.split("_")[-2]), int(i.split("_")[-1]),
                    frames, annotated) for i in ids]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.data.subset", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="Cityscapes root (or the synthetic city)")
    parser.add_argument("--output", required=True, help="subset.json to write")
    parser.add_argument("--parts", nargs="+", default=[], metavar="FILE",
                        help="parts to write, each named after its split or gtfine_train: subset/train.json ...")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--annotated-index", type=int, default=19)
    add_settings_arguments(parser)
    args = parser.parse_args(argv)
    settings = read_settings(args, stage_settings)
    subset = select_subset(args.root, settings, args.frames, args.annotated_index)
    subset["provenance"] = provenance("select_subset", settings, code_version("pipeline.data.subset"), settings.get("seed"))
    write_parts(subset, settings, args.parts)
    write_json(args.output, subset)


if __name__ == "__main__":
    run_main(main)
