"""Tempo lock on synthetic kick audio: the estimator against known truth and librosa, the stretch, the tracker."""

from __future__ import annotations

import numpy as np
import pytest

from generator.timeline.crossfade import Joiner
from generator.timeline.stretch import TRUST_BEATS, BarTracker, estimate_grid, lock_piece, onset_offsets, stretch_span
from tests.generator.beats_audio import SR, kick_track, ramp_beats, steady_beats


@pytest.mark.parametrize(("bpm", "phase"), [(126.3, 0.123), (128.0, 0.0), (133.0, 0.31)])
def test_estimate_grid_finds_tempo_and_phase(bpm, phase):
    audio = kick_track(steady_beats(bpm, phase, 4.0), 4.0, seed=1)
    grid = estimate_grid(audio, SR, bpm_prior=128.0)
    assert grid.confidence > 0.5
    assert grid.bpm == pytest.approx(bpm, rel=2e-3)
    period = 60.0 / bpm
    err = (grid.first_beat_s - phase + period / 2) % period - period / 2
    assert abs(err) < 0.003


def test_estimate_grid_agrees_with_librosa_line_fit():
    analysis = pytest.importorskip("training.analysis")
    audio = kick_track(steady_beats(131.0, 0.2, 8.0), 8.0, seed=2)
    ours = estimate_grid(audio, SR, bpm_prior=128.0)
    ref = analysis.measure_tempo(audio, SR, bpm_range=(90, 180))
    assert ours.bpm == pytest.approx(ref.bpm, rel=5e-3)


def test_noise_has_no_confident_grid():
    noise = np.random.default_rng(0).normal(0, 0.3, (2, 4 * SR)).astype(np.float32)
    assert estimate_grid(noise, SR, bpm_prior=128.0).confidence < 0.3


def test_bad_prior_is_refused():
    with pytest.raises(ValueError, match="bpm_prior"):
        estimate_grid(np.zeros((2, SR), np.float32), SR, bpm_prior=0.0)


def test_stretch_span_exact_length_and_identity_copy():
    src = np.random.default_rng(0).normal(0, 0.1, (2, 3 * SR)).astype(np.float32)
    same = stretch_span(src, 10000, 50000, 40000, lead=100, sr=SR)
    np.testing.assert_array_equal(same, src[:, 9900:50000])
    out = stretch_span(src, 10000, 50000, 39000, lead=100, sr=SR)
    assert out.shape == (2, 39100) and out.dtype == np.float32


def test_stretch_lands_onsets_on_target():
    beats = steady_beats(125.0, 0.05, 6.0)
    src = kick_track(beats, 6.0, seed=3)
    g0, g1 = int(beats[2] * SR), int(beats[10] * SR)
    host_beat = int(60.0 / 128.0 * SR)
    out = stretch_span(src, g0, g1, 8 * host_beat, lead=0, sr=SR)
    offs = onset_offsets(out, SR, np.arange(8) * host_beat)
    assert np.nanmax(np.abs(offs)) < 0.004


def _segments(src_audio: np.ndarray):
    """A BarTracker's segment(a, b) over `src_audio`, zeros outside it."""

    def segment(a: int, b: int) -> np.ndarray:
        out = np.zeros((2, b - a), np.float32)
        lo, hi = max(a, 0), min(b, src_audio.shape[1])
        if hi > lo:
            out[:, lo - a : hi - a] = src_audio[:, lo:hi]
        return out

    return segment


def _lock(src_audio: np.ndarray, host_bpm: float, cond_bpm: float, bars: int, start_beat: float = 0.0):
    """Render `bars` host bars through BarTracker + lock_piece + Joiner, as the renderer does."""
    tracker = BarTracker(_segments(src_audio), SR, 4.0, cond_bpm, start_beat, nominal_start=0.5 * SR)
    xf = int(0.03 * SR)
    joiner = Joiner(xf)
    spb = 60.0 / host_bpm * SR
    parts = []
    for k in range(bars):
        b0 = start_beat + 4 * k
        n = int(round((b0 + 4) * spb)) - int(round(b0 * spb))
        audio, _ = lock_piece(tracker, b0, b0 + 4, n, xf, SR)
        parts.append(joiner.push(audio))
    parts.append(joiner.finish())
    return np.concatenate(parts, axis=1), tracker


@pytest.mark.parametrize(("gen_beats", "host_bpm"), [
    (steady_beats(131.0, 0.37, 14.0), 128.0),
    (ramp_beats(126.0, 131.0, 0.21, 14.0), 128.0),
])
def test_lock_puts_generated_beats_on_host_grid(gen_beats, host_bpm):
    src = kick_track(gen_beats, 14.0, seed=4)
    out, tracker = _lock(src, host_bpm, cond_bpm=128.0, bars=5)
    assert tracker.confidence > 0.3
    spb = 60.0 / host_bpm * SR
    host_beats = np.arange(20) * spb
    err = np.abs(onset_offsets(out, SR, host_beats))
    assert np.isfinite(err).mean() > 0.9
    err = err[np.isfinite(err)]
    assert np.median(err) <= 0.010 and np.percentile(err, 95) <= 0.025


def test_lock_verified_with_librosa_beats():
    analysis = pytest.importorskip("training.analysis")
    src = kick_track(steady_beats(132.0, 0.1, 14.0), 14.0, seed=5, hat=0.03)
    out, _ = _lock(src, 128.0, cond_bpm=130.0, bars=6)
    est = analysis.measure_tempo(out, SR, bpm_range=(90, 180))
    assert est.bpm == pytest.approx(128.0, rel=3e-3)
    period = 60.0 / 128.0
    beats = est.beat_times[(est.beat_times > 0.3) & (est.beat_times < out.shape[1] / SR - 0.3)]
    # offset to the nearest host beat; librosa's onset lag is the same for every beat, so remove its median
    off = (beats + period / 2) % period - period / 2
    spread = np.abs(off - np.median(off))
    assert np.median(spread) <= 0.010 and np.percentile(spread, 95) <= 0.025
    assert abs(np.median(off)) <= 0.025


@pytest.mark.parametrize("sr", [22050, 44100, 48000])
def test_kick_band_filter_is_the_butterworth_low_pass(sr: int) -> None:
    # the onset envelope's kick band avoids importing scipy.signal at start-up; it must filter exactly as
    # scipy's 2nd-order Butterworth would, or beat grids of the live path would move
    from scipy.signal import butter, lfilter

    from generator.timeline.stretch import LOW_HZ, _lowpass

    y = np.random.default_rng(1).standard_normal(sr * 3)
    b, a = butter(2, LOW_HZ, fs=sr)
    np.testing.assert_allclose(_lowpass(y, sr), lfilter(b, a, y), atol=1e-9)


def _trusting(src_audio: np.ndarray, cond_bpm: float, trust: float) -> BarTracker:
    return BarTracker(_segments(src_audio), SR, 4.0, cond_bpm, 0.0, nominal_start=0.5 * SR, trust_beats=trust)


def test_a_phase_conditioned_stream_is_mapped_on_its_conditioned_grid():
    """Kicks on the conditioned grid but each preceded by a smear (the decoders' pre-echo) that the estimator reads
    as an early onset: trusting the conditioning maps bar j exactly to its nominal start (no stretch, no shift)."""
    spb = 60.0 / 128.0
    beats = steady_beats(128.0, 0.5, 14.0)
    src = kick_track(beats, 14.0, seed=5)
    rng = np.random.default_rng(5)
    for b in beats:  # 40 ms of rising noise before each kick
        s = int(b * SR)
        n = int(0.04 * SR)
        src[:, s - n : s] += (rng.normal(0, 0.3, n) * np.linspace(0, 1, n)).astype(np.float32)
    tracker = _trusting(src, 128.0, trust=TRUST_BEATS)
    for j in range(5):
        assert tracker.bar_start(j) == pytest.approx(0.5 * SR + 4 * j * spb * SR, abs=1e-6)
    assert len(tracker.deviations) >= 4 and not tracker._following


def test_a_stream_off_its_conditioning_is_followed_after_a_few_bars_and_stays_where_it_is():
    """A preset whose beats sit 0.24 beats from its conditioned grid: the trusting tracker measures that for
    TRUST_BARS bars and then shifts the grid by it, bar after bar (following a chain of measured beats walked the
    map a beat off within 16 bars)."""
    spb = 60.0 / 128.0
    src = kick_track(steady_beats(128.0, 0.5 + 0.24 * spb, 36.0), 36.0, seed=6)
    tracker = _trusting(src, 128.0, trust=TRUST_BEATS)
    starts = [tracker.bar_start(j) for j in range(16)]
    late = [(g - (0.5 * SR + 4 * j * spb * SR)) / (spb * SR) for j, g in enumerate(starts)]
    assert late[0] == pytest.approx(0.0)
    assert late[5:] == pytest.approx([0.24] * 11, abs=0.03)


def test_a_few_bars_read_late_do_not_move_a_conditioned_grid():
    """Kicks on the conditioned grid except three bars of four whose kicks sit 0.24 beats late (a fill, or onsets
    the heard offset reads late): the median of four bars said 0.24 and the grid followed them for a bar, putting the
    bars around them 0.24 beats early. Every bar must say so before the grid moves."""
    spb = 60.0 / 128.0
    beats = steady_beats(128.0, 0.5, 30.0)
    beats = np.where((beats > 0.5 + 4 * 5 * spb) & (beats < 0.5 + 4 * 8 * spb - 0.1), beats + 0.24 * spb, beats)
    tracker = _trusting(kick_track(beats, 30.0, seed=8), 128.0, trust=TRUST_BEATS)
    for j in range(13):
        assert tracker.bar_start(j) == pytest.approx(0.5 * SR + 4 * j * spb * SR, abs=1e-6)
    assert not tracker._following and max(tracker.deviations) > TRUST_BEATS


def test_kicks_whose_rise_is_smeared_ahead_do_not_move_a_conditioned_grid():
    """Techno at 143 BPM (the techno preset's default) whose kicks rise for 90 ms before they hit, as the decoders
    smear them, with a 16th-note hat before each: the heard beat is the kick, so the conditioned grid stays the
    map for 12 bars (the shipped preset's own audio: tests/generator/test_shipped_presets.py)."""
    spb = 60.0 / 143.0
    beats = steady_beats(143.0, 0.5, 22.0)
    src = kick_track(beats, 22.0, seed=7)
    rng = np.random.default_rng(7)
    smear, hat = int(0.09 * SR), 1500
    for b in beats:
        s = int(b * SR)
        src[:, s - smear : s] += (rng.normal(0, 0.25, smear) * np.linspace(0, 1, smear) ** 2).astype(np.float32)
        h = int((b - 0.25 * spb) * SR)
        src[:, h : h + hat] += (rng.normal(0, 0.3, hat) * np.exp(-np.arange(hat) / 250.0)).astype(np.float32)
    tracker = _trusting(src, 143.0, trust=TRUST_BEATS)
    for j in range(12):
        assert tracker.bar_start(j) == pytest.approx(0.5 * SR + 4 * j * spb * SR, abs=1e-6)
    assert abs(float(np.median(tracker.deviations))) < 0.05


def _snapped(src_audio: np.ndarray, bars: int, snap_ms: float, bpm: float = 128.0) -> np.ndarray:
    """`bars` bars of a phase-conditioned stream (trusting tracker) with beat snap, in 1-beat pieces as the
    renderer plays them, host tempo = conditioned tempo."""
    tracker = BarTracker(_segments(src_audio), SR, 4.0, bpm, 0.0, nominal_start=0.5 * SR, trust_beats=TRUST_BEATS,
                         snap_s=snap_ms / 1000.0)
    xf = int(0.03 * SR)
    joiner = Joiner(xf)
    spb = 60.0 / bpm * SR
    parts = []
    for b in range(4 * bars):
        n = int(round((b + 1) * spb)) - int(round(b * spb))
        audio, _ = lock_piece(tracker, float(b), b + 1.0, n, xf, SR)
        parts.append(joiner.push(audio))
    parts.append(joiner.finish())
    return np.concatenate(parts, axis=1)


def _scattered(offsets_s: np.ndarray, bpm: float = 128.0, hat: float = 0.15) -> np.ndarray:
    beats = 0.5 + np.arange(offsets_s.size) * 60.0 / bpm + offsets_s
    return kick_track(beats, 0.5 + (offsets_s.size + 2) * 60.0 / bpm, seed=8, hat=hat)


def _librosa_errors(out: np.ndarray, beats: np.ndarray, bpm: float = 128.0) -> np.ndarray:
    """Each host beat's kick as librosa's onset strength places it (s), less its median (the tracker's lag)."""
    librosa = pytest.importorskip("librosa")
    env = librosa.onset.onset_strength(y=out.mean(axis=0), sr=SR, hop_length=64, n_fft=512, n_mels=40)
    spb = 60.0 / bpm * SR
    err = []
    for b in beats:
        c, w = int(b * spb / 64), int(0.2 * spb / 64)
        err.append((c - w + int(np.argmax(env[c - w : c + w + 1]))) * 64 / SR - b * spb / SR)
    err = np.asarray(err)
    return err - np.median(err)


def test_beat_snap_puts_each_scattered_kick_on_its_host_beat():
    """Kicks generated up to 15 ms early or late of their conditioned beats, each beat by its own amount (what the
    techno preset does seed by seed): with the snap every kick lands on its host beat, as an outside tracker
    (librosa's onset strength) hears it; without it they stay scattered."""
    offsets = np.random.default_rng(3).uniform(-0.015, 0.015, 28)
    src = _scattered(offsets)
    beats = np.arange(1, 24)
    host = beats * 60.0 / 128.0 * SR
    plain = onset_offsets(_snapped(src, 6, 0.0), SR, host)
    snapped = onset_offsets(_snapped(src, 6, 25.0), SR, host)
    assert np.percentile(np.abs(plain), 95) > 0.010
    assert np.percentile(np.abs(snapped), 95) < 0.002
    outside = _librosa_errors(_snapped(src, 6, 25.0), beats)
    assert np.percentile(np.abs(outside), 95) < 0.003
    assert np.percentile(np.abs(_librosa_errors(_snapped(src, 6, 0.0), beats)), 95) > 0.008


def test_beat_snap_moves_a_beat_at_most_its_limit():
    offsets = np.full(20, 0.040)  # every kick 40 ms late: moved by the 25 ms limit, 15 ms late still
    out = _snapped(_scattered(offsets), 4, 25.0)
    late = onset_offsets(out, SR, np.arange(2, 14) * 60.0 / 128.0 * SR)
    assert np.median(late) == pytest.approx(0.015, abs=0.002)


def test_beat_snap_leaves_a_beat_without_a_kick_where_it_is():
    """A break: beats 8-11 have no kick, only the off-beat hats. Nothing there is moved (a hat pulled towards the
    beat would read as an early kick), while the kicks around it are snapped."""
    bpm, spb = 128.0, 60.0 / 128.0
    beats = 0.5 + np.arange(24) * spb + 0.012
    src = kick_track(np.delete(beats, range(8, 12)), 0.5 + 26 * spb, seed=9, hat=0.0)
    rng = np.random.default_rng(9)
    for b in beats:  # loud hats on the off-beats, kicks or not
        h = int((b + 0.5 * spb) * SR)
        src[:, h : h + 2000] += (rng.normal(0, 0.4, 2000) * np.exp(-np.arange(2000) / 300.0)).astype(np.float32)
    tracker = BarTracker(_segments(src), SR, 4.0, bpm, 0.0, nominal_start=0.5 * SR, trust_beats=TRUST_BEATS,
                         snap_s=0.025)
    moved = np.array([tracker.position(float(b)) - (0.5 * SR + b * spb * SR) for b in range(20)]) / SR
    assert moved[8:12] == pytest.approx([0.0] * 4, abs=1e-9)
    assert moved[[4, 5, 6, 7, 12, 13, 14]] == pytest.approx([0.012] * 7, abs=0.002)


def test_beat_snap_splices_a_held_tone_without_a_click():
    """A held 220 Hz tone under the kicks: the snap's splices (crossfaded where the beat is quietest) leave no
    click: the output's energy above 4 kHz stays what the unsnapped output has (none but the noise floor)."""
    offsets = np.random.default_rng(4).uniform(-0.02, 0.02, 20)
    src = _scattered(offsets, hat=0.0)
    t = np.arange(src.shape[1]) / SR
    src += (0.3 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)
    from scipy.signal import butter, sosfilt

    sos = butter(8, 4000, "highpass", fs=SR, output="sos")
    high = [float(np.sqrt(np.mean(sosfilt(sos, _snapped(src, 4, ms)[0, SR:]) ** 2))) for ms in (0.0, 25.0)]
    assert high[1] < 2.0 * high[0]


def test_beat_snap_as_aubio_hears_it(tmp_path):
    """The same scattered kicks, onsets found by aubio's aubioonset (apt aubio-tools), a program nobody here wrote:
    with the snap its onsets sit on the host beats (after its own constant lag), without it they scatter."""
    import shutil
    import subprocess

    import soundfile as sf

    if shutil.which("aubioonset") is None:
        pytest.skip("aubioonset is not installed (make test installs aubio-tools)")
    offsets = np.random.default_rng(3).uniform(-0.015, 0.015, 28)
    src = _scattered(offsets, hat=0.0)
    spb = 60.0 / 128.0
    spread = []
    for ms in (0.0, 25.0):
        path = tmp_path / f"snap{ms:g}.wav"
        sf.write(path, _snapped(src, 6, ms).T, SR)
        run = subprocess.run(["aubioonset", "-i", str(path), "-O", "energy", "-M", "0.2"], capture_output=True,
                             text=True, check=True)
        onsets = np.array([float(x) for x in run.stdout.split()])
        err = np.array([onsets[np.argmin(np.abs(onsets - b * spb))] - b * spb for b in range(1, 24)])
        assert np.all(np.abs(err) < 0.1), err  # one onset per kick
        spread.append(float(np.percentile(np.abs(err - np.median(err)), 95)))
    assert spread[0] > 0.008 and spread[1] < 0.003, spread


def test_beat_snap_places_off_beats_on_their_own():
    """Kicks and off-beat hats each early or late by their own amounts (the generator's do not move together):
    both land on the host grid, the hats not dragged along by their beat's kick."""
    spb = 60.0 / 128.0
    rng = np.random.default_rng(11)
    kick_off, hat_off = rng.uniform(-0.015, 0.015, 28), rng.uniform(-0.015, 0.015, 28)
    src = kick_track(0.5 + np.arange(28) * spb + kick_off, 0.5 + 30 * spb, seed=11, hat=0.0)
    hat = (rng.normal(0, 0.5, 2000) * np.exp(-np.arange(2000) / 300.0)).astype(np.float32)
    for k in range(28):
        h = int((0.5 + (k + 0.5) * spb + hat_off[k]) * SR)
        src[:, h : h + 2000] += hat
    beats = np.arange(1, 23) * spb * SR
    plain, snapped = (_snapped(src, 6, ms) for ms in (0.0, 25.0))
    assert np.percentile(np.abs(onset_offsets(plain, SR, beats + 0.5 * spb * SR)), 95) > 0.010
    assert np.percentile(np.abs(onset_offsets(snapped, SR, beats)), 95) < 0.002
    assert np.percentile(np.abs(onset_offsets(snapped, SR, beats + 0.5 * spb * SR)), 95) < 0.005


def test_the_reported_stretch_is_the_bar_maps_not_the_snaps_jumps():
    offsets = np.random.default_rng(5).uniform(-0.015, 0.015, 12)
    tracker = BarTracker(_segments(_scattered(offsets)), SR, 4.0, 128.0, 0.0, nominal_start=0.5 * SR,
                         trust_beats=TRUST_BEATS, snap_s=0.025)
    spb = 60.0 / 128.0 * SR
    for b in range(8):
        n = int(round((b + 1) * spb)) - int(round(b * spb))
        _, factor = lock_piece(tracker, float(b), b + 1.0, n, int(0.03 * SR), SR)
        assert factor == pytest.approx(1.0, abs=1e-3)
