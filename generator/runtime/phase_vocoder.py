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
phases of one call on the concatenated frames (within float32 rounding, 1e-4 pi).

Cost: the nearest peak of every bin is found per peak, not per bin (each peak covers a run of bins in the
flattened spectrogram, spread with one ``np.repeat``), and the phase is summed in float32 over blocks of
``BLOCK`` frames: 0.05 s per 30 s of stereo on one core (0.26 s as a per-bin float64 pass; docs/BENCHMARKS.md).
"""

from __future__ import annotations

import numpy as np

# mean rise of the normalised dB magnitude over all bins that marks an onset frame: 0.03 x db_sigma (75 dB) = 2.25 dB
ONSET_RISE = 0.03
BLOCK = 64  # frames summed in float32 before the phase is wrapped (keeps float32 rounding under 1e-5 pi)


def nearest_peaks(norm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, K) dB-like magnitudes -> (freq, counts): the frequency in bins of every spectral peak (a local maximum
    over frequency, refined by a parabola through it and its neighbours) in frame-major order, and how many
    consecutive bins (in the flattened (T * K) order) take each peak as their nearest; ties go to the lower peak,
    a frame without a peak (flat) takes bin 0."""
    mag = np.ascontiguousarray(norm, np.float32)
    frames, bins = mag.shape
    a, b, c = mag[:, :-2], mag[:, 1:-1], mag[:, 2:]
    peak = np.zeros((frames, bins), bool)
    np.greater(b, a, out=peak[:, 1:-1])
    peak[:, 1:-1] &= b >= c
    empty = ~peak.any(axis=1)
    peak[empty, 0] = True
    where = np.flatnonzero(peak)
    flat = mag.ravel()
    inner = where % bins > 0  # bin 0 (a flat frame's stand-in) has no neighbours to refine it
    p = where[inner]
    left, mid, right = (flat[p - 1].astype(np.float64), flat[p].astype(np.float64), flat[p + 1].astype(np.float64))
    freq = (where % bins).astype(np.float64)
    freq[inner] += np.clip(0.5 * (left - right) / (left - 2.0 * mid + right), -0.5, 0.5)
    frame = where // bins
    same = frame[1:] == frame[:-1]
    start = np.where(same, (where[1:] + where[:-1]) // 2 + 1, frame[1:] * bins)
    counts = np.diff(np.concatenate([[0], start, [frames * bins]]))
    return freq, counts


def peak_frequencies(norm: np.ndarray) -> np.ndarray:
    """(T, K) dB-like magnitudes -> (T, K): the frequency, in bins, of each bin's nearest spectral peak."""
    freq, counts = nearest_peaks(norm)
    return np.repeat(freq, counts).reshape(np.shape(norm))


def onset_frames(norm: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """(T,) bool: frames whose mean positive rise over the frame before (`previous` for the first) exceeds
    ONSET_RISE."""
    mag = np.asarray(norm, np.float32)
    before = mag[:1] if previous is None else np.asarray(previous, np.float32)[None]
    rise = np.diff(np.concatenate([before, mag]), axis=0)
    np.maximum(rise, 0.0, out=rise)
    return rise.mean(axis=1) > ONSET_RISE


def _wrap(x: np.ndarray) -> np.ndarray:
    """In place: phases in units of pi into [-1, 1]."""
    turns = np.multiply(x, 0.5)
    np.rint(turns, out=turns)
    turns *= 2.0
    x -= turns
    return x


class VocoderPhase:
    """Streaming phase (in units of pi, as decoder1 outputs it) for (channels, frames, bins) magnitudes."""

    def __init__(self, channels: int, bins: int, n_fft: int, hop: int, window: int = 0):
        self.n_fft, self.hop, self.window = n_fft, hop, window  # window: frames per decoder window (0: no joins)
        self.frame = 0  # frames seen (the position in the decoder-window grid)
        # an impulse at the frame centre (n_fft / 2): bin k at -k pi, wrapped
        self.impulse = np.mod(-np.arange(bins, dtype=np.float64) + 1.0, 2.0).astype(np.float32) - 1.0
        self.last = np.tile(self.impulse, (channels, 1))
        self.previous: list[np.ndarray | None] = [None] * channels

    def __call__(self, norm: np.ndarray) -> np.ndarray:
        """(channels, frames, bins) normalised dB magnitudes -> their phase in units of pi, float32."""
        channels, frames, bins = norm.shape
        out = np.empty(norm.shape, np.float32)
        if frames == 0:
            return out
        t = np.arange(frames)
        for ch in range(channels):
            freq, counts = nearest_peaks(norm[ch])
            # each bin advances by its nearest peak's frequency, as a sinusoid there would; in pi per frame
            advance = np.mod(2.0 * self.hop / self.n_fft * freq, 2.0).astype(np.float32)  # pi per frame
            phase = out[ch]
            phase.reshape(-1)[:] = np.repeat(advance, counts)
            reset = onset_frames(norm[ch], self.previous[ch])
            if self.window:
                reset &= (self.frame + t) % self.window != 0  # never at a window's first frame (a join's step)
            # summed per stretch: from an onset (restarting at the impulse) or from a block start (the phase so far)
            starts = np.union1d(np.flatnonzero(reset), np.arange(0, frames, BLOCK))
            carry = self.last[ch]
            for s, e in zip(starts, np.append(starts[1:], frames), strict=True):
                seg = phase[s:e]
                if reset[s]:
                    seg[0] = self.impulse
                else:
                    seg[0] += carry
                np.cumsum(seg, axis=0, out=seg)
                carry = _wrap(seg[-1].copy())
            _wrap(phase)
            self.last[ch] = carry
            self.previous[ch] = np.array(norm[ch, -1], np.float32)
        self.frame += frames
        return out
