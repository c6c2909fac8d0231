"""Live beats against the host's grid, end to end with programs nobody here wrote: jackd (dummy driver),
jack_transport as the host's transport, jack_midi_clock following it into `musika serve --sync midi --output jack`,
the shipped techno preset; the daemon's output and the transport frame of every cycle are recorded by a JACK
client, and the beats are tracked by librosa's onset strength, not the lock's estimator (scripts/live_phase.py).

Each run is ~20 s of music after a short settling time. The bounds leave room for a loaded 2-core machine (xruns
delay the audio and the daemon pulls it back over a bar or two); before the beat-phase and clock fixes the same
runs read 40 ms late with a 40-90 ms p95 and drifted by tens of ms a minute.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.jack, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def _live_phase():
    spec = importlib.util.spec_from_file_location("live_phase", ROOT / "scripts" / "live_phase.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rig():
    for tool in ("jackd", "jack_transport", "jack_midi_clock"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (make test installs jackd2 and jack-midi-clock)")
    pytest.importorskip("librosa")
    if not (ROOT / "presets" / "techno" / "preset.json").is_file():
        pytest.skip("the shipped techno preset is not here")
    return _live_phase()


@pytest.mark.parametrize("jitter", [0.0, 3.0])
def test_beats_sit_on_the_host_grid_from_a_jittered_midi_clock(rig, jitter: float) -> None:
    out = rig.measure("midi", jitter=jitter, seconds=18.0, settle_s=6.0, bpm=126.0, track_bpm=False)
    msg = {k: v for k, v in out.items() if k != "daemon_log_tail"}
    assert out["beats"] >= 25, msg  # the tracker found the kicks
    # against the grid the clock states (jack_midi_clock's -J wobbles its tempo, so its ticks stray up to ~15 ms
    # from the transport's own grid: no clock follower can know the transport better than its ticks)
    assert out["vs_clock_median_abs_ms"] <= 20.0 and abs(out["vs_clock_signed_median_ms"]) <= 15.0, msg
    stray = out["clock_vs_host_p95_ms"]
    assert out["median_abs_ms"] <= 20.0 + stray and abs(out["signed_median_ms"]) <= 15.0 + stray, msg
    # p95: on the phase vocoder (techno's default) two or three beats of the deterministic seed-0 run read 60-80 ms
    # off, where the full-band tracker takes another attack in its +-0.2 beat window (decoders' phase: 35-43 ms)
    assert out["p95_abs_ms"] <= 90.0 + stray, msg
    # the sender itself: on the transport's grid (its -J jitter is a few ms around it)
    assert out["clock_tick_error_ms_median_abs"] is not None
    assert out["clock_tick_error_ms_median_abs"] < (1.0 if jitter == 0 else 10.0), msg


def test_a_stalled_clock_and_a_transport_jump_play_on_without_a_gap_or_a_click(rig) -> None:
    out = rig.measure("midi", seconds=16.0, settle_s=4.0, bpm=126.0, keep_audio=True, track_bpm=False,
                      disturb=((7.0, "stall", 1.5), (13.0, "locate", 64.0)), clock_args=("-d", "0"))
    audio, grid = out["audio"], out["grid"]
    playing = np.flatnonzero(np.isfinite(grid))
    a, b = playing[0] + 3 * 44100, playing[-1] - 44100  # from well after the start to before the stop
    music = audio[:, a:b]
    n = 441  # 10 ms windows
    frames = music[:, : music.shape[1] // n * n].reshape(2, -1, n)
    level = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=(0, 2)))
    assert not np.any(level < 0.05 * np.median(level)), "a gap in the music"
    steady = np.abs(np.diff(audio[:, a : a + 3 * 44100], axis=1)).max()
    jumps = np.abs(np.diff(music, axis=1)).max()
    # the vocoder's kick attacks step by 0.25-0.8 from bar to bar (the training kicks by 1.1-1.35); a jump from a gap
    # or a cut reaches past twice the largest of the first three seconds
    assert jumps <= 2.0 * steady + 0.02, f"a click: a sample step of {jumps:.3f} (the music's own: {steady:.3f})"
