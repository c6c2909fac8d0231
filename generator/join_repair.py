"""Decoder-window joins: make consecutive windows of decoded spectra flow into each other before the iSTFT.

decoder1 turns each window of ``dec1_window`` frames into magnitude (normalised dB) and phase independently.
Measured on the shipped techno preset (session 2): every window's first and last frame come out louder than the
frames inside (by 0.11 normalised, ~8 dB, per bin on average against their neighbour), and the phase restarts
at each window start without regard to the frame before it. Both make a flux spike at every join (every
0.37 s, which a beat tracker hears as 161.5 BPM): the eval's seam ratio was 1.84 on generated latents (bar:
1.25). This module repairs both, causally and independently of how a stream is cut into decode calls:

* magnitude: a window's first frame is limited to its second, its last frame to the one before it (``min``,
  per bin), which removes the edge burst; an onset on a window's first frame is kept (the frame after it is
  loud too), one on its last frame sounds one frame (5.8 ms) later, from the next window;
* phase: the ``HOLD`` frames from a join on continue the frame before them at the nominal phase advance of
  each bin (2 pi k hop / n_fft, phase-vocoder style), then ``FADE`` frames cross-fade (complex, so no phase
  wraps) from the continuation of the frame before to the decoder's own phase.

Seam ratio (6 generated clips of 12 s; 1 = joins indistinguishable from anywhere else): techno 1.79 -> 1.11
(magnitude alone 1.39, phase alone 1.65), piano 1.47 -> 1.16. Holding the phase longer lowers the ratio further
(HOLD = FADE = 6: 1.01) but smears more of each window's start; 3 + 4 frames (17 + 23 ms) is the choice.
A stream carries the last frame's phase from one call to the next (:class:`JoinState`), so the output of
successive calls equals one call on the whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HOLD = 3  # frames after a join that continue the previous frame's phase
FADE = 4  # frames over which the continuation cross-fades into the decoder's phase


@dataclass
class JoinState:
    """The last decoded frame's phase (channels, bins) of a stream, None before its first window."""

    last_phase: np.ndarray | None = None


def _wrap(x: np.ndarray) -> np.ndarray:
    """Angles into [-pi, pi)."""
    return np.remainder(x + np.pi, 2.0 * np.pi) - np.pi


def phase_advance(bins: int, hop: int, n_fft: int) -> np.ndarray:
    """Nominal phase advance per hop of each bin, (bins,) float64."""
    return 2.0 * np.pi * np.arange(bins) * hop / n_fft


def repair_joins(
    magnitude: np.ndarray,
    phase: np.ndarray,
    window: int,
    hop: int,
    n_fft: int,
    state: JoinState | None = None,
    inplace: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Repair the joins of (channels, frames, bins) spectra made of whole decoder windows of `window` frames.

    Joins are every `window` frames, plus frame 0 when `state` holds the previous call's last phase. Returns the
    repaired arrays (new ones unless `inplace`) and updates `state`. All joins are done at once: only the
    HOLD + FADE frames after each join are touched."""
    if magnitude.shape != phase.shape or magnitude.ndim != 3:
        raise ValueError(f"magnitude and phase must both be (channels, frames, bins), got {magnitude.shape} and "
                         f"{phase.shape}")
    frames = magnitude.shape[1]
    if frames % window or window < HOLD + FADE + 1:
        raise ValueError(f"frames ({frames}) must be whole windows of {window} > {HOLD + FADE} frames")
    state = state if state is not None else JoinState()
    mag = magnitude if inplace else magnitude.copy()
    out = phase if inplace else phase.copy()
    first = np.arange(0, frames, window)
    last_phase = np.pi * phase[:, -1]  # the decoder's own (windows are longer than the repair), radians
    mag[:, first] = np.minimum(mag[:, first], mag[:, first + 1])
    mag[:, first + window - 1] = np.minimum(mag[:, first + window - 1], mag[:, first + window - 2])
    if state.last_phase is None:
        first = first[1:]  # the stream's first window: nothing to continue
    if first.size:
        # phase in radians (the decoders output phase / pi, see generator.spectral), all joins x bins at once
        prev = np.pi * phase[:, np.maximum(first - 1, 0)]
        if first[0] == 0:
            prev[:, 0] = state.last_phase
        adv = _wrap(phase_advance(phase.shape[2], hop, n_fft)).astype(np.float32)
        for i in range(HOLD + FADE):
            cont = _wrap(prev + adv)
            if i >= HOLD:  # complex cross-fade towards the decoder's own phase, as cos/sin (no complex exp)
                w = np.float32((i - HOLD + 1) / (FADE + 1))
                own = np.pi * phase[:, first + i]
                cont = np.arctan2((1 - w) * np.sin(cont) + w * np.sin(own), (1 - w) * np.cos(cont) + w * np.cos(own))
            out[:, first + i] = cont / np.float32(np.pi)
            prev = cont
    state.last_phase = last_phase
    return mag, out
