"""The Makefile's entry points: a bare `make` lists the targets instead of installing."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from conftest import REPO

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def make(*args: str) -> str:
    done = subprocess.run(["make", "-C", str(REPO), "--no-print-directory", *args], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_bare_make_is_make_help_and_installs_nothing():
    planned = make("-n")                     # what a bare `make` would run, not run
    assert "pip install" not in planned and "-m venv" not in planned, planned
    assert planned == make("-n", "help")


def test_make_help_lists_every_target_with_a_line():
    listed = make("help")
    phony = re.search(r"^\.PHONY:(.*)$", (REPO / "Makefile").read_text(), re.M)[1].split()
    assert {"help", "demo", "test", "lint", "bench", "envs", "clean-demo"} <= set(phony)
    for target in [*phony, ".venv/.installed"]:
        assert re.search(rf"^  {re.escape(target)} +\S", listed, re.M), (target, listed)
