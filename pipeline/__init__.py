"""The video-synthesis study pipeline: one subpackage a stage, plus the shared parts.

Stages (each runnable as ``python -m pipeline.<stage> --help``) read and write files only, so
Torch stages and the TensorFlow FVD stage never share a process.
"""

__version__ = "0.1.0"
