"""Crossfades and fades for joining stereo blocks (pure numpy).

Audio is float32 (channels, samples). A crossfade follows how alike the two blocks are: the equal-power gains
cos(pi/2 * x) (out) and sin(pi/2 * x) (in), x going from 0 to 1 across the fade, keep the loudness of unrelated
material (cos^2 + sin^2 = 1) but lift identical material by 3 dB in the middle; the equal-gain gains cos^2 and
sin^2 add up to 1, so identical material passes unchanged (and peaks stay where they were). The gains are
blended by the blocks' correlation r (clipped to [0, 1]): (1 - r) equal-power + r equal-gain. Joins inside one
generated stream (a piece and the next, cut from the same audio) are identical to within the stretch, so they
neither swell before each beat nor push peaks over the output stage's ceiling.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_CROSSFADE_MS = 30.0
START_FADE = 64  # samples of fade-in when a stream starts from silence


def fade_samples(ms: float, sample_rate: int) -> int:
    """A fade length in milliseconds -> samples (>= 0)."""
    if not np.isfinite(ms) or ms < 0:
        raise ValueError(f"fade length must be a finite number of milliseconds >= 0, got {ms}")
    return int(round(ms * sample_rate / 1000.0))


def equal_power_gains(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(fade_out, fade_in) gains of length n, float32; x sampled at sample centres so both ends avoid 0 and 1."""
    x = (np.arange(n, dtype=np.float64) + 0.5) / max(n, 1)
    return np.cos(0.5 * np.pi * x).astype(np.float32), np.sin(0.5 * np.pi * x).astype(np.float32)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised correlation of two equally shaped blocks, clipped to [0, 1] (0 when either is silent)."""
    a64, b64 = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    den = math.sqrt(float(a64 @ a64) * float(b64 @ b64))
    return min(1.0, max(0.0, float(a64 @ b64) / den)) if den > 0 else 0.0


def crossfade(outgoing: np.ndarray, incoming: np.ndarray) -> np.ndarray:
    """Mix of two equally long blocks (channels, n): `outgoing` fades out while `incoming` fades in, with gains
    between equal-power (unrelated blocks) and equal-gain (identical blocks) by their correlation."""
    if outgoing.shape != incoming.shape:
        raise ValueError(f"crossfade needs blocks of the same shape, got {outgoing.shape} and {incoming.shape}")
    g_out, g_in = equal_power_gains(outgoing.shape[-1])
    r = np.float32(correlation(outgoing, incoming))
    if r > 0:
        g_out, g_in = (1 - r) * g_out + r * g_out * g_out, (1 - r) * g_in + r * g_in * g_in
    return (outgoing * g_out + incoming * g_in).astype(np.float32)


def fade_out(block: np.ndarray, n: int | None = None) -> np.ndarray:
    """Copy of `block` (channels, samples) whose last `n` samples (all when None) fade to silence (equal-power)."""
    out = np.array(block, dtype=np.float32, copy=True)
    n = out.shape[-1] if n is None else min(int(n), out.shape[-1])
    if n > 0:
        out[..., out.shape[-1] - n :] *= equal_power_gains(n)[0]
    return out


def fade_in(block: np.ndarray, n: int | None = None) -> np.ndarray:
    """Copy of `block` (channels, samples) whose first `n` samples (all when None) rise from silence."""
    out = np.array(block, dtype=np.float32, copy=True)
    n = out.shape[-1] if n is None else min(int(n), out.shape[-1])
    if n > 0:
        out[..., :n] *= equal_power_gains(n)[1]
    return out


def dip_under(block: np.ndarray, ceiling: float) -> np.ndarray:
    """A crossfaded block (channels, n) whose samples exceed `ceiling` (linear) -> the block times a raised-sine
    dip that is 1 at both ends (where the mix is one piece alone) and deep enough in between to bring every
    sample under the ceiling; a block under it is returned as it is."""
    peak = np.abs(block).max(axis=0) if block.size else np.zeros(0)
    if not peak.size or peak.max() <= ceiling:
        return block
    n = block.shape[-1]
    shape = np.sin(np.pi * (np.arange(n) + 0.5) / n) ** 2
    over = peak > ceiling
    depth = float(np.max((1.0 - ceiling / peak[over]) / np.maximum(shape[over], 1e-6)))
    return (block * (1.0 - min(depth, 1.0) * shape)[None, :]).astype(np.float32)


class Joiner:
    """Joins a sequence of pieces into one seamless stream.

    Each piece covers host samples [start - xf, end): its first `xf` samples are a lead-in that overlaps the
    previous piece's last `xf` samples, and the two are crossfaded so that at `start` the new piece is at full
    gain (a downbeat transient at `start` is never attenuated). The joiner holds back the last `xf` samples of
    the latest piece until the next one arrives (or :meth:`finish` / :meth:`finish_with_fade` is called).
    ceiling_dbtp: when given, a crossfade of two partly alike pieces that would rise above it (each piece is
    under it on its own) is dipped smoothly under it (:func:`dip_under`).
    """

    def __init__(self, xfade: int, channels: int = 2, ceiling_dbtp: float | None = None):
        if xfade < 0:
            raise ValueError(f"crossfade length must be >= 0 samples, got {xfade}")
        self.xfade = int(xfade)
        self.channels = channels
        self.ceiling = None if ceiling_dbtp is None else 10.0 ** (ceiling_dbtp / 20.0)
        self._tail: np.ndarray | None = None

    @property
    def pending(self) -> int:
        """Samples held back (the previous piece's tail), 0 or xfade."""
        return 0 if self._tail is None else self._tail.shape[-1]

    def push(self, piece: np.ndarray) -> np.ndarray:
        """Add a piece (channels, xf + length) -> the samples now final.

        Normally returns (channels, length): the crossfaded lead-in (host samples [start - xf, start), replacing
        the tail held back from the previous piece) and the body up to end - xf. The first piece after a reset
        has no predecessor: its lead-in is dropped and the body starts with a short fade-in (``START_FADE``
        samples, about 1.5 ms, short enough to keep a downbeat transient), so it returns length - xf samples
        starting exactly at `start`."""
        xf = self.xfade
        n = piece.shape[-1]
        if piece.ndim != 2 or piece.shape[0] != self.channels or n < 2 * xf + 1:
            raise ValueError(
                f"a piece must be ({self.channels}, >= {2 * xf + 1}) samples (lead-in + body), got {piece.shape}"
            )
        body = np.asarray(piece[:, xf : n - xf], dtype=np.float32)
        if self._tail is None:
            out = fade_in(body, START_FADE)
        else:
            mixed = crossfade(self._tail, piece[:, :xf])
            if self.ceiling is not None:
                mixed = dip_under(mixed, self.ceiling)
            out = np.concatenate([mixed, body], axis=1)
        self._tail = np.array(piece[:, n - xf :], dtype=np.float32)
        return out

    @property
    def tail(self) -> np.ndarray | None:
        """The held-back tail (channels, xfade) of the latest piece, or None (see :meth:`restore`)."""
        return self._tail

    def restore(self, tail: np.ndarray | None) -> None:
        """Go back to the state after an earlier piece whose :attr:`tail` this was (None: as after a reset), so
        the pieces after it can be re-rendered and joined again exactly as before."""
        self._tail = tail

    def finish(self) -> np.ndarray:
        """Release the held-back tail unchanged (end of a stream that stops cleanly)."""
        tail = self._tail if self._tail is not None else np.zeros((self.channels, 0), np.float32)
        self._tail = None
        return tail

    def finish_with_fade(self) -> np.ndarray:
        """Release the held-back tail faded to silence (transport stop)."""
        return fade_out(self.finish())

    def reset(self) -> None:
        """Forget the held-back tail (the host jumped: the next piece fades in from silence)."""
        self._tail = None
