"""The external beat measurement's grids (scripts/phase_analysis.py): the clock's own grid follows its ticks,
restarts where the host jumps, and is what a jittered clock states rather than the transport."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("phase_analysis", ROOT / "scripts" / "phase_analysis.py")
pa = importlib.util.module_from_spec(spec)
sys.modules.setdefault("phase_analysis", pa)  # its dataclasses look their module up
spec.loader.exec_module(pa)

SR, BPM = 44100, 120.0
TICK = SR * 60 / BPM / 24  # samples per MIDI clock tick


def test_the_clock_grid_follows_a_wobbling_clock_and_restarts_after_a_locate():
    n = 20 * SR
    host = np.arange(n) / SR * BPM / 60  # the transport: 2 beats a second
    host[10 * SR :] += 64.0  # a locate 64 beats on at 10 s
    k = np.arange(int(n / TICK))
    wobble = 0.010 * SR * np.sin(2 * np.pi * k / 480)  # the clock strays up to 10 ms from the transport
    ticks = np.round(k * TICK + wobble).astype(int)
    ticks = ticks[(ticks >= 0) & (ticks < n)]
    grid = pa.clock_grid(ticks, host)
    # on a tick the clock's grid says that tick's beat, wherever the tick fell
    at = ticks[10:20]
    assert np.allclose(grid[at], np.arange(10, 20) / 24)
    after = ticks[ticks > 10 * SR + 2 * TICK][:5]
    assert np.allclose(grid[after], np.round(host[after] * 24) / 24, atol=1 / 24)  # restarted after the locate
    stray = np.nanmax(np.abs(grid[: 9 * SR] - host[: 9 * SR])) * 60 / BPM * 1000
    assert 8.0 < stray < 12.0  # the wobble, in ms: the clock's grid is not the transport's



def test_the_clock_grid_counts_what_the_sender_counted_across_xruns():
    """jack_midi_clock's -J jitter walks (each tick placed after the last jittered one); an xrun makes it skip a
    tick (its count moves on) and drops a period from the recording (a tick recorded early, or twice). The clock's
    grid follows the walk and counts the skipped tick, and neither recording fault moves it."""
    rng = np.random.default_rng(1)
    n = 60 * SR
    # host frames of the sender's ticks: jittered by 3 %, and walking away from the host (0.4 % slow on average)
    sender = np.cumsum(TICK * (1.004 + 0.03 * rng.uniform(-1, 1, int(n / TICK))))
    sender = sender[sender < n - 4 * 512]
    sent = np.ones(sender.size, bool)
    sent[1500] = False  # skipped by the sender after an xrun: its count still moved on
    host_frames = np.arange(n, dtype=float)
    recorded = np.arange(n, dtype=float)
    drop = 40 * SR  # the recorder misses the period before this frame: later samples are recorded 512 early
    recorded[drop:] -= 512
    keep = recorded >= 0
    host = np.full(n, np.nan)
    host[recorded[keep].astype(int)] = host_frames[keep] / SR * BPM / 60  # host beat of each recorded sample
    host = host[: n - 512]
    lost = (sender >= drop - 512) & (sender < drop)  # sent in the period the recorder missed: never recorded
    sent &= ~lost
    ticks = np.round(sender[sent] - np.where(sender[sent] >= drop, 512, 0)).astype(int)
    twice = np.flatnonzero(sender[sent] > 50 * SR)[0]
    ticks = np.sort(np.r_[ticks, ticks[twice]])  # one tick recorded twice
    grid = pa.clock_grid(ticks, host)
    k = np.flatnonzero(sent) + 1  # the sender's own count of each tick recorded (its first is one clock in)
    ok = ticks[np.r_[True, np.diff(ticks) > 0]] < host.size
    counted = grid[ticks[np.r_[True, np.diff(ticks) > 0]][ok]] * 24
    assert np.allclose(counted, k[ok], atol=1e-6)  # on every tick: the sender's count, not the recorder's
    walk = np.nanmax(np.abs(grid - host)) * 24
    assert walk > 5.0  # clocks: the walk strays from the transport; the grid follows the clock, not the host


def test_a_locate_back_keeps_the_host_grid_in_time_order_with_its_beat_phase():
    """A host stopped at beat 20.4, located back to beat 8 and played on: the measured beats run on in time order
    (interpolation needs a monotonic grid) and fall on the host's beats after the locate."""
    host = np.arange(12 * SR) / SR * BPM / 60  # 2 beats a second
    stopped = np.full(SR // 2, np.nan)
    after = 8.0 + np.arange(5 * SR) / SR * BPM / 60
    grid = pa.unwrap_locates(np.r_[host[: int(10.2 * SR)], stopped, after])
    ok = np.isfinite(grid)
    assert np.all(np.diff(grid[ok]) > 0)
    resumed = grid[int(10.2 * SR) + SR // 2 :]
    assert 20.4 < resumed[0] < 21.4  # numbered on from the stop
    assert resumed[0] % 1.0 == 0.0  # the host's beat 8 stays on a whole beat
    assert np.array_equal(grid[: int(10.2 * SR)], host[: int(10.2 * SR)])


def test_a_tempo_maps_beat_runs_on_through_steps_and_ramps_and_locates_invert_it():
    spec = importlib.util.spec_from_file_location("tempo_map", ROOT / "scripts" / "tempo_map.py")
    tm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tm)
    tempo = tm.TempoMap(120.0, [(10.0, "tempo", 132.0), (20.0, "ramp", 120.0)], SR, ramp_s=8.0)
    frames = np.arange(0, 40 * SR, 64)
    beats = tempo.beat(frames)
    assert np.all(np.diff(beats) > 0) and np.max(np.diff(beats)) < 64 / SR * 132 / 60 * 1.001  # no jump anywhere
    assert np.isclose(tempo.beat(10 * SR), 20.0) and np.isclose(tempo.beat(15 * SR), 31.0)  # 10 s at 120, then 132
    assert np.isclose(tempo.beat(28 * SR), 42.0 + 8 * 126 / 60)  # the ramp: its mean tempo for 8 s
    assert np.isclose(tempo.bpm(24 * SR), 126.0) and np.isclose(tempo.bpm(30 * SR), 120.0)
    assert abs(tempo.frame_of_beat(50.0) - np.interp(50.0, beats, frames)) < 1.0
    cycles = [(0, 0, True, 120.0), (512, 10 * SR, True, 132.0)]  # the grid from the map, not frame x tempo
    grid = pa.host_grid(cycles, 1024, tempo.beat)
    assert grid[0] == 0.0 and np.isclose(grid[512], 20.0) and abs(grid[1023] - (20.0 + 511 / SR * 132 / 60)) < 1e-9
