"""Soak / benchmark of the live engine with a simulated real-time device (for `musika bench`).

A consumer thread reads the ring one device period at a time, paced by the wall clock, like a sound card; the
LiveStream worker renders ahead in its own thread. Every 8 bars the host tempo jumps (random 120-160 BPM),
every 4 bars density and variation change (bar-quantised), every minute the preset (or, with one preset, the
seed) switches. Reports real-time factor, underruns, control latency and the measured phase error.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from generator.runtime.engine import Engine
from generator.timeline.control_log import SessionHeader
from generator.timeline.live import LiveStream
from generator.timeline.stream import resolve_loader

logger = logging.getLogger(__name__)


def soak(presets: str | Path | Engine | Sequence[str | Path | Engine], minutes: float = 5.0, seed: int = 0,
         period: int = 512, threads: int | None = None, verbose: bool = False,
         ring_factory: Any = None) -> dict[str, float]:
    """Run the live engine for `minutes` of audio in real time; returns a dict of figures:

    rtf (mean render time / audio time), underruns, underrun_ms, latency_ms_median/max (bar-quantised control
    changes: arrival to audible), late_ms_max (audible minus the bar line it was quantised to: 0 = on time; the
    target is <= 50), phase_error_ms_median/p95 (|onset - host beat| of generated beats, where the
    lock found a pulse), phase_measured (beats measured), changes, wall_s."""
    items = list(presets) if isinstance(presets, list | tuple) else [presets]
    engines = [p if isinstance(p, Engine) else Engine.load(p, threads=threads) for p in items]
    by_name = {e.preset.name: e for e in engines}
    first = engines[0]
    rng = np.random.default_rng(seed)
    header = SessionHeader(first.preset.name, seed, 128.0, (4, 4), first.config.audio.sample_rate, {})
    if ring_factory is None:  # the daemon's ring (bridge.audio.ring); passed in to keep generator free of bridge
        from bridge.audio.ring import AudioRing as ring_factory
    ring = ring_factory(header.sample_rate * 10)
    live = LiveStream(resolve_loader(by_name.__getitem__), ring, header, sync_source="soak")
    sr = header.sample_rate
    stop = threading.Event()

    def device() -> None:
        buf = np.zeros((period, 2), np.float32)
        t_next = time.perf_counter()
        while not stop.is_set():
            ring.read_into(buf)
            t_next += period / sr
            delay = t_next - time.perf_counter()
            if delay > 0:
                time.sleep(delay)

    dev = threading.Thread(target=device, name="soak-device", daemon=True)
    live.start()
    live.play(0.0)
    t0 = time.perf_counter()
    dev.start()
    bar, changes, preset_i, next_preset = 0, 0, 0, 60.0
    try:
        while time.perf_counter() - t0 < minutes * 60.0:
            time.sleep(0.05)
            tel = live.telemetry()
            if tel.bar <= bar:
                continue
            bar = tel.bar
            if bar % 8 == 0:
                live.set_tempo(float(rng.uniform(120.0, 160.0)))
                changes += 1
            if bar % 4 == 0:
                live.set_control("variation", float(rng.uniform(0.8, 3.0)))
                if first.preset.has_condition("density"):
                    live.set_control("density", float(rng.uniform(1.0, 10.0)))
                changes += 1
            if time.perf_counter() - t0 >= next_preset:
                next_preset += 60.0
                if len(engines) > 1:
                    preset_i = (preset_i + 1) % len(engines)
                    live.set_preset(engines[preset_i].preset.name)
                else:
                    live.set_seed(int(rng.integers(0, 2**31 - 1)))
                changes += 1
            if verbose:
                from generator.timeline.telemetry import format_status

                logger.info(format_status(tel))
    finally:
        stop.set()
        live.close()
        dev.join(2.0)
    lat = np.asarray(live.latencies_ms, float)
    ph = np.abs(np.asarray(live.phase_errors_s, float)) * 1000
    return {
        "minutes": minutes,
        "wall_s": time.perf_counter() - t0,
        "rtf": float(live.rtf),
        "underruns": int(ring.underruns),
        "underrun_ms": ring.underrun_frames / sr * 1000,
        "latency_ms_median": float(np.median(lat)) if lat.size else math.nan,
        "latency_ms_max": float(lat.max()) if lat.size else math.nan,
        "late_ms_max": float(max(live.late_ms)) if live.late_ms else math.nan,
        "phase_error_ms_median": float(np.median(ph)) if ph.size else math.nan,
        "phase_error_ms_p95": float(np.percentile(ph, 95)) if ph.size else math.nan,
        "phase_measured": int(ph.size),
        "changes": changes,
        "errors": live.errors,
    }
