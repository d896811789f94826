"""Atomic outputs: a stage's output appears whole at its final path, or the path keeps what it had.

What is guaranteed (Linux, POSIX file systems):

* The stage writes under a hidden temporary beside the target, ``.{name}.XXXXXXXX{suffix}``
  (``XXXXXXXX``: ``tempfile``'s eight random characters; same directory, so same file system, so
  the rename is atomic). Only when the ``with`` body ends without an exception is the temporary
  renamed onto the target: a reader of the target sees the old content or the whole new one.
* Any exception in the body removes the temporary and leaves the target as it was. That includes
  SIGTERM (a walltime kill, a Snakemake cancel) in a stage started through ``pipeline.cli.run_main``,
  which turns it into ``SystemExit(143)``.
* Nothing can clean up after SIGKILL or a node crash: the temporary stays behind, hidden and no
  declared output, and the next ``atomic_path``/``atomic_dir`` of the same target removes it (only
  names of exactly this module's pattern for that target) before it starts, so leftovers never
  pile up.
* ``atomic_dir`` replacing an existing target renames the old one aside
  (``.{name}.XXXXXXXX.old``), the new one in, then deletes the old one: the old output exists, at
  the target or aside, until the new one is at the target. Should a kill strand it aside, the next
  ``atomic_dir`` of the target puts it back.
* A file is fsynced before its rename, so after a crash the target holds the old content or the
  whole new one. (Directories are not: a label folder holds thousands of PNGs, and on a cluster
  file system an fsync each would cost more than the rare rerun it saves.)
* Not covered: two processes writing the same target at once (the later one's start removes the
  earlier one's temporary, so the earlier one fails); Snakemake never runs two jobs for one output.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "atomic_dir", "make_parent", "write_json", "read_json", "open_h5"]

_RANDOM = "[a-z0-9_]{8}"      # tempfile's random part: 8 of "abcdefghijklmnopqrstuvwxyz0123456789_"
_FILE_SUFFIX = ".tmp"          # atomic_path's suffix when the caller gives none
_ASIDE = ".old"                # atomic_dir: the old target while the new one is renamed in
_NEARLY_FULL = 1 << 20         # bytes free under which a failed write is taken for a full disk


@contextlib.contextmanager
def atomic_path(target: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary file path next to ``target``; rename it onto ``target`` on success.

    ``suffix`` keeps the extension for writers that dispatch on it (imageio, h5py does not care).
    The writer must have closed the file when the ``with`` body ends.
    """
    target = Path(target)
    suffix = suffix or _FILE_SUFFIX
    make_parent(target)
    for stale in _leftovers(target, suffix):
        if not stale.is_dir() or stale.is_symlink():
            stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        os.chmod(tmp_path, 0o666 & ~_umask())      # mkstemp makes 0600; outputs are shared on a cluster
        yield tmp_path
        _fsync(tmp_path)
        os.replace(tmp_path, target)
    except BaseException as err:
        full = _disk_full(err, target)      # asked before the temporary frees its space
        tmp_path.unlink(missing_ok=True)
        _raise_named(full, err, tmp_path, target)
        raise


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temporary directory next to ``target``; it replaces ``target`` on success.

    A crash mid-way (a city half labelled) leaves ``target`` as it was (absent, or the old output).
    """
    target = Path(target)
    make_parent(target)
    _recover_dir(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        _move_in(tmp, target)
    except BaseException as err:
        full = _disk_full(err, target)
        _remove(tmp)
        _raise_named(full, err, tmp, target)
        raise


def make_parent(target: Path) -> None:
    """The target's folder, made if missing; a file in the way or no permission named at once (an
    output folder that cannot exist would otherwise fail only when a long job writes its result)."""
    from pipeline.errors import PipelineError

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as err:
        in_the_way = next((parent for parent in target.parents if parent.exists() and not parent.is_dir()),
                          err.filename)
        raise PipelineError(f"cannot be written: {in_the_way} is a file, not a folder", target) from err
    except PermissionError as err:
        raise PipelineError(f"cannot be written: no permission to create {err.filename}", target) from err


# What a full disk or an exhausted quota raises varies: OSError with its errno (Python), h5py's
# OSError with the C library's message in its text, torch.save's bare "iostream error".
_FULL = {errno.ENOSPC, errno.EDQUOT}
_FULL_TEXTS = tuple(os.strerror(code) for code in _FULL)
# torch.save's failed writes: its zip writer's check, and the C++ stream's error.
_TORCH_WRITE_ERRORS = ("inline_container", "PytorchStreamWriter", "iostream error")


def _disk_full(err: BaseException, target: Path) -> bool:
    """Whether a write failed for want of space: said by the error, or seen on the disk."""
    from pipeline.errors import PipelineError

    if not isinstance(err, Exception) or isinstance(err, PipelineError):
        return False
    if getattr(err, "errno", None) in _FULL or any(text in str(err) for text in _FULL_TEXTS):
        return True
    # A write error that does not say why, on a disk seen full: only errors of writing count (a
    # labeller's CUDA out-of-memory in an atomic_dir body is not a full disk, whatever is free).
    says_nothing = isinstance(err, OSError) or (isinstance(err, RuntimeError)
                                                and any(text in str(err) for text in _TORCH_WRITE_ERRORS))
    if says_nothing:
        with contextlib.suppress(OSError):
            return shutil.disk_usage(target.parent).free < _NEARLY_FULL
    return False


def _raise_named(full: bool, err: BaseException, tmp: Path, target: Path) -> None:
    """A failed write said in one line naming ``target``: one that failed for want of space
    (``full``; what the target held is unchanged, as for any failed write), and an error an inner
    atomic write raised about a path in this one's temporary (synthesis writes its videos to a
    temporary, a label folder its provenance into one), whose hidden name, gone now, would send
    the reader looking for it. Any other error goes on as it was."""
    from pipeline.errors import PipelineError

    if full:
        raise PipelineError(f"not written: no space left on the disk (or quota) of {target.parent}; what was "
                            f"there is unchanged ({type(err).__name__}: {err})", target) from err
    if isinstance(err, PipelineError) and err.path is not None and (err.path == tmp or tmp in err.path.parents):
        raise PipelineError(err.message, target) from err


def _move_in(tmp: Path, target: Path) -> None:
    """Put the finished directory ``tmp`` at ``target``; the old target exists until it is there."""
    if not os.path.lexists(target):
        os.replace(tmp, target)
        return
    aside = tmp.with_name(tmp.name + _ASIDE)
    os.replace(target, aside)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(aside, target)         # the new one did not go in: the old one goes back
        raise
    _remove(aside)


def _recover_dir(target: Path) -> None:
    """Clear an earlier killed run's leftovers of ``target``; put back an old output stranded aside."""
    asides = sorted(_leftovers(target, _ASIDE), key=lambda path: path.lstat().st_mtime)
    if asides and not os.path.lexists(target):
        os.replace(asides.pop(), target)
    for stale in [*asides, *_leftovers(target, "")]:
        _remove(stale)


def _leftovers(target: Path, suffix: str) -> list[Path]:
    """This module's temporaries of ``target`` with exactly ``suffix``: ``.{name}.XXXXXXXX{suffix}``."""
    prefix = f".{target.name}."
    pattern = re.compile(re.escape(prefix) + _RANDOM + re.escape(suffix))
    with os.scandir(target.parent) as entries:
        return [target.parent / entry.name for entry in entries
                if entry.name.startswith(prefix) and pattern.fullmatch(entry.name)]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    """Flush a written file's data to disk (an error here means lost data: it propagates)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(target: str | Path, obj: Any, sort_keys: bool = False) -> None:
    """Write ``obj`` as indented JSON, atomically (``sort_keys``: keys in order, so that equal
    content gives equal bytes whatever order ``obj`` was built in)."""
    with atomic_path(target, suffix=".json") as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=sort_keys, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    from pipeline.errors import PipelineError

    path = Path(path)
    if not path.is_file():
        raise PipelineError("file not found", path)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:     # the latter: a binary file
        raise PipelineError(f"not valid JSON ({err})", path) from err


def open_h5(path: str | Path, kind: str = "HDF5 file", hint: str = "") -> Any:
    """Open an HDF5 file read-only (an ``h5py.File``), or raise a PipelineError naming it: the
    ``kind`` of file is missing (``hint`` says which rule makes it), or it is not HDF5 at all, as a
    file cut short by a killed copy is not."""
    import h5py

    from pipeline.errors import PipelineError

    path = Path(path)
    if path.is_dir():
        raise PipelineError(f"a folder, not a {kind}", path)
    if not path.is_file():
        raise PipelineError(f"{kind} not found{f' ({hint})' if hint else ''}", path)
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise PipelineError(f"not a readable HDF5 file (truncated or corrupt?): {err}", path) from err
