"""Live beats against a host's beat grid, the analysis (pure: recorded audio and the host grid in, figures out).

Used by scripts/live_phase.py (the rig) and its tests. The tracker is not the lock's estimator: librosa's onset
strength (n_fft 512, hop 64, 40 mel bands) peaks near each host beat, its lag calibrated on synthetic kicks;
librosa's beat_track gives the tempo.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import median_filter

SR = 44100


@dataclass(frozen=True)
class PhaseFigures:
    """Phase errors of tracked beats against the host grid, in ms (positive: the beat is heard late)."""

    beats: int
    median_abs_ms: float
    p95_abs_ms: float
    signed_median_ms: float
    first_minute_ms: float
    last_minute_ms: float
    drift_ms: float
    tracked_bpm: float


@functools.lru_cache(maxsize=4)
def onset_lag_s(sr: int = SR, hop: int = 64) -> float:
    """Where the tracker's onset peak lies relative to a kick's first sample (seconds), measured on synthetic
    kicks (a decaying 55 Hz sine with a click, every 0.5 s)."""
    n = int(8 * sr)
    y = np.zeros(n, np.float32)
    t = np.arange(int(0.25 * sr)) / sr
    kick = (np.sin(2 * np.pi * (55 + 80 * np.exp(-t * 40)) * t) * np.exp(-t * 12)).astype(np.float32)
    starts = np.arange(int(0.25 * sr), n - kick.size, int(0.5 * sr))
    for s in starts:
        y[s : s + kick.size] += kick
    y += 0.01 * np.random.default_rng(0).standard_normal(n).astype(np.float32)
    peaks = _peaks_near(y, sr, starts.astype(float), 0.06, hop)
    return float(np.nanmedian(peaks - starts / sr))


def _onset_env(y: np.ndarray, sr: int, hop: int) -> np.ndarray:
    import librosa

    return librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop, n_fft=512, n_mels=40)


def _peaks_near(y: np.ndarray, sr: int, samples: np.ndarray, window_s: float, hop: int = 64) -> np.ndarray:
    """Time (s) of the onset-strength peak within +-window_s of each sample position (NaN: none)."""
    env = _onset_env(y, sr, hop)
    floor = 3.0 * float(np.median(env)) + 1e-9  # a beat without a clear onset (a break, no kick) is not measured
    out = np.full(len(samples), np.nan)
    w = max(1, int(window_s * sr / hop))
    for i, s in enumerate(samples):
        c = int(round(s / hop))
        a, b = max(0, c - w), min(env.size, c + w + 1)
        if b - a < 3:
            continue
        j = a + int(np.argmax(env[a:b]))
        if env[j] < floor or not a < j < b - 1:  # no clear onset, or the window's edge (a 16th, not the beat)
            continue
        if 0 < j < env.size - 1:
            p, q, r = env[j - 1], env[j], env[j + 1]
            d = p - 2 * q + r
            frac = 0.5 * (p - r) / d if d < 0 else 0.0
        else:
            frac = 0.0
        out[i] = (j + frac) * hop / sr
    return out


def beat_onsets(audio: np.ndarray, sr: int, host_beat_at: np.ndarray, hop: int = 64,
                window: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """(host beats, onset times s): for every whole host beat in the recording, the time of the strongest onset
    (librosa onset strength, n_fft 512, hop 64, parabolic peak) within +-`window` beats of it, minus the
    tracker's calibrated onset lag. Off-beats and 16ths (hats) lie outside the window, the kick inside; a beat
    whose strongest onset is at the window's edge (a 16th, no kick) or not clear is not measured."""
    y = np.asarray(audio, np.float32)
    if y.ndim == 2:
        y = y.mean(axis=0)
    ok = np.flatnonzero(np.isfinite(host_beat_at))
    if ok.size < 2:
        return np.zeros(0), np.zeros(0)
    first, last = math.ceil(host_beat_at[ok[0]] + window), math.floor(host_beat_at[ok[-1]] - window)
    beats = np.arange(first, last + 1, dtype=float)
    pos = np.interp(beats, host_beat_at[ok], ok.astype(float))  # the host grid is monotonic while rolling
    spb = float(np.median(np.diff(pos))) if pos.size > 1 else sr * 0.5
    t = _peaks_near(y, sr, pos, window * spb / sr, hop) - onset_lag_s(sr, hop)
    keep = np.isfinite(t)
    return beats[keep], t[keep]


def tracked_bpm(audio: np.ndarray, sr: int, bpm: float, hop: int = 512) -> float:
    """Tempo of the recording by librosa beat_track and a line through its beat times. Hop 512: its tempogram
    spans 8 s of frames at every frame, which at hop 64 took 11 GB for a minute of audio (a line through a
    minute's beats is exact enough at 11.6 ms steps)."""
    import librosa

    y = np.asarray(audio, np.float32)
    if y.ndim == 2:
        y = y.mean(axis=0)
    env = _onset_env(y, sr, hop)  # n_fft 512: beat_track's own 2048-point STFT at hop 64 takes GBs for minutes
    _, frames = librosa.beat.beat_track(onset_envelope=env, sr=sr, hop_length=hop, start_bpm=bpm, tightness=400)
    if len(frames) < 8:
        return math.nan
    t = frames * hop / sr
    k = np.round((t - t[0]) / (60.0 / bpm))
    return float(60.0 / np.polyfit(k, t, 1)[0])


def phase_figures(beats: np.ndarray, onset_s: np.ndarray, host_beat_at: np.ndarray, sr: int, bpm: float,
                  skip_beats: float = 0.0) -> PhaseFigures:
    """Figures for onsets `onset_s` (s from the recording start) of host `beats` against `host_beat_at`, the
    host's beat position of every recorded sample (NaN where the transport was not rolling)."""
    ok = np.flatnonzero(np.isfinite(host_beat_at))
    keep = beats >= host_beat_at[ok[0]] + skip_beats
    beats, onset_s = beats[keep], onset_s[keep]
    expected = np.interp(beats, host_beat_at[ok], ok.astype(float)) / sr
    err = (onset_s - expected) * 1000.0
    if err.size < 4:
        nan = math.nan
        return PhaseFigures(int(err.size), nan, nan, nan, nan, nan, nan, nan)
    per_min = bpm  # beats in a minute
    first = err[beats < beats[0] + per_min]
    last = err[beats > beats[-1] - per_min]
    return PhaseFigures(
        beats=int(err.size), median_abs_ms=float(np.median(np.abs(err))),
        p95_abs_ms=float(np.percentile(np.abs(err), 95)), signed_median_ms=float(np.median(err)),
        first_minute_ms=float(np.median(first)), last_minute_ms=float(np.median(last)),
        drift_ms=float(np.median(last) - np.median(first)), tracked_bpm=math.nan,
    )


def self_grid(audio: np.ndarray, grid: np.ndarray, bpm: float, hop: int = 64) -> np.ndarray:
    """For a daemon on its own clock (internal, OSC): a grid whose phase is where its kicks are (the low band's
    onset strength folded over the transport's beats, whose phase is arbitrary here), then a line fitted through
    the kicks found on it: phase stability and drift only, not an offset from a host. The line is fitted in the
    device's time, the transport's frames (``grid`` rolls at ``bpm``): a period the JACK server skipped (an
    xrun) is missing from the recording but passed on the device, as it does for a listener and the host."""
    import librosa

    ok = np.flatnonzero(np.isfinite(grid))
    y = np.asarray(audio, np.float32).mean(axis=0)
    env = librosa.onset.onset_strength(y=y, sr=SR, hop_length=hop, n_fft=1024, fmax=150.0, n_mels=8)
    frames = np.arange(env.size) * hop
    live = frames[(frames >= ok[0]) & (frames <= ok[-1])]
    phase = np.floor((grid[live] % 1.0) * 64).astype(int)
    fold = np.bincount(phase, env[live // hop], 64) / np.maximum(np.bincount(phase, None, 64), 1)
    shifted = grid - (np.argmax(fold) + 0.5) / 64  # beats of the kicks' own grid
    beats, t = beat_onsets(audio, SR, shifted)
    if beats.size < 8:
        return shifted
    device_s = grid * 60.0 / bpm  # device seconds of each recorded sample
    slope, icpt = np.polyfit(beats, np.interp(t * SR, ok, device_s[ok]), 1)
    out = np.full(grid.size, np.nan)
    out[ok] = (device_s[ok] - icpt) / slope
    return out


def host_grid(cycles: list[tuple[int, int, bool, float]], n: int,
              beat_of_frame: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Host beat position of each of `n` recorded samples from per-cycle (recorded index, transport frame,
    rolling, bpm) records; NaN where the transport was stopped. The beat of a frame is frame / rate * bpm / 60 (as
    jack_transport states it), or ``beat_of_frame`` (a tempo map's)."""
    out = np.full(n, np.nan)
    for k, (i, frame, rolling, bpm) in enumerate(cycles):
        j = cycles[k + 1][0] if k + 1 < len(cycles) else n
        if rolling and bpm > 0 and j > i:
            frames = frame + np.arange(j - i)
            out[i:j] = frames / SR * bpm / 60.0 if beat_of_frame is None else beat_of_frame(frames)
    return out


def unwrap_locates(grid: np.ndarray) -> np.ndarray:
    """The host grid with every locate (a jump of more than half a beat between rolling samples, across a stop or
    not) taken out in whole beats, leaving 0-1 beat forward: the beat phase after the jump is the host's, the
    numbering runs on, so beats stay in time order and the grid is monotonic for interpolation. NaN (stopped)
    stays NaN."""
    out = np.array(grid, dtype=np.float64)
    ok = np.flatnonzero(np.isfinite(out))
    if ok.size < 2:
        return out
    step = np.diff(out[ok])
    per_sample = float(np.median(step))
    jump = step - np.where(np.diff(ok) == 1, per_sample, 0.0)  # across a stop the host did not move
    shift = np.where(np.abs(jump) > 0.5, -np.floor(jump), 0.0)  # what is left of the jump: 0-1 beat forward
    out[ok[1:]] += np.cumsum(shift)
    return out


def clock_grid(tick_samples: np.ndarray, host: np.ndarray, ppqn: int = 24) -> np.ndarray:
    """The beat grid a MIDI clock states: the beat position of every recorded sample, by linear interpolation
    between its ticks (recorded sample indices). Each run of ticks (a new one after a pause or where the host's
    position jumps: stop/continue, locate) starts on the host's nearest tick position (`host`: host beats per
    sample, NaN where stopped); NaN outside the ticks. Within a run each tick counts the clocks the sender moved
    on since the last, read from the host's advance between them rounded to whole clocks (a jittered tick strays
    a few percent of a clock from its place): a tick the sender skipped (jack_midi_clock skips one that falls
    before its cycle, after an xrun) counts two, the same tick recorded twice (an xrun in the recorder) none. The
    recorded intervals are not used: an xrun drops a period from the recording. A jittered sender's grid strays
    from the host's own: this is the grid a clock follower can know."""
    out = np.full(host.shape[0], np.nan)
    tk = np.asarray(tick_samples, dtype=np.int64)
    tk = tk[(tk >= 0) & (tk < host.shape[0])]
    tk = tk[np.isfinite(host[tk])]
    if tk.size < 2:
        return out
    gap = np.diff(tk).astype(float)
    period = median_filter(gap, size=49, mode="nearest")  # the clock's interval here (tempo changes move it)
    advance = np.diff(host[tk]) * ppqn  # the host's advance between two ticks, in clocks
    jump = np.abs(advance - gap / period) > 1.5  # the host moved by far other than the interval: a locate
    starts = np.r_[0, np.flatnonzero((gap > 3 * period) | jump) + 1, tk.size]
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        if b - a < 2:
            continue
        steps = np.rint(advance[a : b - 1])
        keep = np.r_[True, steps > 0]
        seg = tk[a:b][keep]
        beats = np.round(host[tk[a]] * ppqn) / ppqn + np.r_[0, np.cumsum(steps[steps > 0])] / ppqn
        idx = np.arange(seg[0], seg[-1] + 1)
        out[idx] = np.interp(idx, seg, beats)
    return out
    gap = np.diff(tk).astype(float)
    period = median_filter(gap, size=49, mode="nearest")  # the clock's interval here (tempo changes move it)
    jump = np.abs(np.diff(host[tk]) * ppqn - gap / period) > 0.5  # the host moved by other than the interval
    starts = np.r_[0, np.flatnonzero((gap > 3 * period) | jump) + 1, tk.size]
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        if b - a < 2:
            continue
        kept, count = [tk[a]], [0]
        for i in range(a + 1, b):  # counted by intervals; a stray extra tick does not count
            steps = (tk[i] - kept[-1]) / period[i - 1]
            if steps >= 0.5:
                kept.append(tk[i])
                count.append(count[-1] + max(1, round(steps)))
        seg = np.asarray(kept)
        beats = np.round(host[seg[0]] * ppqn) / ppqn + np.asarray(count) / ppqn
        idx = np.arange(seg[0], seg[-1] + 1)
        out[idx] = np.interp(idx, seg, beats)
    return out
