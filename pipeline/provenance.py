"""Provenance: what made an output (stage config, code version, package versions, seed).

``code_version`` hashes the code a stage runs: its module and every ``pipeline`` module it
imports, directly or through others. A rule passes it in its params, so the rule reruns when
that code changes (Snakemake's own code trigger only sees the shell line) and not when code the
stage never imports does. It hashes each file's syntax tree without docstrings, so editing a
comment, a docstring or the layout reruns nothing (nor refuses a training resume), and it leaves
out the plumbing every stage imports (``PLUMBING``), which decides how a stage reads its
arguments, writes files and reports errors, never what it computes: a stage's settings reach it
as ``--settings``, which the rule's params hold. Before, a comment in ``pipeline/errors.py``
retrained all 14 variants.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["code_files", "code_version", "package_versions", "provenance"]

PACKAGE_ROOT = Path(__file__).resolve().parent
DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
PLUMBING = frozenset({"pipeline.cli", "pipeline.config", "pipeline.errors", "pipeline.io", "pipeline.provenance"})
TRACKED_PACKAGES = (
    "torch", "torchvision", "numpy", "h5py", "hdf5plugin", "opencv-python", "cityscapesscripts",
    "segmentation-models-pytorch", "ptlflow", "tensorflow", "tensorflow-hub", "snakemake",
)


def code_version(*modules: str) -> str:
    """A short hash of the source files :func:`code_files` finds for ``modules``, the modules a
    rule runs with ``python -m`` (``code_version("pipeline.train")``)."""
    digest = hashlib.sha256()
    for file in code_files(*modules):
        digest.update(file.relative_to(PACKAGE_ROOT.parent).as_posix().encode())
        digest.update(_syntax(file))
    return digest.hexdigest()[:12]


def code_files(*modules: str) -> list[Path]:
    """The files of ``modules`` and of every ``pipeline`` module they import, transitively:
    what ``python -m`` runs (a package's ``__init__`` and ``__main__``, its parents' ``__init__``).
    Imports are read from the source, those inside functions too, so nothing is executed."""
    for module in modules:
        if not _own_files(module):
            raise ValueError(f"code_version: no module {module!r} under {PACKAGE_ROOT.parent}")
    seen: set[Path] = set()
    pending = list(modules)
    while pending:
        module = pending.pop()
        if module in PLUMBING:
            continue
        for file in _files_of(module):
            if file not in seen:
                seen.add(file)
                pending.extend(_imports(file))
    return sorted(seen)


def _files_of(module: str) -> list[Path]:
    """The module's own files and its parent packages' ``__init__``s (which importing it runs)."""
    parts = module.split(".")
    parents = [PACKAGE_ROOT.parent.joinpath(*parts[:end], "__init__.py") for end in range(1, len(parts))]
    return [file for file in parents if file.is_file()] + _own_files(module)


def _own_files(module: str) -> list[Path]:
    path = PACKAGE_ROOT.parent.joinpath(*module.split("."))
    files = [path / "__init__.py", path / "__main__.py"] if path.is_dir() else [path.with_suffix(".py")]
    return [file for file in files if file.is_file()]


def _syntax(file: Path) -> bytes:
    """The file's syntax tree without docstrings: what it runs, not how it is written down."""
    return _parsed(file, file.stat().st_mtime_ns)[0]


def _imports(file: Path) -> tuple[str, ...]:
    """The ``pipeline`` modules ``file`` imports; ``from a import b`` yields ``a`` and ``a.b``
    (``b`` may be a module)."""
    return _parsed(file, file.stat().st_mtime_ns)[1]


@functools.lru_cache(maxsize=None)
def _parsed(file: Path, modified: int) -> tuple[bytes, tuple[str, ...]]:  # noqa: ARG001 (the cache key)
    """:func:`_syntax` and :func:`_imports` from one parse: Snakemake hashes every rule's code
    while it reads the Snakefile, in every job's process too."""
    tree = ast.parse(file.read_text(), str(file))
    imports = _pipeline_imports(tree, file.parent.relative_to(PACKAGE_ROOT.parent).parts)
    for node in ast.walk(tree):
        if isinstance(node, DOCUMENTED) and ast.get_docstring(node, clean=False) is not None:
            node.body = node.body[1:]
    return ast.dump(tree).encode(), imports


def _pipeline_imports(tree: ast.Module, package: tuple[str, ...]) -> tuple[str, ...]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = ".".join(package[: len(package) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            found += [base] + [f"{base}.{alias.name}" for alias in node.names]
    root = PACKAGE_ROOT.name
    return tuple(name for name in found if name == root or name.startswith(root + "."))


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
