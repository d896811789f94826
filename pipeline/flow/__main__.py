"""``python -m pipeline.flow``: the reference_flow stage (see :mod:`pipeline.flow.stage`)."""

from pipeline.cli import run_main
from pipeline.flow.stage import main

if __name__ == "__main__":
    run_main(main)
