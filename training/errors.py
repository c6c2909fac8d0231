"""Exceptions of the training package (all derive from generator.errors.MusikaError).

Only the CLI turns them into messages and exit codes; each message names the thing, the value, and what to do.
"""

from __future__ import annotations

from generator.errors import MusikaError


class TrainingError(MusikaError):
    """A training, encoding or export job cannot run with the given inputs."""


class CheckpointError(TrainingError):
    """A checkpoint is missing, unreadable, or does not belong to this run."""


class NonFiniteLossError(TrainingError):
    """A loss or gradient became NaN/inf; the last good checkpoint is left untouched."""


class TrainingDiverged(TrainingError):
    """A loss blew up (training.divergence); the checkpoint was put back to the last one before it."""


class TrainingInterrupted(TrainingError):
    """SIGINT/SIGTERM arrived; a checkpoint was written and ``--resume`` continues the run."""


class ExportError(TrainingError):
    """An ONNX export failed or its output does not match the PyTorch network."""
