"""Equal-power crossfades and fades for joining stereo blocks (pure numpy).

Audio is float32 (channels, samples). An equal-power crossfade uses gains cos(pi/2 * x) (out) and sin(pi/2 * x)
(in) for x going from 0 to 1 across the fade, so cos^2 + sin^2 = 1: uncorrelated material keeps its loudness,
and identical material rises by at most 3 dB in the middle of the fade (at 20-40 ms that is inaudible).
"""

from __future__ import annotations

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


def crossfade(outgoing: np.ndarray, incoming: np.ndarray) -> np.ndarray:
    """Equal-power mix of two equally long blocks (channels, n): `outgoing` fades out while `incoming` fades in."""
    if outgoing.shape != incoming.shape:
        raise ValueError(f"crossfade needs blocks of the same shape, got {outgoing.shape} and {incoming.shape}")
    g_out, g_in = equal_power_gains(outgoing.shape[-1])
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


class Joiner:
    """Joins a sequence of pieces into one seamless stream.

    Each piece covers host samples [start - xf, end): its first `xf` samples are a lead-in that overlaps the
    previous piece's last `xf` samples, and the two are crossfaded so that at `start` the new piece is at full
    gain (a downbeat transient at `start` is never attenuated). The joiner holds back the last `xf` samples of
    the latest piece until the next one arrives (or :meth:`finish` / :meth:`finish_with_fade` is called).
    """

    def __init__(self, xfade: int, channels: int = 2):
        if xfade < 0:
            raise ValueError(f"crossfade length must be >= 0 samples, got {xfade}")
        self.xfade = int(xfade)
        self.channels = channels
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
            out = np.concatenate([crossfade(self._tail, piece[:, :xf]), body], axis=1)
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
