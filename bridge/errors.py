"""Exceptions raised by the bridge package (daemon, sync, MIDI, OSC, config).

All derive from :class:`generator.errors.MusikaError`, so the CLI turns any of them into one clear line and an
exit code. Messages name the thing, the value received, what is valid, and what to do next.
"""

from __future__ import annotations

from generator.errors import AudioOutputError, MusikaError


class BridgeError(MusikaError):
    """Base class of the bridge package's errors."""


class ConfigError(BridgeError, ValueError):
    """A configuration value (musika.toml, a CLI flag, an OSC request) is unknown or out of range."""


class MidiPortError(BridgeError):
    """A MIDI backend or port cannot be opened (no server, no such port, no virtual ports on this OS)."""


class DeviceUnavailable(BridgeError, AudioOutputError):
    """An audio device, JACK server, MIDI or network port could not be opened at start (exit code 3)."""
