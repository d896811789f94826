"""A local Inception-3D with seeded random weights, saved with the TF-Hub I3D module's signature.

The FVD embedding network is I3D (Carreira and Zisserman 2017, "Quo Vadis, Action
Recognition?"), the TF-Hub module ``deepmind/i3d-kinetics-400/1``. Machines without that module
(and the tests) use this builder instead: the same architecture as ``deepmind/kinetics-i3d``'s
``InceptionI3d`` up to the ``Logits`` end point (Unit3D = 3-D convolution without bias, batch
norm without scale, ReLU; SAME padding; the Mixed_3b..5c inception blocks; a [2, 7, 7] VALID
average pool, a 1x1x1 convolution to 400 logits, the mean over time), saved as a TF2
SavedModel whose ``default`` signature takes ``rgb_input`` float32 [batch, frames, 224, 224, 3]
in [-1, 1] and returns ``default`` [batch, 400], so ``hub.load`` reads it exactly like the real
module (fvd.md 2.2). No ``tfhub_module.pb`` is written: it would make ``hub.load`` ask for TF1
tags.

Weights are drawn from a NumPy generator seeded by ``--seed`` (He-normal convolutions); the
batch-norm statistics are then set from one forward pass over seeded smooth random videos, so
the stored-statistics (inference) graph keeps activations near unit scale instead of exploding
or vanishing through 60-odd random layers. ``--width-multiplier`` scales every channel count
(0.25: a sixteenth of the compute) so that FVD fits on a laptop CPU. An FVD computed with this
network is not comparable to published FVDs; ``local_i3d.json`` in the output says what it is
and the table repeats it.

This module imports TensorFlow: run it in a process that never imports torch.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from pipeline.cli import run_main  # noqa: E402
from pipeline.errors import PipelineError  # noqa: E402
from pipeline.io import atomic_dir  # noqa: E402
from pipeline.provenance import code_version, provenance  # noqa: E402

__all__ = ["InceptionI3d", "LOCAL_META", "build_local_i3d", "save_local_i3d", "main"]

LOCAL_META = "local_i3d.json"  # marks a directory made here (read by pipeline.fvd.embed)
FRAME_SIZE = 224
NUM_CLASSES = 400
BN_EPSILON = 1e-3  # Sonnet BatchNorm's default, used by deepmind/kinetics-i3d
# Inception blocks of I3D: branch 0 1x1; branch 1 1x1 -> 3x3x3; branch 2 1x1 -> 3x3x3;
# branch 3 3x3x3 max pool -> 1x1 (output channels of each convolution, in that order).
MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}
# Max pools before the blocks named: (kernel, stride) over (time, height, width).
POOL_BEFORE = {
    "Conv3d_2b_1x1": ((1, 3, 3), (1, 2, 2)),  # MaxPool3d_2a_3x3
    "Mixed_3b": ((1, 3, 3), (1, 2, 2)),       # MaxPool3d_3a_3x3
    "Mixed_4b": ((3, 3, 3), (2, 2, 2)),       # MaxPool3d_4a_3x3
    "Mixed_5b": ((2, 2, 2), (2, 2, 2)),       # MaxPool3d_5a_2x2
}


def _pool(x: tf.Tensor, kernel: Sequence[int], stride: Sequence[int]) -> tf.Tensor:
    return tf.nn.max_pool3d(x, [1, *kernel, 1], [1, *stride, 1], padding="SAME")


class InceptionI3d(tf.Module):
    """Inception-3D up to the 400 logits averaged over time, with seeded random weights."""

    def __init__(self, width_multiplier: float = 1.0, seed: int = 0, num_classes: int = NUM_CLASSES):
        super().__init__(name="inception_i3d")
        if not 0 < width_multiplier <= 4:
            raise ValueError(f"width multiplier must be in (0, 4], got {width_multiplier}")
        self.width_multiplier = float(width_multiplier)
        self._rng = np.random.default_rng(seed)
        self.units: dict[str, dict[str, tf.Variable]] = {}
        channels = self._add_unit("Conv3d_1a_7x7", 3, 64, 7)
        channels = self._add_unit("Conv3d_2b_1x1", channels, 64, 1)
        channels = self._add_unit("Conv3d_2c_3x3", channels, 192, 3)
        for block, widths in MIXED.items():
            channels = self._add_mixed(block, channels, widths)
        fan_in = channels
        self.logits_kernel = tf.Variable(
            self._rng.normal(0.0, np.sqrt(1.0 / fan_in), (1, 1, 1, fan_in, num_classes)).astype(np.float32),
            name="Logits/Conv3d_0c_1x1/kernel")
        self.logits_bias = tf.Variable(np.zeros(num_classes, np.float32), name="Logits/Conv3d_0c_1x1/bias")
        del self._rng  # not a trackable; the weights are drawn

    def _width(self, channels: int) -> int:
        return max(1, int(round(channels * self.width_multiplier)))

    def _add_unit(self, name: str, in_channels: int, out_channels: int, kernel: int) -> int:
        out_channels = self._width(out_channels)
        fan_in = in_channels * kernel**3
        weights = self._rng.normal(0.0, np.sqrt(2.0 / fan_in), (kernel,) * 3 + (in_channels, out_channels))
        self.units[name] = {
            "kernel": tf.Variable(weights.astype(np.float32), name=f"{name}/kernel"),
            "moving_mean": tf.Variable(np.zeros(out_channels, np.float32), name=f"{name}/moving_mean"),
            "moving_variance": tf.Variable(np.ones(out_channels, np.float32), name=f"{name}/moving_variance"),
            "beta": tf.Variable(np.zeros(out_channels, np.float32), name=f"{name}/beta"),
        }
        return out_channels

    def _add_mixed(self, block: str, in_channels: int, widths: tuple[int, ...]) -> int:
        b0, b1a, b1b, b2a, b2b, b3 = widths
        out = self._add_unit(f"{block}/Branch_0/Conv3d_0a_1x1", in_channels, b0, 1)
        mid = self._add_unit(f"{block}/Branch_1/Conv3d_0a_1x1", in_channels, b1a, 1)
        out += self._add_unit(f"{block}/Branch_1/Conv3d_0b_3x3", mid, b1b, 3)
        mid = self._add_unit(f"{block}/Branch_2/Conv3d_0a_1x1", in_channels, b2a, 1)
        out += self._add_unit(f"{block}/Branch_2/Conv3d_0b_3x3", mid, b2b, 3)
        out += self._add_unit(f"{block}/Branch_3/Conv3d_0b_1x1", in_channels, b3, 1)
        return out

    def _unit(self, x: tf.Tensor, name: str, stride: int = 1, calibrate: bool = False) -> tf.Tensor:
        unit = self.units[name]
        x = tf.nn.conv3d(x, unit["kernel"], [1, stride, stride, stride, 1], padding="SAME")
        if calibrate:
            # Data-dependent init: the stored statistics become this batch's statistics.
            mean, variance = tf.nn.moments(x, axes=[0, 1, 2, 3])
            unit["moving_mean"].assign(mean)
            unit["moving_variance"].assign(variance)
        x = tf.nn.batch_normalization(x, unit["moving_mean"], unit["moving_variance"], unit["beta"], None,
                                      BN_EPSILON)
        return tf.nn.relu(x)

    def _mixed(self, x: tf.Tensor, block: str, calibrate: bool) -> tf.Tensor:
        branch0 = self._unit(x, f"{block}/Branch_0/Conv3d_0a_1x1", calibrate=calibrate)
        branch1 = self._unit(self._unit(x, f"{block}/Branch_1/Conv3d_0a_1x1", calibrate=calibrate),
                             f"{block}/Branch_1/Conv3d_0b_3x3", calibrate=calibrate)
        branch2 = self._unit(self._unit(x, f"{block}/Branch_2/Conv3d_0a_1x1", calibrate=calibrate),
                             f"{block}/Branch_2/Conv3d_0b_3x3", calibrate=calibrate)
        branch3 = self._unit(_pool(x, (3, 3, 3), (1, 1, 1)), f"{block}/Branch_3/Conv3d_0b_1x1",
                             calibrate=calibrate)
        return tf.concat([branch0, branch1, branch2, branch3], axis=4)

    def logits(self, frames: tf.Tensor, calibrate: bool = False) -> tf.Tensor:
        """The 400 logits averaged over time, float32 [batch, 400], of frames in [-1, 1]."""
        x = self._unit(frames, "Conv3d_1a_7x7", stride=2, calibrate=calibrate)
        x = _pool(x, *POOL_BEFORE["Conv3d_2b_1x1"])
        x = self._unit(x, "Conv3d_2b_1x1", calibrate=calibrate)
        x = self._unit(x, "Conv3d_2c_3x3", calibrate=calibrate)
        for block in MIXED:
            if block in POOL_BEFORE:
                x = _pool(x, *POOL_BEFORE[block])
            x = self._mixed(x, block, calibrate)
        x = tf.nn.avg_pool3d(x, [1, 2, 7, 7, 1], [1, 1, 1, 1, 1], padding="VALID")
        x = tf.nn.conv3d(x, self.logits_kernel, [1, 1, 1, 1, 1], padding="SAME") + self.logits_bias
        return tf.reduce_mean(tf.squeeze(x, axis=[2, 3]), axis=1)

    @tf.function(input_signature=[tf.TensorSpec([None, None, FRAME_SIZE, FRAME_SIZE, 3], tf.float32)])
    def serve(self, rgb_input: tf.Tensor) -> dict[str, tf.Tensor]:
        """The TF-Hub module's ``default`` signature: ``rgb_input`` -> ``default`` [batch, 400]."""
        return {"default": self.logits(rgb_input)}


def calibration_videos(seed: int, videos: int = 2, frames: int = 16) -> np.ndarray:
    """Seeded smooth random videos in [-1, 1]: blocks of 16x16 pixels and 4 frames."""
    rng = np.random.default_rng(seed + 1)
    coarse = rng.uniform(-1.0, 1.0, (videos, max(1, frames // 4), FRAME_SIZE // 16, FRAME_SIZE // 16, 3))
    smooth = coarse.repeat(4, axis=1)[:, :frames].repeat(16, axis=2).repeat(16, axis=3)
    return smooth.astype(np.float32)


def build_local_i3d(width_multiplier: float = 1.0, seed: int = 0, calibration_frames: int = 16) -> InceptionI3d:
    """A seeded random I3D with batch-norm statistics set on seeded calibration videos."""
    model = InceptionI3d(width_multiplier=width_multiplier, seed=seed)
    model.logits(tf.constant(calibration_videos(seed, frames=calibration_frames)), calibrate=True)
    return model


def save_local_i3d(output: str | Path, width_multiplier: float = 1.0, seed: int = 0) -> dict[str, Any]:
    """Build the local I3D and save it as a TF2 SavedModel at ``output`` (atomically); return its meta."""
    model = build_local_i3d(width_multiplier, seed)
    settings = {"width_multiplier": float(width_multiplier), "seed": int(seed)}
    meta = {
        "kind": "local_random",
        "architecture": "Inception-3D (Carreira and Zisserman 2017), deepmind/kinetics-i3d end point Logits",
        "width_multiplier": float(width_multiplier),
        "seed": int(seed),
        "weights": "seeded random (He normal), batch-norm statistics from seeded smooth random videos",
        "published_i3d": False,     # the weights are not DeepMind's Kinetics-400 I3D
        "provenance": provenance("i3d", settings, code_version("pipeline.fvd.i3d"), seed=seed),
    }
    with atomic_dir(output) as tmp:
        tf.saved_model.save(model, str(tmp), signatures={"default": model.serve})
        (tmp / LOCAL_META).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.fvd.i3d", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="SavedModel directory to write")
    parser.add_argument("--width-multiplier", type=float, default=1.0,
                        help="scale of every channel count (1.0: the real I3D's widths)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 0 < args.width_multiplier <= 4:
        raise PipelineError(f"--width-multiplier must be in (0, 4], got {args.width_multiplier}")
    save_local_i3d(args.output, args.width_multiplier, args.seed)


if __name__ == "__main__":
    run_main(main)
