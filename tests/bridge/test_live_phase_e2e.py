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


@pytest.mark.parametrize(("jitter", "scatter_ms"), [(0.0, 0.0), (3.0, 0.0), (0.0, 4.0)])
def test_beats_sit_on_the_host_grid_from_a_jittered_midi_clock(rig, jitter: float, scatter_ms: float) -> None:
    """jitter: jack_midi_clock's -J (its clock walks); scatter_ms: an interface's jitter around a steady grid
    (scripts/midi_jitter.py between the sender and the daemon)."""
    out = rig.measure("midi", jitter=jitter, seconds=18.0, settle_s=6.0, bpm=126.0, track_bpm=False,
                      scatter_ms=scatter_ms)
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


def test_a_stalled_clock_plays_on_and_a_stop_locate_play_resumes_without_a_gap_or_a_click(rig) -> None:
    """The clock frozen 1.5 s: the music plays on. The host stopped, located 4 bars back and played again: the music
    is back within the live look-ahead of the host playing, and nothing clicks."""
    out = rig.measure("midi", seconds=16.0, settle_s=4.0, bpm=126.0, keep_audio=True, track_bpm=False,
                      disturb=((7.0, "stall", 1.5), (13.0, "locate", 8.0)), clock_args=("-d", "0"))
    audio, grid = out["audio"], out["grid"]
    rolling = np.isfinite(grid)
    edges = np.flatnonzero(np.diff(rolling.astype(np.int8)))
    starts, ends = edges[::2] + 1, edges[1::2] + 1
    assert len(starts) == 2, "the host played, stopped for the locate and played again"
    n = 441  # 10 ms windows
    heard = []
    for a, b in ((starts[0] + 3 * 44100, ends[0] - 4410), (starts[1] + int(0.8 * 44100), len(grid) - 44100)):
        music = audio[:, a:b]
        frames = music[:, : music.shape[1] // n * n].reshape(2, -1, n)
        heard.append(np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=(0, 2))))
    level = np.concatenate(heard)
    assert not np.any(level < 0.05 * np.median(level)), "a gap in the music while the host plays"
    steady = np.abs(np.diff(audio[:, starts[0] + 44100 : starts[0] + int(6.5 * 44100)], axis=1)).max()
    jumps = np.abs(np.diff(audio[:, starts[0] + 44100 : len(grid) - 44100], axis=1)).max()
    # the vocoder's kick attacks step by 0.25-0.8 from bar to bar (the training kicks by 1.1-1.35); a jump from a gap
    # or a cut reaches past twice the largest of the undisturbed 5.5 s before the stall
    assert jumps <= 2.0 * steady + 0.02, f"a click: a sample step of {jumps:.3f} (the music's own: {steady:.3f})"


def test_beats_sit_on_an_ableton_link_sessions_grid_through_a_tempo_step(rig) -> None:
    """An Ableton Link peer (Ableton's Link library through aalink) starts the session, then steps its tempo 5 %
    up; the daemon's beats are measured against the session's beat at each recorded sample's host time. Link
    multicasts: all of it runs in a loopback-only network namespace of its own."""
    import json
    import os
    import subprocess
    import sys

    from tests.bridge.netns import loopback_namespace

    pytest.importorskip("aalink")
    with loopback_namespace() as ns:
        run = subprocess.run(["ip", "netns", "exec", ns, sys.executable, str(ROOT / "scripts" / "live_phase.py"),
                              "--sync", "link", "--seconds", "24", "--settle", "4", "--tempo-changes"],
                             env={**os.environ, "MUSIKA_LINK_NAMESPACE": ns}, capture_output=True, text=True,
                             timeout=240, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    msg = {k: v for k, v in out.items() if k != "daemon_log_tail"}
    assert out["beats"] >= 35, msg  # the tracker found the kicks, before and after the step at 20 s
    assert out["median_abs_ms"] <= 20.0 and abs(out["signed_median_ms"]) <= 15.0, msg
    assert out["p95_abs_ms"] <= 90.0, msg  # (see the MIDI test: single beats where another attack is taken)
    assert abs(out["daemon_phase_error_ms"] - out["signed_median_ms"]) <= 10.0, msg  # the daemon knows where it is


def test_beats_sit_on_the_jack_transports_grid_and_land_on_it_after_a_locate(rig) -> None:
    """`musika serve --sync jack` reads the transport jack_transport rolls; the host stops, jumps 4 bars back and
    plays on at 10 s. MIDI clock from the same transport (jack_midi_clock) plays ~60 ms late after such a locate
    (its Continue comes 3 clocks past its Song Position Pointer); the transport itself says where it lands."""
    out = rig.measure("jack", seconds=20.0, settle_s=4.0, bpm=126.0, track_bpm=False, per_beat=True,
                      disturb=((10.0, "locate", 8.0),))
    msg = {k: v for k, v in out.items() if k != "daemon_log_tail"}
    assert out["beats"] >= 30, msg
    assert out["median_abs_ms"] <= 10.0 and abs(out["signed_median_ms"]) <= 10.0, msg
    errors = [out["beat_errors_ms"][k] for k in sorted(out["beat_errors_ms"], key=float)]
    after = np.asarray(errors[-12:])  # the last 12 beats: from about 4 s after the locate
    assert np.median(np.abs(after)) <= 10.0, msg
    assert abs(out["daemon_phase_error_ms"] - out["signed_median_ms"]) <= 10.0, msg


def test_a_log_path_whose_folder_is_missing_is_refused_before_the_run(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        _live_phase().main(["--seconds", "1", "--log", str(tmp_path / "no" / "such" / "run.log")])
    assert exc.value.code == 2
    assert "does not exist; make it first" in capsys.readouterr().err
