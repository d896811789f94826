"""select_subset: which cities and snippets the study uses, and the held-out test snippets.

The thesis kept 808 of the 2975 train sequences by choosing whole cities and never recorded
which; here the choice is config (an explicit list, or cities added greedily, largest first,
up to a target count) and is written down in ``results/data/subset.json`` with the test
snippets for FVD, chosen by a seed from the test split. It also lists every annotated snippet of
every train city (``gtfine_train``), whichever cities the study takes: the labellers' fits
(``fit_segmenter``, ``fit_instances``) train on all of them, as published Cityscapes checkpoints
are trained on all 2975 gtFine train frames.

With ``fvd.draw_choice.auto`` on, the stage also picks ``heldout_sequences`` snippets of the test
split that are *not* test snippets (the same seeded generator, after the test draw, so the test
snippets do not change), on which the feature draw is chosen. They form a split of their own,
``heldout``, whose snippets live in the test split's folders (``split_dirs``), so the label, flow
and pack rules run on them like on any split and the test pack stays as it was. With the option
off the record is exactly what it was without it.

Usage: ``python -m pipeline.data.subset --root ROOT --output results/data/subset.json --settings JSON``
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from pipeline.cli import add_settings_arguments, read_settings, run_main
from pipeline.data.cityscapes import Snippet, check_city, find_snippets, list_cities
from pipeline.errors import PipelineError
from pipeline.io import read_json, write_json
from pipeline.provenance import code_version, provenance

__all__ = ["HELDOUT_SPLIT", "GTFINE_TRAIN", "stage_settings", "select_subset", "choose_cities", "load_subset", "subset_snippets",
           "gtfine_train_snippets"]

HELDOUT_SPLIT = "heldout"
# Every train city's annotated snippets (the labellers' fits; the image variants' packed set).
GTFINE_TRAIN = "gtfine_train"


def choose_cities(counts: dict[str, int], cities: list[str] | None, target: int | None) -> list[str]:
    """The train cities: ``cities`` as given (each must exist), else greedily up to ``target``.

    Greedy: largest city first, a city is taken if it still fits under the target.
    """
    if cities is not None:
        unknown = sorted(set(cities) - set(counts))
        if unknown:
            raise PipelineError(f"subset.train_cities names cities not in the train split: {unknown}; "
                                f"available: {sorted(counts)}")
        return sorted(cities)
    if target is None:
        return sorted(counts)
    chosen, total = [], 0
    for city in sorted(counts, key=lambda c: (-counts[c], c)):
        if total + counts[city] <= target:
            chosen.append(city)
            total += counts[city]
    return sorted(chosen)


def select_subset(root: str | Path, settings: dict, frames: int = 30, annotated_index: int = 19) -> dict:
    """The subset record: train snippets of the chosen cities, test snippets by seed."""
    by_city = {city: find_snippets(root, "train", city, frames, annotated_index)
               for city in list_cities(root, "train")}
    cities = choose_cities({c: len(s) for c, s in by_city.items()}, settings.get("train_cities"),
                           settings.get("target_sequences"))
    for city in cities:
        check_city(by_city[city])
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


def load_subset(path: str | Path) -> dict:
    subset = read_json(path)
    if "splits" not in subset or "test" not in subset:
        raise PipelineError("not a subset file (no 'splits' or 'test')", path)
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
        raise PipelineError("the subset lists no gtfine_train snippets (written by an older "
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
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--annotated-index", type=int, default=19)
    add_settings_arguments(parser)
    args = parser.parse_args(argv)
    settings = read_settings(args, stage_settings)
    subset = select_subset(args.root, settings, args.frames, args.annotated_index)
    subset["provenance"] = provenance("select_subset", settings, code_version("pipeline.data.subset"), settings.get("seed"))
    write_json(args.output, subset)


if __name__ == "__main__":
    run_main(main)
