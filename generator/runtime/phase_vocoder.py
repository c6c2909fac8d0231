"""Phase for the decoded magnitudes, made from the magnitudes themselves (a phase vocoder with onset resets).

Why: decoder1's predicted phase repeats every 4 frames (1024 samples, its STFT frame), whatever the music, so
every frequency bin plays a line at a multiple of 44100 / 1024 = 43.07 Hz: a buzz 25-33 dB above its
neighbourhood in the long-term spectrum (measured on both shipped presets; the training audio has none). The
decoders' magnitudes are good, so the engine keeps them and replaces the phase:

- between onsets each bin advances by the frequency of its nearest spectral peak in that frame (the peak's
  position refined by quadratic interpolation of the dB magnitude), as a sinusoid at that frequency would;
- at an onset (a frame whose dB magnitude rises by more than ``ONSET_RISE`` on average over the bins) every bin
  restarts from the phase of an impulse at the frame's centre, so attacks such as kicks stay sharp; never at the
  first frame of a decoder window, where a rise is the join between two independently decoded windows (an
  impulse there would click at every join).

Measured with `musika eval PRESET --dataset ... --phase vocoder` (seeds 0-3), against the decoders' phase: the
43 Hz lines go (300-3200x -> ~2-6x their neighbourhood; the data: ~2x). Piano: density Spearman 0.92 -> 0.98,
realism ratio 11.7 -> 6.5, held-out onset F 0.96 -> 0.97, seams 1.13 -> 1.22 (bar 1.25). Techno: realism
5.35 -> 4.43, onset F 0.79 -> 0.82, within ±2 % 95.5 -> 97.7 %, but the median IBI CV 0.030 -> 0.049 (bar
0.05) and the live lock reads tempo less steadily (mean stretch per render up to 2.6 %). Resetting at window joins
too ("vocoder-joins") keeps techno's kicks steadier (IBI CV 0.026, within ±2 % 97.7 %, realism 4.43, seams 0.97)
but makes piano's joins click (seams 2.3), and the live lock (generator.timeline.stretch) misreads the tempo of more
techno
renders with either vocoder (2 of 20 renders' mean stretch off by over 2.5 %, vs 0). Since a phase-conditioned
preset is mapped on its conditioned grid (generator.timeline.stretch, ``trust_beats``), that misreading no longer moves
techno, and with its loudness recalibrated techno measures better with "vocoder" on every bar (comb 33.8x -> 2.1x
the held-out audio's, realism 3.0 -> 2.0, IBI CV 0.026 -> 0.022; presets/techno/MODEL_CARD.md). Each preset says
which phase it plays (`audio.phase`, set by `musika export --phase`): both shipped presets "vocoder" (users
override with `musika generate --phase`, `phase` in musika.toml or `Engine.load(..., phase=...)`). A plain vocoder
without onset resets smears kicks (IBI CV 0.051).

Streaming: :class:`VocoderPhase` keeps each channel's last phase and last frame, so successive calls give the
phases of one call on the concatenated frames.
"""

from __future__ import annotations

import numpy as np

# mean rise of the normalised dB magnitude over all bins that marks an onset frame: 0.03 x db_sigma (75 dB) = 2.25 dB
ONSET_RISE = 0.03


def peak_frequencies(norm: np.ndarray) -> np.ndarray:
    """(T, K) dB-like magnitudes -> (T, K) float64: the frequency, in bins, of each bin's nearest spectral peak
    (a local maximum over frequency; position refined by a parabola through the peak and its neighbours)."""
    mag = np.asarray(norm, np.float64)
    frames, bins = mag.shape
    a, b, c = mag[:, :-2], mag[:, 1:-1], mag[:, 2:]
    peak = np.zeros((frames, bins), bool)
    peak[:, 1:-1] = (b > a) & (b >= c)
    peak[:, 0] |= ~peak.any(axis=1)  # a frame without a peak (flat): bin 0 stands in
    curve = a - 2.0 * b + c
    delta = np.zeros((frames, bins))
    ok = np.abs(curve) > 1e-12
    delta[:, 1:-1][ok] = 0.5 * (a - c)[ok] / curve[ok]
    delta = np.clip(delta, -0.5, 0.5)
    idx = np.arange(bins)
    below = np.maximum.accumulate(np.where(peak, idx, -1), axis=1)  # nearest peak at or below each bin
    above = np.minimum.accumulate(np.where(peak, idx, 4 * bins)[:, ::-1], axis=1)[:, ::-1]  # at or above
    use_below = (below >= 0) & ((above >= bins) | (idx - below <= above - idx))
    nearest = np.clip(np.where(use_below, below, above), 0, bins - 1)
    return nearest + np.take_along_axis(delta, nearest, axis=1)


def onset_frames(norm: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """(T,) bool: frames whose mean positive rise over the frame before (`previous` for the first) exceeds
    ONSET_RISE."""
    mag = np.asarray(norm, np.float64)
    before = mag[:1] if previous is None else np.asarray(previous, np.float64)[None]
    rise = np.maximum(np.diff(np.concatenate([before, mag]), axis=0), 0.0).mean(axis=1)
    return rise > ONSET_RISE


class VocoderPhase:
    """Streaming phase (in units of pi, as decoder1 outputs it) for (channels, frames, bins) magnitudes."""

    def __init__(self, channels: int, bins: int, n_fft: int, hop: int, window: int = 0):
        self.n_fft, self.hop, self.window = n_fft, hop, window  # window: frames per decoder window (0: no joins)
        self.frame = 0  # frames seen (the position in the decoder-window grid)
        self.impulse = -np.pi * np.arange(bins, dtype=np.float64)  # an impulse at the frame centre (n_fft / 2)
        self.last = np.tile(self.impulse, (channels, 1))
        self.previous: list[np.ndarray | None] = [None] * channels

    def __call__(self, norm: np.ndarray) -> np.ndarray:
        channels, frames, bins = norm.shape
        out = np.empty(norm.shape, np.float32)
        if frames == 0:
            return out
        t = np.arange(frames)
        for ch in range(channels):
            step = 2.0 * np.pi * self.hop / self.n_fft * peak_frequencies(norm[ch])  # radians per frame
            total = np.cumsum(step, axis=0)
            reset = onset_frames(norm[ch], self.previous[ch])
            if self.window:  # never at the first frame of a decoder window (a join's step, not an attack)
                reset &= (self.frame + t) % self.window != 0
            last_reset = np.maximum.accumulate(np.where(reset, t, -1))
            since = total - total[np.maximum(last_reset, 0)]  # phase advance since the last reset
            phase = np.where((last_reset >= 0)[:, None], self.impulse[None, :] + since,
                             self.last[ch][None, :] + total)
            phase = np.mod(phase + np.pi, 2.0 * np.pi) - np.pi
            self.last[ch] = phase[-1]
            self.previous[ch] = np.asarray(norm[ch, -1], np.float64).copy()
            out[ch] = phase / np.pi
        self.frame += frames
        return out
