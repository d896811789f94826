"""The shared command-line plumbing (pipeline/cli.py) that every stage's own tests rely on."""

from __future__ import annotations

import pytest

from pipeline.cli import read_batch_size
from pipeline.errors import PipelineError


def test_the_batch_size_argument_wins_over_the_settings():
    """A hand run with ``--config config.yaml --batch-size 1`` (a small GPU) must run at 1, and the
    provenance then says 1; the rule always passes the argument."""
    assert read_batch_size(1, {"batch_size": 8}, "labels.semantic.batch_size") == 1
    assert read_batch_size(None, {"batch_size": 8}, "labels.semantic.batch_size") == 8


@pytest.mark.parametrize("given, section, problem", [
    (None, {}, r"no batch size: give --batch-size \(the rule passes flow.batch_size\)"),
    (0, {}, "must be a positive integer, got 0"),
    (None, {"batch_size": True}, "must be a positive integer, got True"),     # YAML's `yes`
    (None, {"batch_size": "8"}, "must be a positive integer, got '8'"),
    (None, {"batch_size": 2.5}, "must be a positive integer, got 2.5"),
])
def test_a_missing_or_malformed_batch_size_is_named(given, section, problem):
    with pytest.raises(PipelineError, match=problem):
        read_batch_size(given, section, "flow.batch_size")
