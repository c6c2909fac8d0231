"""Exceptions raised by the generator package.

Every error a user can cause derives from :class:`MusikaError`, so the CLI can turn it into one clear line and
an exit code. Messages name the thing, the value received, what is valid, and what to do next.
"""

from __future__ import annotations


class MusikaError(Exception):
    """Base class of every user-facing error of Musika Bridge."""


class PresetError(MusikaError):
    """A preset directory is missing, malformed, or fails its integrity check."""


class ConditioningError(MusikaError, ValueError):
    """A conditioning value (tempo, density, ...) is unknown, not finite, or out of range."""


class AudioOutputError(MusikaError):
    """An output file or device cannot be written or opened."""
