"""The columns of a training run's ``losses.csv`` before its loss terms, in order.

The loop writes them (:mod:`pipeline.train.loop`) and the report reads the terms after them
(:mod:`pipeline.report.losses`). Their one home is this torch-free module, so the report reads
them without importing training, and its code version does not follow the loop's.
"""

__all__ = ["LOG_COLUMNS"]

LOG_COLUMNS = ("step", "stage", "epoch", "sample", "lr", "snippet")
