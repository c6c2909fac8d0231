"""gan/beat_onsets: generated windows whose attacks miss the conditioned beats cost, windows with them on the beat
cost nothing; the frame positions follow the beat phase the host's transport gives (a run with it: test_loop_gan)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from generator.runtime.conditioning import beat_positions
from generator.runtime.preset import Condition
from tests.training.tiny_dataset import tiny_model
from training.beat_onsets import BeatOnsetTerm, beat_channels, frame_positions, phase_profile
from training.errors import TrainingError

BEAT = Condition(name="beat", kind="phase", unit="beats", min=0.0, max=4.0, default=0.0, normalise="linear",
                 help="", periods=(1.0, 4.0))
TEMPO = Condition(name="tempo", kind="scalar", unit="BPM", min=118.0, max=162.0, default=140.0, normalise="linear",
                  help="")


class FramesFromLatent(nn.Module):
    """A stand-in decoder2 with a known transfer: channel j of latent k is the level of frame 16 k + j."""

    noise_len = 1

    def forward(self, x, noise):
        return x[..., :16].reshape(x.shape[0], -1, 1)


class FlatSpectrum(nn.Module):
    """A stand-in decoder1: every bin of a frame at the frame's level (so the onset envelope is its rise)."""

    noise_len = 1

    def __init__(self, bins: int):
        super().__init__()
        self.bins = bins
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, frames, noise):
        mag = frames.expand(-1, -1, self.bins) + self.unused
        return mag, torch.zeros_like(mag)


def kicks(model, bpm: float, items: int, shift_beats: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Latent windows (items, W, 2 dim) whose decoded level jumps at every beat (+ shift) and the matching
    beat-phase curve (items, W, 4) for a stream starting on a bar line."""
    ae, g = model.autoencoder, model.gan
    frames = g.window_len * ae.level2_frames
    pos = np.arange(frames) * model.audio.hop / model.audio.sample_rate * bpm / 60.0 - shift_beats
    level = (np.mod(pos, 1.0) < 0.1).astype(np.float32)
    lat = np.zeros((items, g.window_len, 2 * ae.latent_dim), np.float32)
    lat[:, :, :16] = level.reshape(g.window_len, 16)
    curve = BEAT.to_model(beat_positions(model, 0, g.window_len, bpm))
    return lat, np.repeat(curve[None], items, axis=0)


def term_for(model) -> BeatOnsetTerm:
    term = BeatOnsetTerm((FramesFromLatent(), FlatSpectrum(model.audio.n_fft // 2 + 1)), model, (TEMPO, BEAT))
    term.measure_template(lambda rng, n: kicks(model, 128.0, n))
    return term


def test_frame_positions_follow_the_beat_phase_between_latents():
    model = tiny_model()
    for bpm in (118.0, 140.0, 162.0):
        curve = BEAT.to_model(beat_positions(model, 3, 40, bpm, downbeat_s=0.2))[None, :, :2]
        got = frame_positions(curve, 16)
        t = (3 * 16 + np.arange(40 * 16)) * model.audio.hop / model.audio.sample_rate
        want = np.mod((t - 0.2) * bpm / 60.0, 1.0)
        err = np.abs(got[0] - want)
        np.testing.assert_allclose(np.minimum(err, 1 - err), 0.0, atol=1e-4)


def test_profile_peaks_where_the_attacks_are_and_has_mean_one():
    pos = np.tile(np.arange(64) / 64, 4)[None]
    env = torch.from_numpy(np.where(np.abs(pos - 0.5) < 0.02, 5.0, 0.1).astype(np.float32))
    prof = phase_profile(env, pos, bins=32)
    assert int(prof.argmax()) == 16 and abs(float(prof.mean()) - 1.0) < 1e-3


def test_attacks_on_the_beat_cost_nothing_and_off_the_beat_cost():
    model = tiny_model()
    term = term_for(model)
    on, curve = kicks(model, 128.0, 4)
    assert float(term(torch.from_numpy(on), curve)) == pytest.approx(0.0, abs=1e-6)
    off = kicks(model, 128.0, 4, shift_beats=0.5)[0]
    off += 0.05 * np.random.default_rng(0).random(off.shape, np.float32)  # real music is never exactly flat
    off = torch.from_numpy(off).requires_grad_(True)
    loss = term(off, curve)
    assert float(loss.detach()) > 0.5
    loss.backward()
    assert off.grad.abs().sum() > 0  # the generator gets a gradient through the decoders
    on_other_tempo, curve_other = kicks(model, 150.0, 4)
    assert float(term(torch.from_numpy(on_other_tempo), curve_other)) < 0.05  # the template is in beats, not s


def test_items_without_a_beat_phase_are_left_out():
    model = tiny_model()
    term = term_for(model)
    off, curve = kicks(model, 128.0, 4, shift_beats=0.5)
    curve[:] = np.nan  # condition dropout
    assert term(torch.from_numpy(off), curve) is None
    assert term(torch.from_numpy(off), None) is None


def test_real_windows_without_a_beat_phase_stay_out_of_the_template():
    """Recordings without a beat grid train with the beat condition dropped (NaN): they are not folded into the
    real beat profile (each NaN position used to land in the first bin, a 6x peak no generator could reach)."""
    model = tiny_model()
    clean = term_for(model)

    def half_untimed(rng, n):
        lat, curve = kicks(model, 128.0, n)
        curve[::2] = np.nan
        return lat, curve

    mixed = BeatOnsetTerm((FramesFromLatent(), FlatSpectrum(model.audio.n_fft // 2 + 1)), model, (TEMPO, BEAT))
    mixed.measure_template(half_untimed)
    assert mixed.target == pytest.approx(clean.target, rel=1e-4)
    untimed = BeatOnsetTerm((FramesFromLatent(), FlatSpectrum(model.audio.n_fft // 2 + 1)), model, (TEMPO, BEAT))
    with pytest.raises(TrainingError, match="none of 64 real windows has a beat phase"):
        untimed.measure_template(lambda rng, n: (kicks(model, 128.0, n)[0], np.full_like(kicks(model, 128.0, n)[1],
                                                                                          np.nan)))


def test_needs_the_one_beat_phase():
    assert beat_channels((TEMPO, BEAT)) == 0
    with pytest.raises(TrainingError, match="--condition beat"):
        beat_channels((TEMPO,))
    bars = Condition(name="beat", kind="phase", unit="beats", min=0.0, max=4.0, default=0.0, normalise="linear",
                     help="", periods=(4.0,))
    with pytest.raises(TrainingError, match="one-beat period"):
        beat_channels((bars,))
