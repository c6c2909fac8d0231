"""Latency calibration, the pure part: a click train to play, where it came back in a recording, and the
``sync.offset_ms`` line written into musika.toml with the user's other settings and comments kept.

A click is a 1 ms decaying pulse (full height at its first sample) every ``spacing_s``; the recording is matched
against the train by cross-correlation of their absolute envelopes (a polarity flip on the way back still
matches), and the delay is the lag of the highest peak, refined per click to its rising edge. Nothing here
touches a device; the command (bridge.commands.calibrate) plays and records.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from generator.atomic import write_text

from .errors import ConfigError

MAX_OFFSET_MS = 500.0  # a measured offset beyond this is not a route's latency (a wrong port, an echo)


@dataclass(frozen=True)
class Measurement:
    """delay_ms: median time from playing a click to recording it back. spread_ms: largest deviation of one
    click's delay from the median. clicks: clicks found (of those played)."""

    delay_ms: float
    spread_ms: float
    clicks: int


def click_train(sr: int, clicks: int = 8, spacing_s: float = 0.25,
                lead_s: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """(mono float32 signal, click start samples): `clicks` clicks `spacing_s` apart after `lead_s` of silence,
    and half a second of silence after the last."""
    starts = (np.arange(clicks) * spacing_s * sr + lead_s * sr).astype(int)
    n = int(starts[-1] + 0.5 * sr)
    y = np.zeros(n, np.float32)
    width = max(4, int(0.001 * sr))
    pulse = (0.5 * np.exp(-np.arange(width) / (width / 5))).astype(np.float32)  # full height at its first sample
    for s in starts:
        y[s : s + width] = pulse
    return y, starts


def find_delay(recorded: np.ndarray, sr: int, starts: np.ndarray, min_snr: float = 8.0) -> Measurement | None:
    """Where the clicks at `starts` (samples of the played train) are in `recorded` (mono or (channels, n)):
    None when no click stands clear of the noise (no loopback path)."""
    y = np.abs(np.asarray(recorded, np.float64))
    if y.ndim == 2:
        y = y.max(axis=0)
    if y.size < int(starts[-1]) + 2:
        return None
    noise = float(np.median(y)) + 1e-9
    template = np.zeros(int(starts[-1]) + 1)
    template[starts] = 1.0
    n = y.size + template.size
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(y, size) * np.conj(np.fft.rfft(template, size)), size)[: y.size]
    lag = int(np.argmax(corr))
    found = []
    w = max(2, int(0.002 * sr))
    for s in starts:
        a, b = lag + s - w, lag + s + w + 1
        if a < 0 or b > y.size:
            continue
        seg = y[a:b]
        if seg.max() < min_snr * noise:
            continue
        first = a + int(np.argmax(seg >= 0.5 * seg.max()))  # the click's rising edge, not its peak
        found.append(first - s)
    if len(found) < max(3, len(starts) // 2):
        return None
    d = np.asarray(found, float) / sr * 1000.0
    med = float(np.median(d))
    return Measurement(med, float(np.max(np.abs(d - med))), len(found))


def check_offset(offset_ms: float) -> float:
    """The offset to store, or ConfigError with the allowed range."""
    if not (math.isfinite(offset_ms) and abs(offset_ms) <= MAX_OFFSET_MS):
        raise ConfigError(
            f"measured offset {offset_ms:.1f} ms is outside -{MAX_OFFSET_MS:.0f}..{MAX_OFFSET_MS:.0f} ms: that is "
            "not the latency of an audio route (a wrong capture port, or an echo). Check the loopback connection "
            "and run musika calibrate again; or set sync.offset_ms by hand")
    return float(offset_ms)


_TABLE = re.compile(r"^\s*\[([^\]]+)\]\s*(#.*)?$")
_OFFSET = re.compile(r"^(\s*offset_ms\s*=\s*)([^#\n]*?)(\s*(#.*)?)$")


def set_offset_text(text: str, offset_ms: float, note: str = "") -> str:
    """musika.toml text with ``[sync] offset_ms`` set to `offset_ms` (rounded to 0.1 ms); every other line, and the
    comment after the value, kept. A missing [sync] table is appended."""
    value = f"{round(float(offset_ms), 1):g}"
    if "." not in value and "e" not in value:
        value += ".0"
    lines = text.splitlines()
    table = None
    sync_at = None
    for i, line in enumerate(lines):
        m = _TABLE.match(line)
        if m:
            table = m.group(1).strip()
            if table == "sync":
                sync_at = i
            continue
        if table == "sync":
            m = _OFFSET.match(line)
            if m:
                comment = m.group(3) if m.group(4) else (f"  # {note}" if note else "")
                lines[i] = f"{m.group(1)}{value}{comment}"
                return "\n".join(lines) + "\n"
    entry = f"offset_ms = {value}" + (f"  # {note}" if note else "")
    if sync_at is not None:
        lines.insert(sync_at + 1, entry)
    else:
        lines += ([""] if lines and lines[-1].strip() else []) + ["[sync]", entry]
    return "\n".join(lines) + "\n"


def store_offset(path: str | Path, offset_ms: float, note: str = "") -> Path:
    """Write `offset_ms` (checked) into the musika.toml at `path` (created if missing), atomically."""
    path = Path(path)
    text = path.read_text() if path.exists() else ""
    return write_text(path, set_offset_text(text, check_offset(offset_ms), note))
