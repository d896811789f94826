"""The one error class a stage raises for bad input: it names the file and the problem."""

from __future__ import annotations

from pathlib import Path


class PipelineError(Exception):
    """Bad input or configuration. ``main`` prints it on one line and exits 1.

    Always name the file (or config key) and what is wrong with it.
    """

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = None if path is None else Path(path)
        self.message = message
        super().__init__(f"{self.path}: {message}" if path is not None else message)
