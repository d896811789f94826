"""Provenance: what made an output (stage config, code version, package versions, seed).

``code_version`` hashes the source of the subpackages a stage runs, so a rule's params change
when its code changes (Snakemake's own code trigger only sees the shell line).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["code_version", "package_versions", "provenance"]

PACKAGE_ROOT = Path(__file__).resolve().parent
# Modules every stage uses; a change to them reruns everything.
SHARED = ("__init__.py", "errors.py", "io.py", "provenance.py", "config.py", "cli.py")
TRACKED_PACKAGES = (
    "torch", "torchvision", "numpy", "h5py", "hdf5plugin", "opencv-python", "cityscapesscripts",
    "segmentation-models-pytorch", "ptlflow", "tensorflow", "tensorflow-hub", "snakemake",
)


def code_version(*parts: str) -> str:
    """A short hash of the shared modules plus the given subpackages or modules of ``pipeline``.

    ``code_version("flow")`` covers ``pipeline/flow/**.py``; ``code_version("data/labels.py")``
    one module.
    """
    digest = hashlib.sha256()
    files = [PACKAGE_ROOT / name for name in SHARED]
    for part in parts:
        path = PACKAGE_ROOT / part
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    for file in files:
        if file.is_file():
            digest.update(file.relative_to(PACKAGE_ROOT).as_posix().encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def provenance(stage: str, settings: Any, code: str, seed: int | None = None, **extra: Any) -> dict:
    """The record every output carries: stage, its settings, code version, packages, seed."""
    record = {
        "stage": stage,
        "settings": settings,
        "code_version": code,
        "seed": seed,
        "packages": package_versions(),
        "argv": sys.argv,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    record.update(extra)
    return record
