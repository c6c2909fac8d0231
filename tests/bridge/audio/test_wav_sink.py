"""WavSink: offline recording is exact and complete; real-time recording pads underruns with silence."""

from __future__ import annotations

import time

import numpy as np
import pytest
import soundfile as sf

from bridge.audio.base import AudioSinkError
from bridge.audio.wav_sink import WavSink
from tests.bridge.audio.recorder import SR, stereo_sine


@pytest.mark.parametrize("chunk", [1, 63, 64, 65, 8193])
def test_offline_recording_is_exact_for_any_chunking(tmp_path, chunk):
    reference = stereo_sine(20000, start=3)
    path = tmp_path / "take.wav"
    sink = WavSink(path, offline=True, block_size=64, ring_frames=4096)
    with sink:
        assert sink.partial_path.exists() and not path.exists()
        pos = 0
        while pos < reference.shape[1]:  # producer: push what fits, as the renderer does
            pos += sink.ring.write(reference[:, pos : pos + min(chunk, sink.ring.free_frames)])
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    assert rate == SR and not sink.partial_path.exists()
    np.testing.assert_array_equal(audio.T, reference)
    assert sink.stats()["underruns"] == 0 and sink.stats()["frames_recorded"] == reference.shape[1]


def test_realtime_recording_pads_underrun_with_silence(tmp_path):
    reference = stereo_sine(SR // 20, start=3)
    path = tmp_path / "live.flac"
    sink = WavSink(path, block_size=256)
    sink.ring.write(reference)
    with sink:
        while sink.ring.frames_played < reference.shape[1] + SR // 20:  # wait for 50 ms of starvation
            time.sleep(0.01)
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    assert rate == SR and audio.shape[0] == sink.stats()["frames_recorded"] > reference.shape[1]
    np.testing.assert_allclose(audio[: reference.shape[1]].T, reference, atol=1e-6)  # PCM_24 in FLAC
    assert not audio[reference.shape[1] :].any()
    assert sink.ring.underruns >= 1 and sink.ring.underrun_frames == audio.shape[0] - reference.shape[1]


def test_bad_extension_and_unwritable_path_are_clear(tmp_path):
    with pytest.raises(AudioSinkError, match=r"unknown extension '\.mp4'.*\.wav"):
        WavSink(tmp_path / "x.mp4")
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(AudioSinkError, match="cannot write the recording"):
        WavSink(tmp_path / "file" / "x.wav").start()
